"""Memory stays bounded when 100,000 plans are queued: the worker claims a batch at a time and
the listing endpoints read one page at a time (keyset pagination, no payloads), so what they
hold does not depend on the length of the queue. Measured with tracemalloc (Python
allocations, peak) on the same passes with 1,000 and with 100,000 items queued, on SQLite
(bench/bench_memory.py does PostgreSQL and reports the process RSS too).

The queue is filled by bulk insert (2 kB payloads, one person per item). The worker sends
through a stub connector that accepts everything and consent is not re-decided at claim
(`recheck=None`): the synthetic persons have no plan, and neither the network nor the consent
engine is what this test measures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tracemalloc
import uuid

import sqlalchemy as sa
from fastapi.testclient import TestClient

from connectors.base import Receipt, RetryPolicy
from gateway.api.app import create_app
from gateway.delivery import outbox
from gateway.delivery.tables import exchanges
from gateway.delivery.worker import Worker
from gateway.settings import settings
from gateway.storage import Store
from gateway.storage.schema import persons

QUEUED = int(os.environ.get("RELAIS_FAULT_MEMORY_QUEUE", "100000"))
RECIPIENT = json.dumps({"kind": "system", "identifier": "eparcours", "display": "", "profession": None})


class AcceptingPeer:
    system, payload_kinds, retry = "eparcours", frozenset({"tddui-bundle"}), RetryPolicy()

    def __init__(self):
        self.bytes = 0

    def send(self, envelope) -> Receipt:
        self.bytes += len(envelope.payload)
        return Receipt("accepted", "CarePlan/x")

    def poll(self):
        return []

    def close(self) -> None:
        pass


def fill(store: Store, tenant_id: str, count: int, payload_size: int = 2048, start: int = 0) -> None:
    """`count` queued exchanges (and their persons), inserted in chunks."""
    now = dt.datetime.now(dt.UTC)
    payload = os.urandom(payload_size)
    with store.transaction() as conn:
        for first in range(start, start + count, 10_000):
            chunk = range(first, min(start + count, first + 10_000))
            conn.execute(sa.insert(persons), [dict(
                id=uuid.uuid4().hex, tenant_id=tenant_id, local_id=f"M{i:07d}", current_version=1,
                created_at=now, updated_at=now) for i in chunk])
            conn.execute(sa.insert(exchanges), [dict(
                id=uuid.uuid4().hex, tenant_id=tenant_id, person_local_id=f"M{i:07d}", system="eparcours",
                payload_kind="tddui-bundle", purpose="COC", recipient=RECIPIENT, plan_version=1, status="queued",
                idempotency_key=f"rls-mem-{i}", payload=payload, content_type="application/fhir+json", attempts=0,
                next_attempt_at=now, created_by="test", created_at=now, updated_at=now) for i in chunk])


def peak(action) -> int:
    """Peak of Python allocations (bytes) made while `action` runs, above what was held before."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(store: Store, token: str, exchange_id: str) -> dict[str, int]:
    peer = AcceptingPeer()
    worker = Worker(store, {"eparcours": peer}, recheck=None, batch=10)
    worker.run_once()  # warm: statements compiled, pools filled
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, settings())) as api:

        def pages() -> None:
            answer = api.get("/exchanges", params={"limit": 200}, headers=auth)
            for _ in range(2):
                answer = api.get(answer.json()["next"], headers=auth)
            assert answer.status_code == 200 and len(answer.json()["items"]) == 200

        def filtered() -> None:
            for params in ({"status": "queued", "limit": 200}, {"system": "eparcours", "limit": 200},
                           {"person": "M0000500"}):
                assert api.get("/exchanges", params=params, headers=auth).status_code == 200
            assert api.get(f"/exchanges/{exchange_id}", headers=auth).status_code == 200
            assert api.get("/persons", params={"limit": 200}, headers=auth).status_code == 200
            assert api.get("/inbound", params={"limit": 200}, headers=auth).status_code == 200

        pages(), filtered()  # warm
        figures = {"worker: 5 passes of 10 items": peak(lambda: [worker.run_once() for _ in range(5)]),
                   "GET /exchanges, 3 pages of 200": peak(pages),
                   "filtered lists, one exchange, /persons, /inbound": peak(filtered)}
    assert peer.bytes >= 60 * 2048
    return figures


def test_memory_does_not_grow_with_the_length_of_the_queue(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    store.migrate()
    tenant = store.create_tenant("plateforme-m", "Plateforme")
    _, token = store.create_api_key(tenant.slug, "test")
    fill(store, tenant.id, 1_000)
    with store.reading() as conn:
        some = outbox.listing(conn, tenant.id, limit=1)[0].id
    small = measure(store, token, some)
    fill(store, tenant.id, QUEUED - 1_000, start=1_000)
    large = measure(store, token, some)
    report = {name: (round(small[name] / 1e6, 2), round(large[name] / 1e6, 2)) for name in small}
    print(f"\npeak MB with 1,000 → {QUEUED:,} queued: {report}")
    for name in small:
        assert large[name] < small[name] * 1.5 + 512 * 1024, report  # does not follow the queue
        assert large[name] < 16 * 1024 * 1024, report  # and stays small
    store.close()


def test_a_page_of_exchanges_does_not_read_their_payloads(tmp_path):
    """200 exchanges of 256 kB each: listing them must not hold 50 MB."""
    store = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    store.migrate()
    tenant = store.create_tenant("plateforme-m", "Plateforme")
    fill(store, tenant.id, 200, payload_size=256 * 1024)

    def page():
        with store.reading() as conn:
            assert len(outbox.listing(conn, tenant.id, limit=200)) == 200

    page()
    assert peak(page) < 5 * 1024 * 1024
    store.close()
