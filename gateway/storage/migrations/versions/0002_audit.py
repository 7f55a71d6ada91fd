"""Audit trail: entries, Merkle frontier, signed checkpoints, signing keys, pseudonyms.

Revision ID: 0002_audit
Revises: 0001_initial
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_audit"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same types as gateway/audit/tables.py (test_storage compares the two).
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_APPEND_ONLY = ("audit_entries", "audit_checkpoints")
_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")  # SHA-256("")


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_tenant_id_seq", "audit_entries", ["tenant_id", "seq"])
    op.create_table(
        "audit_tiles",
        sa.Column("level", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_tiles"),
    )
    op.create_table(
        "audit_signed_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_signed_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_signed_head_single_row"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("signed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("size", "key_id", name="pk_audit_cosignatures"),
        sa.ForeignKeyConstraint(
            ["size"], ["audit_checkpoints.size"], name="fk_audit_cosignatures_size_audit_checkpoints"
        ),
    )
    op.create_table(
        "audit_keys",
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("signs_until", _TS, nullable=True),
        sa.Column("introduced_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_audit_keys"),
    )
    op.create_table(
        "audit_pseudonym_keys",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_audit_pseudonym_keys"),
    )
    op.create_table(
        "audit_pseudonyms",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("pseudonym", sa.String(40), nullable=False),
        sa.Column("person_local_id", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "pseudonym", name="pk_audit_pseudonyms"),
        sa.UniqueConstraint(
            "tenant_id", "person_local_id", name="uq_audit_pseudonyms_tenant_id_person_local_id"
        ),
    )
    # The two single rows: an empty tree, and "signed" up to size 0 (root of the empty tree).
    row = sa.table("audit_head", sa.column("id"), sa.column("size"), sa.column("frontier"))
    op.bulk_insert(row, [{"id": 1, "size": 0, "frontier": b""}])
    row = sa.table("audit_signed_head", sa.column("id"), sa.column("size"), sa.column("root"))
    op.bulk_insert(row, [{"id": 1, "size": 0, "root": _EMPTY_ROOT}])
    _append_only()


def _append_only() -> None:
    """Entries and checkpoints are immutable: the database refuses UPDATE and DELETE."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION relais_audit_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% : journal d''audit en ajout seul (% refusé)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION relais_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION relais_audit_append_only()"
            )
    elif dialect == "sqlite":
        for table in _APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                message = f"{table} : journal d''audit en ajout seul ({verb} refusé)"
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in _APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION relais_audit_append_only()")
    for table in ("audit_pseudonyms", "audit_pseudonym_keys", "audit_keys", "audit_cosignatures",
                  "audit_checkpoints", "audit_signed_head", "audit_tiles"):
        op.drop_table(table)
    op.drop_index("ix_audit_entries_tenant_id_seq", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("audit_head")
