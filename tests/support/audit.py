"""Audit test helpers: the log's tables made to refuse every insert, as the database itself would
(a trigger); writers in other processes."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine


def refuse_audit_inserts(engine: Engine) -> None:
    """From now on the database refuses every insert into audit_entries (undo: accept_audit_inserts)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                                 "FOR EACH ROW EXECUTE FUNCTION relais_audit_append_only()")
        else:
            conn.exec_driver_sql("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                                 "BEGIN SELECT RAISE(ABORT, 'journal d''audit : ajout refusé'); END")


def accept_audit_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER test_refuse" + (" ON audit_entries" if engine.dialect.name
                                                           == "postgresql" else ""))


@contextlib.contextmanager
def in_processes(store, target: Callable[[str, int, int], None], count: int, timeout: float = 60) -> Iterator[None]:
    """Three spawned processes run target(url, worker, count) on the store's PostgreSQL database
    while the block runs; each must exit 0. Skips on another backend."""
    if store.backend != "postgresql":
        pytest.skip("several worker processes: the PostgreSQL deployment")
    url = store.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=(url, n, count)) for n in range(3)]
    for p in processes:
        p.start()
    try:
        yield
    finally:  # joined even when the block fails: no process outlives the test
        for p in processes:
            p.join(timeout)
            if p.exitcode is None:
                p.terminate()
    assert [p.exitcode for p in processes] == [0, 0, 0]
