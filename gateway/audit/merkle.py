"""RFC 9162 §2.1 Merkle tree (SHA-256): hashes, proofs, their verification, the compact range.

Pure functions, no I/O. Both the writer (gateway.audit.log / .checkpoint) and the offline
verifier (gateway.audit.verify) use them; the tests check them against a naive recursive
implementation and the RFC 6962 vectors of transparency-dev/merkle.

A "frontier" (compact range) is the list of the roots of the perfect subtrees that make up a
tree of `size` leaves, left to right (largest first): one per set bit of `size`. Appending a
leaf costs O(log n) hashes (amortised O(1)); the root is the frontier folded right to left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()  # MTH({}) (RFC 9162 §2.1.1)


class ProofError(ValueError):
    """A proof that does not verify, or arguments out of range."""


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()  # RFC 9162 §2.1.1


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, level by level (an odd last node moves up unchanged,
    which gives the same tree as the RFC's recursive split)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# --------------------------------------------------------------------- compact range


def frontier_append(frontier: list[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of size+1 leaves from that of `size` leaves (modified in place)."""
    node = leaf
    while size & 1:
        node = node_hash(frontier.pop(), node)
        size >>= 1
    frontier.append(node)
    return frontier


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    if not frontier:
        return EMPTY_ROOT
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def pack(frontier: Sequence[bytes]) -> bytes:
    return b"".join(frontier)


def unpack(blob: bytes) -> list[bytes]:
    return [bytes(blob[i : i + HASH_SIZE]) for i in range(0, len(blob), HASH_SIZE)]


def perfect_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi) as aligned perfect subtrees (level, index), left to right, largest first.
    Valid for the ranges proofs use: lo is a multiple of a power of two >= hi - lo."""
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo & ((1 << level) - 1):
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


# --------------------------------------------------------------------- proofs (RFC 9162 §2.1.3-4)

Subtree = Callable[[int, int], bytes]  # mth(lo, hi): MTH(D[lo:hi])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH make PATH(index, D[size]) (§2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise ProofError("index hors de l'arbre")
    out = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    return out[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The ranges whose MTH make PROOF(old, D[new]) (§2.1.4.1), smallest subtree first."""
    if not 0 <= old <= new:
        raise ProofError("tailles incohérentes pour une preuve de cohérence")
    if old in (0, new):
        return []
    out = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        k = split_point(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    return out[::-1]


def inclusion_proof(index: int, size: int, mth: Subtree) -> list[bytes]:
    return [mth(lo, hi) for lo, hi in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int, mth: Subtree) -> list[bytes]:
    return [mth(lo, hi) for lo, hi in consistency_ranges(old, new)]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        raise ProofError("index hors de l'arbre")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE or sn == 0:
            raise ProofError("preuve d'inclusion mal formée")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("preuve d'inclusion trop courte")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("la preuve d'inclusion ne mène pas à la racine")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the tree of size `new` extends `old`."""
    if not 0 <= old <= new:
        raise ProofError("tailles incohérentes pour une preuve de cohérence")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError("arbres de même taille mais racines différentes")
        return
    if old == 0:
        if proof:
            raise ProofError("preuve de cohérence non vide depuis l'arbre vide")
        return
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("preuve de cohérence mal formée")
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("preuve de cohérence trop longue")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError("la preuve de cohérence ne relie pas les deux racines")
