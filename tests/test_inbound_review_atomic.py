"""The coordinator's review is atomic: applying a proposal writes the new plan version, the
item's "applied" status and its audit entry in one transaction (all or nothing), an item is
applied or rejected once (a second review is a 409 conflict, even when two coordinators act at
the same time), and a decision file of the wrong shape is refused with its place, not a crash."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Inbound
from connectors.sandbox import sdo
from connectors.sandbox.fhir_store import ResourceStore
from connectors.viatrajectoire import DecisionDocumentError, decision_file
from gateway.inbound import review
from gateway.inbound.receive import receive
from gateway.model import Plan
from gateway.storage.store import Conflict, PreconditionFailed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
FINESS = "510000011"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)


def _decision_docref() -> tuple[dict, dict]:
    """A p001 plan and one decision file about that person, as the SI-SDO serves it."""
    data = json.loads((FIXTURES / "p001-enfant-tnd.json").read_text("utf-8"))
    peer = ResourceStore()
    [seeded, *_] = sdo.seed_decisions(peer, [data], destination=FINESS, now=NOW)
    return data, peer.read("DocumentReference", seeded.document_reference.split("/")[1]).resource


@pytest.fixture
def world(store):
    """(store, tenant, person local id, id of an item proposing an orientation decision)."""
    tenant = store.create_tenant("plateforme-a", "Plateforme A", FINESS)
    data, docref = _decision_docref()
    store.put_plan(tenant, Plan.model_validate({**data, "orientation_decisions": []}), if_match=None, actor="test")
    item = Inbound("viatrajectoire", "sdo-decision", f"DocumentReference/{docref['id']}", "application/fhir+json",
                   json.dumps(docref).encode(), {})
    assert receive(store, tenant, [item]) == {"proposed": 1}
    [proposed] = review.listing(store, tenant, status="proposed")
    return store, tenant, data["person"]["local_id"], proposed.id


def _state(store, tenant, person: str, item_id: str) -> tuple:
    """What a review may change: the plan's version, the item's row, the audit actions."""
    with store.reading() as conn:
        row = conn.execute(sa.text("SELECT status, reviewed_by, applied_version, summary FROM inbound_items "
                                   "WHERE id = :i"), {"i": item_id}).one()
        bodies = conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq")).scalars().all()
    actions = [json.loads(bytes(b))["action"] for b in bodies]
    return store.get_plan(tenant, person).version, tuple(row), actions


def _fail_updates_of_inbound_items(store) -> None:
    """A database that refuses the item's status update (a fault after the plan version)."""
    with store.transaction() as conn:
        if store.backend == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER no_review BEFORE UPDATE ON inbound_items "
                                 "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION no_review() RETURNS trigger LANGUAGE plpgsql AS "
                                 "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$")
            conn.exec_driver_sql("CREATE TRIGGER no_review BEFORE UPDATE ON inbound_items "
                                 "FOR EACH ROW EXECUTE FUNCTION no_review()")


def _apply(store, tenant, item_id, if_match=None):
    return review.apply(store, tenant, item_id, if_match=if_match, actor="test", today=NOW.date())


# ------------------------------------------------------------------ all or nothing


@pytest.mark.parametrize("act", ["apply", "reject"])
def test_a_review_changes_nothing_when_its_audit_entry_fails(world, monkeypatch, act):
    store, tenant, person, item_id = world
    before = _state(store, tenant, person, item_id)

    def failing(conn, entry):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(review, "append", failing)
    with pytest.raises(RuntimeError, match="injected fault"):
        if act == "apply":
            _apply(store, tenant, item_id)
        else:
            review.reject(store, tenant, item_id, actor="test", reason="motif")
    assert _state(store, tenant, person, item_id) == before


def test_apply_stores_nothing_when_the_item_status_cannot_be_written(world):
    store, tenant, person, item_id = world
    before = _state(store, tenant, person, item_id)
    _fail_updates_of_inbound_items(store)
    with pytest.raises(sa.exc.DBAPIError, match="injected fault"):
        _apply(store, tenant, item_id)
    assert _state(store, tenant, person, item_id) == before


def test_apply_on_a_stale_if_match_leaves_the_item_pending(world):
    store, tenant, person, item_id = world
    stale = store.get_plan(tenant, person).etag
    plan = Plan.model_validate_json(store.get_plan(tenant, person).content)
    store.put_plan(tenant, plan.model_copy(update={"title": "Projet révisé"}), if_match=stale, actor="test")
    before = _state(store, tenant, person, item_id)
    with pytest.raises(PreconditionFailed):
        _apply(store, tenant, item_id, if_match=stale)
    assert _state(store, tenant, person, item_id) == before
    assert _apply(store, tenant, item_id) == before[0] + 1  # without If-Match: onto the current version


def test_apply_writes_the_version_the_status_and_the_audit_entry_together(world):
    store, tenant, person, item_id = world
    version, _, actions = _state(store, tenant, person, item_id)
    assert _apply(store, tenant, item_id) == version + 1
    after, (status, reviewed_by, applied_version, _), after_actions = _state(store, tenant, person, item_id)
    assert (after, status, reviewed_by, applied_version) == (version + 1, "applied", "test", version + 1)
    assert after_actions[len(actions):] == ["plan.version.stored", "inbound.applied"]


# ------------------------------------------------------------------ once, even concurrently


def _together(monkeypatch, *calls):
    """Run the calls in threads that all read the item before any of them writes; returns
    each call's result or exception."""
    barrier = threading.Barrier(len(calls), timeout=30)
    real_get = review.get

    def get(*args, **kwargs):
        item = real_get(*args, **kwargs)
        if threading.current_thread() is not threading.main_thread():
            barrier.wait()
        return item

    monkeypatch.setattr(review, "get", get)
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_coordinators_applying_at_once_apply_the_item_once(world, monkeypatch):
    store, tenant, person, item_id = world
    version, _, actions = _state(store, tenant, person, item_id)
    results = _together(monkeypatch, lambda: _apply(store, tenant, item_id), lambda: _apply(store, tenant, item_id))
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "int"], results
    after, (status, _, applied_version, _), after_actions = _state(store, tenant, person, item_id)
    assert (after, status, applied_version) == (version + 1, "applied", version + 1)
    assert after_actions[len(actions):] == ["plan.version.stored", "inbound.applied"]


def test_an_item_applied_while_it_is_rejected_is_either_applied_or_rejected(world, monkeypatch):
    store, tenant, person, item_id = world
    version, _, actions = _state(store, tenant, person, item_id)
    results = _together(monkeypatch, lambda: _apply(store, tenant, item_id),
                        lambda: review.reject(store, tenant, item_id, actor="test", reason="motif"))
    applied, rejected = results
    after, (status, _, applied_version, _), after_actions = _state(store, tenant, person, item_id)
    if isinstance(applied, int):
        assert isinstance(rejected, Conflict), results
        assert (after, status, applied_version) == (version + 1, "applied", version + 1)
        assert after_actions[len(actions):] == ["plan.version.stored", "inbound.applied"]
    else:
        assert isinstance(applied, Conflict) and rejected is None, results
        assert (after, status, applied_version) == (version, "rejected", None)
        assert after_actions[len(actions):] == ["inbound.rejected"]


def test_two_rejections_at_once_reject_the_item_once(world, monkeypatch):
    store, tenant, person, item_id = world
    _, _, actions = _state(store, tenant, person, item_id)
    results = _together(monkeypatch, lambda: review.reject(store, tenant, item_id, actor="test", reason="un"),
                        lambda: review.reject(store, tenant, item_id, actor="test", reason="deux"))
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"], results
    _, (status, *_), after_actions = _state(store, tenant, person, item_id)
    assert status == "rejected" and after_actions[len(actions):] == ["inbound.rejected"]


# ------------------------------------------------------------------ the API's contract


def test_the_api_applies_an_item_once_and_guards_it_with_if_match(world):
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.settings import Settings

    store, tenant, person, item_id = world
    stale = store.get_plan(tenant, person).etag
    plan = Plan.model_validate_json(store.get_plan(tenant, person).content)
    store.put_plan(tenant, plan.model_copy(update={"title": "Projet révisé"}), if_match=stale, actor="test")
    _, token = store.create_api_key("plateforme-a", "test")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, Settings())) as client:
        refused = client.post(f"/inbound/{item_id}/$apply", headers={**auth, "If-Match": stale})
        assert refused.status_code == 412 and refused.json()["current_etag"] == store.get_plan(tenant, person).etag
        applied = client.post(f"/inbound/{item_id}/$apply", headers=auth)
        assert applied.status_code == 200 and applied.json()["version"] == 3
        again = client.post(f"/inbound/{item_id}/$apply", headers=auth)
        assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
        operation = client.get("/openapi.json").json()["paths"]["/inbound/{item_id}/$apply"]["post"]
        assert {"409", "412"} <= set(operation["responses"])
        assert any(p["name"].lower() == "if-match" for p in operation["parameters"])


# ------------------------------------------------------------------ a decision file of the wrong shape


def _docref(**fields) -> dict:
    _, docref = _decision_docref()
    return {**docref, **fields}


WRONG_SHAPES = {  # name -> (fields replaced, place named in the refusal)
    "type-a-string": ({"type": "57830-2"}, "DocumentReference.type"),
    "type-a-list": ({"type": [{"coding": []}]}, "DocumentReference.type"),
    "type-coding-a-number": ({"type": {"coding": 7}}, "DocumentReference.type"),
    "identifier-a-number": ({"identifier": 5}, "DocumentReference.identifier"),
    "identifier-value-an-object": ({"identifier": [{"use": "usual", "value": {"a": 1}}]},
                                   "DocumentReference.identifier"),
    "content-an-object": ({"content": {"attachment": {}}}, "DocumentReference.content"),
    "content-a-number": ({"content": 5}, "DocumentReference.content"),
    "attachment-a-string": ({"content": [{"attachment": "x"}]}, "DocumentReference.content"),
    "attachment-a-list": ({"content": [{"attachment": ["x"]}]}, "DocumentReference.content"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_a_decision_file_of_the_wrong_shape_is_refused_with_its_place(case):
    fields, place = WRONG_SHAPES[case]
    with pytest.raises(DecisionDocumentError) as refused:
        decision_file(_docref(**fields))
    assert refused.value.location is not None and refused.value.location.startswith(place), refused.value


@pytest.mark.parametrize("value", [[], "DocumentReference", 5, None])
def test_a_decision_file_that_is_not_an_object_is_refused(value):
    with pytest.raises(DecisionDocumentError) as refused:
        decision_file(value)
    assert refused.value.location == "DocumentReference"


def test_a_well_formed_decision_file_still_reads():
    data, docref = _decision_docref()
    found = decision_file(docref)
    assert found.decision_number == data["orientation_decisions"][0]["decision_number"]
