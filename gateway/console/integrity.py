"""Audit integrity for the DPO: the latest signed checkpoint, "vérifier maintenant", the alarm.

"Vérifier maintenant" does what a DPO does offline (consent_audit §4.6), on the server:
sign a checkpoint of everything committed (the signer itself refuses to sign a head whose
recomputed root differs — that refusal is an alarm too), export the log to a temporary
directory (`gateway.audit.export`), run the standalone verifier on it (`verify_export`)
against pinned keys and the checkpoint kept from the last successful verification
(`--since`: a log rewritten since then is named a fork), store the result and audit it
(`console.verified`). The newest result drives a red alarm on every console page while it
is a failure, naming the first bad entry.

Pinned keys, in this order: RELAIS_CONSOLE_TRUSTED_KEYS (vkeys the DPO keeps out of band);
else the public halves of the private key files in RELAIS_AUDIT_KEY_DIR — files the
database does not hold, so rewriting the database and its key table is not enough to pass;
else trust on first use (the log's first key; said on the page).

The log is shared by every platform: its integrity, checkpoints and the alarm are the same
for every DPO; results name entry indexes only, never an entry's content.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import AuditEntry, append, note
from gateway.audit.checkpoint import latest
from gateway.audit.tables import audit_checkpoints, audit_cosignatures, audit_keys
from gateway.console.tables import console_verifications
from gateway.settings import Settings
from gateway.storage import Store

V = console_verifications.c


@dataclass(frozen=True)
class CheckpointView:
    size: int
    root: str  # base64, as in the note
    origin: str
    signed_at: dt.datetime
    signers: list[str]  # "name+keyid"
    cosigners: list[str]
    note: str


@dataclass(frozen=True)
class Verification:
    id: int
    tenant_id: str
    actor: str
    started_at: dt.datetime
    finished_at: dt.datetime
    ok: bool
    entries: int
    checkpoint_size: int | None
    first_bad_entry: int | None
    lines: list[str]
    trust: str

    @property
    def verdict(self) -> str:
        return self.lines[-1] if self.lines else ("vérifié" if self.ok else "échec")


def latest_checkpoint(conn: Connection) -> CheckpointView | None:
    found = latest(conn)
    if found is None:
        return None
    size, text = found
    signed_at = conn.execute(sa.select(audit_checkpoints.c.signed_at).where(audit_checkpoints.c.size == size)).scalar_one()
    body, signatures = note.parse_note(text)
    checkpoint = note.parse_checkpoint(body)
    cosigners = {row.key_id: row.name for row in conn.execute(
        sa.select(audit_cosignatures.c.key_id, audit_cosignatures.c.name).where(audit_cosignatures.c.size == size))}
    log_ids = set(conn.execute(sa.select(audit_keys.c.key_id)).scalars())
    signers = [f"{s.name}+{s.key_id.hex()}" for s in signatures if s.key_id.hex() in log_ids]
    return CheckpointView(size, body.split("\n")[2], checkpoint.origin, signed_at, signers,
                          [f"{name}+{kid}" for kid, name in sorted(cosigners.items())], text)


def _row(row) -> Verification:
    return Verification(row.id, row.tenant_id, row.actor, row.started_at, row.finished_at, row.ok,
                        row.entries, row.checkpoint_size, row.first_bad_entry, json.loads(row.summary), row.trust)


def last_verification(conn: Connection) -> Verification | None:
    row = conn.execute(sa.select(console_verifications).order_by(V.id.desc()).limit(1)).first()
    return None if row is None else _row(row)


def history(conn: Connection, limit: int = 10) -> list[Verification]:
    rows = conn.execute(sa.select(console_verifications).order_by(V.id.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


def trusted_keys(config: Settings) -> tuple[list[str], str]:
    """(vkeys to pin, where they come from — French)."""
    if config.console_trusted_keys:
        return list(config.console_trusted_keys), "clés publiques fixées par la configuration (RELAIS_CONSOLE_TRUSTED_KEYS)"
    keys = []
    directory = Path(config.audit_key_dir)
    for path in sorted(directory.glob("*.key")) if directory.is_dir() else []:
        try:
            keys.append(note.parse_skey(path.read_text()).verifier.vkey)
        except (OSError, note.NoteError):
            continue
    if keys:
        return keys, "clés publiques tirées des clés privées de signature (RELAIS_AUDIT_KEY_DIR)"
    return [], "première clé du journal (confiance au premier usage : comparer son empreinte)"


def verify_now(store: Store, config: Settings, *, tenant_id: str, actor: str,
               now=lambda: dt.datetime.now(dt.UTC)) -> Verification:
    from gateway.audit.export import export
    from gateway.audit.log import AuditError
    from gateway.audit.verify import render, verify_export

    started = now()
    with store.reading() as conn:
        kept = conn.execute(sa.select(V.checkpoint).where(V.ok.is_(True), V.checkpoint.is_not(None))
                            .order_by(V.id.desc()).limit(1)).scalar()
    work = Path(tempfile.mkdtemp(prefix="relais-verification-"))
    ok, entries, size, first_bad, checkpoint_note = False, 0, None, None, None
    trusted, trust = [], "vérification interrompue"
    try:
        try:
            export(store.engine, work / "export", config, sign=True)
        except AuditError as exc:
            lines = [f"le journal refuse d'être exporté ou signé : {exc}",
                     "ÉCHEC de la vérification"]
        else:
            trusted, trust = trusted_keys(config)  # after the export: its signing may create the first key
            since = None
            if kept:
                since = work / "point-conserve"
                since.write_text(kept)
            report = verify_export(work / "export", trusted, str(since) if since else None)
            lines = render(report)
            ok, entries, first_bad = report.ok, report.entries, report.first_bad_entry
            if report.latest is not None:
                size = report.latest.size
                latest_file = work / "export" / "checkpoint"
                checkpoint_note = latest_file.read_text() if ok and latest_file.is_file() else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finished = now()
    refs = {"entries": str(entries), "trust": "pinned" if trusted else "first-use"}
    if size is not None:
        refs["checkpoint"] = str(size)
    if first_bad is not None:
        refs["first_bad_entry"] = str(first_bad)
    with store.transaction() as conn:
        new_id = conn.execute(sa.insert(console_verifications).values(
            tenant_id=tenant_id, actor=actor, started_at=started, finished_at=finished, ok=ok,
            entries=entries, checkpoint_size=size, first_bad_entry=first_bad,
            summary=json.dumps(lines, ensure_ascii=False), trust=trust[:200], checkpoint=checkpoint_note,
        ).returning(V.id)).scalar_one()
        append(conn, AuditEntry(tenant_id=tenant_id, actor=actor, action="console.verified",
                                outcome="success" if ok else "failure", refs=refs))
        return _row(conn.execute(sa.select(console_verifications).where(V.id == new_id)).one())
