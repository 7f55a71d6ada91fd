"""Inbound, end to end on loopback: orientation decisions from the SI-SDO sandbox and event
notifications from the e-parcours sandbox are matched by identifier, recorded once, and
offered as proposed plan updates that only the coordinator applies."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Inbound
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox import sdo
from connectors.sandbox.eparcours import eparcours_sandbox, notify
from connectors.sandbox.server import ThreadedServer
from connectors.viatrajectoire import ViaTrajectoireConnector
from gateway.inbound import review
from gateway.inbound.receive import poll, receive
from gateway.model import Plan
from gateway.storage.store import Conflict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
FINESS = "510000011"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def without_decisions(data: dict) -> Plan:
    """The plan as the platform holds it before ViaTrajectoire tells it of the decisions."""
    return Plan.model_validate({**data, "orientation_decisions": []})


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A", FINESS)


def endpoint(server) -> FhirEndpoint:
    return FhirEndpoint(base_url=server.url, token_url=f"{server.url}/oauth/token",
                        client_id="relais", client_secret="sandbox-secret")


def test_decisions_are_matched_by_ins_recorded_once_and_applied_only_on_review(store, tenant):
    data = fixture("p001-enfant-tnd.json")
    assert data["orientation_decisions"]
    store.put_plan(tenant, without_decisions(data), if_match=None, actor="test")
    peer = sdo.sdo_sandbox(FINESS, [data])
    with ThreadedServer(peer.app) as server:
        connector = ViaTrajectoireConnector(endpoint(server), struct_idnat=FINESS)
        try:
            first = poll(store, tenant, connector)
            connector.cursor = None  # a restart without the cursor: everything is fetched again
            again = poll(store, tenant, connector)
        finally:
            connector.close()
    assert first["proposed"] == len(data["orientation_decisions"])
    assert again["proposed"] == 0 and again["duplicate"] >= first["proposed"]
    local_id = data["person"]["local_id"]
    # Nothing was applied by itself.
    assert Plan.model_validate_json(store.get_plan(tenant, local_id).content).orientation_decisions == []
    [item, *_] = review.listing(store, tenant, status="proposed", person=local_id)
    assert item.summary["titre"].startswith("Décision d'orientation")
    version = review.apply(store, tenant, item.id, if_match=None, actor="dpo:test",
                           today=dt.date(2026, 11, 26))
    plan = Plan.model_validate_json(store.get_plan(tenant, local_id).content)
    assert version == 2 and plan.orientation_decisions
    assert {d.decision_number for d in plan.orientation_decisions} <= {
        d["decision_number"] for d in data["orientation_decisions"]}
    assert review.get(store, tenant, item.id).status == "applied"
    with pytest.raises(Conflict):
        review.apply(store, tenant, item.id, if_match=None, actor="dpo:test")


def test_a_decision_for_nobody_of_the_platform_stays_unmatched(store, tenant):
    data = fixture("p002-enfant-tnd.json")
    peer = sdo.sdo_sandbox(FINESS, [data])
    with ThreadedServer(peer.app) as server:
        connector = ViaTrajectoireConnector(endpoint(server), struct_idnat=FINESS)
        try:
            counts = poll(store, tenant, connector)
        finally:
            connector.close()
    assert counts["unmatched"] == len(data["orientation_decisions"]) and counts["proposed"] == 0
    [item, *_] = review.listing(store, tenant, status="unmatched")
    assert "aucune personne" in item.summary["motif"]


def test_an_identity_duplicate_is_never_guessed(store, tenant):
    data = fixture("p001-enfant-tnd.json")
    store.put_plan(tenant, without_decisions(data), if_match=None, actor="test")
    twin = without_decisions({**data, "person": {**data["person"], "local_id": "DOUBLON-1"}})
    store.put_plan(tenant, twin, if_match=None, actor="test")
    peer = sdo.sdo_sandbox(FINESS, [data])
    with ThreadedServer(peer.app) as server:
        connector = ViaTrajectoireConnector(endpoint(server), struct_idnat=FINESS)
        try:
            counts = poll(store, tenant, connector)
        finally:
            connector.close()
    assert counts["proposed"] == 0 and counts["unmatched"] >= 1
    assert "doublon" in review.listing(store, tenant, status="unmatched")[0].summary["motif"]


def test_event_notifications_are_recorded_against_the_person(store, tenant):
    data = fixture("p001-enfant-tnd.json")
    store.put_plan(tenant, Plan.model_validate(data), if_match=None, actor="test")
    sandbox = eparcours_sandbox()
    ins = data["person"]["ins"]
    notify(sandbox, patient_identifier={"system": f"urn:oid:{ins['oid']}", "value": ins["value"]},
           event_code="HOSP", display="Hospitalisation")
    with ThreadedServer(sandbox.app) as server:
        connector = EparcoursConnector(endpoint(server))
        try:
            counts = poll(store, tenant, connector)
            assert poll(store, tenant, connector) == {}
        finally:
            connector.close()
    assert counts == {"recorded": 1}
    [item] = review.listing(store, tenant, person=data["person"]["local_id"])
    assert item.summary["titre"] == "Évènement signalé : Hospitalisation" and item.proposal is None


def test_unreadable_items_are_quarantined_with_the_original_kept(store, tenant):
    bad = Inbound(system="eparcours", kind="nde-event", peer_reference="CommunicationRequest/x",
                  content_type="application/fhir+json", payload=b"{not json")
    assert receive(store, tenant, [bad]) == {"quarantined": 1}
    [item] = review.listing(store, tenant, status="quarantined")
    assert "illisible" in item.summary["motif"]
    with store.reading() as conn:
        assert conn.execute(sa.text("SELECT payload FROM inbound_items")).scalar() == b"{not json"


def test_every_reception_is_audited_without_personal_data(store, tenant):
    data = fixture("p001-enfant-tnd.json")
    store.put_plan(tenant, Plan.model_validate(data), if_match=None, actor="test")
    sandbox = eparcours_sandbox()
    ins = data["person"]["ins"]
    notify(sandbox, patient_identifier={"system": f"urn:oid:{ins['oid']}", "value": ins["value"]},
           event_code="SOR", display="Sortie")
    with ThreadedServer(sandbox.app) as server:
        connector = EparcoursConnector(endpoint(server))
        try:
            poll(store, tenant, connector)
        finally:
            connector.close()
    with store.reading() as conn:
        bodies = [bytes(r[0]).decode() for r in conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq"))]
    received = [json.loads(b) for b in bodies if json.loads(b)["action"] == "inbound.received"]
    assert received and received[0]["subject"]
    assert not any(ins["value"] in b or data["person"]["birth_family_name"] in b for b in bodies)


def test_the_tenant_never_sees_another_tenants_inbound(store, tenant):
    other = store.create_tenant("plateforme-b", "Plateforme B")
    bad = Inbound(system="eparcours", kind="nde-event", peer_reference="CommunicationRequest/y",
                  content_type="application/fhir+json", payload=b"{}")
    receive(store, tenant, [bad])
    assert review.listing(store, other) == []
    [item] = review.listing(store, tenant)
    with pytest.raises(Exception):
        review.get(store, other, item.id)


def test_the_api_lists_and_rejects_received_items(store, tenant):
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.settings import Settings

    bad = Inbound(system="eparcours", kind="nde-event", peer_reference="CommunicationRequest/z",
                  content_type="application/fhir+json", payload=b"{}")
    receive(store, tenant, [bad])
    _, token = store.create_api_key("plateforme-a", "test")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, Settings())) as client:
        [item] = client.get("/inbound", headers=auth).json()["items"]
        assert item["status"] == "unmatched"
        rejected = client.post(f"/inbound/{item['id']}/$reject", json={"reason": "message d'essai"}, headers=auth)
        assert rejected.status_code == 200
        assert client.get(f"/inbound/{item['id']}", headers=auth).json()["summary"]["rejet"] == "message d'essai"
        again = client.post(f"/inbound/{item['id']}/$apply", headers=auth)
        assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
