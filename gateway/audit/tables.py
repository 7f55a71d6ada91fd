"""Tables of gateway.audit, declared on the shared metadata (see gateway/storage/registry.py).

Created by migration 0002_audit (and 0009: audit_entries' second index dropped), which must
describe exactly the same tables.
- audit_head: ONE row (id 1): tree size and Merkle frontier. Appenders lock it (PostgreSQL
  FOR UPDATE; SQLite's BEGIN IMMEDIATE already serialises writers), so leaf indexes are
  dense and the tree never forks.
- audit_entries: one row per leaf; `body` is the exact leaf bytes (RFC 8785 JSON). Append-only
  (triggers refuse UPDATE/DELETE).
- audit_tiles: tlog-tiles hash tiles (level L holds tree level 8L), filled by the checkpointer.
- audit_signed_head: ONE row: size and root of the last signed checkpoint (compare-and-swap).
- audit_checkpoints: every signed checkpoint note (append-only); audit_cosignatures: the
  DPO's cosignature lines.
- audit_keys: log signing keys (public part; private keys live in files, see keys.py).
- audit_pseudonym_keys / audit_pseudonyms: per-tenant HMAC key and pseudonym -> person
  mapping (erasable; the log stays verifiable without it).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

# SQLite: INTEGER PRIMARY KEY is the rowid (fast appends); PostgreSQL: bigint.
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("frontier", sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    # no index but the primary key: each one is paid by every append (migration 0009)
)

audit_tiles = sa.Table(
    "audit_tiles",
    metadata,
    sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("hashes", sa.LargeBinary(), nullable=False),
)

audit_signed_head = sa.Table(
    "audit_signed_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("root", sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=False),
)

audit_cosignatures = sa.Table(
    "audit_cosignatures",
    metadata,
    sa.Column("size", sa.BigInteger(), sa.ForeignKey("audit_checkpoints.size"), primary_key=True),
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("line", sa.Text(), nullable=False),
    sa.Column("vkey", sa.Text(), nullable=False),
    sa.Column("signed_at", UTCDateTime(), nullable=False),
)

audit_keys = sa.Table(
    "audit_keys",
    metadata,
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("vkey", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("signs_until", UTCDateTime(), nullable=True),  # None: signs until rotated
    sa.Column("introduced_at", sa.BigInteger(), nullable=False),  # leaf index of its log entry
)

audit_pseudonym_keys = sa.Table(
    "audit_pseudonym_keys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("secret", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

audit_pseudonyms = sa.Table(
    "audit_pseudonyms",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("pseudonym", sa.String(40), primary_key=True),
    sa.Column("person_local_id", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "person_local_id"),
)
