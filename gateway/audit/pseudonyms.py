"""Keyed pseudonyms of persons, per tenant (a blind index, consent_audit §4.2 `subject.k`).

pseudonym = "ps1-" + hex(HMAC-SHA256(tenant key, "relais-pseudonym-v1\\n" + local id))[:32]

The tenant key (256 random bits) is created on first use in `audit_pseudonym_keys`; the
mapping pseudonym -> local id is kept in `audit_pseudonyms` so that the tenant's DPO can
resolve a pseudonym read in the log. `erase_person_mapping` deletes the mapping only: the log
keeps the pseudonym, stays verifiable, and no longer says whom it designates (end of the
person's retention period). All functions run in the caller's transaction.

Two caches spare statements on the audit path; neither can yield a wrong pseudonym, nor lose a
mapping that would have been written without them:
- the tenant's key, per engine, once read as committed: nothing updates or deletes a committed
  key (every process computes the same pseudonyms with it). A key this transaction created is
  not cached until it is read again in a later transaction (a rollback would take it away).
  A database restored from before the key existed needs the gateway processes restarted;
  meanwhile the unique (tenant, person) mapping refuses a second pseudonym for a person;
- the mappings this transaction wrote or found (the decision and the entry that follows it in
  the same transaction name the same person): not written twice. Nothing is kept across
  transactions, so a mapping erased by any process is written again by the next transaction
  that names the person, as without a cache; `erase_person_mapping` in the transaction itself
  forgets them. (An erasure committed by another process while this transaction runs may leave
  its entries without a mapping — as it may without the cache, if it commits just after this
  transaction's last write: the pseudonym stays right, only no longer resolvable.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import weakref

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.audit.entry import PSEUDONYM
from gateway.audit.tables import audit_pseudonym_keys, audit_pseudonyms

_DOMAIN = b"relais-pseudonym-v1\n"


def _insert_ignore(conn: Connection, table: sa.Table, keys: list[str]):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=keys)


# Built once per dialect, values passed at execution: SQLAlchemy finds its compiled form in its
# cache without building a cache key from new `.values()` every time.
_INSERT_MAPPING = {
    name: dialect.insert(audit_pseudonyms).on_conflict_do_nothing(index_elements=["tenant_id", "pseudonym"])
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


# engine -> {tenant id: committed key}
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# root transaction -> tenant ids whose key it created (not yet committed, so not cached)
_CREATED_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# innermost transaction -> (tenant id, pseudonym) mappings it wrote or found
_INSERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tenant_secret(conn: Connection, tenant_id: str) -> bytes:
    known = _KEYS.get(conn.engine)
    if known is not None and tenant_id in known:
        return known[tenant_id]
    query = sa.select(audit_pseudonym_keys.c.secret).where(audit_pseudonym_keys.c.tenant_id == tenant_id)
    secret = conn.execute(query).scalar()
    root = conn.get_transaction()
    if secret is None:
        conn.execute(
            _insert_ignore(conn, audit_pseudonym_keys, ["tenant_id"]).values(
                tenant_id=tenant_id, secret=secrets.token_bytes(32), created_at=dt.datetime.now(dt.UTC)
            )
        )
        secret = conn.execute(query).scalar_one()  # ours, or a concurrent writer's
        if root is not None:
            _CREATED_KEYS.setdefault(root, set()).add(tenant_id)
        return bytes(secret)
    if root is None or tenant_id not in _CREATED_KEYS.get(root, ()):
        _KEYS.setdefault(conn.engine, {})[tenant_id] = bytes(secret)  # committed: it never changes
    return bytes(secret)


def _transaction(conn: Connection):
    return conn.get_nested_transaction() or conn.get_transaction()


def compute(secret: bytes, person_local_id: str) -> str:
    digest = hmac.new(secret, _DOMAIN + person_local_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "ps1-" + digest[:32]


def pseudonym(conn: Connection, tenant_id: str, person_local_id: str) -> str:
    """The person's pseudonym for this tenant (the same every time), recorded for the DPO."""
    if not isinstance(person_local_id, str) or not 1 <= len(person_local_id) <= 64:
        raise ValueError("identifiant local d'usager invalide")
    value = compute(_tenant_secret(conn, tenant_id), person_local_id)
    transaction = _transaction(conn)
    inserted = _INSERTED.get(transaction) if transaction is not None else None
    if inserted is not None and (tenant_id, value) in inserted:
        return value  # this transaction wrote or found the mapping already
    conn.execute(_INSERT_MAPPING["postgresql" if conn.dialect.name == "postgresql" else "sqlite"], {
        "tenant_id": tenant_id, "pseudonym": value, "person_local_id": person_local_id,
        "created_at": dt.datetime.now(dt.UTC)})
    if transaction is not None:
        _INSERTED.setdefault(transaction, set()).add((tenant_id, value))
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
    # This transaction's later entries that name the person write the mapping again (another
    # open transaction's own inserts are not visible to this delete, so it keeps them).
    for transaction in {conn.get_nested_transaction(), conn.get_transaction()} - {None}:
        inserted = _INSERTED.get(transaction)
        if inserted:
            inserted.difference_update([item for item in inserted if item[0] == tenant_id])
    deleted = conn.execute(
        sa.delete(audit_pseudonyms).where(
            audit_pseudonyms.c.tenant_id == tenant_id,
            audit_pseudonyms.c.person_local_id == person_local_id,
        )
    )
    return deleted.rowcount > 0
