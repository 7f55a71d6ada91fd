"""The queries that load a person's policy state read that person's rows through the person's
index, never every row of the tenant (they run for each decision the state cache cannot answer)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gateway.consent import registry
from gateway.consent.tables import consent_versions
from gateway.storage.schema import persons

NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def query_plan(store, statement, params: dict) -> str:
    sql = statement.params(**params).compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
    with store.transaction() as conn:
        if store.backend == "sqlite":
            return " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        # PostgreSQL plans by statistics: many persons with a consent each, analysed.
        for i in range(300):
            pid = f"{i:032x}"
            conn.execute(sa.insert(persons).values(id=pid, tenant_id=params["b_tenant"], local_id=f"P{i}",
                                                   current_version=0, created_at=NOW, updated_at=NOW))
            conn.execute(sa.insert(consent_versions).values(
                tenant_id=params["b_tenant"], consent_id=f"c{i:031x}", version=1, person_id=pid, kind="k",
                status="active", content=b"{}", content_hash="h", recorded_at=NOW, recorded_by="test"))
        conn.exec_driver_sql("ANALYZE consent_versions")
        return " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_a_persons_consents_are_read_through_the_persons_index(store):
    tenant = store.create_tenant("plateforme-a", "Plateforme A")
    plan = query_plan(store, registry._CONSENT_VERSIONS, {"b_tenant": tenant.id, "b_person": "0" * 32})
    assert "ix_consent_versions_person" in plan, plan
