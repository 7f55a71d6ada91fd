"""Outbox mechanics on both backends: claiming order, per-person lines, leases, supersession."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from connectors.base import Receipt, Recipient
from gateway.delivery import outbox
from gateway.delivery.model import ExchangeRequest, Status

T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)
RECIPIENT = Recipient(kind="system", identifier="eparcours-test")


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A")


def request(person: str = "U1", system: str = "eparcours", kind: str = "tddui-bundle") -> ExchangeRequest:
    return ExchangeRequest(person_local_id=person, system=system, recipient=RECIPIENT,
                           purpose="COC", payload_kind=kind)


def queue(store, tenant, person="U1", version=1, system="eparcours", now=T0) -> tuple[str, int]:
    req = request(person, system)
    with store.transaction() as conn:
        key = outbox.free_key(conn, tenant.id, system, outbox.idempotency_key(tenant.id, req, version))
        exchange = outbox.insert(conn, tenant_id=tenant.id, request=req, plan_version=version,
                                 status=Status.queued, key=key, actor="test", now=now,
                                 payload=b"{}", content_type="application/fhir+json")
        return exchange.id, exchange.seq


def claim(store, owner="w1", now=T0, limit=10):
    with store.transaction() as conn:
        return outbox.claim(conn, owner=owner, now=now, lease=LEASE, limit=limit)


def test_items_are_claimed_oldest_first_and_leased(store, tenant):
    ids = [queue(store, tenant, person=f"U{n}")[0] for n in range(3)]
    claimed = claim(store)
    assert [c.id for c in claimed] == ids
    assert all(c.attempt == 1 for c in claimed)
    assert claim(store, owner="w2") == []  # leased: nobody else takes them


def test_a_person_line_is_sent_one_item_at_a_time_in_order(store, tenant):
    first, _ = queue(store, tenant, version=1)
    second, _ = queue(store, tenant, version=2)
    other, _ = queue(store, tenant, person="U2")
    claimed = claim(store)
    assert [c.id for c in claimed] == [first, other]
    with store.transaction() as conn:
        assert outbox.get(conn, tenant.id, first).status is Status.sending
        assert outbox.mark_sent(conn, claimed[0].seq, "w1", Receipt(status="accepted"), 1, T0)
    assert [c.id for c in claim(store)] == [second]


def test_an_expired_lease_is_claimed_again_by_another_worker(store, tenant):
    exchange_id, _ = queue(store, tenant)
    claim(store, owner="crashed")
    later = T0 + LEASE + dt.timedelta(seconds=1)
    again = claim(store, owner="w2", now=later)
    assert [c.id for c in again] == [exchange_id] and again[0].attempt == 2
    with store.transaction() as conn:
        # The crashed worker cannot complete what it no longer holds.
        assert not outbox.mark_sent(conn, again[0].seq, "crashed", Receipt(status="accepted"), 1, later)
        assert outbox.mark_sent(conn, again[0].seq, "w2", Receipt(status="accepted"), 2, later)


def test_retry_waits_until_its_time(store, tenant):
    queue(store, tenant)
    [item] = claim(store)
    with store.transaction() as conn:
        outbox.mark_retry(conn, item.seq, "w1", 1, T0 + dt.timedelta(seconds=10), "503", T0)
    assert claim(store, now=T0 + dt.timedelta(seconds=5)) == []
    assert len(claim(store, now=T0 + dt.timedelta(seconds=11))) == 1


def test_a_newer_version_supersedes_an_older_queued_one(store, tenant):
    old, _ = queue(store, tenant, version=1)
    new, new_seq = queue(store, tenant, version=2)
    with store.transaction() as conn:
        gone = outbox.supersede_older(conn, tenant_id=tenant.id, request=request(), newer_id=new,
                                      newer_seq=new_seq, plan_version=2, now=T0)
        assert gone == [old]
        assert outbox.get(conn, tenant.id, old).status is Status.superseded
    assert [c.id for c in claim(store)] == [new]


def test_an_item_being_sent_is_not_superseded(store, tenant):
    old, _ = queue(store, tenant, version=1)
    claim(store)
    new, new_seq = queue(store, tenant, version=2)
    with store.transaction() as conn:
        assert outbox.supersede_older(conn, tenant_id=tenant.id, request=request(), newer_id=new,
                                      newer_seq=new_seq, plan_version=2, now=T0) == []


def test_cancelling_a_person_stops_pending_items_only(store, tenant):
    sent, _ = queue(store, tenant, person="U1")
    [item] = claim(store)
    with store.transaction() as conn:
        outbox.mark_sent(conn, item.seq, "w1", Receipt(status="accepted"), 1, T0)
    pending, _ = queue(store, tenant, person="U1", version=2)
    with store.transaction() as conn:
        cancelled = outbox.cancel_pending(conn, tenant_id=tenant.id, person_local_id="U1",
                                          systems=None, reason="retrait du consentement", now=T0)
        assert cancelled == [pending]
        assert outbox.get(conn, tenant.id, sent).status is Status.sent
        history = [e.status for e in outbox.get(conn, tenant.id, pending).history]
    assert history == ["queued", "cancelled"]


def test_an_undelivered_attempt_frees_its_key_for_a_new_one(store, tenant):
    base = outbox.idempotency_key(tenant.id, request(), 1)
    first, _ = queue(store, tenant)
    [item] = claim(store)
    with store.transaction() as conn:
        assert outbox.lookup(conn, tenant.id, "eparcours", base)[0] == first
        outbox.mark_dead(conn, item.seq, "w1", 1, "rejeté", T0)
        assert outbox.lookup(conn, tenant.id, "eparcours", base)[0] is None
        assert outbox.free_key(conn, tenant.id, "eparcours", base) == base + "-2"


def test_lookup_finds_the_live_exchange_and_the_next_free_key(store, tenant):
    base = outbox.idempotency_key(tenant.id, request(), 1)
    with store.reading() as conn:
        assert outbox.lookup(conn, tenant.id, "eparcours", base) == (None, base)
    first, _ = queue(store, tenant)
    with store.reading() as conn:
        assert outbox.lookup(conn, tenant.id, "eparcours", base) == (first, base + "-2")
    [item] = claim(store)
    with store.transaction() as conn:
        outbox.mark_dead(conn, item.seq, "w1", 1, "rejeté", T0)
        assert outbox.lookup(conn, tenant.id, "eparcours", base) == (None, base + "-2")


@pytest.mark.parametrize("status, fields", [
    (Status.queued, {"payload": b'{"a": 1}', "content_type": "application/fhir+json",
                     "problems": [{"rule": "r", "message": "é"}], "decision_reasons": []}),
    (Status.refused, {"decision_reasons": ["opposition enregistrée"], "detail": "opposition enregistrée"}),
    (Status.queued, {"payload": b"x", "replay_of": "0" * 32, "detail": "rejeu"}),
])
def test_an_inserted_exchange_is_returned_as_it_reads_back(store, tenant, status, fields):
    req = ExchangeRequest(person_local_id="U1", system="eparcours", recipient=RECIPIENT, purpose="COC",
                          payload_kind="tddui-bundle", data_categories=("plan", "identity"), labels=("minor-secret",))
    paris = dt.timezone(dt.timedelta(hours=1))
    with store.transaction() as conn:
        inserted = outbox.insert(conn, tenant_id=tenant.id, request=req, plan_version=3, status=status,
                                 key="k-1", actor="test", now=T0.astimezone(paris).replace(microsecond=123456),
                                 decision_id="d-1", **fields)
    with store.reading() as conn:
        assert outbox.get(conn, tenant.id, inserted.id) == inserted


def test_concurrent_workers_never_claim_the_same_item(store, tenant):
    for n in range(40):
        queue(store, tenant, person=f"U{n:02d}")
    seen: list[str] = []
    lock = threading.Lock()

    def work(owner: str) -> None:
        while True:
            got = claim(store, owner=owner, limit=3)
            if not got:
                return
            with lock:
                seen.extend(c.id for c in got)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 40 and len(set(seen)) == 40


def test_a_claim_walks_the_queue_in_order_instead_of_sorting_every_due_item(tmp_path):
    # With an OR over the two due states, SQLite gathered every due row, checked each against
    # the per-person order, then sorted them all: 0.3 s a pass with 100,000 queued. Each
    # statement of a claim must now read the queue in index order and stop at its limit.
    import sqlalchemy as sa

    from gateway.storage import Store
    from tests.faults.test_memory import fill

    store = Store(f"sqlite:///{tmp_path / 'queue.db'}")
    store.migrate()
    tenant = store.create_tenant("plateforme-q", "Plateforme")
    fill(store, tenant.id, 3_000, payload_size=64)
    statements: list[tuple[str, tuple]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "ORDER BY" in statement:
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    with store.transaction() as conn:
        claimed = outbox.claim(conn, owner="w", now=dt.datetime.now(dt.UTC), lease=dt.timedelta(seconds=60),
                               limit=10)
    sa.event.remove(store.engine, "before_cursor_execute", record)
    assert [c.seq for c in claimed] == sorted(c.seq for c in claimed) and len(claimed) == 10
    assert claimed[0].seq == 1  # the oldest first
    claim_selects = [(s, p) for s, p in statements if "FROM exchanges" in s and "earlier" in s]
    assert len(claim_selects) == 2, statements  # a dead worker's leases, then the due queued items
    with store.reading() as conn:
        for statement, parameters in claim_selects:
            plan = " | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "TEMP B-TREE" not in plan and "ix_exchanges_claim" in plan, plan
    store.close()
