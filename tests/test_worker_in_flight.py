"""A worker keeps several sends in flight for a connector that accepts them (`max_in_flight`),
on both backends, without giving up any per-item guarantee: per person ordering, the check
before each send, retries of one item apart from the others."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Envelope, Receipt, Recipient, RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.server import ThreadedServer
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import outbox, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.worker import Worker
from gateway.model import Plan

PLAN = Path(__file__).resolve().parents[1] / "fixtures" / "plans" / "p001-enfant-tnd.json"
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
TOOL = Recipient(kind="system", identifier="eparcours", display="Outil e-parcours régional")
DELAY = 0.2  # seconds the slow peer waits before each answer


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A", "510000011")


def queue(store, tenant, person: str, version: int = 1) -> str:
    """One due item straight into the outbox (no supersession): what the worker sees."""
    request = ExchangeRequest(person_local_id=person, system="eparcours", recipient=TOOL, purpose="COC",
                              payload_kind="tddui-bundle", plan_version=version)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with store.transaction() as conn:
        key = outbox.free_key(conn, tenant.id, "eparcours", outbox.idempotency_key(tenant.id, request, version))
        return outbox.insert(conn, tenant_id=tenant.id, request=request, plan_version=version,
                             status=Status.queued, key=key, actor="test", now=now,
                             payload=b"{}", content_type="application/fhir+json").id


def status_of(store, tenant, exchange_id: str) -> Status:
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id).status


class Recording:
    """A connector that takes `pause` seconds a send and records what was in flight when."""

    system = "eparcours"
    payload_kinds = frozenset({"tddui-bundle"})
    retry = FAST

    def __init__(self, persons: dict[str, str], *, max_in_flight: int = 4, pause: float = 0.05,
                 on_first_send=None):
        self.max_in_flight = max_in_flight
        self.persons = persons  # exchange id -> person
        self.pause = pause
        self.on_first_send = on_first_send
        self._lock = threading.Lock()
        self.in_flight: list[str] = []  # persons being sent now
        self.peak = 0
        self.overlaps: list[str] = []  # a person sent twice at once
        self.sent: list[tuple[str, str]] = []  # (person, plan version) in the order sends ended

    def send(self, envelope: Envelope) -> Receipt:
        person = self.persons[envelope.exchange_id]
        with self._lock:
            first, hook = not self.sent and not self.in_flight, self.on_first_send
            if person in self.in_flight:
                self.overlaps.append(person)
            self.in_flight.append(person)
            self.peak = max(self.peak, len(self.in_flight))
        if first and hook:
            hook()
        time.sleep(self.pause)
        with self._lock:
            self.in_flight.remove(person)
            self.sent.append((person, envelope.metadata["plan_version"]))
        return Receipt(status="accepted", peer_reference=f"CarePlan/{envelope.exchange_id}")

    def poll(self):
        return []

    def close(self) -> None:
        pass


def worker_for(store, connector, **options) -> Worker:
    return Worker(store, {"eparcours": connector}, rng=random.Random(1), recheck=None, **options)


def test_one_pass_keeps_up_to_max_in_flight_sends_at_once_and_no_more(store, tenant):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(8)}
    connector = Recording(ids, max_in_flight=3)
    worker = worker_for(store, connector)
    try:
        assert worker.run_once() == 8
    finally:
        worker.stop()
    assert connector.peak == 3
    assert sorted(p for p, _ in connector.sent) == sorted(ids.values())
    assert all(status_of(store, tenant, i) is Status.sent for i in ids)


def test_max_in_flight_1_sends_one_after_the_other_in_claim_order(store, tenant):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(5)}
    connector = Recording(ids, max_in_flight=1, pause=0.01)
    worker = worker_for(store, connector)
    assert worker.run_once() == 5
    assert connector.peak == 1 and worker._pool is None  # no thread of its own either
    assert [p for p, _ in connector.sent] == list(ids.values())


def test_a_persons_versions_go_out_in_order_while_others_overtake_each_other(store, tenant):
    ids = {}
    for version in (1, 2, 3):
        ids[queue(store, tenant, "U1", version)] = "U1"
        for other in range(4):  # other persons between each version
            ids[queue(store, tenant, f"V{version}{other}")] = f"V{version}{other}"
    connector = Recording(ids, max_in_flight=4, pause=0.02)
    worker = worker_for(store, connector)
    try:
        worker.drain()
    finally:
        worker.stop()
    assert [v for p, v in connector.sent if p == "U1"] == ["1", "2", "3"]
    assert connector.overlaps == [] and connector.peak == 4
    assert len(connector.sent) == len(ids)


def test_an_item_cancelled_after_the_claim_is_not_sent_by_a_later_send_in_its_lane(store, tenant):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(8)}
    cancelled = [i for i, p in ids.items() if p == "U7"]

    def withdraw():  # a consent withdrawal for U7 while the first sends are in flight
        with store.transaction() as conn:
            assert outbox.cancel_pending(conn, tenant_id=tenant.id, person_local_id="U7", systems=None,
                                         reason="opposition", now=dt.datetime.now(dt.UTC)) == cancelled

    connector = Recording(ids, max_in_flight=4, pause=0.1, on_first_send=withdraw)
    worker = worker_for(store, connector)
    try:
        assert worker.run_once() == 8
    finally:
        worker.stop()
    assert sorted(p for p, _ in connector.sent) == [f"U{n}" for n in range(7)]
    assert status_of(store, tenant, cancelled[0]) is Status.cancelled


# ------------------------------------------------------------- against the sandbox peer

def plan_for(person: str) -> Plan:
    data = json.loads(PLAN.read_text("utf-8"))
    data["person"]["local_id"] = person
    return Plan.model_validate(data)


def submitted(store, tenant, count: int) -> list[str]:
    ids = []
    for n in range(count):
        plan = plan_for(f"FLIGHT{n:03d}")
        store.put_plan(tenant, plan, if_match=None, actor="test")
        ConsentRegistry(store).record_information(tenant, plan.person.local_id, InformationRecord(
            id=f"info-{n}", informed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
            method=InformationMethod.written, informed_by="coordinatrice", notice_version="notice-2026-01",
            topics=frozenset({InformationTopic.care_team_sharing})), actor="test", now=dt.datetime.now(dt.UTC))
        outcome = pipeline.submit(store, tenant, ExchangeRequest(
            person_local_id=plan.person.local_id, system="eparcours", recipient=TOOL, purpose="COC",
            payload_kind="tddui-bundle"), actor="test", decider=consent_decider)
        ids.append(outcome.exchange.id)
    return ids


@pytest.fixture
def slow_peer():
    sandbox = eparcours_sandbox()
    with ThreadedServer(sandbox.app) as server:
        connector = EparcoursConnector(FhirEndpoint(
            base_url=server.url, token_url=f"{server.url}/oauth/token", client_id="relais",
            client_secret="sandbox-secret", timeout=5.0), FAST)
        yield sandbox, connector
        connector.close()


def test_a_slow_peer_gets_eight_items_in_about_two_rounds_not_eight(store, tenant, slow_peer):
    sandbox, connector = slow_peer
    assert connector.max_in_flight == 4
    ids = submitted(store, tenant, 8)
    sandbox.faults.down_for(60, Fault(delay=DELAY))  # every answer waits DELAY
    worker = Worker(store, {"eparcours": connector}, rng=random.Random(1))
    try:
        start = time.perf_counter()
        assert worker.run_once() == 8
        elapsed = time.perf_counter() - start
    finally:
        worker.stop()
    assert elapsed < 8 * DELAY * 0.75, elapsed  # one after the other: at least 8 * DELAY
    assert all(status_of(store, tenant, i) is Status.sent for i in ids)
    assert len(sandbox.store.all("CarePlan")) == 8


def test_a_transient_failure_of_one_send_in_flight_leaves_the_others_sent(store, tenant, slow_peer):
    sandbox, connector = slow_peer
    ids = submitted(store, tenant, 6)
    sandbox.faults.add(Fault(status=503))  # the first request to arrive, whichever it is
    worker = Worker(store, {"eparcours": connector}, rng=random.Random(1))
    try:
        assert worker.run_once() == 6
        statuses = sorted(status_of(store, tenant, i).value for i in ids)
        assert statuses == ["queued"] + ["sent"] * 5
        with store.reading() as conn:
            actions = [json.loads(r[0])["action"] for r in conn.execute(
                sa.text("SELECT body FROM audit_entries ORDER BY seq")).all()]
        assert actions.count("exchange.sent") == 5 and actions.count("exchange.failed") == 1
        worker.drain()
    finally:
        worker.stop()
    assert all(status_of(store, tenant, i) is Status.sent for i in ids)
    assert len(sandbox.store.all("CarePlan")) == 6  # each once
