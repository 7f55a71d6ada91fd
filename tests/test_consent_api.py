"""HTTP API of the consent engine: FHIR in and out, withdrawal, care team, information,
decisions; problem+json errors; tenant isolation."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.consent.fhir_careteam import care_team_resource
from gateway.consent.vocab import ConsentKind
from gateway.settings import Settings
from tests.test_consent_store import ADULT, CURATELLE, PLANS, shared_store  # noqa: F401 (fixture)
from tests.test_consent_support import DR_HEALTH, STRANGER, consent, member

PROBLEM = "application/problem+json"
FHIR = "application/fhir+json"


@pytest.fixture
def api(shared_store):
    store, suffix = shared_store, uuid.uuid4().hex[:8]
    a = store.create_tenant(f"plateforme-a-{suffix}", "Plateforme A")
    b = store.create_tenant(f"plateforme-b-{suffix}", "Plateforme B")
    for local_id in (ADULT, CURATELLE):
        store.put_plan(a, PLANS[local_id], if_match=None, actor="test")
    _, token_a = store.create_api_key(a.slug, "test")
    _, token_b = store.create_api_key(b.slug, "test")
    with TestClient(create_app(store, Settings())) as client:
        yield client, token_a, token_b


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR}


def outside_team(person: str = ADULT, **kw) -> dict:
    return consent(person=person, kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)], **kw)


def post(client, token, resource, person=ADULT):
    return client.post(f"/persons/{person}/consents", content=json.dumps(resource), headers=auth(token))


def decision_body(person=ADULT, to=STRANGER, **kw) -> dict:
    body = {"person": person, "system": "mss", "purpose": "COC",
            "recipient": {"kind": "professional", "rpps": to, "profession": "health"},
            "data_categories": ["plan"]}
    body.update(kw)
    return body


def test_post_returns_201_and_the_stored_resource(api):
    client, token, _ = api
    response = post(client, token, outside_team())
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR)
    stored = response.json()
    assert stored["resourceType"] == "Consent" and stored["meta"]["versionId"] == "1"
    assert response.headers["Location"] == f"/persons/{ADULT}/consents/{stored['id']}/_history/1"
    empty = client.get(f"/persons/{CURATELLE}/consents", headers=auth(token)).json()
    assert empty["total"] == 0 and "entry" not in empty  # FHIR arrays are never empty
    listed = client.get(f"/persons/{ADULT}/consents", headers=auth(token)).json()
    assert listed["resourceType"] == "Bundle" and listed["total"] == 1
    assert listed["entry"][0]["resource"] == stored
    assert listed["entry"][0]["fullUrl"] == f"urn:uuid:{uuid.UUID(hex=stored['id'])}"  # absolute (R4 Bundle.entry.fullUrl)


def test_invalid_fhir_is_a_422_problem_with_fhirpath_locations(api):
    client, token, _ = api
    bad = outside_team()
    bad["provision"]["purpose"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "XX"}]
    response = post(client, token, bad)
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "/problems/invalid-consent"
    assert {"location": "Consent.provision.purpose[0]", "rule": "consent-purpose"}.items() <= body["errors"][0].items()


def test_a_consent_from_someone_without_capacity_is_a_422_with_the_reason(api):
    client, token, _ = api
    response = post(client, token, outside_team(CURATELLE, performer="RelatedPerson/R1"), person=CURATELLE)
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/problems/consent-rejected"
    assert body["errors"][0]["rule"] == "L17-curator-cannot-consent-instead"
    assert "curateur" in body["errors"][0]["message"]


def test_withdraw_then_decide_is_refused_at_once(api):
    client, token, _ = api
    stored = post(client, token, outside_team()).json()
    first = client.post("/decisions", json=decision_body(), headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200 and first.json()["decision"] == "permit"
    assert first.json()["consents"][0]["id"] == stored["id"]
    withdrawn = client.post(f"/persons/{ADULT}/consents/{stored['id']}/$withdraw", headers=auth(token))
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "inactive"
    assert withdrawn.json()["meta"]["versionId"] == "2"
    second = client.post("/decisions", json=decision_body(), headers={"Authorization": f"Bearer {token}"})
    assert second.json()["decision"] == "deny"
    assert "L4-outside-team-prior-consent" in second.json()["rule_ids"]
    old = client.get(f"/persons/{ADULT}/consents/{stored['id']}/_history/1", headers=auth(token))
    assert old.json()["status"] == "active"
    again = client.post(f"/persons/{ADULT}/consents/{stored['id']}/$withdraw", headers=auth(token))
    assert again.status_code == 409


def test_care_team_put_and_get(api):
    client, token, _ = api
    assert client.get(f"/persons/{ADULT}/care-team", headers=auth(token)).status_code == 404
    resource = care_team_resource(ADULT, [member(DR_HEALTH)])
    created = client.put(f"/persons/{ADULT}/care-team", content=json.dumps(resource), headers=auth(token))
    assert created.status_code == 201
    got = client.get(f"/persons/{ADULT}/care-team", headers=auth(token))
    assert got.json()["participant"] == resource["participant"]
    updated = client.put(f"/persons/{ADULT}/care-team", content=json.dumps(resource), headers=auth(token))
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    # sent without an identifier both times: still the same care team (business identifier kept)
    assert "identifier" not in resource
    assert updated.json()["identifier"] == created.json()["identifier"] == got.json()["identifier"]
    assert updated.json()["id"] == created.json()["id"]
    bad = {**resource, "subject": {"reference": "Patient/U000099"}}
    refused = client.put(f"/persons/{ADULT}/care-team", content=json.dumps(bad), headers=auth(token))
    assert refused.status_code == 422 and refused.json()["errors"][0]["location"] == "CareTeam.subject"


def test_information_then_team_sharing_is_permitted(api):
    client, token, _ = api
    headers = {"Authorization": f"Bearer {token}"}
    client.put(f"/persons/{ADULT}/care-team", content=json.dumps(care_team_resource(ADULT, [member(DR_HEALTH)])),
               headers=auth(token))
    sharing = decision_body(to=DR_HEALTH, flow="partage")
    assert client.post("/decisions", json=sharing, headers=headers).json()["decision"] == "deny"
    record = {"informed_at": "2026-11-20T10:00:00+01:00", "method": "written", "informed_by": "PRO-COORD-B",
              "notice_version": "notice-2026-01", "topics": ["care-team-sharing", "cross-category-exchange"]}
    created = client.post(f"/persons/{ADULT}/information", json=record, headers=headers)
    assert created.status_code == 201
    assert created.json()["topics"] == ["care-team-sharing", "cross-category-exchange"]
    assert client.get(f"/persons/{ADULT}/information", headers=headers).json()["items"][0]["method"] == "written"
    answer = client.post("/decisions", json=sharing, headers=headers).json()
    assert answer["decision"] == "permit" and "L3-L5-care-team-sharing" in answer["rule_ids"]
    assert all(r["message"] and r["message_en"] and r["source"] for r in answer["reasons"])


def test_bad_requests_are_precise_problems(api):
    client, token, _ = api
    headers = {"Authorization": f"Bearer {token}"}
    bad = decision_body(data_categories=["everything"])
    response = client.post("/decisions", json=bad, headers=headers)
    assert response.status_code == 400 and response.json()["errors"][0]["location"].startswith("$.data_categories")
    info = client.post(f"/persons/{ADULT}/information", json={"method": "telepathy"}, headers=headers)
    assert info.status_code == 400
    wrong_type = client.post(f"/persons/{ADULT}/consents", content=b"<Consent/>",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"})
    assert wrong_type.status_code == 415


def test_unknown_person_is_404(api):
    client, token, _ = api
    assert client.get("/persons/U999999/consents", headers=auth(token)).status_code == 404
    answer = client.post("/decisions", json=decision_body(person="U999999"),
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404


def test_another_tenants_key_sees_nothing(api):
    client, token_a, token_b = api
    stored = post(client, token_a, outside_team()).json()
    assert client.get(f"/persons/{ADULT}/consents", headers=auth(token_b)).status_code == 404
    assert client.get(f"/persons/{ADULT}/consents/{stored['id']}", headers=auth(token_b)).status_code == 404
    assert client.post(f"/persons/{ADULT}/consents/{stored['id']}/$withdraw", headers=auth(token_b)).status_code == 404
    assert client.get(f"/persons/{ADULT}/care-team", headers=auth(token_b)).status_code == 404
    assert post(client, token_b, outside_team()).status_code == 404
    answer = client.post("/decisions", json=decision_body(), headers={"Authorization": f"Bearer {token_b}"})
    assert answer.status_code == 404
    assert client.get(f"/persons/{ADULT}/consents", headers=auth(token_a)).json()["total"] == 1


def test_no_key_no_consents(api):
    client, _, _ = api
    assert client.get(f"/persons/{ADULT}/consents").status_code == 401
    assert client.post("/decisions", json=decision_body()).status_code == 401


def test_the_routes_are_documented(api):
    client, _, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/persons/{person_id}/consents", "/persons/{person_id}/consents/{consent_id}/$withdraw",
                 "/persons/{person_id}/care-team", "/persons/{person_id}/information", "/decisions"):
        assert path in paths

