"""The audit trail's FHIR export streamed: `relais audit fhir` writes the Bundle as the store's rows
are read, page by page, so a tenant's years of entries need no more memory than a page."""

from __future__ import annotations

import datetime as dt
import io
import json

from gateway.audit import AuditEntry, append_many
from gateway.audit.checkpoint import write_transaction
from gateway.audit.fhir import bundle, bundle_from_store, events_from_store, write_bundle

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


def _append(store, tenants: list[str]) -> None:
    with write_transaction(store.engine) as conn:
        append_many(conn, [AuditEntry(tenant, "worker", "exchange.sent", "success", system="dmp",
                                      refs={"exchange": f"x{i}"}) for i, tenant in enumerate(tenants)])


def test_the_streamed_bundle_is_the_bundle(store):
    tenants = ["t1", "t2", "t1", "t1", "t2", "t1", "t1"]
    _append(store, tenants)
    for tenant_id, count in ((None, 7), ("t1", 5), ("t2", 2), ("t3", 0)):
        events = list(events_from_store(store.engine, tenant_id=tenant_id, origin="relais.test/audit", page=2))
        assert len(events) == count
        out = io.BytesIO()
        assert write_bundle(out, iter(events), NOW) == count
        assert json.loads(out.getvalue()) == bundle(events, NOW)
    everything = bundle_from_store(store.engine, origin="relais.test/audit")
    indexes = [next(d["valueString"] for d in e["resource"]["entity"][-1]["detail"] if d["type"] == "tlog.index")
               for e in everything["entry"]]
    assert indexes == [str(i) for i in range(7)]  # oldest first, across pages


def test_a_bundle_has_no_total_and_no_empty_entry_list():
    assert bundle([], NOW) == {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-11-27T09:00:00Z"}
    out = io.BytesIO()
    assert write_bundle(out, iter([]), NOW) == 0
    assert json.loads(out.getvalue()) == bundle([], NOW)  # bdl-1; FHIR arrays are never empty


def test_each_entry_is_written_before_the_next_event_is_read():
    written_before: list[int] = []
    out = io.BytesIO()

    def events():
        for i in range(3):
            written_before.append(out.getvalue().count(b'"fullUrl"'))
            yield {"resourceType": "AuditEvent", "id": f"e{i}"}

    write_bundle(out, events(), NOW)
    assert written_before == [0, 1, 2]
