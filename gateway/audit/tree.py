"""The stored Merkle tree: hash tiles in `audit_tiles`, roots and proofs read from them.

Tiles are written by the checkpointer ("integration", as in Tessera) for the entries it is
about to sign, so proofs can be served for any size up to the last signed checkpoint
(`audit_signed_head.size`). A proof reads at most a handful of 8 KiB tiles in one query.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.audit import merkle, tiles
from gateway.audit.log import AuditError, read_bodies
from gateway.audit.tables import audit_signed_head, audit_tiles

_BATCH = 16384  # entries read per query while integrating


def signed_size(conn: Connection) -> tuple[int, bytes]:
    """(size, root) of the last signed checkpoint (0 and the empty root before the first)."""
    row = conn.execute(
        sa.select(audit_signed_head.c.size, audit_signed_head.c.root).where(audit_signed_head.c.id == 1)
    ).one()
    return row.size, bytes(row.root)


def read_tiles(conn: Connection, wanted) -> dict[tuple[int, int], bytes]:
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    clauses = [sa.and_(audit_tiles.c.level == level, audit_tiles.c.idx == idx) for level, idx in wanted]
    rows = conn.execute(sa.select(audit_tiles).where(sa.or_(*clauses))).all()
    return {(r.level, r.idx): bytes(r.hashes) for r in rows}


def _upsert(conn: Connection, updates: dict[tuple[int, int], bytes]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(audit_tiles)
    statement = statement.on_conflict_do_update(
        index_elements=["level", "idx"], set_={"hashes": statement.excluded.hashes}
    )
    conn.execute(statement, [{"level": l, "idx": n, "hashes": h} for (l, n), h in sorted(updates.items())])


def integrate(conn: Connection, old_size: int, new_size: int) -> None:
    """Write the tiles of leaves [old_size, new_size) (tiles up to old_size already exist)."""
    done = old_size
    while done < new_size:
        stop = min(new_size, done + _BATCH)
        hashes = [merkle.leaf_hash(body) for body in read_bodies(conn, done, stop)]
        cache: dict[tuple[int, int], bytes] = {}

        def read_tile(level: int, index: int) -> bytes:
            if (level, index) not in cache:
                cache.update(read_tiles(conn, [(level, index)]))
            return cache.get((level, index), b"")

        _upsert(conn, tiles.tile_updates(done, hashes, read_tile))
        done = stop


def view(conn: Connection, ranges, size: int) -> tiles.MemoryTiles:
    return tiles.MemoryTiles(read_tiles(conn, tiles.needed_tiles(ranges)), size)


def root_at(conn: Connection, size: int, tiled: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    _check(size, tiled)
    return view(conn, [(0, size)], tiled).root(size)


def _check(size: int, tiled: int) -> None:
    if size > tiled:
        raise AuditError(f"taille {size} au-delà du dernier point de contrôle signé ({tiled})")


def inclusion_proof(conn: Connection, index: int, size: int, tiled: int) -> tuple[bytes, list[bytes]]:
    """(leaf hash, audit path) of entry `index` in the tree of `size` leaves."""
    _check(size, tiled)
    ranges = merkle.inclusion_ranges(index, size)
    nodes = view(conn, ranges + [(index, index + 1)], tiled)
    return nodes.mth(index, index + 1), [nodes.mth(lo, hi) for lo, hi in ranges]


def consistency_proof(conn: Connection, old: int, new: int, tiled: int) -> list[bytes]:
    _check(new, tiled)
    ranges = merkle.consistency_ranges(old, new)
    nodes = view(conn, ranges, tiled)
    return [nodes.mth(lo, hi) for lo, hi in ranges]
