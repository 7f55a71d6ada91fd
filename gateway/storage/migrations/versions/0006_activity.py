"""Delivered activity (SERAFIN-PH units): records, daily and monthly rollups, capacities.

Revision ID: 0006_activity
Revises: 0005_inbound
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.storage.schema import UTCDateTime

revision: str = "0006_activity"
down_revision: str | Sequence[str] | None = "0005_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _person_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "person_id"], ["persons.tenant_id", "persons.id"],
                                   name=f"fk_{table}_person")


def _counters(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "activity_persons",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("local_id", sa.String(64), nullable=False),
        sa.Column("specialisations", sa.String(200), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", name="pk_activity_persons"),
        _person_fk("activity_persons"),
    )
    op.create_table(
        "activity_records",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("person_present", sa.Boolean(), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=True),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("morning", sa.Boolean(), nullable=False),
        sa.Column("afternoon", sa.Boolean(), nullable=False),
        sa.Column("modality", sa.String(24), nullable=False),
        sa.Column("place", sa.String(24), nullable=True),
        sa.Column("provider_kind", sa.String(24), nullable=True),
        sa.Column("provider_name", sa.String(200), nullable=True),
        sa.Column("provider_identifier", sa.String(220), nullable=True),
        sa.Column("service_id", sa.String(64), nullable=True),
        sa.Column("transport_m", sa.Integer(), nullable=True),
        sa.Column("transport_minutes", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_activity_records"),
        _person_fk("activity_records"),
        sa.UniqueConstraint("tenant_id", "person_id", "source_id",
                            name="uq_activity_records_tenant_id_person_id_source_id"),
        sa.CheckConstraint("minutes >= 0 AND minutes <= 1440", name="ck_activity_records_minutes_range"),
    )
    op.create_index("ix_activity_records_person_day", "activity_records", ["tenant_id", "person_id", "day"])
    op.create_table(
        "activity_days",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("modality", sa.String(24), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        *_counters("direct_events", "direct_minutes", "morning_events", "afternoon_events",
                   "indirect_minutes", "events", "transport_m", "transport_minutes"),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", "day", "modality", name="pk_activity_days"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_activity_days_tenant_day", "activity_days", ["tenant_id", "day"])
    op.create_table(
        "activity_months",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("modality", sa.String(24), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        *_counters("days", "half_days", "direct_events", "direct_minutes", "indirect_minutes",
                   "events", "transport_m", "transport_minutes"),
        sa.PrimaryKeyConstraint("tenant_id", "person_id", "modality", "month", name="pk_activity_months"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "activity_capacities",
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("modality", sa.String(24), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("finess", sa.String(9), nullable=False),
        sa.Column("places", sa.Integer(), nullable=False),
        sa.Column("opening_days", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "modality", "valid_from", name="pk_activity_capacities"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_activity_capacities_tenant_id_tenants"),
        sa.CheckConstraint("places >= 0", name="ck_activity_capacities_places_positive"),
        sa.CheckConstraint("opening_days >= 1 AND opening_days <= 366",
                           name="ck_activity_capacities_opening_days_range"),
    )


def downgrade() -> None:
    op.drop_table("activity_capacities")
    op.drop_table("activity_months")
    op.drop_table("activity_days")
    op.drop_table("activity_records")
    op.drop_table("activity_persons")
