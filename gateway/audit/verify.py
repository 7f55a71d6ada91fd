"""Offline verifier of an audit export: `python -m gateway.audit.verify DIR` (or `relais audit
verify DIR`). Needs nothing but the exported files and public keys — no database, no settings;
it imports only the pure modules merkle, note and tiles (and `cryptography` for Ed25519).

What it checks (consent_audit §4.6):
- every line of entries.jsonl is an entry whose `seq` is its line index (a moved, removed or
  inserted line is named), and its leaf hash (RFC 9162) recomputed from the line's bytes;
- every checkpoint: a C2SP signed note whose log signature verifies with a key trusted at
  that size, and whose root equals the root recomputed from the entries; cosignatures by
  known cosigner keys must verify too;
- key trust: keys given with --trusted-key; without them the first key the log introduces
  (trust on first use: compare the printed fingerprint with the one you kept). Another key is
  trusted once a checkpoint signed by a trusted key covers the entry that introduced it
  (`audit.key.rotated`); a key file that differs from the log's own record is a swapped key;
- the tlog-tiles hash tiles and entry bundles agree with the entries;
- with --since, a checkpoint kept from an earlier audit must be a prefix of this log
  (otherwise the log was forked or rewritten).
The first bad entry is named by its index (and line): the level-0 tiles, once their tree is
shown to match the signed roots, say which leaf changed; otherwise the first checkpoint that
fails bounds it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from gateway.audit import merkle, note, tiles

try:  # optional: about 3 times faster parsing of a large export
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

KEY_ACTIONS = ("audit.key.created", "audit.key.rotated")
SYSTEM_TENANT = "system"
MAX_SHOWN = 20
MAX_NOTE = 64 * 1024  # a checkpoint with note.MAX_SIGNATURES signatures is under 8 KiB


@dataclass
class Finding:
    kind: str  # "entry" | "checkpoint" | "key" | "tile" | "export"
    index: int | None  # entry index or checkpoint size
    message: str  # French

    def line(self) -> str:
        return self.message


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    latest: note.Checkpoint | None = None
    findings: list[Finding] = field(default_factory=list)
    first_bad_entry: int | None = None
    first_bad_reason: str = ""
    bad_checkpoints: list[int] = field(default_factory=list)
    trusted_keys: list[str] = field(default_factory=list)  # "vkey — why it is trusted"
    trust_on_first_use: bool = False
    cosigned_by: dict[str, int] = field(default_factory=dict)  # cosigner vkey -> newest size

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, index: int | None, message: str) -> None:
        self.findings.append(Finding(kind, index, message))


class _Tree:
    """All complete subtree hashes of a list of leaf hashes, level by level."""

    def __init__(self, leaves: list[bytes]):
        self.levels = [leaves]
        level = leaves
        while len(level) > 1:
            h = merkle.node_hash
            level = [h(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)
        self.size = len(leaves)

    def root(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        nodes = [self.levels[lvl][idx] for lvl, idx in merkle.perfect_subtrees(0, size)]
        return merkle.frontier_root(nodes)

    def tile(self, level: int, index: int, width: int) -> bytes:
        row = self.levels[tiles.HEIGHT * level] if tiles.HEIGHT * level < len(self.levels) else []
        return b"".join(row[index * tiles.WIDTH : index * tiles.WIDTH + width])


def _name(index: int) -> str:
    return f"entrée {index} (ligne {index + 1})"


# ------------------------------------------------------------------ reading the export


def _read_entries(directory: Path, report: Report):
    path = directory / "entries.jsonl"
    if not path.is_file():
        report.add("export", None, "entries.jsonl absent")
        return [], [], {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.add("export", None, f"entries.jsonl illisible ({exc.strerror or type(exc).__name__})")
        return [], [], {}
    if data and not data.endswith(b"\n"):
        _bad_entry(report, data.count(b"\n"), "ligne incomplète (pas de fin de ligne)")
    lines = data.split(b"\n")[:-1] if data else []
    leaves = [sha256(b"\x00" + line).digest() for line in lines]
    introductions: dict[int, str] = {}
    seq_problem = None
    for i, line in enumerate(lines):
        try:
            record = _loads(line)
            seq = record["seq"]
        except (ValueError, KeyError, TypeError):
            seq_problem = seq_problem or (i, "illisible (JSON invalide ou sans numéro d'ordre)")
            continue
        if seq != i and seq_problem is None:
            if seq == i + 1:
                why = f"porte le numéro {seq} : l'entrée {i} manque à cette place (supprimée ou déplacée)"
            elif isinstance(seq, int) and seq < i:
                why = f"porte le numéro {seq} : entrée insérée, dupliquée ou déplacée"
            else:
                why = f"porte le numéro {seq} : entrée déplacée, insérée ou supprimée avant elle"
            seq_problem = (i, why)
        if record.get("action") in KEY_ACTIONS and record.get("tenant") == SYSTEM_TENANT:
            vkey = (record.get("refs") or {}).get("vkey")
            if isinstance(vkey, str):
                introductions[i] = vkey
    if seq_problem is not None:
        _bad_entry(report, *seq_problem)
    return lines, leaves, introductions


def _read_small(path: Path) -> str:
    """A signed note or key file (a few hundred bytes; MAX_NOTE at most): a larger or endless
    one (a symlink to /dev/zero in a hostile export) is refused without being read whole."""
    with path.open() as file:
        text = file.read(MAX_NOTE + 1)
    if len(text) > MAX_NOTE:
        raise note.NoteError(f"fichier trop volumineux (plus de {MAX_NOTE} caractères)")
    return text


def _read_at_most(path: Path, size: int) -> bytes:
    """A tile's bytes, one more than it may hold at most (enough to see it is too long)."""
    with path.open("rb") as file:
        return file.read(size + 1)


def _why(exc: Exception) -> str:
    """French reason; an OS error by its short name only (not its English sentence and path)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _bad_entry(report: Report, index: int, why: str) -> None:
    if report.first_bad_entry is None or index < report.first_bad_entry:
        report.first_bad_entry, report.first_bad_reason = index, why
    report.add("entry", index, f"{_name(index)} : {why}")


def _read_keys(directory: Path, report: Report) -> dict[tuple[str, bytes], note.Verifier]:
    out = {}
    for path in sorted((directory / "keys").glob("*.vkey")):
        try:
            verifier = note.parse_vkey(_read_small(path))
        except (note.NoteError, UnicodeDecodeError, OSError) as exc:
            report.add("key", None, f"keys/{path.name} : {_why(exc)}")
            continue
        if path.stem != verifier.id_hex:
            report.add("key", None, f"keys/{path.name} : le nom du fichier ne correspond pas à l'identifiant {verifier.id_hex}")
        out[(verifier.name, verifier.key_id)] = verifier
    return out


def _read_checkpoints(directory: Path, report: Report) -> list[tuple[note.Checkpoint, str]]:
    found: dict[int, tuple[note.Checkpoint, str]] = {}
    paths = sorted((directory / "checkpoints").glob("*")) if (directory / "checkpoints").is_dir() else []
    for path in paths:
        try:
            text = _read_small(path)
            checkpoint = note.parse_checkpoint(note.parse_note(text)[0])
        except (note.NoteError, UnicodeDecodeError, OSError) as exc:
            report.add("checkpoint", None, f"point de contrôle checkpoints/{path.name} illisible : {_why(exc)}")
            continue
        if path.name != str(checkpoint.size):
            report.add("checkpoint", checkpoint.size,
                       f"point de contrôle checkpoints/{path.name} : porte la taille {checkpoint.size}")
        found[checkpoint.size] = (checkpoint, text)
    latest = directory / "checkpoint"
    if latest.is_file():
        try:
            text = _read_small(latest)
            checkpoint = note.parse_checkpoint(note.parse_note(text)[0])
        except (note.NoteError, UnicodeDecodeError, OSError) as exc:
            report.add("checkpoint", None, f"fichier checkpoint illisible : {_why(exc)}")
        else:
            if found and checkpoint.size < max(found):
                report.add("checkpoint", checkpoint.size, "le fichier checkpoint n'est pas le plus récent")
            if checkpoint.size in found and found[checkpoint.size][1] != text:
                report.add("checkpoint", checkpoint.size,
                           f"le fichier checkpoint diffère de checkpoints/{checkpoint.size}")
            if not (directory / "checkpoints" / str(checkpoint.size)).exists():  # the export writes both
                report.add("export", None, f"checkpoints/{checkpoint.size} absent (le fichier checkpoint en est la copie)")
            found.setdefault(checkpoint.size, (checkpoint, text))
    elif found:
        report.add("export", None, "fichier checkpoint absent")
    return [found[size] for size in sorted(found)]


# ------------------------------------------------------------------ the checks


def verify_export(directory: str | Path, trusted: list[str] = (), since: str | None = None,
                  witnesses: list[str] = ()) -> Report:
    directory = Path(directory)
    report = Report()
    lines, leaves, introductions = _read_entries(directory, report)
    report.entries = len(lines)
    files = _read_keys(directory, report)
    checkpoints = _read_checkpoints(directory, report)
    report.checkpoints = len(checkpoints)
    computed = _Tree(leaves)

    # Keys the log introduces (authoritative); a key file must not contradict them.
    introduced: list[tuple[int, note.Verifier]] = []
    for index, vkey in sorted(introductions.items()):
        try:
            verifier = note.parse_vkey(vkey)
        except note.NoteError as exc:
            report.add("key", index, f"{_name(index)} : clé déclarée illisible ({exc})")
            continue
        introduced.append((index, verifier))
        on_file = files.get((verifier.name, verifier.key_id))
        if on_file is None:
            report.add("key", index, f"clé {verifier.name}+{verifier.id_hex} déclarée à l'{_name(index)} absente de keys/")
        elif on_file != verifier:
            report.add("key", index, f"clé {verifier.name}+{verifier.id_hex} de keys/ différente de celle déclarée "
                                     f"à l'{_name(index)} (clé substituée)")
    log_keys = {(v.name, v.key_id): v for _, v in introduced}
    for (name, kid), verifier in files.items():
        if verifier.key_type == note.ED25519 and (name, kid) not in log_keys:
            report.add("key", None, f"clé {name}+{kid.hex()} de keys/ inconnue du journal (jamais déclarée)")
    cosigners = {k: v for k, v in files.items() if v.key_type == note.COSIGNATURE_V1}
    for text in witnesses:
        w = note.parse_vkey(text)
        cosigners[(w.name, w.key_id)] = w

    # Trust: pinned keys, else the first key the log introduces (trust on first use).
    pinned = [note.parse_vkey(t) for t in trusted]
    trusted_ids = {(v.name, v.key_id) for v in pinned}
    if not pinned and introduced:
        report.trust_on_first_use = True
        trusted_ids.add((introduced[0][1].name, introduced[0][1].key_id))
    verifiers = list(log_keys.values()) + [v for v in pinned if (v.name, v.key_id) not in log_keys]
    verifiers += list(cosigners.values())

    # The level-0 tiles say which leaf changed, once their tree matches the signed roots.
    claimed = _claimed_leaves(directory, checkpoints, report)
    claimed_tree = computed if claimed == leaves else (_Tree(claimed) if claimed is not None else None)

    # Trust grows to a fixpoint: a key the log introduces at entry i is trusted once a
    # checkpoint of size > i carries a valid signature by an already trusted key (forward
    # after a rotation; backward too when only the newest key was pinned, since that
    # checkpoint's root commits to every earlier entry). If the entries were altered, the
    # root checks below fail the verification anyway.
    opened_notes = [note.open_note(text, verifiers) for _, text in checkpoints]
    grown = True
    while grown:
        grown = False
        for (checkpoint, _), opened in zip(checkpoints, opened_notes):
            if any((v.name, v.key_id) in trusted_ids for v in opened.verified if v.key_type == note.ED25519):
                for index, v in introduced:
                    if index < checkpoint.size and (v.name, v.key_id) not in trusted_ids:
                        trusted_ids.add((v.name, v.key_id))
                        grown = True

    origin = None
    previous_good = 0
    suspects: list[tuple[int, int]] = []  # [lo, hi) ranges a failing signed root points at
    signed: list[int] = []  # sizes of the checkpoints with a valid trusted signature
    authentic = claimed_tree is not None
    for (checkpoint, _), opened in zip(checkpoints, opened_notes):
        size = checkpoint.size
        origin = origin or checkpoint.origin
        if checkpoint.origin != origin:
            _bad_checkpoint(report, size, f"origine {checkpoint.origin} au lieu de {origin}")
        for failed in opened.failed:
            what = "cosignature" if failed.key_type == note.COSIGNATURE_V1 else "signature"
            _bad_checkpoint(report, size, f"{what} invalide de la clé {failed.name}+{failed.id_hex} (falsifiée)")
        good = [v for v in opened.verified if (v.name, v.key_id) in trusted_ids and v.key_type == note.ED25519]
        for v in opened.verified:
            if v.key_type == note.COSIGNATURE_V1:
                report.cosigned_by[v.vkey] = size
        if not good:  # an unsigned or forged checkpoint proves nothing about the entries
            _bad_checkpoint(report, size, "aucune signature valide d'une clé de confiance")
            continue
        signed.append(size)
        if claimed_tree is not None and (size > claimed_tree.size or claimed_tree.root(size) != checkpoint.root):
            authentic = False
        if size > computed.size:
            continue  # entries missing at the end: named below
        if computed.root(size) != checkpoint.root:
            _bad_checkpoint(report, size, f"racine différente de celle recalculée depuis les entrées "
                                          f"(entrée modifiée entre {previous_good} et {size - 1})")
            suspects.append((previous_good, size))
            continue
        previous_good = size
    how = {(v.name, v.key_id): "clé de confiance fournie" for v in pinned}
    for position, (index, v) in enumerate(introduced):
        if position == 0 and report.trust_on_first_use:
            how[(v.name, v.key_id)] = "première clé du journal (comparer avec l'empreinte conservée)"
        how.setdefault((v.name, v.key_id), f"déclarée à l'{_name(index)}, couverte par une clé de confiance")
    report.trusted_keys = sorted(f"{v.vkey} — {how[(v.name, v.key_id)]}" for v in verifiers
                                 if (v.name, v.key_id) in trusted_ids and v.key_type == note.ED25519)

    report.latest = checkpoints[-1][0] if checkpoints else None
    covered = max(signed, default=0)
    if len(lines) > covered:
        _bad_entry(report, covered, "non couverte par un point de contrôle signé (entrée ajoutée ?)")
    elif len(lines) < covered:
        _bad_entry(report, len(lines), f"manquante : le dernier point de contrôle signé compte {covered} "
                                       f"entrées, l'export {len(lines)}")
    named = False
    if authentic and claimed is not None:
        for i in range(min(len(leaves), len(claimed))):
            if leaves[i] != claimed[i]:
                _bad_entry(report, i, "contenu modifié (son empreinte diffère de celle de l'arbre signé)")
                named = True
                break
    if suspects and not named:
        _suspect_range(report, *suspects[0])
    if claimed_tree is not None and not authentic:
        report.add("tile", None, "tuiles de niveau 0 incohérentes avec les racines signées")
    if claimed_tree is not None:  # tiles must agree with their own level 0
        _check_tiles(directory, claimed_tree, claimed_tree.size, report)
    _check_bundles(directory, lines, claimed_tree.size if claimed_tree else covered, report)
    if since is not None:
        _check_retained(since, computed, verifiers, trusted_ids, report)
    for text in witnesses:
        w = note.parse_vkey(text)
        if w.vkey not in report.cosigned_by:
            report.add("checkpoint", covered, f"aucun point de contrôle cosigné par {w.name}+{w.id_hex}")
    return report


def _bad_checkpoint(report: Report, size: int, why: str) -> None:
    if size not in report.bad_checkpoints:
        report.bad_checkpoints.append(size)
    report.add("checkpoint", size, f"point de contrôle {size} : {why}")


def _suspect_range(report: Report, lo: int, hi: int) -> None:
    """A signed root does not match: some entry in [lo, hi) is bad (first guess: lo)."""
    if report.first_bad_entry is None or lo < report.first_bad_entry:
        report.first_bad_entry = lo
        report.first_bad_reason = f"au plus tôt : une entrée entre {lo} et {hi - 1} ne correspond pas à l'arbre signé"


def _claimed_leaves(directory: Path, checkpoints, report: Report) -> list[bytes] | None:
    """Leaf hashes of the level-0 tiles, for the largest checkpoint size they are complete for."""
    for checkpoint, _ in reversed(checkpoints):
        parts = []
        for n, width in enumerate(tiles.tile_widths(checkpoint.size).get(0, [])):
            path = directory / tiles.tile_path(0, n, width)
            if not path.is_file():
                break
            parts.append(_read_at_most(path, width * 32))
        else:
            blob = b"".join(parts)
            if len(blob) == checkpoint.size * 32:
                return [blob[i : i + 32] for i in range(0, len(blob), 32)]
    if checkpoints:
        report.add("tile", None, "tuiles de niveau 0 absentes ou incomplètes")
    return None


def _check_tiles(directory: Path, reference: _Tree, size: int, report: Report) -> None:
    """Every tile of the newest checkpoint's tree, as the leaves it claims imply."""
    for level, widths in tiles.tile_widths(size).items():
        for n, width in enumerate(widths):
            path = directory / tiles.tile_path(level, n, width)
            if not path.is_file():
                report.add("tile", None, f"tuile {tiles.tile_path(level, n, width)} absente")
                return
            if level and _read_at_most(path, width * 32) != reference.tile(level, n, width):
                report.add("tile", None, f"tuile {tiles.tile_path(level, n, width)} incohérente")
                return


def _check_bundles(directory: Path, lines: list[bytes], size: int, report: Report) -> None:
    for n, width in enumerate(tiles.tile_widths(size).get(0, [])):
        path = directory / tiles.tile_path("entries", n, width)
        if not path.is_file():
            report.add("tile", None, f"paquet d'entrées {tiles.tile_path('entries', n, width)} absent")
            return
        data, offset, entries = _read_at_most(path, width * (2 + 0xFFFF)), 0, []
        while offset + 2 <= len(data):
            length = int.from_bytes(data[offset : offset + 2], "big")
            entries.append(data[offset + 2 : offset + 2 + length])
            offset += 2 + length
        start = n * tiles.WIDTH
        if offset != len(data) or entries != lines[start : start + width]:
            report.add("tile", start, f"paquet d'entrées {tiles.tile_path('entries', n, width)} "
                                      "différent de entries.jsonl")
            return


def _check_retained(path: str, computed: _Tree, verifiers, trusted_ids, report: Report) -> None:
    try:
        text = _read_small(Path(path))
        opened = note.open_note(text, verifiers)
        kept = note.parse_checkpoint(opened.text)
    except (OSError, note.NoteError, UnicodeDecodeError) as exc:
        report.add("checkpoint", None, f"point de contrôle conservé illisible : {exc}")
        return
    if not any((v.name, v.key_id) in trusted_ids for v in opened.verified):
        report.add("checkpoint", kept.size, "point de contrôle conservé : aucune signature d'une clé de confiance")
    elif kept.size > computed.size or computed.root(kept.size) != kept.root:
        report.add("checkpoint", kept.size, f"FOURCHE OU RÉÉCRITURE : le point de contrôle conservé (taille "
                                            f"{kept.size}) n'est pas un préfixe de ce journal")


# ------------------------------------------------------------------ command line


def render(report: Report) -> list[str]:
    """French lines for the command line; the verdict comes last."""
    out = []
    shown = sorted(report.findings, key=lambda f: (f.kind != "entry", f.index if f.index is not None else -1))
    for finding in shown[:MAX_SHOWN]:
        out.append(finding.line())
    if len(shown) > MAX_SHOWN:
        out.append(f"… et {len(shown) - MAX_SHOWN} autre(s) anomalie(s)")
    for described in report.trusted_keys:
        out.append(f"clé : {described}")
    for vkey, size in sorted(report.cosigned_by.items()):
        out.append(f"cosigné par {vkey.split('+')[0]} jusqu'à la taille {size}")
    if report.ok:
        if report.latest is None:
            out.append(f"journal vérifié : {report.entries} entrée(s), aucun point de contrôle")
        else:
            root = report.latest.body.split("\n")[2]
            out.append(f"journal vérifié : {report.entries} entrée(s), {report.checkpoints} point(s) de contrôle ; "
                       f"dernier : taille {report.latest.size}, racine {root}")
        return out
    verdict = ["ÉCHEC de la vérification"]
    if report.first_bad_entry is not None:
        verdict.append(f"première entrée en cause : {_name(report.first_bad_entry)} — {report.first_bad_reason}")
    if report.bad_checkpoints:
        verdict.append("point(s) de contrôle en cause : " + ", ".join(map(str, sorted(report.bad_checkpoints))))
    out.append(" ; ".join(verdict))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.audit.verify",
        description="Vérifie hors ligne un export du journal d'audit Relais (code 0 : vérifié, 1 : anomalie).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DOSSIER", help="dossier écrit par « relais audit export »")
    parser.add_argument("--trusted-key", action="append", default=[], metavar="VKEY",
                        help="clé publique du journal conservée hors de l'export (nom+id+base64), répétable")
    parser.add_argument("--since", metavar="FICHIER",
                        help="point de contrôle conservé lors d'un audit précédent (détecte une réécriture)")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="clé de cosignature (DPO) dont une cosignature valide est exigée")


def run(args) -> int:
    try:
        report = verify_export(args.directory, args.trusted_key, args.since, args.witness)
    except note.NoteError as exc:
        print(f"clé ou note invalide en argument : {exc}", file=sys.stderr)
        return 2
    lines = render(report)
    stream = sys.stdout if report.ok else sys.stderr
    for line in lines:
        print(line, file=stream)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
