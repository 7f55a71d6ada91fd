"""Durable standalone appends: concurrent callers' entries merged into one commit.

    seq = append_durably(engine, entry)   # returns once the entry is committed (and fsync'd)

For events tied to no other write (a page view, a refused request): an entry that records an
action written in the same transaction must go through `log.append(conn, …)` in that
transaction instead, so that both commit or neither does.

Leader/follower group commit: a caller that finds no batch being written writes its own entry
at once (no added latency when alone); callers arriving meanwhile queue, and the first of them
then writes everything queued (at most `max_batch` entries) in one transaction with one commit,
and hands over to the next. The transaction is the one `log.append_many` describes (BEGIN
IMMEDIATE on SQLite, taken in this process's turn among the engine's writers — see
gateway.storage.engine.write_turn —; the head row locked FOR UPDATE on PostgreSQL; dense indexes,
no fork), run on a connection of its own through the DB-API directly with SQLAlchemy's bound
values (the rows are the ones `append_many` writes). Once the appender knows the head it last committed
(size and frontier), it writes from it: on PostgreSQL a batch below COPY_FROM goes in ONE
autocommit statement through libpq (head moved from that exact size and frontier, then the
rows: same lock order, same rows, committed and flushed before it returns), one round trip
instead of five; on SQLite the rows are made before the write lock is taken and the
transaction moves the head from that one without reading it. If another writer moved the head
meanwhile, nothing is written and the locking transaction runs. An entry check() refuses is refused
for its caller alone, before batching; an error while writing reaches every caller of that
batch, and the batch is rolled back as a whole.

Blocking: call it from threads (FastAPI runs plain `def` routes in a thread pool), never
inside an open write transaction of the same database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from gateway.audit import merkle
from gateway.audit.entry import MAX_ENTRY_BYTES, AuditEntry, EntryError, checked_length, encode, timestamp
from gateway.audit.log import (
    COPY_FROM,
    _INSERT_COLUMNS,
    AuditError,
    Libpq,
    _prepared_insert,
    append_many,
    as_sqlalchemy_error,
    insert_rows,
    leaf_rows,
    pg_microseconds,
    write_rows,
)
from gateway.storage.engine import write_turn

MAX_BATCH = 1000

_COLUMNS = ", ".join(_INSERT_COLUMNS)
_LOCK = {"sqlite": "SELECT size, frontier FROM audit_head WHERE id = 1",  # BEGIN IMMEDIATE holds the lock
         "postgresql": "SELECT size, frontier FROM audit_head WHERE id = 1 FOR UPDATE"}
_MOVE = {"sqlite": "UPDATE audit_head SET size = ?, frontier = ? WHERE id = 1 AND size = ?",
         "postgresql": "UPDATE audit_head SET size = %s, frontier = %s WHERE id = 1 AND size = %s"}


def _one_statement_sql(n: int) -> str:
    """PostgreSQL: the head moved from the (size, frontier) this connection last saw and n rows
    inserted, in one statement. The UPDATE locks the head row first (as SELECT … FOR UPDATE does)
    and the rows are inserted only if it matched: had another writer moved the head, nothing is
    written. Parameters $1…: new size, new frontier, old size, old frontier, then the rows."""
    rows = ", ".join("(" + ", ".join(f"${5 + 5 * k + c}" for c in range(5)) + ")" for k in range(n))
    return ("WITH head AS (UPDATE audit_head SET size = $1, frontier = $2"
            " WHERE id = 1 AND size = $3 AND frontier = $4 RETURNING size)"
            f" INSERT INTO audit_entries ({_COLUMNS}) SELECT {_COLUMNS} FROM head, (VALUES {rows}) AS v ({_COLUMNS})")


# Declared parameter types (OIDs int8, bytea, varchar, timestamptz) and formats (timestamptz and
# bytea binary, the rest text) of the one-statement writes, which go through libpq directly (see
# _OneStatement).
_HEAD_TYPES, _ROW_TYPES = (20, 17, 20, 17), (20, 1043, 1043, 1184, 17)
_HEAD_FORMATS, _ROW_FORMATS = (0, 1, 0, 1), (0, 0, 0, 1, 1)


class _OneStatement(Libpq):
    """PostgreSQL, the appender's connection: the one-statement writes through libpq, prepared
    once per connection and size, parameters already dumped: through psycopg's execute() a lone
    append took 86-92 µs of client CPU, 39-45 µs with the statement sent this way (same round,
    quiet machine). PQexecPrepared blocks without the GIL and ignores the connection's
    non-blocking mode; the connection is in autocommit and used by nobody else."""

    def __init__(self, dbapi):
        super().__init__(dbapi)
        self.ok = self.pq.ExecStatus.COMMAND_OK
        self.prepared: set[int] = set()

    def __call__(self, n: int, params: list[bytes]) -> int:
        """Rows inserted by the statement for n entries (0: the head had moved)."""
        name = b"relais_audit_append_%d" % n
        if n not in self.prepared:
            self.check(self.pgconn.prepare(name, _ONE_STATEMENT[n].encode(), _HEAD_TYPES + _ROW_TYPES * n), self.ok)
            self.prepared.add(n)
        return self.check(self.pgconn.exec_prepared(name, params, _HEAD_FORMATS + _ROW_FORMATS * n),
                          self.ok).command_tuples


_ONE_STATEMENT = {n: _one_statement_sql(n) for n in range(1, COPY_FROM)}


_SEQ_DIGITS = len(str(2**63 - 1))  # the longest leaf index


def _check_leaf(entry: AuditEntry) -> None:
    """check(), then refuse, before batching, what append_many would only find out while writing
    (and which would then fail the whole batch): a date-time without time zone, or a leaf that
    could exceed MAX_ENTRY_BYTES at some index. Entries far from the length limit are let through
    on a bound from the length of their texts, given by check()'s checked_length (a character
    takes at most 6 bytes in the leaf)."""
    length = checked_length(entry)
    if entry.at is not None:
        if not isinstance(entry.at, dt.datetime):
            raise EntryError("entrée d'audit : date-heure invalide")
        timestamp(entry.at)
    if 200 + 6 * (length + len(entry.refs)) <= MAX_ENTRY_BYTES:
        return
    at = entry.at or dt.datetime.now(dt.UTC)
    if len(encode(entry, 0, at)) + _SEQ_DIGITS - 1 > MAX_ENTRY_BYTES:
        raise EntryError(f"entrée d'audit trop longue (plus de {MAX_ENTRY_BYTES} octets)")


class _Waiter:
    __slots__ = ("entry", "done", "seq", "error", "lead")

    def __init__(self, entry: AuditEntry):
        self.entry = entry
        self.done = threading.Lock()
        self.done.acquire()  # released by whoever writes the entry (or hands over the lead)
        self.seq = -1
        self.error: BaseException | None = None
        self.lead = False


class Appender:
    """Group commit of standalone entries for one engine (see the module docstring)."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = weakref.ref(engine)  # the registry below must not keep engines alive
        self.max_batch = max_batch
        self._reset()
        self.batches = 0  # transactions committed (for tests and benchmarks)
        event.listen(engine, "engine_disposed", _on_dispose(weakref.ref(self)))
        _LIVE.add(self)

    def _reset(self) -> None:
        self._queue: list[_Waiter] = []
        self._queue_lock = threading.Lock()
        self._leading = False
        self._io = threading.Lock()  # the connection: the leader's, or close()'s
        self._connection = None  # SQLAlchemy's pool proxy, detached from the pool (ours alone)
        self._write: Callable[[Sequence[AuditEntry]], int] | None = None
        self._head: tuple[int, list[bytes]] | None = None  # (size, frontier) after our last commit

    @property
    def engine(self) -> Engine:
        engine = self._engine()
        if engine is None:
            raise AuditError("moteur de base de données fermé")
        return engine

    # ------------------------------------------------------------------ callers

    def append(self, entry: AuditEntry) -> int:
        """Leaf index of `entry`, once committed with the others of its batch."""
        _check_leaf(entry)  # a bad entry is refused here, for its caller alone
        with self._queue_lock:
            lead = not self._leading  # nobody writing: the queue is empty too
            self._leading = True
            if not lead:
                me = _Waiter(entry)
                self._queue.append(me)
        if lead:  # alone: written at once, as a batch of one, without a waiter of its own
            try:
                return self._write_batch([entry])
            finally:
                self._hand_over()
        me.done.acquire()  # written by a leader, or handed the lead
        if me.lead:
            self._lead(me)
        if me.error is not None:
            raise me.error
        return me.seq

    def _lead(self, me: _Waiter) -> None:
        with self._queue_lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        try:
            first = self._write_batch([w.entry for w in batch])
            for offset, waiter in enumerate(batch):
                waiter.seq = first + offset
        except BaseException as exc:  # every caller of the batch gets it; nothing was committed
            for waiter in batch:
                waiter.error = exc
        self._hand_over()
        for waiter in batch:
            if waiter is not me:
                waiter.done.release()

    def _write_batch(self, entries: list[AuditEntry]) -> int:
        """One batch in one commit on the appender's connection: the first leaf index."""
        with self._io:
            try:
                first = self._writer()(entries)
            except BaseException:
                self._discard()
                raise
            self.batches += 1
        return first

    def _hand_over(self) -> None:
        """After a batch: the next caller in line writes the next one, else nobody leads."""
        with self._queue_lock:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.done.release()
            else:
                self._leading = False

    # ------------------------------------------------------------------ connection

    def close(self) -> None:
        """Close the appender's connection (a later append opens another)."""
        with self._io:
            connection, self._connection, self._write = self._connection, None, None
            if connection is not None:
                connection.close()

    def _writer(self) -> Callable[[Sequence[AuditEntry]], int]:
        if self._write is None:
            backend = self.engine.dialect.name
            prepared = _prepared_insert(self.engine.dialect)
            if backend not in _LOCK or not prepared or isinstance(self.engine.pool, StaticPool):
                # in-memory SQLite (one shared connection) or an unknown setup: SQLAlchemy's path
                self._write = self._write_with_engine
            else:
                connection = self.engine.raw_connection()  # with the engine's connect settings
                connection.detach()  # ours alone; the pool opens another for others
                self._connection = connection
                dbapi = connection.dbapi_connection
                dialect = self.engine.dialect
                if backend == "postgresql":
                    dbapi.autocommit = True  # a one-statement write commits alone; the others BEGIN
                self._head = None
                one_statement = _OneStatement(dbapi) if backend == "postgresql" else None
                # SQLite: BEGIN IMMEDIATE in this process's turn among the engine's writers
                # (woken when the one before commits, not by SQLite's busy sleeps); PostgreSQL:
                # BEGIN (the connection is in autocommit, see _one_statement)
                turn = write_turn(self.engine, dbapi) if backend == "sqlite" else None
                begin = ((lambda _cursor: turn) if turn is not None
                         else _begin_immediate if backend == "sqlite" else _begin)

                def write_batch(entries: Sequence[AuditEntry]) -> int:
                    last, self._head = self._head, None  # unknown until this batch commits
                    try:
                        if last is not None and backend == "sqlite":
                            self._head = _from_known_head(dbapi, begin, prepared, entries, *last)
                            if self._head is not None:
                                return last[0]
                        elif last is not None and len(entries) < COPY_FROM:
                            self._head = _one_statement(one_statement, prepared, entries, *last)
                            if self._head is not None:
                                return last[0]
                        first, frontier = _write(dbapi, begin, backend, prepared, entries)
                        self._head = (first + len(entries), frontier)
                        return first
                    except dialect.loaded_dbapi.Error as error:
                        raise as_sqlalchemy_error(dialect, error) from error

                self._write = write_batch
        return self._write

    def _write_with_engine(self, entries: Sequence[AuditEntry]) -> int:
        from gateway.audit.checkpoint import write_transaction

        with write_transaction(self.engine) as conn:
            return append_many(conn, entries)[0]

    def _discard(self) -> None:
        """After a failed batch the connection may be unusable: the next batch opens another."""
        connection, self._connection, self._write = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already broken; the batch's own error is what matters
                pass


def _one_statement(run: _OneStatement, prepared, entries: Sequence[AuditEntry], size: int,
                   frontier: list[bytes]) -> tuple[int, list[bytes]] | None:
    """PostgreSQL, a batch below COPY_FROM, the head as this connection last committed it: the
    batch in one statement run alone in autocommit, i.e. its own transaction, committed (WAL
    flushed) before it returns — one round trip instead of five. The head after it, or None
    when another writer had moved the head (nothing written: use `_write`). The values are the
    ones psycopg would send: text, `at` and bytea in binary."""
    old = merkle.pack(frontier)
    frontier = list(frontier)
    params = [b"%d" % (size + len(entries)), b"", b"%d" % size, old]
    for seq, tenant_id, action, at, body in leaf_rows(entries, size, frontier, prepared, wrap_body=False):
        # tenant and action are ASCII tokens (check()); `at` is UTCDateTime's aware UTC value
        params += (b"%d" % seq, tenant_id.encode("ascii"), action.encode("ascii"),
                   # timestamptz's binary form, int64 big-endian (formatting the text form took
                   # about 14 % of a lone append's CPU)
                   pg_microseconds(at).to_bytes(8, "big", signed=True), body)
    params[1] = merkle.pack(frontier)
    count = run(len(entries), params)
    if count == len(entries):
        return size + len(entries), frontier
    if count != 0:  # cannot happen: the rows go in only with the head's move
        raise AuditError("tête du journal d'audit modifiée pendant l'ajout")
    return None


_MOVE_FROM = "UPDATE audit_head SET size = ?, frontier = ? WHERE id = 1 AND size = ? AND frontier = ?"


def _from_known_head(dbapi, begin, prepared, entries: Sequence[AuditEntry], size: int,
                     frontier: list[bytes]) -> tuple[int, list[bytes]] | None:
    """SQLite, the head as this connection last committed it: the rows made from it before the
    write lock is taken, then in one transaction the head moved only if it is still exactly
    that one (size and frontier), the rows, the commit. The head after it, or None when another
    writer had moved the head (rolled back, nothing written: use `_write`). Two statements fewer
    than `_write` (no read of the head) and less time under the database's write lock."""
    new = list(frontier)
    rows = list(leaf_rows(entries, size, new, prepared))
    cursor = dbapi.cursor()
    try:
        with begin(cursor):
            try:
                cursor.execute(_MOVE_FROM, (size + len(entries), merkle.pack(new), size, merkle.pack(frontier)))
                if cursor.rowcount != 1:
                    dbapi.rollback()
                    return None
                insert_rows(dbapi, "sqlite", rows, cursor)
                dbapi.commit()
            except BaseException:
                _rollback(dbapi)
                raise
    finally:
        cursor.close()
    return size + len(entries), new


def _write(dbapi, begin, backend: str, prepared, entries: Sequence[AuditEntry]) -> tuple[int, list[bytes]]:
    """One batch in one transaction on the appender's own DB-API connection: the lock, rows and
    head move of `log.append_many`, then the commit. The first index and the frontier after."""
    cursor = dbapi.cursor()
    try:
        with begin(cursor):
            try:
                size, blob = cursor.execute(_LOCK[backend]).fetchone()
                frontier = merkle.unpack(blob)
                write_rows(dbapi, backend, entries, size, frontier, prepared)
                cursor.execute(_MOVE[backend], (size + len(entries), merkle.pack(frontier), size))
                if cursor.rowcount != 1:
                    raise AuditError("tête du journal d'audit modifiée pendant l'ajout")
                dbapi.commit()  # commits the BEGIN (sqlite3 without isolation level; psycopg in autocommit)
            except BaseException:
                _rollback(dbapi)
                raise
    finally:
        cursor.close()
    return size, frontier


@contextlib.contextmanager
def _begin(cursor) -> Iterator[None]:
    """PostgreSQL's `begin`: BEGIN on the autocommit connection (the lock is the head's
    SELECT … FOR UPDATE)."""
    cursor.execute("BEGIN")
    yield


@contextlib.contextmanager
def _begin_immediate(cursor) -> Iterator[None]:
    """SQLite's `begin` on an engine not made by make_engine (no write turns): BEGIN IMMEDIATE,
    waiting in SQLite's busy handler."""
    cursor.execute("BEGIN IMMEDIATE")
    yield


def _rollback(dbapi) -> None:
    try:
        dbapi.rollback()
    except Exception:  # noqa: BLE001 - a broken connection: discarded by the caller; keep the first error
        pass


def _on_dispose(appender_ref):
    def close(_engine) -> None:  # Store.close() disposes the engine: let the database go
        appender = appender_ref()
        if appender is not None:
            appender.close()

    return close


# A child process (fork) must not use, nor close, the connection it inherited: the parent's
# session would end. It keeps the object (unused) and opens its own on first append.
_LIVE: weakref.WeakSet[Appender] = weakref.WeakSet()
_INHERITED: list = []


def _after_fork_in_child() -> None:
    global _APPENDERS_LOCK
    _APPENDERS_LOCK = threading.Lock()  # another thread may have held it at the fork
    for appender in list(_LIVE):
        if appender._connection is not None:
            _INHERITED.append(appender._connection)
        appender._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)

_APPENDERS: weakref.WeakKeyDictionary[Engine, Appender] = weakref.WeakKeyDictionary()
_APPENDERS_LOCK = threading.Lock()


def appender_for(engine: Engine) -> Appender:
    """The process's appender for `engine` (created on first use)."""
    appender = _APPENDERS.get(engine)
    if appender is None:
        with _APPENDERS_LOCK:
            appender = _APPENDERS.get(engine)
            if appender is None:
                appender = _APPENDERS[engine] = Appender(engine)
    return appender


def append_durably(engine: Engine, entry: AuditEntry) -> int:
    """Append a standalone entry in a transaction of its own, shared with concurrent callers'
    entries (one commit for all); returns its leaf index once it is durably committed."""
    return appender_for(engine).append(entry)
