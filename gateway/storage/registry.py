"""Every module that declares tables on `gateway.storage.schema.metadata`.

The migrations create the tables; this list lets the test that compares migrations with the
code's table definitions (and anything else needing the whole schema) see all of them.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa

TABLE_MODULES = (
    "gateway.storage.schema",
    "gateway.audit.tables",
    "gateway.consent.tables",
    "gateway.delivery.tables",
    "gateway.inbound.tables",
    "gateway.activity.tables",
    "gateway.console.tables",
)


def load_metadata() -> sa.MetaData:
    for name in TABLE_MODULES:
        importlib.import_module(name)
    from gateway.storage.schema import metadata

    return metadata
