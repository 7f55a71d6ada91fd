"""Server-side sessions of the DPO console.

The cookie carries 256 random bits (`secrets.token_urlsafe(32)`); the database keeps only
their SHA-256, so a copy of the database opens no session. Cookie: HttpOnly, SameSite=Strict,
Path=/console, Secure when the request came over TLS (or RELAIS_CONSOLE_COOKIE_SECURE), no
Max-Age (it dies with the browser). A session ends after RELAIS_CONSOLE_SESSION_IDLE_MINUTES
without a request, after RELAIS_CONSOLE_SESSION_MAX_HOURS in any case, at log-out, when the
password changes and when the account is disabled. Each session has its own CSRF token.
A new session is opened at every log-in (no fixation: nothing from before the log-in is kept).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.console.accounts import Account, get_account
from gateway.console.tables import console_sessions
from gateway.settings import Settings

COOKIE = "relais_console"
S = console_sessions.c


@dataclass(frozen=True)
class Session:
    token_sha256: str
    account: Account
    csrf_token: str
    created_at: dt.datetime
    expires_at: dt.datetime

    @property
    def tenant_id(self) -> str:
        return self.account.tenant_id

    @property
    def actor(self) -> str:
        return self.account.actor


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def open_session(conn: Connection, account: Account, now: dt.datetime, config: Settings) -> tuple[str, Session]:
    """A new session for a freshly authenticated account; returns (cookie token, session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + dt.timedelta(hours=config.console_session_max_hours)
    conn.execute(sa.insert(console_sessions).values(
        token_sha256=digest(token), account_id=account.id, tenant_id=account.tenant_id,
        csrf_token=csrf, created_at=now, last_seen_at=now, expires_at=expires))
    return token, Session(digest(token), account, csrf, now, expires)


def current(conn: Connection, token: str | None, now: dt.datetime, config: Settings) -> Session | None:
    """The live session this cookie opens (its idle deadline moved on), or None. A session
    found dead is marked ended with the reason."""
    if not token or len(token) > 100:
        return None
    key = digest(token)
    row = conn.execute(sa.select(console_sessions).where(S.token_sha256 == key)).first()
    if row is None or row.ended_at is not None:
        return None
    reason = None
    if now >= row.expires_at:
        reason = "expired"
    elif now - row.last_seen_at >= dt.timedelta(minutes=config.console_session_idle_minutes):
        reason = "idle"
    account = get_account(conn, row.account_id)
    if reason is None and (account is None or account.disabled_at is not None):
        reason = "disabled"
    if reason is not None:
        end(conn, key, now, reason)
        return None
    conn.execute(sa.update(console_sessions).where(S.token_sha256 == key).values(last_seen_at=now))
    return Session(key, account, row.csrf_token, row.created_at, row.expires_at)


def end(conn: Connection, token_sha256: str, now: dt.datetime, reason: str = "logout") -> None:
    conn.execute(sa.update(console_sessions).where(S.token_sha256 == token_sha256, S.ended_at.is_(None))
                 .values(ended_at=now, end_reason=reason))
