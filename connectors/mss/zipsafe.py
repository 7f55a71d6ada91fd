"""Reading an untrusted ZIP archive (the IHE_XDM.zip of a received MSSanté message) without
being hurt by it: every member is checked, and read into memory under hard limits, before
anything is written anywhere. A refused archive leaves no file behind.

Refused (rule id, French reason): too large, too many members, compression ratio of a
"zip bomb", encrypted members, compression methods other than stored/deflate, names that are
absolute, contain `..`, a backslash, a drive letter, control or non-ASCII characters, or that
repeat (case-insensitively: the XDM medium is FAT-like), symbolic links and special files
(devices, FIFOs, sockets), nested archives, a name that is both a file and a folder, and
declared sizes that the data contradicts.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass

MAX_ARCHIVE_BYTES = 20 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MAX_MEMBERS = 64
MAX_RATIO = 100  # uncompressed / compressed, per member and overall
RATIO_FLOOR = 64 * 1024  # small members compress well legitimately: ratio checked above this size
_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_NESTED_SUFFIXES = (".ZIP", ".JAR", ".7Z", ".RAR", ".GZ", ".TGZ", ".TAR", ".BZ2", ".XZ")


class ArchiveRefused(ValueError):
    """A hostile or unreadable archive: `rule` is stable, `reason` is French."""

    def __init__(self, rule: str, reason: str, member: str | None = None):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason
        self.member = member


@dataclass(frozen=True)
class Limits:
    archive_bytes: int = MAX_ARCHIVE_BYTES
    total_bytes: int = MAX_TOTAL_BYTES
    members: int = MAX_MEMBERS
    ratio: int = MAX_RATIO


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes  # b"" for a directory entry
    is_dir: bool
    date_time: tuple[int, int, int, int, int, int]


def check_name(name: str) -> None:
    """Refuse a member name that could escape the extraction folder or confuse a reader."""
    shown = name.encode("ascii", "backslashreplace").decode()[:120]
    if not name or not name.strip("/"):
        raise ArchiveRefused("zip-name-empty", "nom de fichier vide dans l'archive", shown)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ArchiveRefused("zip-name-control", f"caractère de contrôle dans le nom « {shown} »", shown)
    if not name.isascii():
        raise ArchiveRefused("zip-name-not-ascii", f"nom non ASCII « {shown} » (noms 8.3 attendus)", shown)
    if "\\" in name:
        raise ArchiveRefused("zip-name-backslash", f"barre oblique inverse dans le nom « {shown} »", shown)
    if name.startswith("/"):
        raise ArchiveRefused("zip-name-absolute", f"chemin absolu « {shown} »", shown)
    if len(name) >= 2 and name[1] == ":":
        raise ArchiveRefused("zip-name-drive", f"lettre de lecteur dans le nom « {shown} »", shown)
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".") for p in parts):
        raise ArchiveRefused("zip-name-traversal", f"remontée de répertoire dans le nom « {shown} »", shown)
    if any(p == "" for p in parts):
        raise ArchiveRefused("zip-name-empty-part", f"composant vide dans le nom « {shown} »", shown)


def _kind(info: zipfile.ZipInfo) -> int | None:
    """The Unix file type bits, when the archive was made on a Unix-like system."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind if info.create_system == 3 and kind else None  # 0: permissions only (Python's own)


def read_archive(data: bytes, limits: Limits = Limits()) -> list[Member]:
    """Every member, checked and decompressed in memory, or `ArchiveRefused`."""
    if len(data) > limits.archive_bytes:
        raise ArchiveRefused("zip-too-large", f"archive trop volumineuse ({len(data)} octets, "
                             f"maximum {limits.archive_bytes})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as exc:
        raise ArchiveRefused("zip-unreadable", f"archive ZIP illisible ({exc})") from None
    if len(infos) > limits.members:
        raise ArchiveRefused("zip-too-many-members", f"trop de fichiers dans l'archive ({len(infos)}, "
                             f"maximum {limits.members})")
    seen: set[str] = set()
    declared = 0
    for info in infos:
        name = info.filename
        check_name(name)
        key = name.rstrip("/").upper()
        if key in seen:
            raise ArchiveRefused("zip-name-duplicate", f"nom en double dans l'archive « {name} »", name)
        seen.add(key)
        kind = _kind(info)
        if kind == stat.S_IFLNK:
            raise ArchiveRefused("zip-symlink", f"lien symbolique refusé « {name} »", name)
        if kind is not None and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveRefused("zip-special-file", f"fichier spécial refusé « {name} »", name)
        if info.flag_bits & 0x1:
            raise ArchiveRefused("zip-encrypted", f"fichier chiffré refusé « {name} »", name)
        if info.compress_type not in _ALLOWED_METHODS:
            raise ArchiveRefused("zip-method", f"méthode de compression {info.compress_type} refusée "
                                 f"« {name} »", name)
        if name.upper().endswith(_NESTED_SUFFIXES):
            raise ArchiveRefused("zip-nested-archive", f"archive imbriquée refusée « {name} »", name)
        if info.is_dir() and info.file_size:
            raise ArchiveRefused("zip-directory-with-data", f"répertoire avec contenu « {name} »", name)
        declared += info.file_size
        _check_ratio(name, info.file_size, info.compress_size, limits)
    files = {i.filename.upper() for i in infos if not i.is_dir()}
    for info in infos:  # `A` and `A/B`: extraction would write A, then fail on the folder A
        parts = info.filename.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]).upper() in files:
                raise ArchiveRefused("zip-name-file-and-folder", f"« {'/'.join(parts[:depth])} » est à la fois "
                                     "un fichier et un répertoire de l'archive", info.filename)
    if declared > limits.total_bytes:
        raise ArchiveRefused("zip-total-too-large", f"contenu décompressé trop volumineux ({declared} "
                             f"octets annoncés, maximum {limits.total_bytes})")

    members: list[Member] = []
    total = 0
    for info in infos:
        if info.is_dir():
            members.append(Member(info.filename, b"", True, info.date_time))
            continue
        budget = min(limits.total_bytes - total, info.file_size)
        try:
            with archive.open(info) as stream:
                content = stream.read(budget + 1)
                extra = stream.read(1) if len(content) <= budget else b""
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError, zlib.error) as exc:
            raise ArchiveRefused("zip-corrupt-member", f"fichier corrompu « {info.filename} » ({exc})",
                                 info.filename) from None
        if len(content) > budget or extra:
            raise ArchiveRefused("zip-size-mismatch", f"taille réelle supérieure à la taille annoncée "
                                 f"« {info.filename} »", info.filename)
        total += len(content)
        _check_ratio(info.filename, len(content), info.compress_size, limits)
        if content.startswith(_ZIP_MAGIC):
            raise ArchiveRefused("zip-nested-archive", f"archive imbriquée refusée « {info.filename} »",
                                 info.filename)
        members.append(Member(info.filename, content, False, info.date_time))
    compressed = sum(i.compress_size for i in infos)
    if total > RATIO_FLOOR and compressed and total / compressed > limits.ratio:
        raise ArchiveRefused("zip-ratio", f"taux de compression suspect ({total // compressed}:1, "
                             f"maximum {limits.ratio}:1)")
    return members


def _check_ratio(name: str, size: int, compressed: int, limits: Limits) -> None:
    if size > RATIO_FLOOR and size > limits.ratio * max(compressed, 1):
        raise ArchiveRefused("zip-ratio", f"taux de compression suspect pour « {name} » "
                             f"({size // max(compressed, 1)}:1, maximum {limits.ratio}:1)", name)
