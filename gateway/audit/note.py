"""C2SP signed notes, checkpoints and cosignatures with Ed25519 (pure; `cryptography` only).

- c2sp.org/signed-note: text ending in "\\n", a blank line, then lines
  "— <key name> base64(key ID (4 bytes, big-endian) || signature)". Key ID =
  SHA-256(name || 0x0A || type || public key)[:4]; Ed25519 type 0x01. Verifiers ignore
  unknown keys (name and ID both unknown), MUST verify known ones.
- Verifier keys ("vkeys", golang.org/x/mod/sumdb/note): "<name>+<key ID hex>+<base64(type ||
  public key)>"; signer keys: "PRIVATE+KEY+<name>+<key ID hex>+<base64(type || seed)>".
- c2sp.org/tlog-checkpoint: body = origin, tree size (decimal), base64 root hash, no extension
  lines (we write none, we refuse any: they cannot be audited).
- c2sp.org/tlog-cosignature v1 (type 0x04): signature = timestamp (u64 big-endian) ||
  Ed25519 over "cosignature/v1\\ntime <t>\\n" + checkpoint body.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014 "  # em dash + space opens every signature line
MAX_SIGNATURES = 64  # we accept at least the 16 the spec asks for
_NAME = re.compile(r"[^\s+]+")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """Malformed note, key or checkpoint; the message is French and safe to show."""


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NoteError("nom de clé invalide (non vide, sans espace ni « + »)")
    return name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("base64 invalide") from None


@dataclass(frozen=True)
class Verifier:
    """A public key known by (name, key ID); `key_type` 0x01 (log) or 0x04 (cosigner)."""

    name: str
    key_id: bytes
    key_type: int
    public: bytes

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.key_type]) + self.public)}"

    @property
    def id_hex(self) -> str:
        return self.key_id.hex()

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_vkey(text: str) -> Verifier:
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise NoteError("clé de vérification mal formée (attendu nom+idclé+base64)")
    name = _check_name(parts[0])
    raw = _unb64(parts[2])
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("clé de vérification : seul Ed25519 (types 0x01 et 0x04) est pris en charge")
    verifier = Verifier(name, bytes.fromhex(parts[1]), raw[0], raw[1:])
    if key_id(name, raw[0], raw[1:]) != verifier.key_id:
        raise NoteError(f"clé de vérification {name} : l'identifiant ne correspond pas à la clé")
    return verifier


class Signer:
    """An Ed25519 signing key with its note name; `key_type` 0x01 signs checkpoints as the
    log, 0x04 cosigns them (tlog-cosignature v1)."""

    def __init__(self, name: str, private: Ed25519PrivateKey, key_type: int = ED25519):
        self.name = _check_name(name)
        self.key_type = key_type
        self._private = private
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(self.name, key_id(self.name, key_type, public), key_type, public)

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> Signer:
        return cls(name, Ed25519PrivateKey.generate(), key_type)

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    @property
    def skey(self) -> str:
        """The private key in the Go note format (secret: store 0600, never log)."""
        seed = self._private.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{_b64(bytes([self.key_type]) + seed)}"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:  # never the key material
        return f"Signer({self.verifier.name}+{self.verifier.id_hex})"


def parse_skey(text: str) -> Signer:
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not re.fullmatch(r"[0-9a-f]{8}", parts[3]):
        raise NoteError("clé privée mal formée (attendu PRIVATE+KEY+nom+idclé+base64)")
    raw = _unb64(parts[4])
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("clé privée : seul Ed25519 (types 0x01 et 0x04) est pris en charge")
    signer = Signer(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]), raw[0])
    if signer.key_id.hex() != parts[3]:
        raise NoteError("clé privée : l'identifiant ne correspond pas à la clé")
    return signer


# --------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes  # after the key ID

    @property
    def line(self) -> str:
        return f"{DASH}{self.name} {_b64(self.key_id + self.signature)}\n"


def signature_line(signer: Signer, text: str) -> str:
    return Signature(signer.name, signer.key_id, signer.sign(text.encode())).line


def sign_note(text: str, signers) -> str:
    _check_text(text)
    return text + "\n" + "".join(signature_line(s, text) for s in signers)


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteError("texte de note invalide (doit finir par un saut de ligne, sans caractère de contrôle)")


def parse_note(note: str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and signature lines (nothing verified yet)."""
    if not isinstance(note, str) or _CONTROL.search(note) or not note.endswith("\n"):
        raise NoteError("note signée mal formée")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("note signée sans ligne vide avant les signatures")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines()
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError("note signée : nombre de signatures invalide")
    signatures = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError("ligne de signature mal formée")
        name, _, b64 = line[len(DASH) :].partition(" ")
        _check_name(name)
        raw = _unb64(b64)
        if len(raw) < 5:
            raise NoteError("signature trop courte")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return text, signatures


@dataclass(frozen=True)
class Opened:
    text: str
    verified: list[Verifier]  # known keys whose signature verified
    failed: list[Verifier]  # known keys whose signature did NOT verify
    unknown: list[Signature]  # ignored (signed-note rule)
    cosigned_at: dict[bytes, int]  # cosigner key ID -> timestamp, for verified cosignatures


def open_note(note: str, known) -> Opened:
    """Verify a note against known verifiers (by name AND key ID); unknown signatures are
    ignored as the signed-note spec requires. Callers decide what failed/verified means."""
    text, signatures = parse_note(note)
    index = {(v.name, v.key_id): v for v in known}
    verified, failed, unknown, times = [], [], [], {}
    for sig in signatures:
        verifier = index.get((sig.name, sig.key_id))
        if verifier is None:
            unknown.append(sig)
            continue
        if verifier.key_type == COSIGNATURE_V1:
            ok, when = _verify_cosignature(verifier, text, sig.signature)
            if ok:
                times[verifier.key_id] = when
        else:
            ok = verifier.verify(text.encode(), sig.signature)
        (verified if ok else failed).append(verifier)
    return Opened(text, verified, failed, unknown, times)


# --------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    @property
    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise NoteError("point de contrôle : trois lignes attendues (origine, taille, racine), sans extension")
    origin, size, root = lines[:3]
    if not origin or not re.fullmatch(r"0|[1-9][0-9]*", size):
        raise NoteError("point de contrôle : origine vide ou taille mal écrite")
    raw = _unb64(root)
    if len(raw) != 32:
        raise NoteError("point de contrôle : racine de 32 octets attendue")
    return Checkpoint(origin, int(size), raw)


# --------------------------------------------------------------------- cosignatures


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosignature_line(signer: Signer, body: str, timestamp: int) -> str:
    if signer.key_type != COSIGNATURE_V1:
        raise NoteError("une cosignature demande une clé de type 0x04")
    sig = signer.sign(cosignature_message(body, timestamp))
    return Signature(signer.name, signer.key_id, struct.pack(">Q", timestamp) + sig).line


def _verify_cosignature(verifier: Verifier, body: str, raw: bytes) -> tuple[bool, int]:
    if len(raw) != 8 + 64:
        return False, 0
    (timestamp,) = struct.unpack(">Q", raw[:8])
    return verifier.verify(cosignature_message(body, timestamp), raw[8:]), timestamp
