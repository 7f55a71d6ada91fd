"""Signed, tamper-evident audit trail (RFC 9162 Merkle tree, C2SP checkpoints and tiles).

    append(conn, AuditEntry(...)) -> leaf index      # in the caller's transaction
    append_many(conn, entries) -> [leaf indexes]     # group commit
    append_durably(engine, entry) -> leaf index      # standalone event, own (shared) commit
    pseudonym(conn, tenant_id, person_local_id)      # keyed, per tenant; resolvable by the DPO
    erase_person_mapping(conn, tenant_id, person_local_id)

Modules: entry (the leaf), log (appends), appender (standalone appends, commits merged
across concurrent callers), pseudonyms, merkle / note / jcs (pure, shared with
the verifier), tiles (stored hash tiles, proofs), keys (signing keys), checkpoint (signing),
export, verify (offline, standalone), fhir (BALP AuditEvent).

Names are loaded lazily so that `python -m gateway.audit.verify` needs neither the database
layer nor the settings: the verifier only needs the exported files and public keys.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AuditEntry": "gateway.audit.entry",
    "EntryError": "gateway.audit.entry",
    "SYSTEM_TENANT": "gateway.audit.entry",
    "append": "gateway.audit.log",
    "append_many": "gateway.audit.log",
    "AuditError": "gateway.audit.log",
    "append_durably": "gateway.audit.appender",
    "Appender": "gateway.audit.appender",
    "pseudonym": "gateway.audit.pseudonyms",
    "resolve_pseudonym": "gateway.audit.pseudonyms",
    "erase_person_mapping": "gateway.audit.pseudonyms",
    "Checkpointer": "gateway.audit.checkpoint",
    "sign_checkpoint": "gateway.audit.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
