"""Initial schema: tenants, API keys, persons, immutable plan versions.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ordered_string(length: int) -> sa.types.TypeEngine:
    # Byte order for keyset pagination on every backend (see gateway.storage.schema).
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("slug", _ordered_string(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("finess", sa.String(9), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(12), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_api_keys_tenant_id_tenants"
        ),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "persons",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("local_id", _ordered_string(64), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_persons_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "local_id", name="uq_persons_tenant_id_local_id"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_persons_tenant_id_id"),
        sa.CheckConstraint("current_version >= 0", name="ck_persons_current_version_positive"),
    )
    op.create_table(
        "plan_versions",
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        # The primary key is the unique (person_id, version) that stops two writers from
        # both creating version n+1.
        sa.PrimaryKeyConstraint("person_id", "version", name="pk_plan_versions"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "person_id"],
            ["persons.tenant_id", "persons.id"],
            name="fk_plan_versions_person",
        ),
        sa.CheckConstraint("version >= 1", name="ck_plan_versions_version_positive"),
    )
    _append_only()


def _append_only() -> None:
    """Plan versions are immutable: the database itself refuses UPDATE and DELETE."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION relais_plan_versions_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'plan_versions : versions immuables (% refusé)', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER plan_versions_append_only BEFORE UPDATE OR DELETE ON plan_versions "
            "FOR EACH ROW EXECUTE FUNCTION relais_plan_versions_append_only()"
        )
        op.execute(
            "CREATE TRIGGER plan_versions_no_truncate BEFORE TRUNCATE ON plan_versions "
            "FOR EACH STATEMENT EXECUTE FUNCTION relais_plan_versions_append_only()"
        )
    elif dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            message = f"plan_versions : versions immuables ({verb} refusé)"
            op.execute(
                f"CREATE TRIGGER plan_versions_no_{verb.lower()} BEFORE {verb} ON plan_versions "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER plan_versions_no_truncate ON plan_versions")
        op.execute("DROP TRIGGER plan_versions_append_only ON plan_versions")
        op.execute("DROP FUNCTION relais_plan_versions_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER plan_versions_no_update")
        op.execute("DROP TRIGGER plan_versions_no_delete")
    op.drop_table("plan_versions")
    op.drop_table("persons")
    op.drop_index("ix_api_keys_tenant_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
