"""The worker: claim due items, send them through their connector, record the outcome.

The network call happens outside any transaction (a slow peer must not hold the database);
claim and completion are each one short transaction with their audit entry. Run in-process
(`Worker.start()`, the embedded default) or as `relais worker` processes on one PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait

from sqlalchemy.pool import StaticPool

from connectors.base import Connector, Envelope, PermanentError, TransientError, max_in_flight
from gateway.delivery import outbox, trail, wake
from gateway.delivery.hooks import recheck_claimed
from gateway.delivery.model import ExchangeRequest
from gateway.logs import get_logger
from gateway.storage import Store

log = get_logger("relais.worker")


class Worker:
    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        *,
        owner: str | None = None,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        batch: int = 10,
        clock: Callable[[], dt.datetime] | None = None,
        rng: random.Random | None = None,
        recheck: Callable | None = recheck_claimed,
    ):
        self.store = store
        self.connectors = dict(connectors)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.lease = lease
        self.batch = batch
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rng = rng or random.Random()
        self.recheck = recheck  # re-decide consent at claim time (None: trust the queueing decision)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop(), and by wake.queued() while the loop runs
        self._thread: threading.Thread | None = None
        # Sends each connector accepts at once. An in-memory SQLite database is one connection
        # shared by every thread (StaticPool): its transactions cannot overlap, so one at a time.
        shared = isinstance(getattr(getattr(store, "engine", None), "pool", None), StaticPool)
        self._in_flight = {system: 1 if shared else max_in_flight(c) for system, c in self.connectors.items()}
        self._pool: ThreadPoolExecutor | None = None  # created at the first batch that needs it

    # ------------------------------------------------------------------ one pass

    def run_once(self) -> int:
        """Claim one batch of due items and deliver them; returns how many were handled."""
        with self.store.transaction() as conn:
            now = self.clock()
            claimed = outbox.claim(conn, owner=self.owner, now=now, lease=self.lease, limit=self.batch)
            if self.recheck is not None:
                claimed = self.recheck(conn, claimed, now)
        leased_until = now + self.lease
        # Items of a connector that accepts several sends at once go out on up to that many
        # lanes (pool threads); the others one after the other here, in claim order. Items of
        # one (tenant, person, system) stay in one chain, sent in claim order and never two at
        # once. (outbox.claim's `blocked` rule already keeps a batch to one pending item per
        # such key, so a newer version cannot overtake an older one; the chain is a safeguard.)
        in_turn: list[outbox.Claimed] = []
        chains: dict[tuple[str, str, str], list[outbox.Claimed]] = {}
        by_system: dict[str, list[list[outbox.Claimed]]] = {}
        for item in claimed:
            if self._in_flight.get(item.system, 1) == 1:
                in_turn.append(item)
                continue
            key = (item.tenant_id, item.person_local_id, item.system)
            chain = chains.get(key)
            if chain is None:
                chain = chains[key] = []
                by_system.setdefault(item.system, []).append(chain)
            chain.append(item)
        lanes = []
        for system, system_chains in by_system.items():
            queue = deque(system_chains)  # popleft() is thread-safe
            for _ in range(min(self._in_flight[system], len(queue))):
                lanes.append(self._executor().submit(self._lane, queue, leased_until))
        try:
            self._lane(deque([in_turn]), leased_until)
        finally:
            wait(lanes)
        for lane in lanes:
            lane.result()  # a lane's database failure fails the pass, as it would in turn
        return len(claimed)

    def _lane(self, chains: deque, leased_until: dt.datetime) -> None:
        """Send the chains taken from `chains` one item after the other, until none is left."""
        first = True
        while True:
            try:
                chain = chains.popleft()
            except IndexError:
                return
            for item in chain:
                if not first and not self._still_ours(item, leased_until):
                    continue
                first = False
                self._deliver(item)

    def _still_ours(self, item: outbox.Claimed, leased_until: dt.datetime) -> bool:
        # Just before each send after a lane's first, the item must still be this worker's: not
        # if a slow peer used up the batch's lease and another worker claimed it again, or if a
        # consent change cancelled it since the claim. Then it is not sent from here (it would
        # be sent twice, or sent against the person's will). While more than half of the lease
        # is left a read says so; past that, the lease is renewed (a write).
        at = self.clock()
        if leased_until - at > self.lease / 2:
            with self.store.reading() as conn:
                mine = outbox.still_ours(conn, item.seq, self.owner)
        else:
            with self.store.transaction() as conn:
                mine = outbox.renew_lease(conn, item.seq, self.owner, at, self.lease)
        if not mine:
            log.warning("worker_lease_lost", system=item.system, exchange=item.id)
        return mine

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            size = sum(n for n in self._in_flight.values() if n > 1)
            self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="relais-send")
        return self._pool

    def drain(self, max_rounds: int = 1000) -> int:
        """Run until nothing is due now (tests, demo)."""
        total = 0
        for _ in range(max_rounds):
            handled = self.run_once()
            total += handled
            if handled == 0:
                break
        return total

    def _deliver(self, item: outbox.Claimed) -> None:
        request = ExchangeRequest(person_local_id=item.person_local_id, system=item.system,
                                  recipient=item.recipient, purpose=item.purpose,
                                  payload_kind=item.payload_kind, plan_version=item.plan_version)
        connector = self.connectors.get(item.system)
        if connector is None:
            self._dead(item, request, f"aucun connecteur configuré pour {item.system}")
            return
        envelope = Envelope(
            exchange_id=item.id, idempotency_key=item.idempotency_key, system=item.system,
            payload_kind=item.payload_kind, content_type=item.content_type, payload=item.payload,
            recipient=item.recipient, attempt=item.attempt,
            metadata={"plan_version": str(item.plan_version or "")},
        )
        try:
            receipt = connector.send(envelope)
        except PermanentError as exc:
            self._dead(item, request, _reason(exc))
            return
        except TransientError as exc:
            self._retry_or_dead(item, request, connector, exc)
            return
        except Exception as exc:  # a connector bug must not kill the worker: retry, logged
            log.error("connector_error", system=item.system, exchange=item.id,
                      error_type=type(exc).__name__, exc_info=exc)
            self._retry_or_dead(item, request, connector,
                                TransientError(f"erreur du connecteur ({type(exc).__name__})"))
            return
        with self.store.transaction() as conn:
            if outbox.mark_sent(conn, item.seq, self.owner, receipt, item.attempt, self.clock()):
                trail.record(conn, item.tenant_id, "worker", "exchange.sent", "success", request,
                             item.id, peer_reference=receipt.peer_reference, receipt=receipt.status,
                             attempt=str(item.attempt))
        log.info("exchange_sent", system=item.system, exchange=item.id, attempt=item.attempt)

    def _retry_or_dead(self, item, request, connector: Connector, exc: TransientError) -> None:
        now = self.clock()
        if connector.retry.gives_up(item.attempt, item.created_at, now):
            self._dead(item, request, f"abandon après {item.attempt} essai(s) : {_reason(exc)}")
            return
        delay = connector.retry.delay(item.attempt, self.rng, exc.retry_after)
        next_at = now + dt.timedelta(seconds=delay)
        with self.store.transaction() as conn:
            if outbox.mark_retry(conn, item.seq, self.owner, item.attempt, next_at, _reason(exc), now):
                trail.record(conn, item.tenant_id, "worker", "exchange.failed", "failure", request,
                             item.id, attempt=str(item.attempt), retry="transient", code=exc.code)
        log.info("exchange_retry", system=item.system, exchange=item.id, attempt=item.attempt,
                 delay_s=round(delay, 3))

    def _dead(self, item, request, reason: str) -> None:
        with self.store.transaction() as conn:
            if outbox.mark_dead(conn, item.seq, self.owner, item.attempt, reason, self.clock()):
                trail.record(conn, item.tenant_id, "worker", "exchange.failed", "failure", request,
                             item.id, attempt=str(item.attempt), retry="dead-letter")
        log.info("exchange_dead", system=item.system, exchange=item.id, attempt=item.attempt)

    # ------------------------------------------------------------ in-process loop

    def start(self, idle: float = 0.2) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(idle,), name="relais-worker", daemon=True)
        self._thread.start()

    def serve(self, idle: float = 0.2) -> None:
        """The same loop in the calling thread (`relais worker`), until `stop()` or Ctrl-C."""
        self._stop.clear()
        self._loop(idle)

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _loop(self, idle: float) -> None:
        # An idle worker polls every `idle` seconds; an item queued by this process (same
        # database) wakes it at once (wake.py). Cleared before each pass, so an item queued
        # during a pass is not missed: the wait after it returns at once.
        database = wake.database_of(self.store)
        wake.listen(database, self._wake)
        failures = 0
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    handled = self.run_once()
                    failures = 0
                except Exception as exc:  # database briefly unavailable: wait (longer each time) and go on
                    failures += 1
                    log.error("worker_pass_failed", error_type=type(exc).__name__, failures=failures)
                    self._stop.wait(min(5.0, idle * 2 ** failures))
                    continue
                if handled == 0 and not self._stop.is_set():
                    self._wake.wait(idle)
        finally:
            wake.unlisten(database, self._wake)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "reason", None) or str(exc)
    code = getattr(exc, "code", None)
    return f"[{code}] {text}" if code else text
