"""PostgreSQL through its Unix socket, as a gateway on the database's own host connects
(`?host=/socket/directory`): the store, the audit Appender's one-statement writes and the pool's
check of stale connections work as over TCP."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEntry
from gateway.audit import appender as appender_module
from gateway.audit.appender import Appender
from gateway.audit.log import head
from gateway.storage import Store
from tests.support.postgres import backend_pid, end_session

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(postgres_server):
    """A migrated, empty PostgreSQL database, reached over TCP loopback (as the other tests)."""
    if postgres_server.socket_url() is None:
        pytest.skip("a local PostgreSQL server's Unix socket")
    dbname = f"relais_t_{uuid.uuid4().hex[:12]}"
    instance = Store(postgres_server.create_database(dbname))
    instance.migrate()
    yield instance
    instance.close()
    postgres_server.drop_database(dbname)


@pytest.fixture
def over_socket(store, postgres_server):
    """The same database through the server's Unix socket."""
    instance = Store(postgres_server.socket_url(store.engine.url.database))
    yield instance
    instance.close()


def entry(i: int) -> AuditEntry:
    return AuditEntry(tenant_id="t1", actor="dpo:camille", action="console.viewed", outcome="success",
                      refs={"page": f"p{i}"})


def server_address(store: Store):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT inet_server_addr()")).scalar_one()


def test_the_store_connects_through_the_socket(store, over_socket):
    assert server_address(over_socket) is None  # no IP address: a Unix-domain connection
    assert server_address(store) is not None  # the fixture's own store: TCP loopback


def test_lone_appends_over_the_socket_are_one_statement_writes(store, over_socket, monkeypatch):
    written = []
    real = appender_module._one_statement
    monkeypatch.setattr(appender_module, "_one_statement", lambda *args: written.append(real(*args)) or written[-1])
    appender = Appender(over_socket.engine)
    try:
        assert [appender.append(entry(i)) for i in range(4)] == [0, 1, 2, 3]
    finally:
        appender.close()
    # the first batch locks and reads the head; the next three move it in one statement each
    assert len(written) == 3 and all(result is not None for result in written)
    with store.engine.connect() as conn:  # seen over TCP, by another connection
        assert head(conn)[0] == 4


def test_over_the_socket_an_ended_session_is_replaced_at_checkout(store, over_socket):
    first = backend_pid(over_socket.engine)
    end_session(store.engine.url, first)
    # used again well within the idle limit: its readable socket gives it away, as over TCP
    assert backend_pid(over_socket.engine) != first
