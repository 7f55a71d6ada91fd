"""Tables of gateway.console, declared on the shared metadata (see gateway/storage/registry.py).

Created by migration 0007_console, which must describe exactly the same tables.
- console_accounts: DPO accounts, one login per tenant; the password as a scrypt hash with
  its own salt and parameters (`scrypt$ln=17$r=8$p=1$<salt>$<hash>`, accounts.py).
- console_throttle: failed log-in attempts per (tenant slug, login) as typed — kept for
  unknown logins too, so a locked account and a missing one answer alike (no enumeration).
- console_sessions: server-side sessions; only the SHA-256 of the cookie's token is stored,
  with the session's CSRF token, its idle and absolute deadlines and when it ended.
- console_verifications: every "vérifier maintenant" and its result (the alarm reads the
  newest row); `checkpoint` keeps the note verified, the retained head of the next run.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.storage.schema import UTCDateTime, metadata

console_accounts = sa.Table(
    "console_accounts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("login", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("password_changed_at", UTCDateTime(), nullable=False),
    sa.Column("last_login_at", UTCDateTime(), nullable=True),
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant_id", "login"),
)

console_throttle = sa.Table(
    "console_throttle",
    metadata,
    sa.Column("tenant_slug", sa.String(64), primary_key=True),
    sa.Column("login", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("last_failure_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("locked_until", UTCDateTime(), nullable=True),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(32), sa.ForeignKey("console_accounts.id"), nullable=False),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),  # absolute deadline
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("end_reason", sa.String(20), nullable=True),  # logout | idle | expired | replaced
    sa.Index("ix_console_sessions_account", "account_id"),
)

console_verifications = sa.Table(
    "console_verifications",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),  # whose DPO asked
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("entries", sa.BigInteger(), nullable=False),
    sa.Column("checkpoint_size", sa.BigInteger(), nullable=True),
    sa.Column("first_bad_entry", sa.BigInteger(), nullable=True),
    sa.Column("summary", sa.Text(), nullable=False),  # JSON list of French lines
    sa.Column("trust", sa.String(200), nullable=False),  # where the pinned keys came from
    sa.Column("checkpoint", sa.Text(), nullable=True),  # the note verified (next run's --since)
)
