"""An idle embedded worker is woken by a submission of its own process: it claims the item at
once instead of at its next poll, and polling still finds everything the signal does not carry."""

from __future__ import annotations

import threading
import time

from connectors.base import Receipt, RetryPolicy
from gateway.delivery import outbox, wake
from gateway.delivery.model import Status
from gateway.delivery.worker import Worker
from gateway.storage import Store
from tests.test_delivery import stored, submit

LONG = 60.0  # an idle far longer than any wait below: only a wake-up can explain a prompt send


class Instant:
    system = "eparcours"
    payload_kinds = frozenset({"tddui-bundle"})
    retry = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)

    def __init__(self):
        self.sent = []

    def send(self, envelope):
        self.sent.append(envelope.exchange_id)
        return Receipt(status="accepted", peer_reference="CarePlan/1")

    def poll(self):
        return []

    def close(self):
        pass


def status(store, tenant, exchange_id) -> Status:
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id).status


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def counting(worker: Worker) -> list[int]:
    """Counts the worker's passes."""
    passes = []
    run_once = worker.run_once

    def counted():
        passes.append(1)
        return run_once()

    worker.run_once = counted
    return passes


def test_a_submission_wakes_an_idle_worker_of_the_same_database(store):
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    connector = Instant()
    worker = Worker(store, {"eparcours": connector})
    worker.start(idle=LONG)
    try:
        assert wait_for(lambda: worker._thread is not None)
        time.sleep(0.2)  # the first pass found nothing: the worker now waits LONG seconds
        exchange = submit(store, tenant, plan).exchange
        assert wait_for(lambda: status(store, tenant, exchange.id) is Status.sent, seconds=10)
        assert connector.sent == [exchange.id]
    finally:
        worker.stop()


def test_a_worker_is_not_woken_for_another_database(store, tmp_path):
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other.migrate()
    worker = Worker(other, {"eparcours": Instant()})
    passes = counting(worker)
    worker.start(idle=LONG)
    try:
        assert wait_for(lambda: len(passes) == 1)
        wake.queued(wake.database_of(store))
        time.sleep(0.3)
        assert len(passes) == 1
        wake.queued(wake.database_of(other))
        assert wait_for(lambda: len(passes) == 2)
    finally:
        worker.stop()
        other.close()


def test_an_item_queued_during_a_pass_is_taken_without_waiting_for_the_next_poll(store):
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    worker = Worker(store, {"eparcours": Instant()})
    run_once = worker.run_once
    queued: list[str] = []

    def pass_then_queue():
        handled = run_once()
        if not queued:  # during the first pass, after its claim found nothing
            queued.append(submit(store, tenant, plan).exchange.id)
        return handled

    worker.run_once = pass_then_queue
    worker.start(idle=LONG)
    try:
        assert wait_for(lambda: bool(queued))
        assert wait_for(lambda: status(store, tenant, queued[0]) is Status.sent, seconds=10)
    finally:
        worker.stop()


def test_stop_ends_an_idle_worker_at_once_and_forgets_its_wake_up(store):
    worker = Worker(store, {"eparcours": Instant()})
    worker.start(idle=LONG)
    assert wait_for(lambda: wake.database_of(store) in wake._listeners)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 5 and not worker._thread.is_alive()
    assert wake.database_of(store) not in wake._listeners


def test_without_a_wake_up_an_idle_worker_still_finds_items_by_polling(store):
    """A worker of another process hears nothing: its poll finds the item."""
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    worker = Worker(store, {"eparcours": Instant()})
    silent = threading.Event()
    original = wake.queued
    wake.queued = lambda database: silent.set()  # as if queued by another process
    try:
        worker.start(idle=0.05)
        exchange = submit(store, tenant, plan).exchange
        assert silent.is_set()
        assert wait_for(lambda: status(store, tenant, exchange.id) is Status.sent, seconds=10)
    finally:
        wake.queued = original
        worker.stop()
