"""Migration 0009: audit_entries keeps its primary key alone (the (tenant_id, seq) index, paid by
every append, is dropped). An existing log goes through the upgrade and the downgrade whole, on
SQLite and PostgreSQL; the one query that filtered by tenant gives the same answer."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from gateway.audit import AuditEntry, append_durably, append_many
from gateway.audit.checkpoint import write_transaction
from gateway.audit.fhir import bundle_from_store
from gateway.audit.log import head, read_bodies
from gateway.storage.store import MIGRATIONS_DIR

BEFORE = "0008_exchange_pages"


def entry(i: int, tenant_id: str) -> AuditEntry:
    return AuditEntry(tenant_id=tenant_id, actor="dpo:camille", action="console.viewed", outcome="success",
                      refs={"page": f"p{i}"})


def migrate(store, verb: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write_transaction(store.engine) as conn:
        config.attributes["connection"] = conn
        getattr(command, verb)(config, revision)


def indexes(store) -> set[str]:
    return {ix["name"] for ix in sa.inspect(store.engine).get_indexes("audit_entries")}


def appended(store, start: int, count: int) -> None:
    with write_transaction(store.engine) as conn:
        append_many(conn, [entry(start + i, ("t1", "t2")[i % 3 == 0]) for i in range(count)])


def test_the_log_goes_through_the_migration_whole_both_ways(store):
    migrate(store, "downgrade", BEFORE)
    assert indexes(store) == {"ix_audit_entries_tenant_id_seq"}
    appended(store, 0, 30)
    with store.engine.connect() as conn:
        before = head(conn), read_bodies(conn, 0, 30)
    tenant_bundle = bundle_from_store(store.engine, tenant_id="t2")

    migrate(store, "upgrade", "head")
    assert indexes(store) == set()
    with store.engine.connect() as conn:
        assert (head(conn), read_bodies(conn, 0, 30)) == before
    after = bundle_from_store(store.engine, tenant_id="t2")
    assert [e["resource"] for e in after["entry"]] == [e["resource"] for e in tenant_bundle["entry"]]
    assert len(after["entry"]) == 10
    appended(store, 30, 20)  # and the log grows on, by both write paths
    assert append_durably(store.engine, entry(50, "t1")) == 50

    migrate(store, "downgrade", BEFORE)
    assert indexes(store) == {"ix_audit_entries_tenant_id_seq"}
    with store.engine.connect() as conn:
        assert head(conn)[0] == 51 and read_bodies(conn, 0, 30) == before[1]
    migrate(store, "upgrade", "head")
