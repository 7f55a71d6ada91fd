"""Tables of gateway.activity, declared on the shared metadata (migration 0006_activity).

- `activity_records`: each delivered activity as the DUI sent it (one row per DUI event id
  and person: sending it again replaces it, or changes nothing when identical).
- `activity_persons`: one row per person with recorded activity: the local id and the
  specialisation families of the person's plan when activity was last recorded; its row is
  also the per-person write lock (every recording of a person is serialised on it).
- `activity_days`: rollup per person, modality and local day of what counts (finished
  events): direct events and minutes, events touching the morning / afternoon, indirect
  minutes, transport. Recomputed from `activity_records` for every day a write touches.
- `activity_months`: rollup per person, modality and month of `activity_days` (days of
  presence, half-days, minutes, transport); modality `*` is every modality together, a day
  counted once. Indicators over a year read ~12 rows per person and modality, not every event.
- `activity_capacities`: the authorised capacity per modality (places, theoretical opening
  days per year) from the platform's FINESS authorisation, in force from `valid_from` until
  the next row of the same modality.

Transport distances are stored in metres (integers: sums stay exact on every backend).
The rollups are WITHOUT ROWID on SQLite, clustered on their primary key: (person, day) for the
daily one, so that a write's refresh of one person's days reads only those rows; (person,
modality, month) for the monthly one, the order the indicators read.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

ALL_MODALITIES = "*"  # activity_months.modality for every modality together


def _person_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "person_id"], ["persons.tenant_id", "persons.id"],
                                   name=f"fk_{table}_person")


activity_persons = sa.Table(
    "activity_persons",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("local_id", sa.String(64), nullable=False),
    sa.Column("specialisations", sa.String(200), nullable=False),  # space-separated, may be ""
    sa.Column("plan_version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    _person_fk("activity_persons"),
)

activity_records = sa.Table(
    "activity_records",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("person_id", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),  # the DUI's event id (idempotency)
    sa.Column("code", sa.String(16), nullable=False),  # SERAFIN-PH 2.x / 3.x leaf
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("person_present", sa.Boolean(), nullable=False),
    sa.Column("start_at", UTCDateTime(), nullable=True),  # null when sent as date + duration
    sa.Column("end_at", UTCDateTime(), nullable=True),
    sa.Column("day", sa.Date(), nullable=False),  # local day of the start
    sa.Column("minutes", sa.Integer(), nullable=False),
    sa.Column("morning", sa.Boolean(), nullable=False),  # touches [00:00, 13:00) local
    sa.Column("afternoon", sa.Boolean(), nullable=False),  # touches [13:00, 24:00) local
    sa.Column("modality", sa.String(24), nullable=False),
    sa.Column("place", sa.String(24), nullable=True),
    sa.Column("provider_kind", sa.String(24), nullable=True),
    sa.Column("provider_name", sa.String(200), nullable=True),
    sa.Column("provider_identifier", sa.String(220), nullable=True),  # system:value
    sa.Column("service_id", sa.String(64), nullable=True),  # planned service (plan.services[].id)
    sa.Column("transport_m", sa.Integer(), nullable=True),
    sa.Column("transport_minutes", sa.Integer(), nullable=True),
    sa.Column("source", sa.String(8), nullable=False),  # api | tddui
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    _person_fk("activity_records"),
    sa.UniqueConstraint("tenant_id", "person_id", "source_id"),
    sa.CheckConstraint("minutes >= 0 AND minutes <= 1440", name="minutes_range"),
    sa.Index("ix_activity_records_person_day", "tenant_id", "person_id", "day"),
)

activity_days = sa.Table(
    "activity_days",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("modality", sa.String(24), primary_key=True),
    sa.Column("month", sa.Integer(), nullable=False),  # yyyymm of day
    sa.Column("direct_events", sa.Integer(), nullable=False),
    sa.Column("direct_minutes", sa.Integer(), nullable=False),
    sa.Column("morning_events", sa.Integer(), nullable=False),
    sa.Column("afternoon_events", sa.Integer(), nullable=False),
    sa.Column("indirect_minutes", sa.Integer(), nullable=False),
    sa.Column("events", sa.Integer(), nullable=False),
    sa.Column("transport_m", sa.Integer(), nullable=False),
    sa.Column("transport_minutes", sa.Integer(), nullable=False),
    sa.Index("ix_activity_days_tenant_day", "tenant_id", "day"),
    sqlite_with_rowid=False,
)

activity_months = sa.Table(
    "activity_months",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("modality", sa.String(24), primary_key=True),
    sa.Column("month", sa.Integer(), primary_key=True),
    sa.Column("days", sa.Integer(), nullable=False),
    sa.Column("half_days", sa.Integer(), nullable=False),
    sa.Column("direct_events", sa.Integer(), nullable=False),
    sa.Column("direct_minutes", sa.Integer(), nullable=False),
    sa.Column("indirect_minutes", sa.Integer(), nullable=False),
    sa.Column("events", sa.Integer(), nullable=False),
    sa.Column("transport_m", sa.Integer(), nullable=False),
    sa.Column("transport_minutes", sa.Integer(), nullable=False),
    sqlite_with_rowid=False,
)

activity_capacities = sa.Table(
    "activity_capacities",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("modality", sa.String(24), primary_key=True),
    sa.Column("valid_from", sa.Date(), primary_key=True),
    sa.Column("finess", sa.String(9), nullable=False),
    sa.Column("places", sa.Integer(), nullable=False),
    sa.Column("opening_days", sa.Integer(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    sa.CheckConstraint("places >= 0", name="places_positive"),
    sa.CheckConstraint("opening_days >= 1 AND opening_days <= 366", name="opening_days_range"),
)
