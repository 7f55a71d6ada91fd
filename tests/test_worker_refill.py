"""The worker's loop claims again as its lanes free up (Worker._pass), on both backends: a slow
send no longer holds back the items claimed after it, and nothing else changes — at most
`max_in_flight` sends and `batch` items held at once, a person's versions in order, the check
before every send but a lane's first, a lane's database failure failing the pass."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from gateway.delivery import outbox
from gateway.delivery.model import Status
from tests.test_worker_in_flight import Recording, queue, status_of, worker_for


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A", "510000011")


class Uneven(Recording):
    """Recording, where the person "SLOW" takes `slow` seconds a send and the others `pause`."""

    def __init__(self, persons, *, slow: float, **options):
        super().__init__(persons, **options)
        self.slow = slow
        self.base = self.pause

    def send(self, envelope):
        self.pause = self.slow if self.persons[envelope.exchange_id] == "SLOW" else self.base
        return super().send(envelope)


def wait_for(condition, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def run_loop(worker, done, idle: float = 5.0) -> None:
    """The worker's own loop (as `relais serve` runs it) until `done()`; `idle` is long, so
    only the loop's own wake-ups (not its polls) can explain what it claims."""
    worker.start(idle=idle)
    try:
        assert wait_for(done)
    finally:
        worker.stop()


def test_items_claimed_after_a_slow_send_go_out_while_it_is_still_in_flight(store, tenant):
    ids = {queue(store, tenant, "SLOW"): "SLOW"}
    ids.update({queue(store, tenant, f"U{n}"): f"U{n}" for n in range(7)})
    connector = Uneven(ids, slow=0.6, pause=0.02, max_in_flight=4)
    worker = worker_for(store, connector, batch=4)
    run_loop(worker, lambda: len(connector.sent) == 8)
    order = [p for p, _ in connector.sent]
    # batch of 4 = SLOW, U0, U1, U2; U3…U6 are claimed as U0…U2 end, and sent before SLOW ends.
    # Waiting for the whole batch, they would have been claimed only after it.
    assert order[-1] == "SLOW", order
    assert connector.peak <= 4
    assert all(status_of(store, tenant, i) is Status.sent for i in ids)


def test_the_loop_holds_at_most_batch_items_and_max_in_flight_sends(store, tenant):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(30)}
    connector = Recording(ids, max_in_flight=3, pause=0.02)
    worker = worker_for(store, connector, batch=5)
    held = []
    done = worker._done

    def counted(items):
        held.append(worker._held)
        done(items)

    worker._done = counted
    run_loop(worker, lambda: len(connector.sent) == 30)
    assert connector.peak == 3 and max(held) <= 5
    assert sorted(p for p, _ in connector.sent) == sorted(ids.values())
    assert worker._held == 0


def test_a_persons_versions_go_out_in_order_across_claims(store, tenant):
    ids = {}
    for version in (1, 2, 3):
        ids[queue(store, tenant, "U1", version)] = "U1"
        for other in range(5):
            ids[queue(store, tenant, f"V{version}{other}")] = f"V{version}{other}"
    connector = Recording(ids, max_in_flight=4, pause=0.03)
    worker = worker_for(store, connector, batch=4)
    run_loop(worker, lambda: len(connector.sent) == len(ids))
    assert [v for p, v in connector.sent if p == "U1"] == ["1", "2", "3"]
    assert connector.overlaps == []


def test_an_item_cancelled_while_waiting_for_a_lane_is_not_sent(store, tenant):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(8)}
    cancelled = [i for i, p in ids.items() if p == "U7"]

    def withdraw():  # a consent withdrawal for U7 while the first sends are in flight
        with store.transaction() as conn:
            assert outbox.cancel_pending(conn, tenant_id=tenant.id, person_local_id="U7", systems=None,
                                         reason="opposition", now=dt.datetime.now(dt.UTC)) == cancelled

    connector = Recording(ids, max_in_flight=2, pause=0.1, on_first_send=withdraw)
    worker = worker_for(store, connector, batch=8)
    run_loop(worker, lambda: len(connector.sent) == 7 and worker._held == 0)
    assert sorted(p for p, _ in connector.sent) == [f"U{n}" for n in range(7)]
    assert status_of(store, tenant, cancelled[0]) is Status.cancelled


def test_a_lanes_database_failure_fails_the_pass_and_its_items_are_claimed_again(store, tenant, monkeypatch):
    ids = {queue(store, tenant, f"U{n}"): f"U{n}" for n in range(6)}
    connector = Recording(ids, max_in_flight=3, pause=0.01)
    worker = worker_for(store, connector, batch=6, lease=dt.timedelta(seconds=1))
    failed = threading.Event()
    mark_sent = outbox.mark_sent

    def once_broken(conn, seq, *args, **kwargs):
        if not failed.is_set():
            failed.set()
            raise RuntimeError("base indisponible")
        return mark_sent(conn, seq, *args, **kwargs)

    monkeypatch.setattr(outbox, "mark_sent", once_broken)
    passes = []
    one_pass = worker._pass

    def counted():
        try:
            return one_pass()
        except RuntimeError:
            passes.append("failed")
            raise

    worker._pass = counted
    run_loop(worker, lambda: all(status_of(store, tenant, i) is Status.sent for i in ids), idle=0.05)
    assert passes == ["failed"]
    assert sorted(set(p for p, _ in connector.sent)) == sorted(ids.values())  # the failed one sent again
    assert worker._held == 0


def test_the_loop_does_not_poll_while_its_sends_are_in_flight(store, tenant):
    ids = {queue(store, tenant, "SLOW"): "SLOW"}
    connector = Uneven(ids, slow=0.5, pause=0.01, max_in_flight=4)
    worker = worker_for(store, connector)
    passes = []
    one_pass = worker._pass

    def counted():
        passes.append(worker._held)
        return one_pass()

    worker._pass = counted
    run_loop(worker, lambda: len(connector.sent) == 1 and worker._held == 0, idle=0.01)
    # One pass claims the item; while it is being sent (0.5 s: 50 idle intervals) the loop
    # waits for its lane, not for the poll interval; the lane, done, wakes it once.
    assert len([held for held in passes if held > 0]) <= 2, passes
