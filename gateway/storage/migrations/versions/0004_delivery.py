"""Delivery spine: exchanges (record + outbox) and their status history.

Revision ID: 0004_delivery
Revises: 0003_consent
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.storage.schema import UTCDateTime

revision: str = "0004_delivery"
down_revision: str | Sequence[str] | None = "0003_consent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_local_id", sa.String(64), nullable=False),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("payload_kind", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("decision_reasons", sa.Text, nullable=True),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=True),
        sa.Column("content_type", sa.String(80), nullable=True),
        sa.Column("payload_sha256", sa.String(64), nullable=True),
        sa.Column("problems", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("receipt", sa.Text, nullable=True),
        sa.Column("superseded_by", sa.String(32), nullable=True),
        sa.Column("replay_of", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_exchanges"),
        sa.UniqueConstraint("id", name="uq_exchanges_id"),
        sa.UniqueConstraint(
            "tenant_id", "system", "idempotency_key",
            name="uq_exchanges_tenant_id_system_idempotency_key",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_exchanges_tenant_id_tenants"),
    )
    op.create_index("ix_exchanges_due", "exchanges", ["status", "next_attempt_at"])
    op.create_index("ix_exchanges_line", "exchanges", ["tenant_id", "person_local_id", "system", "seq"])
    op.create_table(
        "exchange_events",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("exchange_seq", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_events"),
        sa.ForeignKeyConstraint(
            ["exchange_seq"], ["exchanges.seq"], name="fk_exchange_events_exchange_seq_exchanges"
        ),
    )
    op.create_index("ix_exchange_events_exchange_seq", "exchange_events", ["exchange_seq"])


def downgrade() -> None:
    op.drop_table("exchange_events")
    op.drop_table("exchanges")
