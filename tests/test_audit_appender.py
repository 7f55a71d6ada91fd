"""Standalone appends through the Appender: durable on return, concurrent callers merged into one
commit without losing the log's guarantees (dense indexes, one tree), a failed batch reaches all
its callers and leaves nothing, a bad entry is refused for its caller alone. Both backends."""

from __future__ import annotations

import datetime as dt
import gc
import json
import multiprocessing
import os
import threading
import time
import weakref

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEntry, EntryError, append_durably, append_many, merkle
from gateway.audit import appender as appender_module
from gateway.audit.appender import Appender, appender_for
from gateway.audit.checkpoint import sign_checkpoint, write_transaction
from gateway.audit.export import export
from gateway.audit.log import head
from gateway.audit.tables import audit_entries, audit_head
from gateway.audit.verify import verify_export
from gateway.settings import settings
from gateway.storage import Store
from tests.support.audit import accept_audit_inserts, in_processes, refuse_audit_inserts


def entry(i: int = 0, tenant_id: str = "t1", **extra) -> AuditEntry:
    extra.setdefault("refs", {"page": f"p{i}"})
    return AuditEntry(tenant_id=tenant_id, actor="dpo:camille", action="console.viewed", outcome="success", **extra)


def stored(store: Store) -> list[dict]:
    """Leaves as a fresh engine (not the appender's connection, not the store's pool) sees them."""
    other = sa.create_engine(store.engine.url)
    try:
        with other.connect() as conn:
            return [json.loads(bytes(b)) for b in
                    conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.seq)).scalars()]
    finally:
        other.dispose()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class HeldLeader:
    """Blocks the first batch's writer until `release()`, so that callers arriving meanwhile queue
    up deterministically behind it (no reliance on timing for the merge)."""

    def __init__(self, appender: Appender):
        self.appender = appender
        self.go = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []
        self.threads: list[threading.Thread] = []
        original = appender._writer

        def writer():
            write = original()

            def held(entries):
                self.sizes.append(len(entries))
                if len(self.sizes) == 1:
                    self.entered.set()
                    assert self.go.wait(10)
                return write(entries)

            return held

        appender._writer = writer

    def queued(self) -> int:
        with self.appender._queue_lock:
            return len(self.appender._queue)

    def lead_and_queue(self, first, queued, count: int) -> tuple[list, list, list, list]:
        """`first(0)` in one thread, held in the writer; then `queued(n)` in `count` threads,
        returned once all of them wait behind it. The (results, errors) of both, as in_threads."""
        threads, results, errors = in_threads(first, 1)
        assert self.entered.wait(10)
        more, more_results, more_errors = in_threads(queued, count)
        wait_until(lambda: self.queued() == count)
        self.threads = threads + more
        return results, errors, more_results, more_errors

    def release(self) -> None:
        """Let the held batch go on, and wait for every caller started by lead_and_queue."""
        self.go.set()
        for t in self.threads:
            t.join(10)


def in_threads(target, count: int) -> tuple[list, list, list]:
    results, errors = [None] * count, [None] * count

    def run(n: int) -> None:
        try:
            results[n] = target(n)
        except BaseException as exc:  # noqa: BLE001 - compared by the test
            errors[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    return threads, results, errors


# ------------------------------------------------------------------ durability


def test_an_entry_is_committed_when_append_returns(store):
    assert append_durably(store.engine, entry(0)) == 0
    assert append_durably(store.engine, entry(1)) == 1
    leaves = stored(store)
    assert [(leaf["seq"], leaf["refs"]) for leaf in leaves] == [(0, {"page": "p0"}), (1, {"page": "p1"})]
    with store.engine.connect() as conn:
        size, root = head(conn)
    assert size == 2


def test_one_appender_per_engine(store):
    assert appender_for(store.engine) is appender_for(store.engine)


def test_a_lone_caller_writes_at_once_one_commit_per_entry(store):
    appender = Appender(store.engine)
    for i in range(5):
        assert appender.append(entry(i)) == i
    assert appender.batches == 5
    appender.close()


class OneStatementSpy:
    """Records what each write from the known head returned (the new head, or None when it wrote
    nothing): PostgreSQL's one statement, SQLite's transaction without a read of the head."""

    def __init__(self, monkeypatch):
        self.results: list = []
        for name in ("_one_statement", "_from_known_head"):
            real = getattr(appender_module, name)

            def spy(*args, real=real):
                self.results.append(real(*args))
                return self.results[-1]

            monkeypatch.setattr(appender_module, name, spy)


def tree_is_whole(store: Store) -> bool:
    """The head's root is the Merkle root of the stored leaves, read on a fresh connection."""
    with store.engine.connect() as conn:
        size, root = head(conn)
        bodies = [bytes(b) for b in conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.seq))
                  .scalars()]
    return size == len(bodies) and root == merkle.root_of([merkle.leaf_hash(b) for b in bodies])


def test_after_its_first_commit_a_lone_caller_writes_from_the_head_it_knows(store, monkeypatch):
    spy = OneStatementSpy(monkeypatch)
    appender = Appender(store.engine)
    assert [appender.append(entry(i)) for i in range(4)] == [0, 1, 2, 3]
    # the first batch locks and reads the head; the next ones move it from the head they committed
    # (PostgreSQL: in one statement; SQLite: without reading it)
    assert len(spy.results) == 3
    assert all(result is not None for result in spy.results)
    assert [leaf["seq"] for leaf in stored(store)] == [0, 1, 2, 3]  # committed, seen by a fresh engine
    assert tree_is_whole(store)
    appender.close()


def test_the_one_statement_write_stores_the_same_rows_as_the_locking_transaction(store, monkeypatch):
    # PostgreSQL's one statement binds `at` itself (timestamptz's binary form): the stored column
    # and the leaf must be those SQLAlchemy's path writes, for any aware date-time
    spy = OneStatementSpy(monkeypatch)
    moments = [dt.datetime(2026, 11, 27, 4, 5, 9, 7, tzinfo=dt.UTC),
               dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),  # before PostgreSQL's epoch
               dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
               dt.datetime(2026, 3, 29, 2, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
               dt.datetime(1066, 10, 14, 9, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
               dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]
    appender = Appender(store.engine)
    appender.append(entry(0))
    for i, at in enumerate(moments, 1):
        assert appender.append(entry(i, at=at)) == i  # from the known head
    with write_transaction(store.engine) as conn:  # the same moments through SQLAlchemy's path
        append_many(conn, [entry(i, at=at) for i, at in enumerate(moments, 1)])
    assert all(result is not None for result in spy.results)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_entries.c.at, audit_entries.c.body).order_by(audit_entries.c.seq)).all()
    n = len(moments)
    for (fast_at, fast_body), (slow_at, slow_body), at in zip(rows[1:n + 1], rows[n + 1:], moments):
        assert fast_at == slow_at == at
        fast, slow = json.loads(bytes(fast_body)), json.loads(bytes(slow_body))
        assert fast["at"] == slow["at"] and fast.pop("seq") + n == slow.pop("seq") and fast == slow
    appender.close()


def test_another_writer_between_two_appends_makes_the_one_statement_write_nothing(store, monkeypatch):
    spy = OneStatementSpy(monkeypatch)
    appender = Appender(store.engine)
    assert appender.append(entry(0)) == 0
    with write_transaction(store.engine) as conn:  # another writer moves the head
        assert append_many(conn, [entry(1), entry(2)]) == [1, 2]
    assert appender.append(entry(3)) == 3  # written by the locking transaction instead
    assert appender.append(entry(4)) == 4
    assert spy.results[0] is None and spy.results[1] is not None
    assert [leaf["refs"]["page"] for leaf in stored(store)] == ["p0", "p1", "p2", "p3", "p4"]
    assert tree_is_whole(store)
    appender.close()


def test_a_head_of_the_same_size_but_another_frontier_is_not_moved(store, monkeypatch):
    # the head is matched on its frontier too: never a leaf hashed onto a tree the log does not hold
    spy = OneStatementSpy(monkeypatch)
    appender = Appender(store.engine)
    assert [appender.append(entry(i)) for i in range(3)] == [0, 1, 2]
    size, frontier = appender._head
    appender._head = (size, [bytes(32)] * len(frontier))
    assert appender.append(entry(3)) == 3
    assert spy.results[-1] is None
    assert tree_is_whole(store)
    appender.close()


def head_row(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(audit_head.c.size)).scalar_one()


def test_a_locking_writer_after_one_statement_appends_continues_the_tree(store, tmp_path):
    appender = Appender(store.engine)
    assert [appender.append(entry(i)) for i in range(7)] == list(range(7))
    with write_transaction(store.engine) as conn:
        assert append_many(conn, [entry(7), entry(8)]) == [7, 8]
    assert head_row(store) == 9
    assert appender.append(entry(9)) == 9  # the appender's next write: the locking transaction
    assert [leaf["seq"] for leaf in stored(store)] == list(range(10))
    assert tree_is_whole(store)
    config = settings().model_copy(update={"audit_key_dir": tmp_path / "keys", "audit_origin": "relais.test/audit"})
    assert sign_checkpoint(store.engine, config).size == 11  # the checkpointer's own checks hold
    appender.close()


def _one_statement_appends(url: str, worker: int, count: int) -> None:
    process_store = Store(url)
    try:
        for i in range(count):
            append_durably(process_store.engine, entry(worker * 1000 + i))
    finally:
        process_store.close()


@pytest.mark.postgres
def test_appenders_and_locking_writers_in_several_processes_build_one_linear_tree_on_postgres(store, tmp_path):
    with in_processes(store, _one_statement_appends, 60, timeout=120):
        for k in range(15):  # locking transactions meanwhile, each with a batch of its own
            with write_transaction(store.engine) as conn:
                append_many(conn, [entry(9000 + 10 * k + i) for i in range(1 + k % 4)])
            time.sleep(0.005)
    leaves = stored(store)
    count = 3 * 60 + sum(1 + k % 4 for k in range(15))
    assert [leaf["seq"] for leaf in leaves] == list(range(count))
    assert sorted(leaf["refs"]["page"] for leaf in leaves) == sorted(
        [f"p{n * 1000 + i}" for n in range(3) for i in range(60)]
        + [f"p{9000 + 10 * k + i}" for k in range(15) for i in range(1 + k % 4)])
    assert tree_is_whole(store)
    config = settings().model_copy(update={"audit_key_dir": tmp_path / "keys", "audit_origin": "relais.test/audit"})
    assert sign_checkpoint(store.engine, config).size == count + 1


def test_closing_the_store_releases_the_appenders_connection(store):
    appender = appender_for(store.engine)
    appender.append(entry())
    assert appender._connection is not None or store.engine.dialect.name not in ("sqlite", "postgresql")
    store.engine.dispose()  # what Store.close() does: the database can then be dropped
    assert appender._connection is None
    assert appender.append(entry(1)) == 1  # and it reconnects if used again


def test_in_memory_sqlite_goes_through_the_engine():
    store = Store("sqlite://")
    store.migrate()
    try:
        assert [append_durably(store.engine, entry(i)) for i in range(3)] == [0, 1, 2]
        with store.engine.connect() as conn:
            assert head(conn)[0] == 3
    finally:
        store.close()


# ------------------------------------------------------------------ concurrency


def test_callers_arriving_during_a_commit_share_the_next_one(store):
    appender = Appender(store.engine)
    held = HeldLeader(appender)
    results, errors, more_results, more_errors = held.lead_and_queue(
        lambda n: appender.append(entry(n)), lambda n: appender.append(entry(100 + n)), 6)
    held.release()
    assert errors == [None] and more_errors == [None] * 6
    assert held.sizes == [1, 6]  # the six waiting callers: one transaction, one commit
    assert results == [0] and sorted(more_results) == list(range(1, 7))
    assert [leaf["seq"] for leaf in stored(store)] == list(range(7))
    appender.close()


def test_a_batch_never_exceeds_the_bound(store):
    appender = Appender(store.engine, max_batch=4)
    held = HeldLeader(appender)
    _, errors, _, more_errors = held.lead_and_queue(lambda n: appender.append(entry(n)),
                                                    lambda n: appender.append(entry(n)), 10)
    held.release()
    assert not any(errors + more_errors)
    assert held.sizes == [1, 4, 4, 2]
    appender.close()


def test_concurrent_callers_build_one_linear_verifiable_tree(store, tmp_path):
    appender = Appender(store.engine)
    threads, results, errors = in_threads(lambda n: [appender.append(entry(n * 100 + i)) for i in range(25)], 8)
    for t in threads:
        t.join(30)
    assert errors == [None] * 8
    indexes = sorted(i for r in results for i in r)
    assert indexes == list(range(200))  # dense, no duplicates
    leaves = stored(store)
    assert [leaf["seq"] for leaf in leaves] == list(range(200))
    by_index = {i: n * 100 + k for n, r in enumerate(results) for k, i in enumerate(r)}
    assert all(leaves[i]["refs"]["page"] == f"p{by_index[i]}" for i in range(200))  # each caller its own
    assert sorted(leaf["refs"]["page"] for leaf in leaves) == sorted(f"p{n * 100 + i}" for n in range(8)
                                                                      for i in range(25))
    # the log's own verification: signed checkpoint (self-checked), export, offline verifier
    config = settings().model_copy(update={"audit_key_dir": tmp_path / "keys", "audit_origin": "relais.test/audit"})
    assert sign_checkpoint(store.engine, config).size == 201
    export(store.engine, tmp_path / "export", config, sign=False)
    report = verify_export(tmp_path / "export")
    assert report.ok, [f.message for f in report.findings[:5]]
    appender.close()


# ------------------------------------------------------------------ failures


def test_a_refused_batch_fails_every_caller_and_writes_nothing(store):
    appender = Appender(store.engine)
    assert appender.append(entry(0)) == 0
    refuse_audit_inserts(store.engine)
    held = HeldLeader(appender)
    _, errors, more_results, more_errors = held.lead_and_queue(lambda n: appender.append(entry(1)),
                                                               lambda n: appender.append(entry(2 + n)), 4)
    held.release()
    # the first batch is refused, then the four callers queued behind it (one batch, refused too)
    assert held.sizes == [1, 4]
    # SQLAlchemy's exception, as a write through the engine would raise it
    assert all(isinstance(e, sa.exc.IntegrityError) and "audit" in str(e) for e in errors + more_errors), errors
    assert more_results == [None] * 4
    assert [leaf["seq"] for leaf in stored(store)] == [0]
    with store.engine.connect() as conn:
        assert head(conn)[0] == 1  # the head did not move either
    accept_audit_inserts(store.engine)
    assert appender.append(entry(9)) == 1  # no hole, and the appender works again
    appender.close()


def test_a_bad_entry_is_refused_for_its_caller_alone(store):
    appender = Appender(store.engine)
    held = HeldLeader(appender)
    _, errors, _, more_errors = held.lead_and_queue(lambda n: appender.append(entry(0)),
                                                    lambda n: appender.append(entry(1 + n)), 3)
    with pytest.raises(EntryError, match="pseudonyme"):  # refused at once, not queued
        appender.append(entry(9, subject="TESTNOM Camille"))
    with pytest.raises(EntryError, match="trop longue"):  # passes check() but cannot fit in a leaf
        appender.append(entry(9, refs={f"k{i}": "v" * 1000 for i in range(9)}))
    with pytest.raises(EntryError, match="fuseau"):  # passes check(), but no time zone
        appender.append(entry(9, at=dt.datetime(2026, 11, 26, 12, 0)))
    with pytest.raises(EntryError, match="date-heure invalide"):
        appender.append(entry(9, at="2026-11-26T12:00:00Z"))
    assert held.queued() == 3
    held.release()
    assert errors == [None] and more_errors == [None] * 3
    assert [leaf["seq"] for leaf in stored(store)] == [0, 1, 2, 3]
    appender.close()


def test_an_entry_close_to_the_length_limit_is_accepted_when_it_fits_at_any_index(store):
    appender = Appender(store.engine)
    fits = entry(0, refs={f"k{i}": "v" * 1000 for i in range(7)})
    assert appender.append(fits) == 0
    appender.close()


def test_a_failed_batch_does_not_stop_the_callers_queued_behind_it(store):
    appender = Appender(store.engine)
    failures = iter([True])
    original = appender._writer

    def writer():
        write = original()

        def failing_once(entries):
            if next(failures, False):
                raise ConnectionError("connexion perdue")
            return write(entries)

        return failing_once

    appender._writer = writer
    held = HeldLeader(appender)
    _, errors, more_results, more_errors = held.lead_and_queue(lambda n: appender.append(entry(0)),
                                                               lambda n: appender.append(entry(1 + n)), 3)
    held.release()
    assert isinstance(errors[0], ConnectionError)
    assert more_errors == [None] * 3 and sorted(more_results) == [0, 1, 2]
    appender.close()


# ------------------------------------------------------------------ lifetime


def _append_in_forked_child(engine) -> None:
    engine.dispose(close=False)  # SQLAlchemy's rule for a forked child: its own connections
    try:
        append_durably(engine, entry(1))
    except BaseException:  # noqa: BLE001 - the exit code tells the parent
        os._exit(1)
    os._exit(0)


def test_a_forked_child_neither_uses_nor_closes_the_parents_connection(store):
    appender = appender_for(store.engine)
    assert appender.append(entry(0)) == 0  # the parent's connection is open
    child = multiprocessing.get_context("fork").Process(target=_append_in_forked_child, args=(store.engine,))
    child.start()
    child.join(30)
    if child.is_alive():  # a hung child fails the test, never the run
        child.kill()
        child.join()
    assert child.exitcode == 0
    assert appender.append(entry(2)) == 2  # the parent's connection still works
    assert [leaf["refs"]["page"] for leaf in stored(store)] == ["p0", "p1", "p2"]


def test_the_registry_does_not_keep_engines_alive():
    store = Store("sqlite://")
    store.migrate()
    append_durably(store.engine, entry())
    engine = weakref.ref(store.engine)
    store.close()
    del store
    gc.collect()
    assert engine() is None
