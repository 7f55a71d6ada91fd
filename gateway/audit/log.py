"""The write path: append entries inside the caller's transaction.

Sequencing without forks (consent_audit §4.5): the single `audit_head` row holds the tree
size and its Merkle frontier. `append_many` locks it (PostgreSQL: SELECT … FOR UPDATE;
SQLite: the caller's BEGIN IMMEDIATE already holds the database write lock), gives the next
leaf indexes, inserts the entries and writes the new size and frontier — all in the caller's
transaction. Concurrent appenders therefore queue on that row until the holder commits: the
indexes are dense, in commit order, and a rollback leaves neither an entry nor a hole.
O(log n) hashes per append (amortised O(1)); no read of older entries.

Call it last in a transaction, just before commit: the head row lock is held until commit, so
the shorter the rest, the more appends per second (and one lock order everywhere). An event
tied to no other write goes through gateway.audit.appender instead (`append_durably`), which
merges concurrent callers' entries into one such transaction and one commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import select
import struct
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from hashlib import sha256

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import merkle
from gateway.audit.entry import AuditEntry, check, encode_checked, encode_many, timestamp
from gateway.audit.tables import audit_entries, audit_head


class AuditError(RuntimeError):
    """The log refused an append or a checkpoint (French message, no personal data)."""


_LOCK_HEAD = (
    sa.select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1).with_for_update()
)
_READ_HEAD = sa.select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1)
_INSERT = sa.insert(audit_entries)
_INSERT_COLUMNS = ("seq", "tenant_id", "action", "at", "body")
# Per dialect: the INSERT's SQL in the driver's paramstyle and the columns' own bind processors,
# so that executemany gets the very parameters SQLAlchemy would have built, without its per-row work.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared_insert(dialect):
    prepared = _PREPARED.get(dialect)
    if prepared is None:
        compiled = _INSERT.values({name: sa.bindparam(name) for name in _INSERT_COLUMNS}).compile(dialect=dialect)
        positional = compiled.positional
        processors = {name: audit_entries.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                      for name in _INSERT_COLUMNS}
        if (getattr(dialect, "use_insertmanyvalues_wo_returning", False)
                or (tuple(compiled.positiontup) != _INSERT_COLUMNS if positional
                    else set(compiled.binds) != set(_INSERT_COLUMNS))
                or any(processors[name] is not None for name in ("seq", "tenant_id", "action"))):
            # psycopg2 batches into multi-row VALUES itself; an unexpected compilation, or values
            # that need converting (only `at` and `body` do today): SQLAlchemy's own path
            prepared = False
        else:
            body = processors["body"]
            if dialect.name == "sqlite" and body is not None and type(body(b"")) is memoryview:
                # sqlite3 binds bytes as the BLOB it binds sqlite3.Binary (a memoryview) as, and a
                # memoryview is two more objects for the garbage collector to track per row
                body = None
            prepared = (compiled.string, positional, processors["at"], body,
                        _stored_at_kind(dialect, processors["at"]))
        _PREPARED[dialect] = prepared
    return prepared


_MOVE_HEAD = (
    sa.update(audit_head)
    .where(audit_head.c.id == 1, audit_head.c.size == sa.bindparam("b_old"))
    .values(size=sa.bindparam("b_size"), frontier=sa.bindparam("b_frontier"))
)


def append(conn: Connection, entry: AuditEntry) -> int:
    """Append one entry in `conn`'s open transaction; returns its leaf index."""
    return append_many(conn, (entry,))[0]


def append_many(conn: Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Append entries in order in `conn`'s open transaction (group commit); their indexes."""
    if not conn.in_transaction():
        raise AuditError("ajout au journal d'audit hors transaction : il doit être atomique avec l'action")
    for entry in entries:
        check(entry)
    if not entries:
        return []
    size, blob = conn.execute(_LOCK_HEAD).one()
    frontier = merkle.unpack(blob)
    prepared = _prepared_insert(conn.dialect)
    backend = conn.dialect.name
    if prepared and (backend == "sqlite" or (backend == "postgresql" and len(entries) >= COPY_FROM)):
        # on the driver, same connection, same transaction: multi-row INSERTs on SQLite, COPY on
        # PostgreSQL (the server stores the rows while the next ones are hashed)
        try:
            write_rows(conn.connection.dbapi_connection, backend, entries, size, frontier, prepared)
        except conn.dialect.loaded_dbapi.Error as error:
            raise as_sqlalchemy_error(conn.dialect, error) from error
    elif prepared:
        # same connection, same transaction: one driver executemany of already-bound values
        rows = list(leaf_rows(entries, size, frontier, prepared))
        if not prepared[1]:
            rows = [dict(zip(_INSERT_COLUMNS, row)) for row in rows]
        conn.exec_driver_sql(prepared[0], rows)
    else:
        rows = [dict(zip(_INSERT_COLUMNS, row)) for row in leaf_rows(entries, size, frontier, False)]
        conn.execute(_INSERT, rows)
    moved = conn.execute(
        _MOVE_HEAD, {"b_old": size, "b_size": size + len(entries), "b_frontier": merkle.pack(frontier)}
    )
    if moved.rowcount != 1:  # cannot happen under the lock: never write a forked head
        raise AuditError("tête du journal d'audit modifiée pendant l'ajout")
    return list(range(size, size + len(entries)))


COPY_FROM = 16  # PostgreSQL: batches of at least this many entries go through COPY
COPY_SQL = "COPY audit_entries (" + ", ".join(_INSERT_COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ("int8", "varchar", "varchar", "timestamptz", "bytea")  # audit_entries' columns on PostgreSQL


SQLITE_ROWS = 100  # rows per multi-row INSERT on SQLite (500 variables: under every build's limit)
_ROW = {"sqlite": "(?, ?, ?, ?, ?)", "postgresql": "(%s, %s, %s, %s, %s)"}
_DRIVER_INSERT = {backend: f"INSERT INTO audit_entries ({', '.join(_INSERT_COLUMNS)}) VALUES {row}"
                  for backend, row in _ROW.items()}
_SQLITE_INSERT_MANY = _DRIVER_INSERT["sqlite"] + f", {_ROW['sqlite']}" * (SQLITE_ROWS - 1)


def write_rows(dbapi, backend: str, entries: Sequence[AuditEntry], size: int, frontier: list[bytes],
               prepared) -> None:
    """The rows of checked `entries` from leaf index `size` (the frontier moved over them, in
    place) through the DB-API connection, in its open transaction: COPY on PostgreSQL from
    COPY_FROM entries; on SQLite SQLITE_ROWS rows per INSERT (about a fifth less of the driver's
    time per row than one execution per row); else one execution per row."""
    if backend == "postgresql" and len(entries) >= COPY_FROM:
        copy_entries(dbapi, entries, size, frontier, prepared)
        return
    insert_rows(dbapi, backend, list(leaf_rows(entries, size, frontier, prepared)))


def insert_rows(dbapi, backend: str, rows: list[tuple], cursor=None) -> None:
    """Rows of `leaf_rows` (bound) through the DB-API connection, in its open transaction:
    SQLITE_ROWS rows per INSERT on SQLite, else one execution per row; on `cursor` if given."""
    insert = _DRIVER_INSERT[backend]
    own = cursor is None
    if own:
        cursor = dbapi.cursor()
    try:
        whole = len(rows) - len(rows) % SQLITE_ROWS if backend == "sqlite" else 0
        for start in range(0, whole, SQLITE_ROWS):
            cursor.execute(_SQLITE_INSERT_MANY, [value for row in rows[start:start + SQLITE_ROWS] for value in row])
        if len(rows) - whole == 1:
            cursor.execute(insert, rows[-1])
        elif len(rows) > whole:
            cursor.executemany(insert, rows[whole:])
    finally:
        if own:
            cursor.close()


def leaf_rows(entries: Sequence[AuditEntry], size: int, frontier: list[bytes], prepared,
              now: dt.datetime | None = None, wrap_body: bool = True) -> Iterable[tuple]:
    """(seq, tenant_id, action, at, body) of checked entries from leaf index `size`, with the
    frontier moved over each (in place; LEAF_CHUNK entries at a time). With `prepared` (see
    _prepared_insert), `at` and `body` are bound as SQLAlchemy would bind them (`wrap_body=False`:
    body stays bytes)."""
    if len(entries) == 1:  # a lone append (the Appender's usual batch): one row, made at once
        return [leaf_row(entries[0], size, frontier, prepared, now, wrap_body)]
    return _chunked_rows(entries, size, frontier, prepared, now, wrap_body)


def _chunked_rows(entries: Sequence[AuditEntry], size: int, frontier: list[bytes], prepared,
                  now: dt.datetime | None, wrap_body: bool) -> Iterator[tuple]:
    """`leaf_rows` of several entries, made by `_leaf_chunks`."""
    seq = size
    for chunk, stored, bodies in _leaf_chunks(entries, size, frontier, prepared, now, wrap_body):
        for entry, stored_at, body in zip(chunk, stored, bodies):
            yield seq, entry.tenant_id, entry.action, stored_at, body
            seq += 1


def leaf_row(entry: AuditEntry, size: int, frontier: list[bytes], prepared, now: dt.datetime | None = None,
             wrap_body: bool = True) -> tuple:
    """The row `leaf_rows` makes of one entry."""
    at = entry.at or now
    if at is None:  # the clock's time (the usual case)
        stamp, stored_at = clock_stamps(prepared)
    else:
        stamp, stored_at = timestamp(at), (prepared[2](at) if prepared and prepared[2] else at)
    body = encode_checked(entry, size, stamp)
    merkle.frontier_append(frontier, size, merkle.leaf_hash(body))
    bind_body = wrap_body and prepared and prepared[3]
    return size, entry.tenant_id, entry.action, stored_at, bind_body(body) if bind_body else body


LEAF_CHUNK = 64  # entries made at a time (COPY_PART is a multiple of it)


def _leaf_chunks(entries: Sequence[AuditEntry], size: int, frontier: list[bytes], prepared,
                 now: dt.datetime | None = None, wrap_body: bool = True) -> Iterator[tuple[Sequence, list, list]]:
    """`leaf_rows` by runs of up to LEAF_CHUNK entries: (entries, `at` as bound, bodies), the
    frontier moved over them. An entry whose `at` fails (no time zone…) ends the entries before
    it first, then raises: the same error, at the same entry, as one entry at a time."""
    bind_at = prepared and prepared[2]
    bind_body = wrap_body and prepared and prepared[3]  # the DB-API Binary wrapper SQLAlchemy would apply
    last_at = stamp = stored_at = None
    if now is None:  # the clock's UTC time, formatted at once (most batches share it)
        now = last_at = dt.datetime.now(dt.UTC)
        stamp, stored_at = now_stamps(now, prepared)
    pop, push = frontier.pop, frontier.append
    seq = size
    for start in range(0, len(entries), LEAF_CHUNK):
        chunk = entries[start:start + LEAF_CHUNK]
        stamps, stored = [], []
        failed = None
        for entry in chunk:
            at = entry.at or now
            if at is not last_at:  # a batch mostly shares `now`: format and convert it once
                try:
                    stamp_, stored_at_ = timestamp(at), at
                    if bind_at:
                        stored_at_ = bind_at(at)  # UTCDateTime's conversion, exactly as SQLAlchemy applies it
                except Exception as error:  # noqa: BLE001 - raised below, after the entries before it
                    failed = error
                    chunk = chunk[:len(stamps)]
                    break
                last_at, stamp, stored_at = at, stamp_, stored_at_
            stamps.append(stamp)
            stored.append(stored_at)
        bodies = encode_many(chunk, seq, stamps)
        for body in bodies:  # merkle.frontier_append(frontier, seq, merkle.leaf_hash(body)), inlined
            node = sha256(b"\x00" + body).digest()  # RFC 9162 §2.1.1
            level = seq
            while level & 1:
                node = sha256(b"\x01" + pop() + node).digest()
                level >>= 1
            push(node)
            seq += 1
        if bind_body:
            bodies = [bind_body(body) for body in bodies]
        if chunk:
            yield chunk, stored, bodies
        if failed is not None:
            raise failed


def now_stamps(now: dt.datetime, prepared) -> tuple[str, object]:
    """(timestamp(now), `at` as bound) for a UTC datetime of the clock, from one isoformat()
    instead of strftime and SQLAlchemy's conversions (~6 µs of a lone append on SQLite): the
    same "YYYY-MM-DDTHH:MM:SS.ffffffZ" for years from 1000 (strftime writes %Y unpadded below),
    SQLite's stored text is its DATETIME format of the naive UTC time, and PostgreSQL binds
    the UTC datetime itself. Anything else: the general conversions."""
    kind = prepared[4] if prepared else None
    if now.tzinfo is not dt.UTC or now.year < 1000 or kind is None:
        return timestamp(now), (prepared[2](now) if prepared and prepared[2] else now)
    iso = now.isoformat(timespec="microseconds")  # YYYY-MM-DDTHH:MM:SS.ffffff+00:00
    return iso[:26] + "Z", (iso[:10] + " " + iso[11:26] if kind == "text" else now)


_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The clock's current second: (Unix second, "YYYY-MM-DDTHH:MM:SS", SQLite's "YYYY-MM-DD HH:MM:SS",
# (year, month, day, hour, minute, second)). Replaced as a whole (one assignment), so threads
# never see a mix.
_SECOND: tuple = (None, "", "", None)


def clock_stamps(prepared, clock=time.time_ns) -> tuple[str, object]:
    """now_stamps() of the clock's time (datetime.now() reads the same clock, to the µs) from one
    time_ns(): the date and time to the second are formatted once per second, not by
    datetime.now() and isoformat() for every entry (~2 µs of a lone append)."""
    global _SECOND
    us = clock() // 1000
    if not prepared or prepared[4] is None or us < 0:
        return now_stamps(_UNIX_EPOCH + dt.timedelta(microseconds=us), prepared)
    second, micro = divmod(us, 1_000_000)
    current = _SECOND
    if current[0] != second:
        at = _UNIX_EPOCH + dt.timedelta(seconds=second)
        iso = at.isoformat()  # YYYY-MM-DDTHH:MM:SS+00:00 (years from 1970: four digits)
        fields = (at.year, at.month, at.day, at.hour, at.minute, at.second)
        current = _SECOND = (second, iso[:19], iso[:10] + " " + iso[11:19], fields)
    if prepared[4] == "text":
        return f"{current[1]}.{micro:06d}Z", f"{current[2]}.{micro:06d}"
    return f"{current[1]}.{micro:06d}Z", dt.datetime(*current[3], micro, dt.UTC)  # a third of replace()'s cost


def _stored_at_kind(dialect, bind_at) -> str | None:
    """How `now_stamps` may bind a UTC `at` on this dialect: "text" (SQLite's DATETIME text),
    "datetime" (as it is), or None (unknown: SQLAlchemy's conversion). Checked on samples."""
    samples = [dt.datetime(2026, 11, 27, 0, 5, 9, 7, tzinfo=dt.UTC), dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
               dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]
    bound = [bind_at(at) if bind_at else at for at in samples]
    if all(type(b) is str and b == f"{at:%Y-%m-%d %H:%M:%S.%f}" for at, b in zip(samples, bound)):
        return "text" if dialect.name == "sqlite" else None
    if all(type(b) is dt.datetime and b == at and b.utcoffset() == dt.timedelta(0) for at, b in zip(samples, bound)):
        return "datetime"
    return None


def as_sqlalchemy_error(dialect, error: Exception) -> sa.exc.DBAPIError:
    """A driver error met outside SQLAlchemy's execute, as SQLAlchemy would raise it (its type,
    parameters hidden)."""
    return sa.exc.DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error, hide_parameters=True,
                                      dialect=dialect)


def copy_rows(dbapi_connection, rows: Iterable[tuple]) -> None:
    """COPY rows of `leaf_rows(..., wrap_body=False)` into audit_entries (psycopg 3, binary
    format: psycopg's own dumpers, as for the INSERT's parameters), in the open transaction."""
    with dbapi_connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)


# PostgreSQL's binary COPY format (COPY, "Binary Format"): header, per tuple an int16 field count
# then per field an int32 length and the value's binary form, trailer -1
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_TUPLE_SEQ = struct.Struct("!hiq").pack  # 5 fields, then seq: int8 (8 bytes, big-endian)
_LENGTH = struct.Struct("!i").pack
_FIELDS = struct.Struct("!h")
_NULL = _LENGTH(-1)
_TIMESTAMPTZ = struct.Struct("!iq").pack  # 8 bytes: µs since 2000-01-01 00:00 UTC
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def pg_microseconds(at: dt.datetime) -> int:
    """timestamptz's binary value of an aware `at`: µs since 2000-01-01 00:00 UTC, from the
    timedelta's parts as psycopg's DatetimeBinaryDumper computes it (exact integers)."""
    delta = at - _PG_EPOCH
    return delta.microseconds + 1_000_000 * (86_400 * delta.days + delta.seconds)


_INT8_MAX = 2**63 - 1


COPY_PART = 128  # rows per COPY statement of a batch (see copy_entries; 128 measured against 64, 256, 500, 1,000)


def copy_entries(dbapi_connection, entries: Sequence[AuditEntry], size: int, frontier: list[bytes],
                 prepared) -> None:
    """`copy_rows(dbapi_connection, leaf_rows(entries, size, frontier, prepared, wrap_body=False))`
    with the COPY data made here instead of by psycopg's write_row per row: the same bytes as
    psycopg's binary dumpers for these columns' usual values (int, str in UTF-8, aware datetime,
    bytes); any other value is dumped by psycopg.

    The rows go in COPY statements of COPY_PART rows, each part made while the server stores the
    one before: PostgreSQL stores a binary COPY's rows only at its end (heap_multi_insert buffers
    up to 1,000 tuples; its 64 kB limit counts text input lines only, copyfrom.c), so one COPY of a
    whole batch left the server's heap and index work after the client's. Within the caller's
    transaction only (else one COPY); an error after a part was stored aborts that transaction
    with a failed COPY, as an error within one COPY does, so no part of a batch can commit alone."""
    copies = _Copies(dbapi_connection)
    if (type(size) is not int or not 0 <= size <= _INT8_MAX - len(entries) or copies.encoding != "utf-8"
            or not copies.in_transaction()):
        copy_rows(dbapi_connection, leaf_rows(entries, size, frontier, prepared, wrap_body=False))
        return
    parts = _copy_parts(dbapi_connection, entries, size, frontier, prepared)
    data = next(parts, None)
    while data is not None:
        copies.start()
        copies.send(data)
        copies.end()
        try:
            data = next(parts, None)  # made while the server stores the part just sent
        except BaseException:
            with contextlib.suppress(Exception):
                copies.result()
                copies.start()
                copies.end(failure=b"relais: audit batch abandoned")  # the transaction is aborted
                copies.result()
            raise
        copies.result()


def _copy_parts(dbapi_connection, entries: Sequence[AuditEntry], size: int, frontier: list[bytes],
                prepared) -> Iterator[bytes]:
    """The COPY data (header, tuples, trailer) of COPY_PART rows at a time."""
    general = None  # psycopg's dumpers of these columns, for a value of another type
    seq = size
    last_tenant = last_action = last_at = None
    names = at_value = b""
    parts = [_COPY_HEADER]
    for chunk, stored, bodies in _leaf_chunks(entries, size, frontier, prepared, wrap_body=False):
        for entry, at, body in zip(chunk, stored, bodies):
            tenant, action = entry.tenant_id, entry.action
            if tenant is not last_tenant or action is not last_action or at is not last_at:
                last_tenant = last_action = last_at = None
                if type(tenant) is str and type(action) is str and type(at) is dt.datetime and at.tzinfo is not None:
                    tenant_bytes, action_bytes = tenant.encode(), action.encode()
                    names = _LENGTH(len(tenant_bytes)) + tenant_bytes + _LENGTH(len(action_bytes)) + action_bytes
                    at_value = _TIMESTAMPTZ(8, pg_microseconds(at))
                    last_tenant, last_action, last_at = tenant, action, at
            if last_at is None or type(body) is not bytes:
                if general is None:
                    general = _psycopg_tuple(dbapi_connection)
                parts.append(general((seq, tenant, action, at, body)))
            else:
                parts += (_TUPLE_SEQ(5, 8, seq), names, at_value, _LENGTH(len(body)), body)
            seq += 1
            if (seq - size) % COPY_PART == 0:
                parts.append(_COPY_TRAILER)
                yield b"".join(parts)
                parts = [_COPY_HEADER]
    if len(parts) > 1:
        parts.append(_COPY_TRAILER)
        yield b"".join(parts)


class Libpq:
    """psycopg's libpq connection (its documented `pgconn`), used directly where psycopg's own
    calls cost too much; a result that failed is raised as psycopg raises it."""

    def __init__(self, dbapi_connection):
        from psycopg import errors, pq  # the PostgreSQL driver, only where it is used

        self.dbapi, self.pgconn, self.encoding = dbapi_connection, dbapi_connection.pgconn, dbapi_connection.info.encoding
        self.errors, self.pq = errors, pq

    def check(self, result, status):
        """`result` if its status is `status`, else its error raised."""
        if result.status != status:
            raise self.errors.error_from_result(result, encoding=self.encoding)
        return result


class _Copies(Libpq):
    """COPY statements, one at a time: started by PQexec (it blocks without the GIL), then data
    and end sent and the result read waiting on the socket, as psycopg does (its connections are
    non-blocking, and PQgetResult would wait holding the GIL)."""

    def in_transaction(self) -> bool:
        return self.dbapi.info.transaction_status == self.pq.TransactionStatus.INTRANS

    def start(self) -> None:
        self.check(self.pgconn.exec_(_COPY_SQL_BYTES), self.pq.ExecStatus.COPY_IN)

    def send(self, data: bytes) -> None:
        while not self.pgconn.put_copy_data(data):
            self._wait(select.POLLOUT)
        self._flush()

    def end(self, failure: bytes | None = None) -> None:
        while not self.pgconn.put_copy_end(failure):
            self._wait(select.POLLOUT)
        self._flush()

    def result(self) -> None:
        """The COPY's result; its error raised as psycopg raises it."""
        error = None
        while True:
            self.pgconn.consume_input()
            while self.pgconn.is_busy():
                self._wait(select.POLLIN)
                self.pgconn.consume_input()
            result = self.pgconn.get_result()
            if result is None:
                break
            if result.status != self.pq.ExecStatus.COMMAND_OK and error is None:
                error = self.errors.error_from_result(result, encoding=self.encoding)
        if error is not None:
            raise error

    def _flush(self) -> None:
        while self.pgconn.flush():
            self._wait(select.POLLOUT)

    def _wait(self, events: int) -> None:
        poller = select.poll()
        poller.register(self.pgconn.socket, events)
        poller.poll()


_COPY_SQL_BYTES = COPY_SQL.encode()


def _psycopg_tuple(context):
    """row -> the COPY tuple psycopg's write_row writes for it after `set_types(COPY_TYPES)`
    (`context`: the connection or a cursor, for its adapters)."""
    from psycopg.adapt import PyFormat, Transformer
    from psycopg.pq import Format

    transformer = Transformer.from_context(context)
    transformer.set_dumper_types([context.adapters.types[name].oid for name in COPY_TYPES], Format.BINARY)
    formats = [PyFormat.BINARY] * len(COPY_TYPES)

    def dump(row: tuple) -> bytes:
        return _FIELDS.pack(len(row)) + b"".join(
            _NULL if value is None else _LENGTH(len(value)) + bytes(value)
            for value in transformer.dump_sequence(row, formats))

    return dump


def head(conn: Connection) -> tuple[int, bytes]:
    """(size, root) of the tree as this connection sees it (committed entries only)."""
    size, blob = conn.execute(_READ_HEAD).one()
    return size, merkle.frontier_root(merkle.unpack(blob))


def read_bodies(conn: Connection, start: int, stop: int) -> list[bytes]:
    """Leaf bytes of entries [start, stop), in order."""
    rows = conn.execute(
        sa.select(audit_entries.c.seq, audit_entries.c.body)
        .where(audit_entries.c.seq >= start, audit_entries.c.seq < stop)
        .order_by(audit_entries.c.seq)
    ).all()
    if len(rows) != stop - start or (rows and (rows[0].seq != start or rows[-1].seq != stop - 1)):
        raise AuditError(f"entrées d'audit manquantes entre {start} et {stop - 1}")
    return [bytes(r.body) for r in rows]
