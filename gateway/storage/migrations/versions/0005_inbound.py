"""Inbound items (decisions, notifications, documents received) and the person identifier index.

Revision ID: 0005_inbound
Revises: 0004_delivery
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0005_inbound"
down_revision: str | Sequence[str] | None = "0004_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
