"""Inbound items (migration 0005_inbound)."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

inbound_items = sa.Table(
    "inbound_items",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("system", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("peer_reference", sa.String(300), nullable=False),
    sa.Column("dedupe_key", sa.String(64), nullable=False),  # sha256(system, kind, reference, version)
    sa.Column("person_local_id", sa.String(64), nullable=True),  # None: no person matched
    sa.Column("status", sa.String(20), nullable=False),  # recorded | proposed | applied | rejected | unmatched | quarantined
    sa.Column("summary", sa.Text, nullable=False),  # JSON: what a coordinator reads
    sa.Column("proposal", sa.Text, nullable=True),  # JSON: plan changes proposed for review
    sa.Column("content_type", sa.String(80), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the original, archived as received
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("reviewed_by", sa.String(100), nullable=True),
    sa.Column("reviewed_at", UTCDateTime(), nullable=True),
    sa.Column("applied_version", sa.Integer, nullable=True),
    sa.UniqueConstraint("tenant_id", "dedupe_key"),
    sa.Index("ix_inbound_items_person", "tenant_id", "person_local_id", "seq"),
)
