"""HTTP API of delivered activity and indicators: problem+json, TDDUI, dataset downloads,
MeasureReports, capacity, and tenant isolation."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.settings import Settings
from mappings.fhir.tddui import plan_to_bundle
from tests.test_activity_record import _plan_with_events
from tests.test_activity_support import (  # noqa: F401 (shared_store is a fixture)
    FINESS,
    HAND_CASE,
    NOW,
    act,
    hand_case,
    plan_for,
    shared_store,
    unique,
)

PROBLEM = "application/problem+json"


@pytest.fixture
def api(shared_store):
    store = shared_store
    a = hand_case(store, unique("plateforme-a"))
    b = store.create_tenant(unique("plateforme-b"), "Plateforme B", "750000002")
    store.put_plan(b, plan_for("A").model_copy(update={"platform": plan_for("A").platform.model_copy(
        update={"finess": "750000002"})}), if_match=None, actor="test")
    _, token_a = store.create_api_key(a.slug, "test")
    _, token_b = store.create_api_key(b.slug, "test")
    with TestClient(create_app(store, Settings())) as client:
        yield client, token_a, token_b


def auth(token: str, media: str = "application/json") -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": media}


def test_post_activity_records_and_answers_the_outcome_of_each(api):
    client, token, _ = api
    body = {"activities": [act("n1", "2026-03-02", "09:00", "10:00"), HAND_CASE["A"][1][0]]}
    response = client.post("/persons/A/activity", content=json.dumps(body), headers=auth(token))
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert (outcome["created"], outcome["unchanged"]) == (1, 1)
    assert [i["outcome"] for i in outcome["items"]] == ["created", "unchanged"]
    again = client.post("/persons/A/activity", content=json.dumps(body), headers=auth(token))
    assert again.status_code == 200 and again.json()["unchanged"] == 2


def test_a_single_activity_object_is_accepted(api):
    client, token, _ = api
    response = client.post("/persons/B/activity", content=json.dumps(act("n2", "2026-03-03", "14:00", "15:00")),
                           headers=auth(token))
    assert response.status_code == 201 and response.json()["created"] == 1


def test_refused_activity_is_a_422_problem_with_json_paths(api):
    client, token, _ = api
    body = {"activities": [act("n3", "2026-03-02", "09:00", "10:00", code="1.1.1", service="S9")]}
    response = client.post("/persons/A/activity", content=json.dumps(body), headers=auth(token))
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["type"] == "/problems/invalid-activity"
    assert {(e["location"], e["rule"]) for e in problem["errors"]} >= {
        ("$.activities[0].code", "serafin-wrong-family"), ("$.activities[0].service_id", "activity-unknown-service")}


def test_a_tddui_bundle_is_read_as_activity(api):
    client, token, _ = api
    bundle = plan_to_bundle(_plan_with_events(), NOW)
    response = client.post("/persons/A/activity", content=json.dumps(bundle),
                           headers=auth(token, "application/fhir+json"))
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 3


def test_person_activity_shows_planned_and_delivered(api):
    client, token, _ = api
    response = client.get("/persons/A/activity", params={"from": "2026-02-01", "to": "2026-02-28"},
                          headers=auth(token))
    assert response.status_code == 200
    services = {s["service_id"]: s for s in response.json()["services"]}
    assert services["S1"]["planned"]["value"] == 12.0 and services["S1"]["delivered"]["hours"] == 2.5


def test_a_reference_week_past_the_calendar_is_a_400_naming_it(api):
    client, token, _ = api
    response = client.get("/activity/indicators", headers=auth(token), params={
        "from": "2026-02-01", "to": "2026-02-28", "reference_week": "9999-12-31"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["location"] == "reference_week"
    assert "hors limites" in response.json()["errors"][0]["message"]


def test_indicators_route_with_reference_week_and_specialisation(api):
    client, token, _ = api
    response = client.get("/activity/indicators", headers=auth(token), params={
        "from": "2026-02-01", "to": "2026-02-28", "reference_week": "2026-W06", "by": "specialisation"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_active"]["all"] == 2 and body["reference_week"]["from"] == "2026-02-02"
    assert body["occupancy"]["by_modality"]["day_care"]["value"] == round(3 / 28, 4)
    assert set(body["by_specialisation"]) == {"neurodevelopmental", "psychiatric", "sensory"}
    assert [m["month"] for m in body["series"]] == ["2026-02"]


@pytest.mark.parametrize("params", [{"from": "2026-03-01", "to": "2026-02-01"}, {"reference_week": "42"},
                                    {"by": "colour"}, {"from": "demain"}])
def test_bad_indicator_parameters_are_400_problems(api, params):
    client, token, _ = api
    response = client.get("/activity/indicators", headers=auth(token), params=params)
    assert response.status_code == 400 and response.headers["content-type"].startswith(PROBLEM)


def test_the_dataset_downloads_as_csv_and_json(api):
    client, token, _ = api
    as_json = client.get("/activity/dataset/2026.json", headers=auth(token))
    as_csv = client.get("/activity/dataset/2026.csv", headers=auth(token))
    assert as_json.status_code == as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    data = as_json.json()
    assert data["format"] == "relais-serafin-dataset/1" and len(rows) == len(data["indicators"])
    overall = next(r for r in rows if r["indicator"] == "file_active" and r["scope"] == "year" and r["modality"] == "*")
    assert overall["value"] == "3" and overall["finess"] == FINESS


def test_measure_reports_are_a_fhir_bundle(api):
    client, token, _ = api
    response = client.get("/activity/measure-reports", params={"year": 2026}, headers=auth(token))
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"MeasureReport"}


def test_capacity_is_put_and_listed(api):
    client, token, _ = api
    body = {"valid_from": "2026-06-01", "capacities": [{"modality": "night_care", "places": 4},
                                                        {"modality": "day_care", "places": 3, "opening_days": 220}]}
    response = client.put("/activity/capacity", content=json.dumps(body), headers=auth(token))
    assert response.status_code == 200, response.text
    lines = {(c["modality"], c["valid_from"]): c for c in response.json()["capacities"]}
    assert lines[("night_care", "2026-06-01")]["opening_days"] == 365  # default for night care
    assert lines[("day_care", "2026-06-01")]["places"] == 3 and lines[("day_care", "2026-01-01")]["places"] == 1
    assert client.get("/activity/capacity", headers=auth(token)).json() == response.json()


@pytest.mark.parametrize("body", [
    {"valid_from": "2026-06-01", "capacities": [{"modality": "moon_base", "places": 4}]},
    {"valid_from": "2026-06-01", "capacities": [{"modality": "day_care", "places": -1}]},
    {"valid_from": "2026-06-01", "finess": "999999999", "capacities": [{"modality": "day_care", "places": 1}]},
    {"valid_from": "2026-06-01", "capacities": [{"modality": "day_care", "places": 1},
                                                {"modality": "day_care", "places": 2}]},
])
def test_bad_capacity_is_refused_and_nothing_changes(api, body):
    client, token, _ = api
    before = client.get("/activity/capacity", headers=auth(token)).json()
    response = client.put("/activity/capacity", content=json.dumps(body), headers=auth(token))
    assert response.status_code == 400 and response.headers["content-type"].startswith(PROBLEM)
    assert client.get("/activity/capacity", headers=auth(token)).json() == before


def test_another_platform_sees_none_of_this_activity(api):
    client, _, other = api
    indicators = client.get("/activity/indicators", params={"from": "2026-01-01", "to": "2026-12-31"},
                            headers=auth(other)).json()
    assert indicators["file_active"]["all"] == 0 and indicators["capacity"] == []
    person = client.get("/persons/A/activity", params={"from": "2026-01-01", "to": "2026-12-31"},
                        headers=auth(other)).json()
    assert person["activities"] == []
    assert client.get("/persons/B/activity", headers=auth(other)).status_code == 404
    dataset = client.get("/activity/dataset/2026.json", headers=auth(other)).json()
    assert next(r for r in dataset["indicators"] if r["modality"] == "*")["value"] == 0


def test_every_route_needs_a_key(api):
    client, _, _ = api
    for method, path in (("get", "/activity/indicators"), ("get", "/activity/dataset/2026.csv"),
                         ("get", "/activity/measure-reports?year=2026"), ("get", "/persons/A/activity"),
                         ("post", "/persons/A/activity"), ("put", "/activity/capacity")):
        assert getattr(client, method)(path).status_code == 401
