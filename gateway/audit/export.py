"""`relais audit export DIR`: everything a DPO needs to check the log offline.

Layout (consent_audit §4.6; C2SP tlog-tiles for the tree, signed-note for the rest):
    entries.jsonl            one entry per line (the exact leaf bytes), in log order
    checkpoint               the newest signed checkpoint (with any cosignatures)
    checkpoints/<size>       every signed checkpoint
    keys/<key id>.vkey       verifier keys "<name>+<key id>+<base64>" (log keys, cosigners)
    tile/<L>/<N>[.p/<W>]     hash tiles of the tree at the newest checkpoint
    tile/entries/<N>[.p/<W>] entry bundles (uint16 big-endian length + entry, 256 per bundle)
    VERIFIER.txt             how to verify, and the key fingerprints to compare out of band

The export stops at the newest signed checkpoint (signed first, unless told not to), so every
exported entry is covered by a signature. Entries hold no personal data (pseudonyms only).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.audit import tiles, tree
from gateway.audit.checkpoint import sign_checkpoint, with_cosignatures
from gateway.audit.keys import all_keys
from gateway.audit.log import AuditError
from gateway.audit.tables import audit_checkpoints, audit_cosignatures, audit_entries
from gateway.settings import Settings

_BATCH = 16384


@dataclass(frozen=True)
class ExportSummary:
    entries: int
    checkpoints: int
    keys: list[str]  # vkeys


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export(engine: Engine, directory: Path, config: Settings | None = None, *, sign: bool = True) -> ExportSummary:
    """Written into a `.<name>.partial-…` directory first (beside DIR, or inside it when DIR
    exists, empty), then moved into place: a failure half-way leaves DIR as it was."""
    directory = Path(directory)
    try:
        existing = directory.exists()
        if existing and not directory.is_dir():
            raise AuditError(f"le dossier d'export {directory} existe et n'est pas un dossier")
        if existing and any(directory.iterdir()):
            raise AuditError(f"le dossier d'export {directory} n'est pas vide")
        if not existing:
            directory.parent.mkdir(parents=True, exist_ok=True)
        partial = ((directory if existing else directory.parent)
                   / f".{directory.name or 'export'}.partial-{uuid.uuid4().hex[:12]}")
        partial.mkdir()
    except OSError as exc:
        raise AuditError(f"le dossier d'export {directory} ne peut pas être créé "
                         f"({exc.strerror or type(exc).__name__})") from None
    moved: list[Path] = []  # what this export has put into an existing DIR
    try:
        if sign:
            sign_checkpoint(engine, config, actor="cli")
        summary = _export(engine, partial)
        if existing:
            for child in sorted(partial.iterdir()):
                moved.append(child.rename(directory / child.name))
            partial.rmdir()
        else:
            partial.rename(directory)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        for child in moved:  # ours alone: whatever else appeared in DIR meanwhile stays
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        if isinstance(exc, OSError):
            raise AuditError(f"export impossible dans {directory} ({exc.strerror or type(exc).__name__}) : "
                             "rien n'a été écrit") from None
        raise
    return summary


def _export(engine: Engine, directory: Path) -> ExportSummary:
    with engine.connect() as conn:
        size, _root = tree.signed_size(conn)
        notes = conn.execute(
            sa.select(audit_checkpoints.c.size, audit_checkpoints.c.note)
            .where(audit_checkpoints.c.size <= size).order_by(audit_checkpoints.c.size)
        ).all()
        for row in notes:
            _write(directory / "checkpoints" / str(row.size),
                   with_cosignatures(conn, row.size, row.note).encode())
        if notes:
            _write(directory / "checkpoint", with_cosignatures(conn, notes[-1].size, notes[-1].note).encode())
        vkeys = [k.vkey for k in all_keys(conn)]
        vkeys += conn.execute(sa.select(audit_cosignatures.c.vkey).distinct()).scalars().all()
        for vkey in sorted(set(vkeys)):
            _write(directory / "keys" / f"{vkey.split('+')[1]}.vkey", (vkey + "\n").encode())
        _export_tiles(conn, directory, size)
        with open(directory / "entries.jsonl", "wb") as out:
            for start in range(0, size, _BATCH):
                bodies = conn.execute(
                    sa.select(audit_entries.c.body)
                    .where(audit_entries.c.seq >= start, audit_entries.c.seq < min(size, start + _BATCH))
                    .order_by(audit_entries.c.seq)
                ).scalars().all()
                out.write(b"".join(bytes(b) + b"\n" for b in bodies))
                _write_bundles(directory, start, [bytes(b) for b in bodies])
    _write(directory / "VERIFIER.txt", _readme(vkeys).encode())
    return ExportSummary(size, len(notes), sorted(set(vkeys)))


def _export_tiles(conn, directory: Path, size: int) -> None:
    for level, widths in tiles.tile_widths(size).items():
        for start in range(0, len(widths), 512):
            wanted = [(level, n) for n in range(start, min(len(widths), start + 512))]
            stored = tree.read_tiles(conn, wanted)
            for _, n in wanted:
                width = widths[n]
                data = stored.get((level, n), b"")[: width * 32]
                if len(data) != width * 32:
                    raise AuditError(f"tuile {level}/{n} incomplète dans la base")
                _write(directory / tiles.tile_path(level, n, width), data)


def _write_bundles(directory: Path, start: int, bodies: list[bytes]) -> None:
    # _BATCH is a multiple of 256: bundles never straddle two batches.
    for offset in range(0, len(bodies), tiles.WIDTH):
        chunk = bodies[offset : offset + tiles.WIDTH]
        data = b"".join(len(b).to_bytes(2, "big") + b for b in chunk)
        _write(directory / tiles.tile_path("entries", (start + offset) // tiles.WIDTH, len(chunk)), data)


def _readme(vkeys: list[str]) -> str:
    lines = [
        "Journal d'audit Relais — export vérifiable hors ligne",
        "",
        "Vérifier :  relais audit verify CE_DOSSIER      (ou : python -m gateway.audit.verify CE_DOSSIER)",
        "Code de sortie 0 : tout est vérifié ; 1 : la première entrée ou le point de contrôle en cause est nommé.",
        "",
        "Clés publiques de ce journal (à comparer avec celles conservées hors de cet export,",
        "puis à passer avec --trusted-key pour ne pas dépendre du contenu de l'export) :",
        *[f"  {k}" for k in sorted(set(vkeys))],
        "",
        "Formats : C2SP signed-note, tlog-checkpoint, tlog-cosignature, tlog-tiles ; arbre RFC 9162 ;",
        "entrées en JSON canonique RFC 8785, sans donnée personnelle (pseudonymes par plateforme).",
        "",
    ]
    return "\n".join(lines)
