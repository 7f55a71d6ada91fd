"""Inbound items (decisions, notifications, documents received), the person identifier index,
and the data categories each exchange carries.

Revision ID: 0005_inbound
Revises: 0004_delivery
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.storage.schema import UTCDateTime

revision: str = "0005_inbound"
down_revision: str | Sequence[str] | None = "0004_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ordered_string(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("exchanges", sa.Column("data_categories", sa.String(200), nullable=True))
    op.add_column("exchanges", sa.Column("labels", sa.String(200), nullable=True))
    op.create_table(
        "person_identifiers",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("person_local_id", _ordered_string(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "value", "person_local_id", name="pk_person_identifiers"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name="fk_person_identifiers_tenant_id_tenants"),
    )
    op.create_table(
        "inbound_items",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("peer_reference", sa.String(300), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("person_local_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("proposal", sa.Text, nullable=True),
        sa.Column("content_type", sa.String(80), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("reviewed_by", sa.String(100), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("applied_version", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_inbound_items"),
        sa.UniqueConstraint("id", name="uq_inbound_items_id"),
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_inbound_items_tenant_id_dedupe_key"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_inbound_items_tenant_id_tenants"),
    )
    op.create_index("ix_inbound_items_person", "inbound_items", ["tenant_id", "person_local_id", "seq"])


def downgrade() -> None:
    op.drop_column("exchanges", "labels")
    op.drop_column("exchanges", "data_categories")
    op.drop_table("inbound_items")
    op.drop_table("person_identifiers")
