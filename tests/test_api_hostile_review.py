"""Defects found by a hostile review of the HTTP API: each input here used to answer a 500 or
to be stored as something else than what was sent. Each is now refused with problem+json naming
the field and the reason, and the database is left exactly as it was."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.settings import Settings
from tests.security.conftest import MAX_BODY, assert_problem, seed_platform, snapshot

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(store, tmp_path):
    """(client, auth headers, person, inbound item id) on a seeded platform."""
    _, token, data, _, _, inbound_id = seed_platform(store)
    config = Settings(max_body_bytes=MAX_BODY, audit_key_dir=tmp_path / "audit-keys")
    with TestClient(create_app(store, config), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {token}", **JSON}, data["person"]["local_id"], inbound_id


def _exchange(person: str, **changes) -> bytes:
    body = {"person": person, "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
            "recipient": {"kind": "system", "identifier": "eparcours"}}
    return json.dumps({**body, **changes}).encode()


@pytest.mark.parametrize("system", ["nosuch", "dmp2", "e-parcours"])
def test_an_exchange_to_an_unknown_system_is_refused_naming_the_field(api, store, system):
    client, headers, person, _ = api
    before = snapshot(store)
    response = client.post("/exchanges", content=_exchange(person, system=system), headers=headers)
    body = assert_problem(response, 400, "invalid-request")
    assert [e["location"] for e in body["errors"]] == ["$.system"]
    assert snapshot(store) == before


# The reason is text. Anything else used to be stored as its Python repr ("['a', 'b']"), and a
# lone surrogate (valid JSON escape, no Unicode character) failed the write with a 500.
@pytest.mark.parametrize("raw", [b'{"reason": ["a", "b"]}', b'{"reason": 12}', b'{"reason": {"text": "x"}}',
                                 b'{"reason": true}', b'{"reason": "motif \\ud800"}'],
                         ids=["list", "number", "object", "boolean", "lone-surrogate"])
def test_a_rejection_reason_that_is_not_text_is_refused_naming_the_field(api, store, raw):
    client, headers, _, inbound_id = api
    before = snapshot(store)
    response = client.post(f"/inbound/{inbound_id}/$reject", content=raw, headers=headers)
    body = assert_problem(response, 400, "invalid-request")
    assert [e["location"] for e in body["errors"]] == ["$.reason"]
    assert snapshot(store) == before


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"reason": null}', b'{"reason": "doublon"}'])
def test_a_rejection_with_a_text_reason_or_none_is_recorded(api, raw):
    client, headers, _, inbound_id = api
    response = client.post(f"/inbound/{inbound_id}/$reject", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert client.get(f"/inbound/{inbound_id}", headers=headers).json()["status"] == "rejected"


# A lone surrogate is a valid JSON escape but no Unicode character: the activity's re-encoding
# failed on it with a 500.
@pytest.mark.parametrize("raw", [b'{"activities": [{"id": "n\\ud800"}]}', b'[{"id": "n1", "code": "\\udfff"}]',
                                 b'"\\ud800"'], ids=["in-a-list", "bare-list", "bare-string"])
def test_an_activity_with_a_lone_surrogate_is_refused_naming_the_item(api, store, raw):
    client, headers, person, _ = api
    before = snapshot(store)
    response = client.post(f"/persons/{person}/activity", content=raw, headers=headers)
    body = assert_problem(response, 422, "invalid-activity")
    assert [(e["location"], e["rule"]) for e in body["errors"]] == [
        ("$.activities[0]" if raw.startswith(b"{") else "$[0]" if raw.startswith(b"[") else "$",
         "activity-not-unicode")]
    assert snapshot(store) == before


# 0001-01-01T00:30+01:00 is a valid date-time whose UTC instant lies before year 1: the storage's
# conversion to UTC overflowed inside SQLAlchemy (a StatementError, not a DataError) and
# answered a 500.
def test_an_information_date_before_year_one_in_utc_is_a_400_problem(api, store):
    client, headers, person, _ = api
    before = snapshot(store)
    body = {"informed_at": "0001-01-01T00:30:00+01:00", "method": "oral", "informed_by": "P1",
            "notice_version": "v1", "topics": ["care-team-sharing"]}
    response = client.post(f"/persons/{person}/information", content=json.dumps(body), headers=headers)
    assert_problem(response, 400, "invalid-request")
    assert snapshot(store) == before


# Without a Content-Length (chunked), the body limit is found while the body streams in: the
# DPO console's forms (a sub-application) did not know that refusal and answered a bare 500.
@pytest.mark.parametrize("path", ["/console/connexion", "/console/deconnexion", "/console/integrite/verifier"])
def test_an_oversized_chunked_form_to_the_console_is_a_413_problem(api, store, path):
    client = api[0]
    before = snapshot(store)
    chunks = (b"x" * 32 * 1024 for _ in range(MAX_BODY // (32 * 1024) + 2))
    response = client.post(path, content=chunks, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, 413, "too-large")
    assert snapshot(store) == before


# A message that quotes the caller's own text (a request method, a resource type) held its lone
# surrogate: the JSON answer could not be encoded in UTF-8, a 500, after the activity had been
# recorded. The answer now escapes it as the caller did (\ud800), in plain ASCII JSON.
def _tddui(person: str = "U000001") -> dict:
    import datetime as dt

    from mappings.fhir.tddui import plan_to_bundle
    from tests.conftest import make_plan, sample_plan_dict

    return plan_to_bundle(make_plan(sample_plan_dict()), dt.datetime(2026, 11, 26, tzinfo=dt.UTC))


def test_an_import_warning_quoting_a_lone_surrogate_is_answered_as_json(api):
    client, headers, _, _ = api
    bundle = _tddui()
    bundle["entry"][0]["request"]["url"] = "Organization\ud800"
    response = client.post("/$import-tddui", content=json.dumps(bundle).encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.content.isascii()
    problems = {p["location"]: p for p in response.json()["problems"]}
    assert problems["Bundle.entry[0].request"]["rule"] == "tddui-request"
    assert "Organization\ud800" in problems["Bundle.entry[0].request"]["message"]


def test_an_activity_warning_quoting_a_lone_surrogate_is_answered_as_json(api, store):
    from tests.test_activity_record import _plan_with_events

    client, headers, _, _ = api
    plan = _plan_with_events()
    tenant = store.authenticate(headers["Authorization"].removeprefix("Bearer "))
    store.put_plan(tenant, plan, if_match=None, actor="test")
    import datetime as dt

    from mappings.fhir.tddui import plan_to_bundle
    from mappings.fhir.tddui.constants import X_RELAIS_SERVICE

    bundle = plan_to_bundle(plan, dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    # EV2 (no planned service, its own modality) names a service that is nowhere: a warning quoting it
    ev2 = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
               and any(i["value"].endswith("-EVN-EV2") for i in e["resource"].get("identifier", [])))
    ev2.setdefault("extension", []).append({"url": X_RELAIS_SERVICE, "valueReference": {"reference": "Task/inconnue\ud800"}})
    response = client.post(f"/persons/{plan.person.local_id}/activity", content=json.dumps(bundle).encode(),
                           headers={**headers, "Content-Type": "application/fhir+json"})
    assert response.status_code == 201, response.text
    assert response.content.isascii() and response.json()["created"] == 3
