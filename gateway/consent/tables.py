"""Tables of gateway.consent, declared on the shared metadata (see gateway/storage/registry.py).

Created by migration 0003_consent. Evidence tables are append-only (the database refuses
UPDATE and DELETE): `consent_versions` (each FHIR Consent version, canonical JSON + SHA-256;
a withdrawal is a new version), `care_team_versions` (each FHIR CareTeam version),
`information_records` (the person was informed: when, how, by whom, of what) and
`consent_decisions` (every decision: effect, rules, consents, request digest).
`consent_heads` holds one mutable row per person: the policy stamp, a fresh random value
written by every consent, care-team or information write (cache validation: a stamp is never
reused, even after a rollback; and the per-person write lock).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

APPEND_ONLY = ("consent_versions", "care_team_versions", "information_records", "consent_decisions")


def _person_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "person_id"], ["persons.tenant_id", "persons.id"],
                                   name=f"fk_{table}_person")


consent_heads = sa.Table(
    "consent_heads",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("stamp", sa.String(32), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    _person_fk("consent_heads"),
)

consent_versions = sa.Table(
    "consent_versions",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("consent_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("person_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    _person_fk("consent_versions"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    sa.Index("ix_consent_versions_person", "tenant_id", "person_id"),
)

care_team_versions = sa.Table(
    "care_team_versions",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    _person_fk("care_team_versions"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
)

information_records = sa.Table(
    "information_records",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("person_id", sa.String(32), nullable=False),
    sa.Column("informed_at", UTCDateTime(), nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("informed_by", sa.String(100), nullable=False),
    sa.Column("notice_version", sa.String(100), nullable=False),
    sa.Column("topics", sa.String(200), nullable=False),  # space-separated InformationTopic
    sa.Column("recipient", sa.String(300), nullable=True),  # "rpps:…" token named, if any
    sa.Column("data_categories", sa.String(200), nullable=False),  # space-separated
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(100), nullable=False),
    _person_fk("information_records"),
    sa.Index("ix_information_records_person", "tenant_id", "person_id"),
)

consent_decisions = sa.Table(
    "consent_decisions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("person_id", sa.String(32), nullable=False),
    sa.Column("decided_at", UTCDateTime(), nullable=False),
    sa.Column("effect", sa.String(10), nullable=False),
    sa.Column("regime", sa.String(40), nullable=False),
    sa.Column("system", sa.String(20), nullable=False),
    sa.Column("purpose", sa.String(20), nullable=False),
    sa.Column("rule_ids", sa.String(500), nullable=False),  # space-separated
    sa.Column("consent_refs", sa.Text(), nullable=False),  # JSON [{id, version, sha256}]
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    _person_fk("consent_decisions"),
    sa.Index("ix_consent_decisions_person", "tenant_id", "person_id", "decided_at"),
)
