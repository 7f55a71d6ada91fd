"""Audit entries: the (tenant_id, seq) index dropped. Every append paid for it (on PostgreSQL
~30 % of the server's CPU per row of a group commit, one more B-tree page per commit on
SQLite) while one rare query used it, the CLI's FHIR export of one tenant's entries, which
reads every body of that tenant anyway; reads of one entry go by its leaf index (primary key).

Revision ID: 0009_audit_entries_pk_only
Revises: 0008_exchange_pages
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_audit_entries_pk_only"
down_revision: str | Sequence[str] | None = "0008_exchange_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_entries_tenant_id_seq", table_name="audit_entries")


def downgrade() -> None:
    op.create_index("ix_audit_entries_tenant_id_seq", "audit_entries", ["tenant_id", "seq"])
