"""Signing checkpoints (C2SP tlog-checkpoint in signed-note form), rotation and cosignatures.

`sign_checkpoint` runs in one write transaction:
  1. lock the signed head (`audit_signed_head`, FOR UPDATE; SQLite: BEGIN IMMEDIATE), so two
     checkpointers (several workers on PostgreSQL) never sign concurrently;
  2. create the first signing key if there is none (its entry becomes part of the tree);
  3. integrate the new entries into the hash tiles;
  4. self-check: the root rebuilt from the tiles must equal the root of the appenders'
     frontier, and the consistency proof from the last signed checkpoint, built from the
     tiles, must verify with `merkle.verify_consistency` (the verifier's code path) — a log
     MUST NOT sign a checkpoint inconsistent with one it signed (tlog-checkpoint);
  5. sign with every key in its signing window, check the note opens, then store it and move
     the signed head with compare-and-swap (size and root must still be the old ones).

`Checkpointer` runs that in a background thread: when >= N entries wait, or when entries
wait and T seconds have passed since the last checkpoint (RELAIS_AUDIT_CHECKPOINT_*).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.audit import keys as log_keys
from gateway.audit import merkle, note, tree
from gateway.audit.log import AuditError, head
from gateway.audit.tables import audit_checkpoints, audit_cosignatures, audit_head, audit_signed_head
from gateway.logs import get_logger
from gateway.settings import Settings, settings
from gateway.storage.engine import WRITE

log = get_logger("relais.audit")


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str  # the signed note, log signatures only


@contextmanager
def write_transaction(engine: Engine):
    """A write transaction (SQLite: BEGIN IMMEDIATE), as gateway.storage.Store does."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            yield conn


_LOCK_SIGNED = (
    sa.select(audit_signed_head.c.size, audit_signed_head.c.root)
    .where(audit_signed_head.c.id == 1)
    .with_for_update()
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _config(config: Settings | None) -> Settings:
    return config or settings()


def sign_in(conn: Connection, config: Settings, now: dt.datetime, actor: str = "system") -> SignedCheckpoint | None:
    """Steps 1-5 above in `conn`'s transaction; None when nothing new is to be signed."""
    old_size, old_root = conn.execute(_LOCK_SIGNED).one()
    old_root = bytes(old_root)
    current = log_keys.signing_keys(conn, now)
    if not log_keys.all_keys(conn):
        current = [log_keys.create_key(conn, config.audit_key_dir, config.audit_origin, now, actor=actor)]
    if not current:
        raise AuditError("aucune clé de signature d'audit en service : lancer « relais audit rotate-key »")
    size, frontier_root = head(conn)
    if size == old_size:
        return None
    tree.integrate(conn, old_size, size)
    tiled_root = tree.root_at(conn, size, size)
    if tiled_root != frontier_root:
        raise AuditError(f"racine recalculée différente de la tête du journal à la taille {size} : signature refusée")
    if old_size and tree.root_at(conn, old_size, size) != old_root:
        raise AuditError(f"le journal ne prolonge plus le point de contrôle {old_size} : signature refusée")
    proof = tree.consistency_proof(conn, old_size, size, size)
    try:
        merkle.verify_consistency(old_size, size, old_root, tiled_root, proof)
    except merkle.ProofError as exc:
        raise AuditError(f"point de contrôle {size} incohérent avec {old_size} : {exc}") from None
    for key in current:
        if key.name != config.audit_origin:
            raise AuditError(
                f"clé {key.key_id} nommée {key.name}, origine configurée {config.audit_origin} : "
                "l'origine d'un journal ne change pas (faire tourner la clé sous l'ancienne origine)"
            )
    signers = [log_keys.load_signer(config.audit_key_dir, key) for key in current]
    body = note.Checkpoint(config.audit_origin, size, tiled_root).body
    signed = note.sign_note(body, signers)
    opened = note.open_note(signed, [s.verifier for s in signers])
    if opened.failed or len(opened.verified) != len(signers):
        raise AuditError("la note signée ne se vérifie pas : signature refusée")
    moved = conn.execute(
        sa.update(audit_signed_head)
        .where(audit_signed_head.c.id == 1, audit_signed_head.c.size == old_size,
               audit_signed_head.c.root == old_root)
        .values(size=size, root=tiled_root)
    )
    if moved.rowcount != 1:
        raise AuditError("tête signée modifiée par un autre signataire : signature abandonnée")
    conn.execute(sa.insert(audit_checkpoints).values(size=size, root=tiled_root, note=signed, signed_at=now))
    return SignedCheckpoint(size, tiled_root, signed)


def sign_checkpoint(engine: Engine, config: Settings | None = None, *, actor: str = "system") -> SignedCheckpoint | None:
    """Sign a checkpoint of everything committed so far (None if nothing new)."""
    with write_transaction(engine) as conn:
        return sign_in(conn, _config(config), _now(), actor)


def rotate_key(engine: Engine, config: Settings | None = None, *, actor: str = "cli") -> tuple[log_keys.LogKey, SignedCheckpoint | None]:
    """New signing key; the current ones keep signing during the overlap window. The
    rotation entry is then covered at once by a checkpoint signed by old and new keys."""
    config = _config(config)
    now = _now()
    with write_transaction(engine) as conn:
        conn.execute(_LOCK_SIGNED).one()
        previous = log_keys.signing_keys(conn, now)
        if not log_keys.all_keys(conn):  # nothing to rotate: this is the first key
            new = log_keys.create_key(conn, config.audit_key_dir, config.audit_origin, now, actor=actor)
        else:
            until = now + dt.timedelta(days=config.audit_key_overlap_days)
            log_keys.start_overlap(conn, [k for k in previous if k.signs_until is None], until)
            new = log_keys.create_key(conn, config.audit_key_dir, config.audit_origin, now,
                                      actor=actor, previous=previous, overlap_until=until)
        signed = sign_in(conn, config, now, actor)
    return new, signed


# --------------------------------------------------------------------- reading


def latest(conn: Connection) -> tuple[int, str] | None:
    """(size, note with cosignatures) of the newest checkpoint, or None."""
    row = conn.execute(
        sa.select(audit_checkpoints.c.size, audit_checkpoints.c.note)
        .order_by(audit_checkpoints.c.size.desc()).limit(1)
    ).first()
    return None if row is None else (row.size, with_cosignatures(conn, row.size, row.note))


def with_cosignatures(conn: Connection, size: int, signed: str) -> str:
    lines = conn.execute(
        sa.select(audit_cosignatures.c.line).where(audit_cosignatures.c.size == size)
        .order_by(audit_cosignatures.c.key_id)
    ).scalars().all()
    return signed + "".join(lines)


# --------------------------------------------------------------------- cosignature (DPO)


def cosign(engine: Engine, cosigner: note.Signer, config: Settings | None = None) -> tuple[int, str]:
    """The DPO cosigns the newest checkpoint (tlog-cosignature v1) after checking its log
    signature and its consistency with the last checkpoint this cosigner signed."""
    if cosigner.key_type != note.COSIGNATURE_V1:
        raise AuditError("la clé du DPO doit être une clé de cosignature (type 0x04, « relais audit keygen »)")
    config = _config(config)
    now = _now()
    with write_transaction(engine) as conn:
        found = latest(conn)
        if found is None:
            raise AuditError("aucun point de contrôle à cosigner")
        size, _ = found
        signed = conn.execute(sa.select(audit_checkpoints.c.note).where(audit_checkpoints.c.size == size)).scalar_one()
        verifiers = [note.parse_vkey(k.vkey) for k in log_keys.all_keys(conn)]
        opened = note.open_note(signed, verifiers)
        if opened.failed or not opened.verified:
            raise AuditError(f"point de contrôle {size} : signature du journal invalide, cosignature refusée")
        checkpoint = note.parse_checkpoint(opened.text)
        previous = conn.execute(
            sa.select(audit_cosignatures.c.size).where(audit_cosignatures.c.key_id == cosigner.key_id.hex())
            .order_by(audit_cosignatures.c.size.desc()).limit(1)
        ).scalar()
        if previous is not None:
            if previous == size:
                raise AuditError(f"point de contrôle {size} déjà cosigné par cette clé")
            old_root = conn.execute(
                sa.select(audit_checkpoints.c.root).where(audit_checkpoints.c.size == previous)
            ).scalar_one()
            proof = tree.consistency_proof(conn, previous, size, size)
            try:
                merkle.verify_consistency(previous, size, bytes(old_root), checkpoint.root, proof)
            except merkle.ProofError:
                raise AuditError(f"le point de contrôle {size} ne prolonge pas {previous} : cosignature refusée") from None
        line = note.cosignature_line(cosigner, opened.text, int(now.timestamp()))
        conn.execute(sa.insert(audit_cosignatures).values(
            size=size, key_id=cosigner.key_id.hex(), name=cosigner.name, line=line,
            vkey=cosigner.verifier.vkey, signed_at=now,
        ))
    return size, signed + line


# --------------------------------------------------------------------- background signer


class Checkpointer:
    """Signs in the background: >= N waiting entries, or waiting entries and T seconds."""

    def __init__(self, engine: Engine, config: Settings | None = None):
        self.engine = engine
        self.config = _config(config)
        self.every = max(1, self.config.audit_checkpoint_entries)
        self.period = max(0.05, self.config.audit_checkpoint_seconds)
        self.poll = min(0.1, self.period / 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def pending(self) -> int:
        with self.engine.connect() as conn:
            size = conn.execute(sa.select(audit_head.c.size)).scalar_one()
            signed = conn.execute(sa.select(audit_signed_head.c.size)).scalar_one()
        return size - signed

    def run_once(self, last: float) -> float:
        """One poll; returns the time of the last signature."""
        waiting = self.pending()
        # Sign early enough that no entry waits more than `period` (minus one poll).
        if waiting >= self.every or (waiting and time.monotonic() - last >= self.period - self.poll):
            sign_checkpoint(self.engine, self.config)
            return time.monotonic()
        return last

    def _loop(self) -> None:
        last = 0.0
        while not self._stop.wait(self.poll):
            try:
                last = self.run_once(last)
                self.last_error = None
            except Exception as exc:  # keep trying; report once per kind of error
                message = f"{type(exc).__name__}: {exc}"
                if message != self.last_error:
                    log.error("audit_checkpoint_failed", error_type=type(exc).__name__)
                self.last_error = message

    def start(self) -> Checkpointer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="relais-audit-checkpointer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Checkpointer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def key_dir(config: Settings | None = None) -> Path:
    return Path(_config(config).audit_key_dir)
