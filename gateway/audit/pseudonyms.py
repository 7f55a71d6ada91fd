"""Keyed pseudonyms of persons, per tenant (a blind index, consent_audit §4.2 `subject.k`).

pseudonym = "ps1-" + hex(HMAC-SHA256(tenant key, "relais-pseudonym-v1\\n" + local id))[:32]

The tenant key (256 random bits) is created on first use in `audit_pseudonym_keys`; the
mapping pseudonym -> local id is kept in `audit_pseudonyms` so that the tenant's DPO can
resolve a pseudonym read in the log. `erase_person_mapping` deletes the mapping only: the log
keeps the pseudonym, stays verifiable, and no longer says whom it designates (end of the
person's retention period). All functions run in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.audit.entry import PSEUDONYM
from gateway.audit.tables import audit_pseudonym_keys, audit_pseudonyms

_DOMAIN = b"relais-pseudonym-v1\n"


def _insert_ignore(conn: Connection, table: sa.Table, keys: list[str]):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=keys)


def _tenant_secret(conn: Connection, tenant_id: str) -> bytes:
    query = sa.select(audit_pseudonym_keys.c.secret).where(audit_pseudonym_keys.c.tenant_id == tenant_id)
    secret = conn.execute(query).scalar()
    if secret is None:
        conn.execute(
            _insert_ignore(conn, audit_pseudonym_keys, ["tenant_id"]).values(
                tenant_id=tenant_id, secret=secrets.token_bytes(32), created_at=dt.datetime.now(dt.UTC)
            )
        )
        secret = conn.execute(query).scalar_one()  # ours, or a concurrent writer's
    return bytes(secret)


def compute(secret: bytes, person_local_id: str) -> str:
    digest = hmac.new(secret, _DOMAIN + person_local_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "ps1-" + digest[:32]


def pseudonym(conn: Connection, tenant_id: str, person_local_id: str) -> str:
    """The person's pseudonym for this tenant (the same every time), recorded for the DPO."""
    if not isinstance(person_local_id, str) or not 1 <= len(person_local_id) <= 64:
        raise ValueError("identifiant local d'usager invalide")
    value = compute(_tenant_secret(conn, tenant_id), person_local_id)
    conn.execute(
        _insert_ignore(conn, audit_pseudonyms, ["tenant_id", "pseudonym"]).values(
            tenant_id=tenant_id, pseudonym=value, person_local_id=person_local_id,
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    return value


def resolve_pseudonym(conn: Connection, tenant_id: str, value: str) -> str | None:
    """The tenant's local id of the person, or None (unknown, other tenant's, or erased)."""
    if not isinstance(value, str) or not PSEUDONYM.fullmatch(value):
        return None
    return conn.execute(
        sa.select(audit_pseudonyms.c.person_local_id).where(
            audit_pseudonyms.c.tenant_id == tenant_id, audit_pseudonyms.c.pseudonym == value
        )
    ).scalar()


def erase_person_mapping(conn: Connection, tenant_id: str, person_local_id: str) -> bool:
    """Forget which person a pseudonym designates (the log itself is untouched)."""
    deleted = conn.execute(
        sa.delete(audit_pseudonyms).where(
            audit_pseudonyms.c.tenant_id == tenant_id,
            audit_pseudonyms.c.person_local_id == person_local_id,
        )
    )
    return deleted.rowcount > 0
