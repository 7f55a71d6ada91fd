"""Tables of the delivery spine (migration 0004_delivery).

`exchanges` is both the exchange record and the outbox: the payload is written in the same
transaction as the audit entry of the consent decision and of the queueing; a worker then
claims due rows with a lease. `exchange_events` keeps every status change (the history shown
by `GET /exchanges/{id}`).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # global queue order
    sa.Column("id", sa.String(32), nullable=False, unique=True),  # public id (uuid4 hex)
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("person_local_id", sa.String(64), nullable=False),
    sa.Column("system", sa.String(32), nullable=False),
    sa.Column("payload_kind", sa.String(40), nullable=False),
    sa.Column("purpose", sa.String(20), nullable=False),
    sa.Column("data_categories", sa.String(200), nullable=True),  # space-separated (what was decided on)
    sa.Column("labels", sa.String(200), nullable=True),  # space-separated security labels
    sa.Column("recipient", sa.Text, nullable=False),  # JSON (connectors.base.Recipient)
    sa.Column("plan_version", sa.Integer, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("decision_id", sa.String(64), nullable=True),
    sa.Column("decision_reasons", sa.Text, nullable=True),  # JSON list (deny reasons)
    sa.Column("idempotency_key", sa.String(120), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    sa.Column("content_type", sa.String(80), nullable=True),
    sa.Column("payload_sha256", sa.String(64), nullable=True),
    sa.Column("problems", sa.Text, nullable=True),  # JSON list of Problem (mapping/validation)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),  # the peer's reason
    sa.Column("receipt", sa.Text, nullable=True),  # JSON (connectors.base.Receipt)
    sa.Column("superseded_by", sa.String(32), nullable=True),
    sa.Column("replay_of", sa.String(32), nullable=True),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "system", "idempotency_key"),
    sa.Index("ix_exchanges_due", "status", "next_attempt_at"),
    sa.Index("ix_exchanges_line", "tenant_id", "person_local_id", "system", "seq"),
    # Pages of exchanges, newest first, with or without a status filter: read in index order,
    # so a page costs the same with 100 or 100,000 rows queued (migration 0008).
    sa.Index("ix_exchanges_page", "tenant_id", "seq"),
    sa.Index("ix_exchanges_status_page", "tenant_id", "status", "seq"),
    # The workers' claim: due items of one status in queue order (outbox.claim).
    sa.Index("ix_exchanges_claim", "status", "seq", "next_attempt_at"),
)

exchange_events = sa.Table(
    "exchange_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("exchange_seq", sa.Integer, sa.ForeignKey("exchanges.seq"), nullable=False, index=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text, nullable=True),
)
