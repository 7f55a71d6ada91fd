"""DPO accounts, one login per tenant: password hashing, log-in with throttling and lock-out.

Passwords are hashed with scrypt (RFC 7914, `hashlib.scrypt`): a fresh 16-byte salt per hash,
r=8, p=1, N=2^17 by default (RELAIS_CONSOLE_SCRYPT_LOG2_N; about 128 MiB and ~1 s here), and
the parameters are stored with the hash — `scrypt$ln=17$r=8$p=1$<salt b64>$<key b64>` — so
they can be raised later: a hash below the configured cost is replaced at the next log-in.
Policy: at least 12 characters (length over composition, NIST SP 800-63B), at most 256, not
containing the login.

Brute force (issue 3, issue 9): failed attempts are counted per (tenant, login) as typed, in
`console_throttle`, for unknown logins too, so an attacker cannot tell a locked or missing
account from a wrong password. From the 2nd failure on, the next attempt must wait
RELAIS_CONSOLE_LOGIN_DELAY_SECONDS, doubled at each further failure; at
RELAIS_CONSOLE_LOGIN_FAILURES (5) failures the login is locked for
RELAIS_CONSOLE_LOCKOUT_MINUTES (15); after a lock-out one more failure locks it again; a
success or `relais console account unlock` clears the count (and a day without failure).
The attempt is counted *before* the (slow) hash is checked, in a short transaction, so
parallel guesses cannot slip under the counter. An unknown account costs the same hash.
Every attempt is audited (`console.login`: success, failure, throttled, locked); an unknown
login appears only as a digest.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from gateway.audit import SYSTEM_TENANT, AuditEntry, append
from gateway.console.tables import console_accounts, console_sessions, console_throttle
from gateway.settings import Settings
from gateway.storage import NotFound, Store
from gateway.storage.schema import tenants

LOGIN = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
MIN_PASSWORD, MAX_PASSWORD = 12, 256
SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES = 8, 1, 16, 32
FORGET_AFTER = dt.timedelta(days=1)  # failures older than this no longer count


@dataclass(frozen=True)
class Account:
    id: str
    tenant_id: str
    tenant_slug: str
    tenant_name: str
    login: str
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    disabled_at: dt.datetime | None

    @property
    def actor(self) -> str:
        return f"dpo:{self.login}"


class LoginRefused(Exception):
    """Log-in refused; `message` is French and the same for a wrong password and an unknown
    account. `kind`: invalid | throttled | locked; `until`: when one may try again."""

    def __init__(self, kind: str, message: str, until: dt.datetime | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.until = until


# ------------------------------------------------------------------ password hashing


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=1 << log2_n, r=r, p=p,
                          maxmem=256 * r * (1 << log2_n) + (1 << 20), dklen=KEY_BYTES)


def hash_password(password: str, log2_n: int) -> str:
    if not 10 <= log2_n <= 22:
        raise ValueError("coût scrypt hors des bornes (2^10 à 2^22)")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, log2_n, SCRYPT_R, SCRYPT_P)
    return f"scrypt$ln={log2_n}$r={SCRYPT_R}$p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, ln, r, p, salt, key = stored.split("$")
    if scheme != "scrypt" or not (ln.startswith("ln=") and r.startswith("r=") and p.startswith("p=")):
        raise ValueError("empreinte de mot de passe illisible")
    return int(ln[3:]), int(r[2:]), int(p[2:]), _unb64(salt), _unb64(key)


def check_password(password: str, stored: str) -> bool:
    try:
        log2_n, r, p, salt, key = _parse(stored)
    except (ValueError, TypeError):
        return False
    if len(password) > MAX_PASSWORD or not 10 <= log2_n <= 22 or not (1 <= r <= 32 and 1 <= p <= 16):
        return False
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p), key)


def needs_rehash(stored: str, log2_n: int) -> bool:
    try:
        ln, r, p, _, _ = _parse(stored)
    except (ValueError, TypeError):
        return True
    return ln < log2_n or r < SCRYPT_R or p < SCRYPT_P


@cache
def _dummy_hash(log2_n: int) -> str:
    """What an unknown account's password is checked against (same cost, never matches)."""
    return hash_password(secrets.token_urlsafe(24), log2_n)


def password_problem(password: str, login: str) -> str | None:
    """Why this password is refused (French), or None."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"mot de passe trop court : {MIN_PASSWORD} caractères au moins"
    if len(password) > MAX_PASSWORD:
        return f"mot de passe trop long : {MAX_PASSWORD} caractères au plus"
    if login and login.lower() in password.lower():
        return "le mot de passe ne doit pas contenir l'identifiant"
    if len(set(password)) < 4:
        return "mot de passe trop répétitif"
    return None


def normalise_login(login: str) -> str:
    return (login or "").strip().lower()[:64]


# ------------------------------------------------------------------ accounts


_ACCOUNT_COLUMNS = (console_accounts, tenants.c.slug, tenants.c.name)


def _account(row) -> Account:
    return Account(row.id, row.tenant_id, row.slug, row.name, row.login, row.created_at,
                   row.last_login_at, row.disabled_at)


def _select_accounts():
    return sa.select(*_ACCOUNT_COLUMNS).join(tenants, tenants.c.id == console_accounts.c.tenant_id)


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(_select_accounts().where(console_accounts.c.id == account_id)).first()
    return None if row is None else _account(row)


def _audit(conn: Connection, tenant_id: str, actor: str, action: str, outcome: str, **refs: str) -> None:
    append(conn, AuditEntry(tenant_id=tenant_id, actor=actor, action=action, outcome=outcome,
                            refs={"page": "connexion", **refs} if action == "console.login" else refs))


def create_account(store: Store, tenant_slug: str, login: str, password: str, *, config: Settings,
                   actor: str = "cli", now: dt.datetime | None = None) -> Account:
    """A new DPO account of the tenant. ValueError (French) for a bad login or password,
    NotFound for an unknown tenant, Conflict if the login is taken."""
    from gateway.storage import Conflict

    now = now or dt.datetime.now(dt.UTC)
    login = normalise_login(login)
    if not LOGIN.fullmatch(login):
        raise ValueError("identifiant invalide : 2 à 64 caractères parmi a-z, 0-9, « . », « _ », « @ », « - »")
    problem = password_problem(password, login)
    if problem:
        raise ValueError(problem)
    tenant = store.get_tenant(tenant_slug)
    digest = hash_password(password, config.console_scrypt_log2_n)
    account_id = uuid.uuid4().hex
    with store.transaction() as conn:
        taken = conn.execute(sa.select(console_accounts.c.id).where(
            console_accounts.c.tenant_id == tenant.id, console_accounts.c.login == login)).first()
        if taken:
            raise Conflict(f"le compte {login} existe déjà pour {tenant.slug}")
        conn.execute(sa.insert(console_accounts).values(
            id=account_id, tenant_id=tenant.id, login=login, password_hash=digest, created_at=now,
            password_changed_at=now, last_login_at=None, disabled_at=None))
        conn.execute(sa.delete(console_throttle).where(
            console_throttle.c.tenant_slug == tenant.slug, console_throttle.c.login == login))
        _audit(conn, tenant.id, actor, "console.account.created", "success", account=account_id,
               login=login)
        return get_account(conn, account_id)


def unlock(store: Store, tenant_slug: str, login: str, *, actor: str = "cli") -> bool:
    """Clear the failed attempts of a login (True if it was throttled or locked)."""
    tenant = store.get_tenant(tenant_slug)
    login = normalise_login(login)
    with store.transaction() as conn:
        account = conn.execute(sa.select(console_accounts.c.id).where(
            console_accounts.c.tenant_id == tenant.id, console_accounts.c.login == login)).scalar()
        if account is None:
            raise NotFound(f"aucun compte {login} pour {tenant.slug}")
        cleared = conn.execute(sa.delete(console_throttle).where(
            console_throttle.c.tenant_slug == tenant.slug, console_throttle.c.login == login)).rowcount
        _audit(conn, tenant.id, actor, "console.account.unlocked", "success", account=account, login=login)
    return cleared > 0


def set_password(store: Store, tenant_slug: str, login: str, password: str, *, config: Settings,
                 actor: str = "cli", now: dt.datetime | None = None) -> None:
    """Replace the password; every open session of the account ends."""
    now = now or dt.datetime.now(dt.UTC)
    tenant = store.get_tenant(tenant_slug)
    login = normalise_login(login)
    problem = password_problem(password, login)
    if problem:
        raise ValueError(problem)
    digest = hash_password(password, config.console_scrypt_log2_n)
    with store.transaction() as conn:
        account = conn.execute(sa.select(console_accounts.c.id).where(
            console_accounts.c.tenant_id == tenant.id, console_accounts.c.login == login)).scalar()
        if account is None:
            raise NotFound(f"aucun compte {login} pour {tenant.slug}")
        conn.execute(sa.update(console_accounts).where(console_accounts.c.id == account).values(
            password_hash=digest, password_changed_at=now))
        conn.execute(sa.update(console_sessions).where(
            console_sessions.c.account_id == account, console_sessions.c.ended_at.is_(None))
            .values(ended_at=now, end_reason="password"))
        _audit(conn, tenant.id, actor, "console.account.password", "success", account=account, login=login)


def disable(store: Store, tenant_slug: str, login: str, *, actor: str = "cli",
            now: dt.datetime | None = None) -> None:
    """The account can no longer log in (kept for the audit trail); its sessions end now."""
    now = now or dt.datetime.now(dt.UTC)
    tenant = store.get_tenant(tenant_slug)
    login = normalise_login(login)
    with store.transaction() as conn:
        account = conn.execute(sa.select(console_accounts.c.id).where(
            console_accounts.c.tenant_id == tenant.id, console_accounts.c.login == login)).scalar()
        if account is None:
            raise NotFound(f"aucun compte {login} pour {tenant.slug}")
        conn.execute(sa.update(console_accounts).where(console_accounts.c.id == account).values(disabled_at=now))
        conn.execute(sa.update(console_sessions).where(
            console_sessions.c.account_id == account, console_sessions.c.ended_at.is_(None))
            .values(ended_at=now, end_reason="disabled"))
        _audit(conn, tenant.id, actor, "console.account.disabled", "success", account=account, login=login)


def list_accounts(store: Store, tenant_slug: str) -> list[tuple[Account, dt.datetime | None]]:
    """The tenant's accounts, each with the end of its lock-out if it is locked now."""
    tenant = store.get_tenant(tenant_slug)
    now = dt.datetime.now(dt.UTC)
    with store.reading() as conn:
        rows = conn.execute(_select_accounts().where(console_accounts.c.tenant_id == tenant.id)
                            .order_by(console_accounts.c.login)).all()
        locks = dict(conn.execute(sa.select(console_throttle.c.login, console_throttle.c.locked_until)
                                  .where(console_throttle.c.tenant_slug == tenant.slug)).all())
    out = []
    for row in rows:
        until = locks.get(row.login)
        out.append((_account(row), until if until is not None and until > now else None))
    return out


# ------------------------------------------------------------------ log-in


INVALID = "identifiant ou mot de passe incorrect"


def _when(at: dt.datetime) -> str:
    from gateway.consent.fhir_common import PARIS

    return at.astimezone(PARIS).strftime("%H:%M:%S")


def _insert_ignore(conn: Connection, table: sa.Table, keys: list[str]):
    dialect = pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect
    return dialect.insert(table).on_conflict_do_nothing(index_elements=keys)


def _count_attempt(conn: Connection, slug: str, login: str, now: dt.datetime, config: Settings):
    """Refuse if throttled or locked; otherwise count this attempt as a failure up front.
    Returns (refusal or None, failures before this attempt)."""
    conn.execute(_insert_ignore(conn, console_throttle, ["tenant_slug", "login"]).values(
        tenant_slug=slug, login=login, failures=0, last_failure_at=now))
    key = (console_throttle.c.tenant_slug == slug) & (console_throttle.c.login == login)
    row = conn.execute(sa.select(console_throttle).where(key).with_for_update()).one()
    if row.locked_until is not None and row.locked_until > now:
        return LoginRefused("locked", "trop d'échecs : connexion bloquée jusqu'à "
                            f"{_when(row.locked_until)} (ou déblocage par « relais console account unlock »)",
                            row.locked_until), row.failures
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        wait = max(1, int((row.next_attempt_at - now).total_seconds() + 0.999))
        return LoginRefused("throttled", f"trop de tentatives : réessayez dans {wait} s",
                            row.next_attempt_at), row.failures
    failures = row.failures if now - row.last_failure_at < FORGET_AFTER else 0
    failures += 1
    locked_until = next_at = None
    if failures >= config.console_lockout_failures:
        locked_until = now + dt.timedelta(minutes=config.console_lockout_minutes)
    elif failures >= 2:
        delay = config.console_login_delay_seconds * 2 ** (failures - 2)
        next_at = now + dt.timedelta(seconds=min(delay, config.console_lockout_minutes * 60))
    conn.execute(sa.update(console_throttle).where(key).values(
        failures=failures, last_failure_at=now, next_attempt_at=next_at, locked_until=locked_until))
    return None, failures - 1


def authenticate(store: Store, tenant_slug: str, login: str, password: str, *, config: Settings,
                 now: dt.datetime | None = None) -> Account:
    """The account, or LoginRefused. Audited either way."""
    now = now or dt.datetime.now(dt.UTC)
    slug = (tenant_slug or "").strip().lower()[:64]
    login = normalise_login(login)
    password = password if isinstance(password, str) else ""
    with store.transaction() as conn:
        tenant = conn.execute(sa.select(tenants.c.id).where(tenants.c.slug == slug)).scalar()
        row = None
        if tenant is not None and LOGIN.fullmatch(login):
            row = conn.execute(sa.select(console_accounts).where(
                console_accounts.c.tenant_id == tenant, console_accounts.c.login == login)).first()
        audit_tenant = tenant or SYSTEM_TENANT
        actor = f"dpo:{login}" if row is not None else "console"
        who = {} if row is not None else {
            "login_sha256": hashlib.sha256(f"{slug}\n{login}".encode()).hexdigest()[:16]}
        refused, _ = _count_attempt(conn, slug, login, now, config)
        if refused is not None:
            _audit(conn, audit_tenant, actor, "console.login", refused.kind, **who)
    if refused is not None:
        raise refused
    stored = row.password_hash if row is not None and row.disabled_at is None else None
    good = check_password(password, stored or _dummy_hash(config.console_scrypt_log2_n)) and stored is not None
    rehashed = hash_password(password, config.console_scrypt_log2_n) if good and needs_rehash(
        stored, config.console_scrypt_log2_n) else None
    with store.transaction() as conn:
        if not good:
            locked = conn.execute(sa.select(console_throttle.c.locked_until).where(
                console_throttle.c.tenant_slug == slug, console_throttle.c.login == login)).scalar()
            _audit(conn, audit_tenant, actor, "console.login", "locked" if locked else "failure", **who)
        else:
            conn.execute(sa.delete(console_throttle).where(
                console_throttle.c.tenant_slug == slug, console_throttle.c.login == login))
            values = {"last_login_at": now}
            if rehashed is not None:
                values["password_hash"] = rehashed
            conn.execute(sa.update(console_accounts).where(console_accounts.c.id == row.id).values(**values))
            _audit(conn, audit_tenant, actor, "console.login", "success", account=row.id)
            return get_account(conn, row.id)
    if locked:
        raise LoginRefused("locked", f"{INVALID} ; trop d'échecs : connexion bloquée jusqu'à {_when(locked)}",
                           locked)
    raise LoginRefused("invalid", INVALID)
