"""C2SP tlog-tiles: the Merkle tree stored as tiles of 256 hashes (pure functions).

The tile at level L, index N holds MTH(D[(N*256 + i) * 256**L : (N*256 + i + 1) * 256**L])
for i in 0..255: level 0 holds leaf hashes, level L the roots of full tiles of level L-1.
The rightmost tiles may be partial (1..255 hashes) and are never hashed into the level above.
Any node of a complete subtree is rebuilt from one tile (at most 128 hashes to fold), so the
tiles are enough to compute every root and proof up to the tiled size.

Paths (tlog-tiles "APIs"): tile/<L>/<N>[.p/<W>], N written as 3-digit groups, all but the
last prefixed with "x" (1234067 -> x001/x234/067); entry bundles tile/entries/<N>[.p/<W>].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gateway.audit import merkle

WIDTH = 256
HEIGHT = 8
TILE_BYTES = WIDTH * merkle.HASH_SIZE


def tile_path(level: int | str, index: int, width: int = WIDTH) -> str:
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    path = "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])
    suffix = "" if width == WIDTH else f".p/{width}"
    return f"tile/{level}/{path}{suffix}"


def tile_widths(size: int) -> dict[int, list[int]]:
    """Width of every tile a tree of `size` leaves is made of, per level."""
    out: dict[int, list[int]] = {}
    level, count = 0, size
    while count:
        full, partial = divmod(count, WIDTH)
        out[level] = [WIDTH] * full + ([partial] if partial else [])
        level, count = level + 1, count // WIDTH
    return out


def perfect_root(hashes: bytes) -> bytes:
    """Root of a perfect subtree given its hashes concatenated (count a power of two)."""
    level = [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def tile_updates(
    old_size: int, new_hashes: Sequence[bytes], read_tile: Callable[[int, int], bytes]
) -> dict[tuple[int, int], bytes]:
    """The tiles to write when leaf hashes `new_hashes` follow a tree of `old_size` leaves.

    `read_tile(level, index)` returns the stored (partial) tile content. Returns
    {(level, index): full content of the tile after the update} for every tile touched.
    """
    updates: dict[tuple[int, int], bytes] = {}
    level, before, hashes = 0, old_size, list(new_hashes)
    while hashes:
        first = before // WIDTH
        kept = read_tile(level, first) if before % WIDTH else b""
        if len(kept) != (before % WIDTH) * 32:
            raise ValueError(f"tuile {level}/{first} : largeur inattendue")
        joined = kept + b"".join(hashes)
        completed = []
        for offset in range(0, len(joined), TILE_BYTES):
            chunk = joined[offset : offset + TILE_BYTES]
            updates[(level, first + offset // TILE_BYTES)] = chunk
            if len(chunk) == TILE_BYTES:
                completed.append(perfect_root(chunk))
        level, before, hashes = level + 1, before // WIDTH, completed
    return updates


class MemoryTiles:
    """Tree nodes read from tiles held in a mapping {(level, index): bytes}."""

    def __init__(self, table: Mapping[tuple[int, int], bytes], size: int):
        self.table = table
        self.size = size

    def node(self, level: int, index: int) -> bytes:
        tile_level, rest = divmod(level, HEIGHT)
        start = index << rest  # first hash at tree level 8 * tile_level
        if (start + (1 << rest)) << (HEIGHT * tile_level) > self.size:
            raise KeyError("nœud hors de l'arbre tuilé")
        tile = self.table[(tile_level, start // WIDTH)]
        offset = (start % WIDTH) * 32
        chunk = tile[offset : offset + (32 << rest)]
        if len(chunk) != 32 << rest:
            raise KeyError("tuile incomplète")
        return perfect_root(chunk)

    def mth(self, lo: int, hi: int) -> bytes:
        nodes = [self.node(level, index) for level, index in merkle.perfect_subtrees(lo, hi)]
        return merkle.frontier_root(nodes)

    def root(self, size: int) -> bytes:
        return merkle.EMPTY_ROOT if size == 0 else self.mth(0, size)


def needed_tiles(ranges: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """The tiles holding the nodes of these ranges (to fetch them in one query)."""
    out = set()
    for lo, hi in ranges:
        for level, index in merkle.perfect_subtrees(lo, hi):
            tile_level, rest = divmod(level, HEIGHT)
            out.add((tile_level, (index << rest) // WIDTH))
    return out
