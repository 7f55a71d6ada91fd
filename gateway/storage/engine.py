"""Engine factory: one place that knows how Relais talks to SQLite and PostgreSQL."""

from __future__ import annotations

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
        return sa.create_engine(url, hide_parameters=True, pool_pre_ping=True)
    busy_ms = settings().sqlite_busy_timeout_ms
    connect_args = {"timeout": busy_ms / 1000, "check_same_thread": False}
    if is_memory_sqlite(url):
        engine = sa.create_engine(
            url, hide_parameters=True, connect_args=connect_args, poolclass=StaticPool
        )
    else:
        engine = sa.create_engine(url, hide_parameters=True, connect_args=connect_args)
    _sqlite_events(engine, busy_ms)
    return engine


def _sqlite_events(engine: Engine, busy_ms: int) -> None:
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

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get(WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
