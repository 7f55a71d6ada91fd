"""Group commit's batch paths write exactly what the entry-at-a-time ones wrote.

- encode_many: the leaf bytes (or the error) of encode_checked for each entry, whatever objects
  the entries share or not (its cache keys on identical objects).
- leaf_rows by chunks: the rows, the frontier and the first error of a verbatim copy of the
  entry-at-a-time generator it replaced.
- copy_entries (PostgreSQL): the COPY data written here is byte for byte what the server gives
  back for the stored rows (COPY … TO STDOUT, binary), and the rows are those psycopg's
  write_row stores (copy_rows), odd times and values of other types included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.audit import log, merkle
from gateway.audit.checkpoint import write_transaction
from gateway.audit.entry import AuditEntry, EntryError, check, encode_checked, encode_many, timestamp
from gateway.audit.tables import audit_entries
from tests.test_audit_speed import ENTRIES, Sub, outcome

# ------------------------------------------------------------ encode_many


def _one_at_a_time(entries, seq, stamps):
    return [encode_checked(entry, seq + i, stamp) for i, (entry, stamp) in enumerate(zip(entries, stamps))]


@st.composite
def runs(draw):
    """Entries sharing objects as a batch does (copies of one with other refs / subject), others
    with equal but distinct strings, and wild ones; stamps mostly one shared object."""
    base = draw(st.lists(ENTRIES, min_size=1, max_size=4))
    entries = []
    for _ in range(draw(st.integers(1, 12))):
        entry = draw(st.sampled_from(base))
        kind = draw(st.sampled_from(["same", "refs", "subject", "copies", "tenant"]))
        if kind == "refs":
            entry = dataclasses.replace(entry, refs=draw(st.dictionaries(st.sampled_from("abc"), st.text(max_size=3))))
        elif kind == "subject":
            entry = dataclasses.replace(entry, subject=draw(st.none() | st.just("ps1-" + "1" * 32)))
        elif kind == "copies":  # equal values, other objects
            entry = dataclasses.replace(entry, **{name: "".join(list(value)) for name in ("tenant_id", "action", "actor")
                                                 if type(value := getattr(entry, name)) is str})
        elif kind == "tenant":
            entry = dataclasses.replace(entry, tenant_id=draw(st.sampled_from(["t1", "t2", Sub("t1"), 5])))
        entries.append(entry)
    shared = "2026-11-27T04:20:00.000001Z"
    stamps = [draw(st.sampled_from([shared, shared, "".join(list(shared)), "0999-01-01T00:00:00.000000Z"]))
              for _ in entries]
    return entries, stamps


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(runs(), st.integers(0, 2**53) | st.just(2**70))
@example(([AuditEntry("t1", "worker", "a.b", "ok", refs={"k": "v" * 1000 * (i % 2) * 9}) for i in range(4)],
          ["x"] * 4), 0)
def test_encode_many_gives_each_entrys_bytes_or_its_error(run, seq):
    entries, stamps = run
    assert outcome(encode_many, entries, seq, stamps) == outcome(_one_at_a_time, entries, seq, stamps)


def test_encode_many_reuses_what_entries_share_and_the_comparison_can_fail(monkeypatch):
    entries = [AuditEntry("t1", "worker", "a.b", "ok", subject="ps1-" + "0" * 32, system="dmp", refs={"n": str(i)})
               for i in range(5)]
    stamps = [timestamp(dt.datetime(2026, 11, 27, tzinfo=dt.UTC))] * 5
    expected = _one_at_a_time(entries, 3, stamps)
    assert encode_many(entries, 3, stamps) == expected
    # a stale cached head (the cache keyed on values rather than objects would give this)
    wrong = [body.replace(b'"actor":"worker"', b'"actor":"cli"') for body in expected]
    changed = entries[:2] + [dataclasses.replace(e, actor="cli") for e in entries[2:]]
    assert encode_many(changed, 3, stamps)[2:] == wrong[2:] != expected[2:]


# ------------------------------------------------------------ leaf_rows by chunks


def reference_leaf_rows(entries, size, frontier, prepared, now=None, wrap_body=True):
    """Verbatim copy of leaf_rows as it was (one entry at a time)."""
    bind_at = prepared and prepared[2]
    bind_body = wrap_body and prepared and prepared[3]
    last_at = stamp = stored_at = None
    if now is None:
        now = last_at = dt.datetime.now(dt.UTC)
        stamp, stored_at = log.now_stamps(now, prepared)
    for offset, entry in enumerate(entries):
        seq = size + offset
        at = entry.at or now
        if at is not last_at:
            last_at, stamp, stored_at = at, timestamp(at), at
            if bind_at:
                stored_at = bind_at(at)
        body = encode_checked(entry, seq, stamp)
        merkle.frontier_append(frontier, seq, merkle.leaf_hash(body))
        if bind_body:
            body = bind_body(body)
        yield seq, entry.tenant_id, entry.action, stored_at, body


NOW = dt.datetime(2026, 11, 27, 4, 20, 0, 1, tzinfo=dt.UTC)
TOO_LONG = {f"k{i}": "v" * 1000 for i in range(9)}


def _entry(i, **change):
    return dataclasses.replace(AuditEntry(f"t{i % 3}", "worker", "exchange.sent", "success", refs={"n": str(i)}),
                               **change)


def _plain(rows) -> list[tuple]:
    """Rows with the body's wrapper (psycopg's Binary compares by identity) as (type, bytes)."""
    return [(*row[:4], type(row[4]), bytes(getattr(row[4], "obj", row[4]))) for row in rows]


@pytest.mark.parametrize("case", ["plain", "odd-times", "naive-at", "long-then-naive", "naive-then-long", "bad-at"])
def test_leaf_rows_give_the_rows_frontier_and_first_error_of_one_entry_at_a_time(store, case):
    prepared = log._prepared_insert(store.engine.dialect)
    n = 2 * log.LEAF_CHUNK + 5
    times = [None, NOW, NOW.astimezone(dt.timezone(dt.timedelta(hours=-5))), dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
             dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), NOW.replace(microsecond=0)]
    entries = [_entry(i, at=times[i % len(times)] if case == "odd-times" else None) for i in range(n)]
    bad = {"naive-at": {70: {"at": NOW.replace(tzinfo=None)}},
           "long-then-naive": {66: {"refs": TOO_LONG}, 68: {"at": NOW.replace(tzinfo=None)}},
           "naive-then-long": {66: {"at": NOW.replace(tzinfo=None)}, 68: {"refs": TOO_LONG}},
           "bad-at": {3: {"at": "2026-11-27"}}}.get(case, {})
    for i, change in bad.items():
        entries[i] = dataclasses.replace(entries[i], **change)
    for size in (0, 5, 2**40 - 3):
        for wrap_body in (True, False):
            frontiers = [[bytes([b]) * 32 for b in range(bin(size).count("1"))] for _ in range(2)]
            new = outcome(lambda: _plain(log.leaf_rows(entries, size, frontiers[0], prepared, NOW, wrap_body)))
            old = outcome(lambda: _plain(reference_leaf_rows(entries, size, frontiers[1], prepared, NOW, wrap_body)))
            assert new == old and (new[0] == "ok") == (not bad)
            if new[0] == "ok":
                assert frontiers[0] == frontiers[1]
        # one entry at a time, as the Appender's lone appends are made (their own path in leaf_rows)
        for entry in entries[:8] + [entries[i] for i in bad]:
            frontiers = [[bytes([b]) * 32 for b in range(bin(size).count("1"))] for _ in range(2)]
            new = outcome(lambda: _plain(log.leaf_rows([entry], size, frontiers[0], prepared, NOW, wrap_body)))
            old = outcome(lambda: _plain(reference_leaf_rows([entry], size, frontiers[1], prepared, NOW, wrap_body)))
            assert new == old and frontiers[0] == frontiers[1]
    if case == "plain":  # the clock's time when none is given, one value for the batch as before
        rows = list(log.leaf_rows(entries, 0, [], prepared))
        assert all(row[3] is rows[0][3] for row in rows) and len(rows) == n
    if case == "odd-times":  # a lone entry with its own time: the clock does not matter
        for entry in entries[1:len(times)]:
            frontiers = [[], []]
            assert (_plain(log.leaf_rows([entry], 0, frontiers[0], prepared))
                    == _plain(reference_leaf_rows([entry], 0, frontiers[1], prepared))) and frontiers[0] == frontiers[1]


# ------------------------------------------------------------ copy_entries (PostgreSQL)


class OddTime(dt.datetime):
    pass


def _dump_table(dbapi) -> bytes:
    with dbapi.cursor() as cursor, cursor.copy(
            "COPY (SELECT seq, tenant_id, action, at, body FROM audit_entries ORDER BY seq) TO STDOUT (FORMAT BINARY)"
    ) as copy:
        return b"".join(bytes(data) for data in copy)


def _write(store, monkeypatch, entries, how) -> tuple[list[bytes], bytes, list]:
    """(the COPY data of each COPY statement copy_entries sent, the table as the server dumps it,
    rows read back); rolled back. `how`: "copy_entries" in an open transaction (as append_many
    calls it), "copy_entries-idle" on a connection with none yet, or "copy_rows"."""
    written = []
    real_send = log._Copies.send
    monkeypatch.setattr(log._Copies, "send", lambda self, data: (written.append(bytes(data)), real_send(self, data)))
    prepared = log._prepared_insert(store.engine.dialect)
    raw = store.engine.raw_connection()
    try:
        dbapi = raw.dbapi_connection
        frontier = []
        if how == "copy_entries":
            dbapi.execute("SELECT 1")  # the transaction begins
        if how.startswith("copy_entries"):
            log.copy_entries(dbapi, entries, 0, frontier, prepared)
        else:
            log.copy_rows(dbapi, log.leaf_rows(entries, 0, frontier, prepared, wrap_body=False))
        monkeypatch.undo()
        dumped = _dump_table(dbapi)
        with dbapi.cursor() as cursor:
            rows = cursor.execute("SELECT seq, tenant_id, action, at, body FROM audit_entries ORDER BY seq").fetchall()
        dbapi.rollback()
    finally:
        raw.close()
    return written, dumped, rows + [merkle.pack(frontier)]


def _tuples(data: bytes) -> bytes:
    """Binary COPY data without its header and trailer."""
    assert data.startswith(log._COPY_HEADER) and data.endswith(log._COPY_TRAILER)
    return data[len(log._COPY_HEADER):-len(log._COPY_TRAILER)]


TIMES = [NOW, NOW.replace(microsecond=0), NOW.replace(microsecond=999999),
         dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC), dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
         dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
         dt.datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=14))),
         dt.datetime(2026, 10, 25, 2, 30, 0, 7, tzinfo=dt.timezone(-dt.timedelta(hours=9, minutes=30))),
         dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]


@pytest.mark.parametrize("kind", ["usual", "odd-times", "other-types"])
@pytest.mark.parametrize("store", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_copy_entries_writes_the_bytes_the_server_gives_back_and_the_rows_write_row_stores(store, monkeypatch, kind):
    n = log.COPY_PART + log.LEAF_CHUNK + 7  # two COPY statements, three chunks
    entries = [_entry(i, at=None if kind == "usual" else TIMES[i % len(TIMES)]) for i in range(n)]
    if kind == "other-types":  # accepted by check(), dumped by psycopg's own dumpers
        entries[3] = dataclasses.replace(entries[3], tenant_id=Sub("t-sub"))
        entries[4] = dataclasses.replace(entries[4], action=Sub("a.sub"))
        entries[70] = dataclasses.replace(entries[70], at=OddTime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
        entries[71] = dataclasses.replace(entries[71], tenant_id="t" * 64)
    for entry in entries:
        check(entry)
    written, dumped, rows = _write(store, monkeypatch, entries, "copy_entries")
    # one COPY statement per COPY_PART rows, each whole; together the very bytes of the stored values
    assert [len(_tuples(data)) > 0 for data in written] == [True] * -(-n // log.COPY_PART) and len(written) > 1
    assert b"".join(map(_tuples, written)) == _tuples(dumped)
    if kind != "usual":  # the clock's `now` differs between two runs otherwise
        _, dumped_before, rows_before = _write(store, monkeypatch, entries, "copy_rows")
        assert dumped == dumped_before and rows == rows_before
        written_idle, dumped_idle, rows_idle = _write(store, monkeypatch, entries, "copy_entries-idle")
        assert written_idle == [] and dumped_idle == dumped and rows_idle == rows  # one COPY, by psycopg
    assert [row[0] for row in rows[:-1]] == list(range(n))


@pytest.mark.parametrize("store", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_copy_entries_comparison_can_fail(store, monkeypatch):
    entries = [_entry(i, at=NOW) for i in range(log.COPY_FROM)]
    written, dumped, _ = _write(store, monkeypatch, entries, "copy_entries")
    monkeypatch.setattr(log, "_PG_EPOCH", log._PG_EPOCH + dt.timedelta(microseconds=1))  # a wrong epoch: other bytes
    with pytest.raises(AssertionError):
        written_off, dumped_off, _ = _write(store, monkeypatch, entries, "copy_entries")
        assert b"".join(map(_tuples, written_off)) == _tuples(dumped_off) == _tuples(dumped)


@pytest.mark.parametrize("bad", ["first-part", "later-part"])
def test_a_batch_failing_midway_leaves_nothing_its_caller_could_commit(store, bad):
    """An entry that fails only once its rows are being made (a date-time without time zone
    passes check()). On PostgreSQL the COPY statements of the parts before it have already stored
    their rows: the transaction must be left aborted, so that even a caller that commits after the
    error stores none of the batch (its head row unmoved)."""
    entries = [_entry(i) for i in range(3 * log.COPY_PART)]
    at = 5 if bad == "first-part" else log.COPY_PART + log.LEAF_CHUNK + 3
    entries[at] = dataclasses.replace(entries[at], at=NOW.replace(tzinfo=None))
    with write_transaction(store.engine) as conn:
        log.append_many(conn, entries[:3])
    with store.engine.connect() as conn:
        conn.begin()
        with pytest.raises(EntryError, match="sans fuseau horaire"):
            log.append_many(conn, entries)
        conn.commit()  # a careless caller
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one() == 3
        assert log.head(conn)[0] == 3
    with write_transaction(store.engine) as conn:
        assert log.append_many(conn, entries[:2]) == [3, 4]


@pytest.mark.parametrize("store", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_later_part_refused_by_the_server_fails_the_whole_batch(store):
    """The server refuses the second COPY statement of a batch (a row already at one of its
    indexes): append_many raises SQLAlchemy's error for it, and nothing of the batch commits."""
    entries = [_entry(i) for i in range(3 * log.COPY_PART)]
    taken = log.COPY_PART + 9
    with store.engine.begin() as conn:  # a stray row, written around the log's head
        conn.execute(audit_entries.insert().values(seq=taken, tenant_id="t0", action="a.b", at=NOW, body=b"{}"))
    with store.engine.connect() as conn:
        conn.begin()
        with pytest.raises(sa.exc.IntegrityError, match="audit_entries"):
            log.append_many(conn, entries)
        conn.commit()  # a careless caller
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(audit_entries.c.seq)).scalars().all() == [taken]
        assert log.head(conn)[0] == 0


# ------------------------------------------------------------ check(): remembered pseudonyms


def test_accepted_subjects_are_remembered_and_others_still_checked(monkeypatch):
    from gateway.audit import entry as entry_module
    from tests.test_audit_speed import reference_check

    monkeypatch.setattr(entry_module, "_SUBJECTS", {})
    good = AuditEntry("t1", "worker", "exchange.sent", "success", subject="ps1-" + "0" * 32, refs={"k": "v"})
    assert outcome(check, good) == ("ok", None)
    assert list(entry_module._SUBJECTS) == ["ps1-" + "0" * 32]
    ran = []
    real = entry_module.PSEUDONYM
    monkeypatch.setattr(entry_module, "PSEUDONYM", type("P", (), {"fullmatch": lambda self, s: ran.append(s) or real.fullmatch(s)})())
    assert outcome(check, dataclasses.replace(good, subject="".join(list(good.subject)))) == ("ok", None)  # equal: remembered
    assert ran == []
    for bad in ("ps1-" + "0" * 31, "ps1-" + "A" * 32, Sub("ps1-" + "0" * 32), 7, "ps1-" + "0" * 32 + "\n"):
        entry = dataclasses.replace(good, subject=bad)
        assert outcome(check, entry) == outcome(reference_check, entry)
    assert outcome(check, dataclasses.replace(good, subject=Sub("ps1-" + "0" * 32)))[0] == "ok"  # the full checks' verdict
    assert "ps1-" + "0" * 31 not in entry_module._SUBJECTS and len(entry_module._SUBJECTS) == 1
    monkeypatch.setattr(entry_module, "_ACCEPTED_MAX", 2)
    for i in range(5):
        check(dataclasses.replace(good, subject=f"ps1-{i:032x}"))
    assert 1 <= len(entry_module._SUBJECTS) <= 2
