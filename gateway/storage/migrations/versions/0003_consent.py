"""Consent engine: FHIR Consent versions, care teams, information records, decisions.

Revision ID: 0003_consent
Revises: 0002_audit
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_consent"
down_revision: str | Sequence[str] | None = "0002_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("consent_versions", "care_team_versions", "information_records", "consent_decisions")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _person_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "person_id"], ["persons.tenant_id", "persons.id"],
                                   name=f"fk_{table}_person")


def upgrade() -> None:
    op.create_table(
        "consent_heads",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("stamp", sa.String(32), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", name="pk_consent_heads"),
        _person_fk("consent_heads"),
    )
    op.create_table(
        "consent_versions",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("consent_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _ts("recorded_at"),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "consent_id", "version", name="pk_consent_versions"),
        _person_fk("consent_versions"),
        sa.CheckConstraint("version >= 1", name="ck_consent_versions_version_positive"),
    )
    op.create_index("ix_consent_versions_person", "consent_versions", ["tenant_id", "person_id"])
    op.create_table(
        "care_team_versions",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _ts("recorded_at"),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", "version", name="pk_care_team_versions"),
        _person_fk("care_team_versions"),
        sa.CheckConstraint("version >= 1", name="ck_care_team_versions_version_positive"),
    )
    op.create_table(
        "information_records",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        _ts("informed_at"),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("informed_by", sa.String(100), nullable=False),
        sa.Column("notice_version", sa.String(100), nullable=False),
        sa.Column("topics", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(300), nullable=True),
        sa.Column("data_categories", sa.String(200), nullable=False),
        _ts("recorded_at"),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_information_records"),
        _person_fk("information_records"),
    )
    op.create_index("ix_information_records_person", "information_records", ["tenant_id", "person_id"])
    op.create_table(
        "consent_decisions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        _ts("decided_at"),
        sa.Column("effect", sa.String(10), nullable=False),
        sa.Column("regime", sa.String(40), nullable=False),
        sa.Column("system", sa.String(20), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("rule_ids", sa.String(500), nullable=False),
        sa.Column("consent_refs", sa.Text(), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_decisions"),
        _person_fk("consent_decisions"),
    )
    op.create_index("ix_consent_decisions_person", "consent_decisions",
                    ["tenant_id", "person_id", "decided_at"])
    _append_only()


def _append_only() -> None:
    """Evidence is immutable: the database itself refuses UPDATE and DELETE."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION relais_consent_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% : enregistrements immuables (% refusé)', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION relais_consent_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION relais_consent_append_only()")
    elif dialect == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                message = f"{table} : enregistrements immuables ({verb} refusé)"
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION relais_consent_append_only()")
    op.drop_index("ix_consent_decisions_person", table_name="consent_decisions")
    op.drop_table("consent_decisions")
    op.drop_index("ix_information_records_person", table_name="information_records")
    op.drop_table("information_records")
    op.drop_table("care_team_versions")
    op.drop_index("ix_consent_versions_person", table_name="consent_versions")
    op.drop_table("consent_versions")
    op.drop_table("consent_heads")
