"""Indexes for a long queue: pages of exchanges (newest first, optionally by status) and the
workers' claim (due items of one status in queue order).

Revision ID: 0008_exchange_pages
Revises: 0007_console
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_exchange_pages"
down_revision: str | Sequence[str] | None = "0007_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_exchanges_page", "exchanges", ["tenant_id", "seq"])
    op.create_index("ix_exchanges_status_page", "exchanges", ["tenant_id", "status", "seq"])
    op.create_index("ix_exchanges_claim", "exchanges", ["status", "seq", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_exchanges_claim", table_name="exchanges")
    op.drop_index("ix_exchanges_status_page", table_name="exchanges")
    op.drop_index("ix_exchanges_page", table_name="exchanges")
