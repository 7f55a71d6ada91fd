"""SQLite writers take turns on the database write lock without SQLite's busy sleeps
(gateway/storage/engine.py): the writers of one process queue on a lock of their own, a writer
of another connection (another process) is polled for every 0.1-1 ms, busy_timeout still ends a
wait with SQLite's error, and the turn is given back however a transaction ends. Concurrent
writers lose nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from connectors.base import Receipt, Recipient
from gateway.audit import AuditEntry, append_durably
from gateway.audit import appender as appender_module
from gateway.audit.appender import Appender, appender_for
from gateway.delivery import outbox
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.worker import Worker
from gateway.settings import Settings
from gateway.storage import Store
from gateway.storage import engine as engine_module
from tests.support.audit import accept_audit_inserts, refuse_audit_inserts

HOLD = 0.3  # seconds a first writer keeps the lock


def _late_after_release(store: Store, hold) -> float:
    """Seconds between the moment a first writer (run by `hold`) let the lock go and the moment
    a second one, waiting for it since, got into its transaction."""
    holding, released = threading.Event(), []
    thread = threading.Thread(target=hold, args=(holding, released))
    thread.start()
    assert holding.wait(5)
    with store.transaction() as conn:
        entered = time.monotonic()
        conn.execute(sa.text("SELECT 1"))
    thread.join()
    return entered - released[0]


def _store_writer(store: Store):
    def hold(holding, released):
        with store.transaction():
            holding.set()
            time.sleep(HOLD)
            released.append(time.monotonic())  # (just before COMMIT: an upper bound on lateness)
    return hold


def _other_connection(path: str):
    """A writer outside this process's turns, as another process would be: its own sqlite3
    connection, BEGIN IMMEDIATE … COMMIT."""
    def hold(holding, released):
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            holding.set()
            time.sleep(HOLD)
            raw.execute("COMMIT")
            released.append(time.monotonic())
        finally:
            raw.close()
    return hold


@contextlib.contextmanager
def _lock_held(store: Store, path, holder: str):
    """SQLite's write lock held while the block runs: by a transaction of `store` ("this
    process") or by a connection of its own, outside the turns ("another connection")."""
    holding, done = threading.Event(), threading.Event()

    def hold():
        if holder == "this process":
            with store.transaction():
                holding.set()
                done.wait(5)
        else:
            raw = sqlite3.connect(str(path), isolation_level=None)
            raw.execute("BEGIN IMMEDIATE")
            holding.set()
            done.wait(5)
            raw.execute("ROLLBACK")
            raw.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(5)
        yield
    finally:
        done.set()
        thread.join()


def test_writers_of_one_process_take_turns_at_once(sqlite_store):
    # SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms…: after a
    # lock held 300 ms the waiter wakes at 328 ms, 28 ms late. The gate wakes it on release.
    lates = sorted(_late_after_release(sqlite_store, _store_writer(sqlite_store)) for _ in range(5))
    assert lates[2] < 0.012, lates


def test_a_writer_of_another_connection_is_polled_for(sqlite_store, tmp_path):
    lates = sorted(_late_after_release(sqlite_store, _other_connection(str(tmp_path / "relais.db")))
                   for _ in range(5))
    assert lates[2] < 0.012, lates


def test_two_stores_on_one_file_share_the_turns(sqlite_store, tmp_path):
    other = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    try:
        lates = sorted(_late_after_release(other, _store_writer(sqlite_store)) for _ in range(5))
    finally:
        other.close()
    assert lates[2] < 0.012, lates


@pytest.fixture
def short_busy(monkeypatch, tmp_path):
    """A store whose busy_timeout is 300 ms."""
    config = Settings(database_url=f"sqlite:///{tmp_path / 'relais.db'}", sqlite_busy_timeout_ms=300)
    monkeypatch.setattr(engine_module, "settings", lambda: config)
    store = Store(config.database_url)
    store.migrate()
    yield store
    store.close()


@pytest.mark.parametrize("holder", ["this process", "another connection"])
def test_busy_timeout_still_ends_the_wait_with_sqlites_error(short_busy, tmp_path, holder):
    with _lock_held(short_busy, tmp_path / "relais.db", holder):
        start = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="database is locked") as caught:
            with short_busy.transaction():
                pass
        waited = time.monotonic() - start
    assert 0.29 <= waited < 2, waited
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert caught.value.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY
    # and the store writes again once the holder is gone, with its busy_timeout in place
    with short_busy.transaction() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300


def _enters_at_once(store: Store) -> None:
    """A write transaction of another thread gets in without waiting for busy_timeout."""
    took = []

    def write():
        start = time.monotonic()
        with store.transaction() as conn:
            conn.execute(sa.text("SELECT 1"))
        took.append(time.monotonic() - start)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(10)
    assert took and took[0] < 0.25, took


def test_the_turn_is_given_back_however_the_transaction_ends(short_busy):
    with short_busy.transaction() as conn:  # COMMIT
        conn.execute(sa.text("SELECT 1"))
    _enters_at_once(short_busy)
    with pytest.raises(RuntimeError):  # ROLLBACK after an error
        with short_busy.transaction():
            raise RuntimeError("boom")
    _enters_at_once(short_busy)
    with pytest.raises(sa.exc.OperationalError):  # an SQL error inside
        with short_busy.transaction() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    _enters_at_once(short_busy)
    with short_busy.engine.connect() as conn:  # the connection invalidated mid-transaction
        conn.execution_options(**{engine_module.WRITE: True})
        conn.begin()
        conn.invalidate()
    _enters_at_once(short_busy)
    with short_busy.engine.connect() as conn:  # left without COMMIT: the pool's reset rolls back
        conn.execution_options(**{engine_module.WRITE: True})
        conn.begin()
    _enters_at_once(short_busy)
    with short_busy.engine.connect() as conn:  # two transactions on one connection
        conn.execution_options(**{engine_module.WRITE: True})
        with conn.begin():
            pass
        _enters_at_once(short_busy)
        with conn.begin():
            pass
    _enters_at_once(short_busy)


def test_reads_do_not_wait_for_a_writer(sqlite_store):
    holding, done = threading.Event(), threading.Event()

    def hold():
        with sqlite_store.transaction():
            holding.set()
            done.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(5)
        start = time.monotonic()
        with sqlite_store.reading() as conn:
            conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one()
        assert time.monotonic() - start < 0.1
    finally:
        done.set()
        thread.join()


# ------------------------------------------------ the audit Appender's own connection (SQLite)
# The Appender writes on a raw DB-API connection of its own (gateway/audit/appender.py): it takes
# the same turn through engine.write_turn, so a console page view meeting another writer is woken
# when that writer commits instead of sleeping in SQLite's busy handler.

def _audit_entry(i: int = 0) -> AuditEntry:
    return AuditEntry(tenant_id="t1", actor="dpo:camille", action="console.viewed", outcome="success",
                      refs={"page": f"p{i}"})


def _append_late_after_release(store: Store, hold) -> float:
    """Seconds between the moment a first writer (run by `hold`) let the lock go and the moment
    an audit append, waiting for it since, returned (its commit included)."""
    holding, released = threading.Event(), []
    thread = threading.Thread(target=hold, args=(holding, released))
    thread.start()
    assert holding.wait(5)
    append_durably(store.engine, _audit_entry())
    returned = time.monotonic()
    thread.join()
    return returned - released[0]


@pytest.mark.parametrize("head", ["unknown", "known"])  # the locking transaction, or from the known head
def test_an_audit_append_meeting_a_writer_of_this_process_is_woken_at_once(sqlite_store, head):
    if head == "known":
        append_durably(sqlite_store.engine, _audit_entry())
    lates = sorted(_append_late_after_release(sqlite_store, _store_writer(sqlite_store)) for _ in range(5))
    assert lates[2] < 0.012, lates  # SQLite's busy handler: ~28 ms late


def test_an_audit_append_polls_for_a_writer_of_another_connection(sqlite_store, tmp_path):
    append_durably(sqlite_store.engine, _audit_entry())
    lates = sorted(_append_late_after_release(sqlite_store, _other_connection(str(tmp_path / "relais.db")))
                   for _ in range(5))
    assert lates[2] < 0.012, lates


def test_a_writer_of_this_process_waits_for_the_audit_append_on_the_turn(sqlite_store):
    """While the Appender's transaction is open, it holds this process's turn: another writer of
    the process waits on it (not on SQLite's lock) and gets in once the append has committed."""
    appender = appender_for(sqlite_store.engine)
    append_durably(sqlite_store.engine, _audit_entry())
    gate = engine_module._TURNS[sqlite_store.engine][0]
    seen = []
    insert = appender_module.insert_rows

    def insert_rows(*args):
        seen.append(gate.locked())
        insert(*args)

    appender_module.insert_rows = insert_rows
    try:
        append_durably(sqlite_store.engine, _audit_entry(1))
    finally:
        appender_module.insert_rows = insert
    assert seen == [True]
    assert not gate.locked()
    _enters_at_once(sqlite_store)
    assert appender.batches == 2


@pytest.mark.parametrize("holder", ["this process", "another connection"])
def test_busy_timeout_still_ends_an_audit_appends_wait_with_sqlites_error(short_busy, tmp_path, holder):
    append_durably(short_busy.engine, _audit_entry())
    with _lock_held(short_busy, tmp_path / "relais.db", holder):
        start = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="database is locked") as caught:
            append_durably(short_busy.engine, _audit_entry(1))
        waited = time.monotonic() - start
    assert 0.29 <= waited < 2, waited
    assert caught.value.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY
    # the turn was given back, and the Appender writes again
    _enters_at_once(short_busy)
    assert append_durably(short_busy.engine, _audit_entry(2)) == 1


@pytest.mark.parametrize("head", ["unknown", "known"])
def test_the_turn_is_given_back_when_an_audit_append_fails(short_busy, head):
    if head == "known":
        append_durably(short_busy.engine, _audit_entry())
    refuse_audit_inserts(short_busy.engine)
    with pytest.raises(sa.exc.DBAPIError):
        append_durably(short_busy.engine, _audit_entry(1))
    _enters_at_once(short_busy)
    accept_audit_inserts(short_busy.engine)
    append_durably(short_busy.engine, _audit_entry(2))
    _enters_at_once(short_busy)


def test_an_appender_on_an_engine_made_elsewhere_writes_without_turns(sqlite_store, tmp_path):
    """An engine not made by make_engine has no turns: its Appender's BEGIN IMMEDIATE waits in
    SQLite's busy handler, as before."""
    other = sa.create_engine(f"sqlite:///{tmp_path / 'relais.db'}", connect_args={"isolation_level": None})
    try:
        appender = Appender(other)
        assert [appender.append(_audit_entry(i)) for i in range(3)] == [0, 1, 2]
        assert appender_module.write_turn(other, None) is None
        appender.close()
    finally:
        other.dispose()
    assert append_durably(sqlite_store.engine, _audit_entry(3)) == 3


# ------------------------------------------------------------- both backends: nothing lost

TOOL = Recipient(kind="system", identifier="eparcours")


class Instant:
    system = "eparcours"
    max_in_flight = 4

    def __init__(self):
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, envelope):
        with self._lock:
            self.sent.append(envelope.exchange_id)
        return Receipt(status="accepted", peer_reference=envelope.exchange_id)

    @property
    def retry(self):
        from connectors.base import RetryPolicy

        return RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


def test_concurrent_writers_and_a_worker_lose_nothing(store):
    """Four threads queue items while a worker claims and completes them: every item is sent
    exactly once and ends `sent`, with its history in order."""
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    connector = Instant()
    worker = Worker(store, {"eparcours": connector}, recheck=None)
    ids: list[str] = []
    ids_lock = threading.Lock()

    def queue_items(thread: int) -> None:
        for i in range(10):
            request = ExchangeRequest(person_local_id=f"P{thread}-{i}", system="eparcours", recipient=TOOL,
                                      purpose="COC", payload_kind="tddui-bundle", plan_version=1)
            now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            with store.transaction() as conn:
                key = outbox.free_key(conn, tenant.id, "eparcours", outbox.idempotency_key(tenant.id, request, 1))
                exchange = outbox.insert(conn, tenant_id=tenant.id, request=request, plan_version=1,
                                         status=Status.queued, key=key, actor="test", now=now,
                                         payload=b"{}", content_type="application/fhir+json")
            with ids_lock:
                ids.append(exchange.id)

    worker.start(idle=0.005)
    try:
        threads = [threading.Thread(target=queue_items, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 30
        while len(connector.sent) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert sorted(connector.sent) == sorted(ids)
    with store.reading() as conn:
        for exchange_id in ids:
            exchange = outbox.get(conn, tenant.id, exchange_id)
            assert exchange.status is Status.sent
            assert [e.status for e in exchange.history] == ["queued", "sending", "sent"]
