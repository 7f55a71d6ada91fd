"""The outbox's lookup of a request: a new request is told by one probe of the unique index, and
every answer equals the one the full listing of the request's attempts gives."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from connectors.base import Recipient
from gateway.delivery import outbox
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.tables import exchanges

T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
X = exchanges.c


def request(person: str, system: str = "eparcours") -> ExchangeRequest:
    return ExchangeRequest(person_local_id=person, system=system, recipient=Recipient("system", "eparcours"),
                           purpose="COC", payload_kind="tddui-bundle")


def reference(conn, tenant_id: str, system: str, base: str) -> tuple[str | None, str]:
    """The lookup as it was: every attempt of the request listed, newest first."""
    rows = conn.execute(sa.select(X.id, X.status).where(
        X.tenant_id == tenant_id, X.system == system,
        sa.or_(X.idempotency_key == base, X.idempotency_key.like(base + "-%"))).order_by(X.seq.desc())).all()
    live = {s.value for s in outbox.LIVE}
    existing = next((i for i, status in rows if status in live), None)
    return existing, base if not rows else f"{base}-{len(rows) + 1}"


def attempt(store, tenant, req: ExchangeRequest, status: Status, version: int = 1) -> str:
    """One attempt of `req` ending in `status`, keyed as the pipeline keys it."""
    with store.transaction() as conn:
        base = outbox.idempotency_key(tenant.id, req, version)
        existing, key = outbox.lookup(conn, tenant.id, req.system, base)
        assert existing is None
        return outbox.insert(conn, tenant_id=tenant.id, request=req, plan_version=version, status=status,
                             key=key, actor="test", now=T0, payload=b"{}",
                             content_type="application/fhir+json").id


# Histories of one request: each attempt's final status, oldest first.
HISTORIES = [
    [],
    [Status.queued],
    [Status.sent],
    [Status.refused],
    [Status.invalid],
    [Status.refused, Status.queued],
    [Status.dead, Status.cancelled, Status.superseded],
    [Status.dead, Status.cancelled, Status.sent],
    [Status.refused, Status.refused, Status.refused, Status.refused],
]


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: "-".join(s.value for s in h) or "new")
def test_the_lookup_answers_as_the_full_listing_of_attempts(store, history):
    tenant = store.create_tenant("plateforme-a", "Plateforme A")
    other = store.create_tenant("plateforme-b", "Plateforme B")
    req = request("U1")
    ids = [attempt(store, tenant, req, status) for status in history]
    # Noise the lookup must not see: the same person on another system, another person, another
    # tenant, another plan version.
    attempt(store, tenant, request("U1", "dmp"), Status.sent)
    attempt(store, tenant, request("U2"), Status.sent)
    attempt(store, other, req, Status.sent)
    attempt(store, tenant, req, Status.refused, version=2)
    base = outbox.idempotency_key(tenant.id, req, 1)
    with store.reading() as conn:
        got = outbox.lookup(conn, tenant.id, "eparcours", base)
        assert got == reference(conn, tenant.id, "eparcours", base)
    live = [i for i, s in zip(ids, history) if s in outbox.LIVE]
    assert got == (live[-1] if live else None, base if not history else f"{base}-{len(history) + 1}")


def test_a_request_with_a_suffixed_attempt_is_never_taken_for_a_new_one(store):
    """Had the probe missed `base` while `base-2` exists, a second live exchange (a double
    send) would be queued under `base-3`'s place; the listing is what answers then."""
    tenant = store.create_tenant("plateforme-a", "Plateforme A")
    req = request("U1")
    attempt(store, tenant, req, Status.refused)
    live = attempt(store, tenant, req, Status.queued)
    base = outbox.idempotency_key(tenant.id, req, 1)
    with store.reading() as conn:
        assert outbox.lookup(conn, tenant.id, "eparcours", base) == (live, f"{base}-3")


def test_a_new_request_is_told_by_the_unique_index_not_a_scan_of_the_tenant(store):
    tenant = store.create_tenant("plateforme-a", "Plateforme A")
    probe = outbox._FIRST_ATTEMPT.params(tenant_id=tenant.id, system="eparcours", base="rls-x").compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
    with store.transaction() as conn:
        if store.backend == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {probe}"))
            assert "autoindex" in plan and "idempotency_key=?" in plan, plan
        else:  # PostgreSQL plans by statistics: a tenant with many exchanges, analysed
            for n in range(300):
                outbox.insert(conn, tenant_id=tenant.id, request=request(f"U{n}"), plan_version=1,
                              status=Status.sent, key=f"rls-{n:040x}", actor="test", now=T0)
            conn.exec_driver_sql("ANALYZE exchanges")
            plan = " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {probe}"))
            assert "uq_exchanges_tenant_id_system_idempotency_key" in plan, plan
            assert "Index Cond" in plan and "(idempotency_key)::text = 'rls-x'" in plan.split("Filter")[0], plan
