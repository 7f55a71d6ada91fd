"""PostgreSQL's pooled connections: checked before use only when they may be stale (idle a
while, or something to read on their socket), and replaced at once when they are."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.storage import Store, engine as engine_module
from tests.support.postgres import backend_pid, end_session

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(store):
    if store.backend != "postgresql":
        pytest.skip("the pool's check of PostgreSQL connections")
    return store


class PingCount:
    def __init__(self, store: Store, monkeypatch):
        self.count = 0
        real = store.engine.dialect.do_ping

        def counted(dbapi_connection):
            self.count += 1
            return real(dbapi_connection)

        monkeypatch.setattr(store.engine.dialect, "do_ping", counted)


def test_a_connection_in_steady_use_is_not_pinged(pg, monkeypatch):
    backend_pid(pg.engine)  # the pool holds one connection
    pings = PingCount(pg, monkeypatch)
    for _ in range(20):
        with pg.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
    assert pings.count == 0


def test_a_connection_idle_for_the_limit_is_pinged_first(pg, monkeypatch):
    backend_pid(pg.engine)
    pings = PingCount(pg, monkeypatch)
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)
    for _ in range(3):
        backend_pid(pg.engine)
    assert pings.count == 3


def test_a_connection_whose_session_was_ended_is_replaced_at_checkout(pg, monkeypatch):
    first = backend_pid(pg.engine)
    end_session(pg.engine.url, first)
    pings = PingCount(pg, monkeypatch)
    # used again well within PING_IDLE_S: its readable socket is what gives it away
    second = backend_pid(pg.engine)  # no error: the dead connection was replaced
    assert second != first and pings.count == 1
