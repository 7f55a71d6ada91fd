"""Consent engine: FHIR Consent versions, care teams, information records, decisions.

Revision ID: 0003_consent
Revises: 0002_audit
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0003_consent"
down_revision: str | Sequence[str] | None = "0002_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the 0003_consent work


def downgrade() -> None:
    pass
