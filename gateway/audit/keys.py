"""Log signing keys: Ed25519, named after the log origin (C2SP: key name = origin).

- The private key is a file `<key dir>/<key id>.key` in the Go note format
  (PRIVATE+KEY+<name>+<id>+<base64>), created 0600 in a 0700 directory, never logged.
- The public key (vkey), its id and when it stops signing are in `audit_keys`.
- Each key is introduced by a log entry whose refs carry its vkey: `audit.key.created` for
  the first, `audit.key.rotated` for the next ones. A verifier trusts a new key once a
  checkpoint signed by an already trusted key covers that entry (consent_audit §4.8).
- Rotation: the new key signs from now on; the old ones keep signing until the end of the
  overlap window, so every checkpoint of that window carries both signatures.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import note
from gateway.audit.entry import SYSTEM_TENANT, AuditEntry
from gateway.audit.log import AuditError, append
from gateway.audit.tables import audit_keys


@dataclass(frozen=True)
class LogKey:
    key_id: str  # 8 hex digits
    name: str
    vkey: str
    created_at: dt.datetime
    signs_until: dt.datetime | None
    introduced_at: int  # leaf index of the entry that introduced it


def _key(row) -> LogKey:
    return LogKey(row.key_id, row.name, row.vkey, row.created_at, row.signs_until, row.introduced_at)


def all_keys(conn: Connection) -> list[LogKey]:
    rows = conn.execute(sa.select(audit_keys).order_by(audit_keys.c.introduced_at)).all()
    return [_key(r) for r in rows]


def signing_keys(conn: Connection, now: dt.datetime) -> list[LogKey]:
    return [k for k in all_keys(conn) if k.signs_until is None or k.signs_until > now]


def key_file(key_dir: Path, key_id: str) -> Path:
    return Path(key_dir) / f"{key_id}.key"


def write_private_key(path: Path, signer: note.Signer) -> None:
    """Create the key file, readable by its owner only; never overwrite one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.skey + "\n")


def load_signer(key_dir: Path, key: LogKey) -> note.Signer:
    path = key_file(key_dir, key.key_id)
    try:
        signer = note.parse_skey(path.read_text())
    except FileNotFoundError:
        raise AuditError(f"clé privée d'audit {key.key_id} introuvable dans {key_dir}") from None
    except note.NoteError as exc:
        raise AuditError(f"clé privée d'audit {key.key_id} illisible : {exc}") from None
    if signer.verifier.vkey != key.vkey:
        raise AuditError(f"la clé privée {path.name} ne correspond pas à la clé publique enregistrée")
    return signer


def create_key(conn: Connection, key_dir: Path, origin: str, now: dt.datetime, *, actor: str,
               previous: list[LogKey] = (), overlap_until: dt.datetime | None = None) -> LogKey:
    """A new signing key: file, row, and the log entry that introduces it (caller's transaction)."""
    signer = note.Signer.generate(origin)
    key_id = signer.key_id.hex()
    if conn.execute(sa.select(audit_keys.c.key_id).where(audit_keys.c.key_id == key_id)).first():
        raise AuditError("identifiant de clé déjà pris : relancer")  # 1 chance in 2^32
    refs = {"key_id": key_id, "vkey": signer.verifier.vkey}
    if previous:
        refs["previous_key_ids"] = ",".join(k.key_id for k in previous)
        refs["overlap_until"] = overlap_until.astimezone(dt.UTC).isoformat(timespec="seconds")
    action = "audit.key.rotated" if previous else "audit.key.created"
    seq = append(conn, AuditEntry(tenant_id=SYSTEM_TENANT, actor=actor, action=action,
                                  outcome="success", refs=refs, at=now))
    write_private_key(key_file(key_dir, key_id), signer)
    conn.execute(sa.insert(audit_keys).values(
        key_id=key_id, name=origin, vkey=signer.verifier.vkey, created_at=now, signs_until=None,
        introduced_at=seq,
    ))
    return LogKey(key_id, origin, signer.verifier.vkey, now, None, seq)


def start_overlap(conn: Connection, keys: list[LogKey], until: dt.datetime) -> None:
    for key in keys:
        conn.execute(sa.update(audit_keys).where(audit_keys.c.key_id == key.key_id).values(signs_until=until))
