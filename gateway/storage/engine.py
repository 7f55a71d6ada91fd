"""Engine factory: one place that knows how Relais talks to SQLite and PostgreSQL."""

from __future__ import annotations

import os
import select
import sqlite3
import threading
import time
import weakref

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from gateway.settings import settings

# Execution option naming a write transaction: on SQLite it starts with BEGIN IMMEDIATE,
# which takes the database write lock up front (waiting up to busy_timeout), so that the
# reads made inside the transaction cannot be overtaken by another writer.
WRITE = "relais_write"


def normalise_url(url: str | URL) -> URL:
    """Accept sqlite:///… and postgresql+psycopg://… (postgresql:// or postgres:// → psycopg 3)."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError("URL de base de données illisible") from None
    if parsed.drivername in ("postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ValueError(
        f"base de données non prise en charge : {parsed.drivername} "
        "(attendu sqlite:///chemin ou postgresql+psycopg://…)"
    )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL) -> Engine:
    url = normalise_url(url)
    # hide_parameters: SQL errors must never carry plan content (personal data) into logs.
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, hide_parameters=True)
        _postgres_events(engine)
        return engine
    busy_ms = settings().sqlite_busy_timeout_ms
    connect_args = {"timeout": busy_ms / 1000, "check_same_thread": False}
    if is_memory_sqlite(url):
        engine = sa.create_engine(
            url, hide_parameters=True, connect_args=connect_args, poolclass=StaticPool
        )
    else:
        engine = sa.create_engine(url, hide_parameters=True, connect_args=connect_args)
    gate = _gate(url)
    _sqlite_events(engine, busy_ms, gate)
    _TURNS[engine] = (gate, busy_ms)
    return engine


# Writers of one SQLite database take turns on its write lock. Left to SQLite, a writer that
# finds it taken sleeps in its busy handler, 1, 2, 5, 10… up to 100 ms a sleep, however soon
# the lock is free again: measured with 4 requests in flight, a submission waited 30-38 ms on
# average for transactions that held the lock 4 ms, and the worker's were starved up to 0.7 s.
# So the writers of this process queue on a lock of their own, woken as soon as it is released,
# and only one of them at a time asks SQLite; a writer of another process (`relais worker`)
# holding SQLite's lock is waited for by polling every 0.1-1 ms instead of SQLite's sleeps. Both
# waits together stop at busy_timeout, with SQLite's own error, as before.
_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()
_TURNS: weakref.WeakKeyDictionary[Engine, tuple[threading.Lock, int]] = weakref.WeakKeyDictionary()


def _gate(url: URL) -> threading.Lock:
    """The write lock shared by every engine of this process on the same SQLite database."""
    if is_memory_sqlite(url):  # each in-memory engine is a database of its own
        return threading.Lock()
    with _GATES_LOCK:
        return _GATES.setdefault(os.path.realpath(url.database), threading.Lock())


def _locked(statement: str) -> sa.exc.OperationalError:
    """SQLite's "database is locked", raised as SQLAlchemy raises it."""
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode, error.sqlite_errorname = sqlite3.SQLITE_BUSY, "SQLITE_BUSY"
    return sa.exc.OperationalError(statement, None, error)


def _begin_immediate(conn, busy_ms: int, deadline: float) -> None:
    """BEGIN IMMEDIATE, polling SQLite's lock every 0.1-1 ms until `deadline` (monotonic)."""
    raw = conn.connection.dbapi_connection
    raw.execute("PRAGMA busy_timeout = 0")  # SQLITE_BUSY at once: the sleeps are ours
    try:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # as any statement (events, errors)
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                raise
        try:
            if _poll_begin(raw, deadline):
                return
        except sqlite3.OperationalError:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # that error, raised by SQLAlchemy
            return
        raise _locked("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


def _poll_begin(raw, deadline: float) -> bool:
    """BEGIN IMMEDIATE on the driver every 0.1-1 ms while SQLite answers busy, until `deadline`
    (no error built for a retry); False if the deadline passed. Another error is raised as is."""
    pause = 0.0001
    while time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(2 * pause, 0.001)
        try:
            raw.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
    return False


class WriteTurn:
    """BEGIN IMMEDIATE on a DB-API connection of a SQLite engine used outside SQLAlchemy (the audit
    Appender's own), in this process's turn among the engine's writers: `with turn:` queues behind
    them and is woken as soon as the one before lets go, polls for another process as above, and
    raises SQLite's "database is locked" (as sqlite3 raises it) after busy_timeout. The block
    commits or rolls back; the turn is given back when it ends, however it ends.

    The connection's busy_timeout is set to 0 for good: its only wait is for BEGIN IMMEDIATE
    (polled here); once that holds the write lock, WAL mode gives the transaction's statements
    and its commit no lock to wait for (two PRAGMAs per append saved)."""

    __slots__ = ("_gate", "_busy", "_raw")

    def __init__(self, gate: threading.Lock, busy_ms: int, raw: sqlite3.Connection):
        self._gate, self._busy, self._raw = gate, busy_ms / 1000, raw
        raw.execute("PRAGMA busy_timeout = 0")

    def __enter__(self) -> None:
        start = time.monotonic()
        if not (self._gate.acquire(False) or self._gate.acquire(timeout=self._busy)):
            raise _locked("BEGIN IMMEDIATE").orig
        try:
            self._raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            try:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or not _poll_begin(self._raw, start + self._busy):
                    raise
            except BaseException:
                self._gate.release()
                raise
        except BaseException:
            self._gate.release()
            raise

    def __exit__(self, *_exc) -> None:
        self._gate.release()


def write_turn(engine: Engine, raw: sqlite3.Connection) -> WriteTurn | None:
    """The WriteTurn of a DB-API connection of `engine` (SQLite, made by make_engine), else None."""
    turn = _TURNS.get(engine)
    return None if turn is None else WriteTurn(*turn, raw)


def _sqlite_events(engine: Engine, busy_ms: int, gate: threading.Lock) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take transaction control away from the sqlite3 module (it would not BEGIN before
        # SELECT); SQLAlchemy's "begin" event below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    # The DB-API connections holding `gate` (by id): it is released once the transaction has ended
    # in SQLite — after COMMIT or ROLLBACK, whichever path ends it: the connection's, or the
    # pool's reset on return — or when the connection is invalidated or leaves the pool.
    held: dict[int, threading.Lock] = {}

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        if not conn.get_execution_options().get(WRITE):
            conn.exec_driver_sql("BEGIN")
            return
        deadline = time.monotonic() + busy_ms / 1000
        if not gate.acquire(timeout=busy_ms / 1000):
            raise _locked("BEGIN IMMEDIATE")
        try:
            _begin_immediate(conn, busy_ms, deadline)
        except BaseException:
            gate.release()
            raise
        held[id(conn.connection.dbapi_connection)] = gate

    def ungate(dbapi_connection) -> None:
        taken = held.pop(id(dbapi_connection), None)
        if taken is not None:
            taken.release()

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(pooled_connection) -> None:
        try:
            commit(pooled_connection)
        finally:
            ungate(pooled_connection.dbapi_connection)

    def do_rollback(pooled_connection) -> None:
        try:
            rollback(pooled_connection)
        finally:
            ungate(pooled_connection.dbapi_connection)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
    for name in ("checkin", "invalidate", "detach"):
        event.listen(engine, name, lambda dbapi_connection, *_args: ungate(dbapi_connection))


# PostgreSQL: a pooled connection is checked (SELECT 1) before use only when it may be stale:
# idle for PING_IDLE_S or more, or with something to read on its socket while idle. A server
# that restarts, crashes or ends the session (pg_terminate_backend) sends its FATAL message
# and/or closes the connection, which turns the idle socket readable. SQLAlchemy's
# pool_pre_ping, used before, made every checkout pay that round trip: one in six of an
# audited write transaction. A connection found stale is replaced at once (the pool retries
# on DisconnectionError), as pool_pre_ping does.
PING_IDLE_S = 10.0
_IDLE_SINCE = "relais_idle_since"


def _postgres_events(engine: Engine) -> None:
    from psycopg.pq import TransactionStatus  # the driver, imported only for PostgreSQL engines

    dialect, dbapi_error, idle = engine.dialect, engine.dialect.loaded_dbapi.Error, TransactionStatus.IDLE

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()  # just opened: nothing to check at its first checkout

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since < PING_IDLE_S and _quiet(dbapi_connection, idle):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dbapi_error as exc:
            raise sa.exc.DisconnectionError("connexion PostgreSQL perdue") from exc


def _quiet(dbapi_connection, idle) -> bool:
    """True when the psycopg connection is open, idle outside a transaction (`idle`), and has
    nothing waiting on its socket (a poll, no round trip)."""
    try:
        if dbapi_connection.closed or dbapi_connection.info.transaction_status != idle:
            return False
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # noqa: BLE001 - any doubt about the connection: the real check
        return False
