"""Alembic environment for Relais.

Normally driven by `Store.migrate()`, which hands over an open connection in
`config.attributes["connection"]`. Run by hand, the URL comes from the `sqlalchemy.url`
option (`alembic -x` users may set it) or else from `RELAIS_DATABASE_URL`.
"""

from __future__ import annotations

from alembic import context

from gateway.settings import settings
from gateway.storage.engine import make_engine, normalise_url

config = context.config

# Any constant: serialises concurrent `migrate()` calls against one PostgreSQL database.
_PG_LOCK_KEY = 0x52454C414953  # "RELAIS"


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or settings().database_url


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=normalise_url(_url()),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
