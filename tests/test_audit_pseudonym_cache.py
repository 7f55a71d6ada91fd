"""The pseudonyms' caches (gateway/audit/pseudonyms.py): fewer statements, never a wrong
pseudonym nor a lost mapping — across rollbacks, erasures and other processes sharing the
database (a second Store on the same database stands for another gateway process). Both
backends via the `store` fixture."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from gateway.audit import erase_person_mapping, pseudonym, resolve_pseudonym
from gateway.audit.checkpoint import write_transaction
from gateway.audit.pseudonyms import compute
from gateway.audit.tables import audit_pseudonym_keys
from gateway.storage import Store


@pytest.fixture
def other_process(store):
    """Another gateway process's view of the same database: its own engine, its own caches."""
    other = Store(store.engine.url.render_as_string(hide_password=False))
    yield other
    other.close()


@contextlib.contextmanager
def statements(engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()).lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def touching(seen: list[str], text: str) -> list[str]:
    return [s for s in seen if text in s]


def committed_pseudonym(engine, person: str) -> str:
    """The person's pseudonym in tenant-a, in a transaction of its own (committed on return)."""
    with write_transaction(engine) as conn:
        return pseudonym(conn, "tenant-a", person)


def resolved(engine, value: str) -> str | None:
    """What tenant-a's pseudonym `value` resolves to, read on a fresh connection."""
    with engine.connect() as conn:
        return resolve_pseudonym(conn, "tenant-a", value)


def test_the_tenant_key_is_read_once_committed_then_never_again(store):
    first = committed_pseudonym(store.engine, "U000001")  # creates the key: not cached yet
    with statements(store.engine) as seen, write_transaction(store.engine) as conn:
        assert pseudonym(conn, "tenant-a", "U000001") == first
        assert pseudonym(conn, "tenant-a", "U000002") != first
    assert len(touching(seen, "from audit_pseudonym_keys")) == 1  # read once, committed: cached
    with statements(store.engine) as seen, write_transaction(store.engine) as conn:
        assert pseudonym(conn, "tenant-a", "U000003")
    assert touching(seen, "audit_pseudonym_keys") == [] and len(touching(seen, "into audit_pseudonyms (")) == 1


@pytest.mark.parametrize("known", [False, True], ids=["new-person", "known-person"])
def test_a_mapping_is_written_once_per_transaction(store, known):
    committed_pseudonym(store.engine, "U000001" if known else "U000000")  # the key exists, committed
    with statements(store.engine) as seen, write_transaction(store.engine) as conn:
        value = pseudonym(conn, "tenant-a", "U000001")
        assert pseudonym(conn, "tenant-a", "U000001") == value
        assert pseudonym(conn, "tenant-b", "U000001") != value  # another tenant's own mapping
    assert len(touching(seen, "into audit_pseudonyms (")) == 2
    assert resolved(store.engine, value) == "U000001"


def test_a_key_created_by_a_rolled_back_transaction_is_not_used_afterwards(store, other_process):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), write_transaction(store.engine) as conn:
        pseudonym(conn, "tenant-a", "U000001")
        pseudonym(conn, "tenant-a", "U000002")  # reads the key its own transaction created
        raise Abort
    theirs = committed_pseudonym(other_process.engine, "U000001")  # the key the database keeps
    with write_transaction(store.engine) as conn:
        assert pseudonym(conn, "tenant-a", "U000001") == theirs
        assert resolve_pseudonym(conn, "tenant-a", theirs) == "U000001"


def test_a_mapping_rolled_back_is_written_again_by_the_next_entry(store):
    committed_pseudonym(store.engine, "U000000")
    with pytest.raises(ZeroDivisionError), write_transaction(store.engine) as conn:
        value = pseudonym(conn, "tenant-a", "U000001")
        1 / 0
    with write_transaction(store.engine) as conn:
        assert resolve_pseudonym(conn, "tenant-a", value) is None
        assert pseudonym(conn, "tenant-a", "U000001") == value
    assert resolved(store.engine, value) == "U000001"


def test_an_erasure_in_the_same_transaction_lets_a_later_entry_write_the_mapping_again(store):
    with write_transaction(store.engine) as conn:
        value = pseudonym(conn, "tenant-a", "U000001")
        assert erase_person_mapping(conn, "tenant-a", "U000001")
        assert pseudonym(conn, "tenant-a", "U000001") == value
    assert resolved(store.engine, value) == "U000001"


def test_an_erasure_by_another_process_is_seen_by_the_next_entry(store, other_process):
    value = committed_pseudonym(store.engine, "U000001")
    committed_pseudonym(store.engine, "U000001")  # the key is cached now
    with write_transaction(other_process.engine) as conn:
        assert erase_person_mapping(conn, "tenant-a", "U000001")
    assert resolved(store.engine, value) is None  # erased: no longer resolvable
    assert committed_pseudonym(store.engine, "U000001") == value  # a later entry naming the person
    assert resolved(other_process.engine, value) == "U000001"


def test_processes_sharing_a_database_compute_the_same_pseudonyms(store, other_process):
    theirs = committed_pseudonym(other_process.engine, "U000001")
    for _ in range(2):  # read from the database, then from the cache
        assert committed_pseudonym(store.engine, "U000001") == theirs
    with other_process.engine.connect() as conn:
        secret = conn.execute(sa.select(audit_pseudonym_keys.c.secret)).scalar_one()
    assert compute(bytes(secret), "U000001") == theirs


def test_a_cached_key_belongs_to_its_database_only(store, tmp_path):
    other_database = Store(f"sqlite:///{tmp_path / 'other.db'}")
    other_database.migrate()
    try:
        committed_pseudonym(store.engine, "U000001")
        here = committed_pseudonym(store.engine, "U000001")  # cached for this database
        there = committed_pseudonym(other_database.engine, "U000001")
        assert here != there  # its own key, drawn on first use
    finally:
        other_database.close()
