"""The HTTP API: plans with optimistic concurrency, problem+json errors, limits, tenants."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
def plan_data(sample_plan) -> dict:
    return sample_plan.model_dump(mode="json")


@pytest.fixture
def api(store):
    """(client, token of tenant A, token of tenant B) on the parametrised store."""
    store.create_tenant("plateforme-a", "Plateforme A")
    store.create_tenant("plateforme-b", "Plateforme B")
    _, token_a = store.create_api_key("plateforme-a", "test")
    _, token_b = store.create_api_key("plateforme-b", "test")
    app = create_app(store, Settings(max_body_bytes=256 * 1024))
    with TestClient(app) as client:
        yield client, token_a, token_b


def auth(token: str, **extra: str) -> dict:
    return {"Authorization": f"Bearer {token}", **extra}


def put(client, token, data, person=None, **headers):
    person = person or data["person"]["local_id"]
    return client.put(f"/persons/{person}/plan", content=json.dumps(data),
                      headers=auth(token, **{"Content-Type": "application/json"}, **headers))


def assert_problem(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"] == f"/problems/{kind}"
    assert body["title"] and body["detail"]
    return body


def test_first_write_creates_the_plan_and_returns_its_etag(api, plan_data):
    client, token, _ = api
    response = put(client, token, plan_data)
    assert response.status_code == 201
    etag = response.headers["ETag"]
    assert response.json()["version"] == 1 and response.json()["created"] is True
    got = client.get(f"/persons/{plan_data['person']['local_id']}/plan", headers=auth(token))
    assert got.status_code == 200 and got.headers["ETag"] == etag
    assert got.json() == plan_data


def test_reading_with_the_current_etag_answers_not_modified(api, plan_data):
    client, token, _ = api
    etag = put(client, token, plan_data).headers["ETag"]
    pid = plan_data["person"]["local_id"]
    response = client.get(f"/persons/{pid}/plan", headers=auth(token, **{"If-None-Match": etag}))
    assert response.status_code == 304


def test_overwriting_without_if_match_is_refused_with_the_current_etag(api, plan_data):
    client, token, _ = api
    etag = put(client, token, plan_data).headers["ETag"]
    plan_data["title"] = "Projet révisé"
    body = assert_problem(put(client, token, plan_data), 428, "precondition-required")
    assert body["current_etag"] == etag


def test_second_coordinator_with_a_stale_etag_gets_412_and_nothing_is_lost(api, plan_data):
    client, token, _ = api
    etag = put(client, token, plan_data).headers["ETag"]
    first = copy.deepcopy(plan_data)
    first["title"] = "Révision A"
    second = copy.deepcopy(plan_data)
    second["title"] = "Révision B"
    assert put(client, token, first, **{"If-Match": etag}).status_code == 200
    assert_problem(put(client, token, second, **{"If-Match": etag}), 412, "precondition-failed")
    pid = plan_data["person"]["local_id"]
    assert client.get(f"/persons/{pid}/plan", headers=auth(token)).json()["title"] == "Révision A"


def test_same_content_again_creates_no_new_version(api, plan_data):
    client, token, _ = api
    etag = put(client, token, plan_data).headers["ETag"]
    again = put(client, token, plan_data, **{"If-Match": etag})
    assert again.status_code == 200 and again.json()["unchanged"] is True
    assert again.headers["ETag"] == etag


def test_invalid_plan_is_refused_with_json_paths_and_reasons(api, plan_data):
    client, token, _ = api
    plan_data["needs"][0]["code"] = "2.3.3.1"
    plan_data["person"]["ins"]["value"] = plan_data["person"]["ins"]["value"][:-2] + "00"
    body = assert_problem(put(client, token, plan_data), 422, "invalid-plan")
    rules = {(e["location"], e["rule"]) for e in body["errors"]}
    assert ("$.person.ins.value", "ins-check-key") in rules
    pid = plan_data["person"]["local_id"]
    assert client.get(f"/persons/{pid}/plan", headers=auth(token)).status_code == 404


def test_semantic_errors_name_the_element(api, plan_data):
    client, token, _ = api
    plan_data["needs"][0]["code"] = "2.3.3.1"
    body = assert_problem(put(client, token, plan_data), 422, "invalid-plan")
    assert body["errors"][0]["location"] == "$.needs[0].code"
    assert body["errors"][0]["rule"] == "serafin-wrong-family"


def test_plan_for_another_person_than_the_url_is_refused(api, plan_data):
    client, token, _ = api
    assert_problem(put(client, token, plan_data, person="AUTRE-123"), 422, "person-mismatch")


@pytest.mark.parametrize(
    "raw, rule",
    [
        (b'{"id": "a", "id": "b"}', "json-duplicate-key"),
        (b'{"id": NaN}', "json-non-finite"),
        (b"[" * 100 + b"]" * 100, "json-too-deep"),
        (b"{not json", "json-syntax"),
        (b"\xff\xfe", "json-encoding"),
    ],
)
def test_hostile_json_is_refused_before_validation(api, raw, rule):
    client, token, _ = api
    response = client.put("/persons/X1/plan", content=raw,
                          headers=auth(token, **{"Content-Type": "application/json"}))
    body = assert_problem(response, 400, "invalid-json")
    assert body["errors"][0]["rule"] == rule


def test_oversized_body_is_refused_with_413(api, plan_data):
    client, token, _ = api
    plan_data["notes"] = "x" * 300_000
    assert_problem(put(client, token, plan_data), 413, "too-large")


def test_non_json_media_type_is_refused(api, plan_data):
    client, token, _ = api
    response = client.put(f"/persons/{plan_data['person']['local_id']}/plan",
                          content=json.dumps(plan_data), headers=auth(token, **{"Content-Type": "text/plain"}))
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer rls_000000000000_nope"},
                                     {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_requests_without_a_valid_key_get_401(api, headers):
    client, _, _ = api
    response = client.get("/persons", headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_fails_at_once(api, store):
    client, token, _ = api
    assert client.get("/persons", headers=auth(token)).status_code == 200
    store.revoke_api_key(token.split("_")[1])
    assert_problem(client.get("/persons", headers=auth(token)), 401, "unauthorized")


def test_a_tenant_never_reads_another_tenants_data(api, plan_data):
    client, token_a, token_b = api
    put(client, token_a, plan_data)
    pid = plan_data["person"]["local_id"]
    for path in (f"/persons/{pid}", f"/persons/{pid}/plan", f"/persons/{pid}/plan/versions",
                 f"/persons/{pid}/plan/versions/1", f"/persons/{pid}/plan/diff?from=1&to=1"):
        assert_problem(client.get(path, headers=auth(token_b)), 404, "not-found")
    assert client.get("/persons", headers=auth(token_b)).json()["items"] == []


def test_a_tenant_cannot_overwrite_another_tenants_plan(api, plan_data):
    client, token_a, token_b = api
    etag = put(client, token_a, plan_data).headers["ETag"]
    hijack = copy.deepcopy(plan_data)
    hijack["title"] = "Écrasement"
    # B's write lands in B's own space (a new person there), never in A's.
    assert put(client, token_b, hijack, **{"If-Match": etag}).status_code == 412
    assert put(client, token_b, hijack).status_code == 201
    pid = plan_data["person"]["local_id"]
    assert client.get(f"/persons/{pid}/plan", headers=auth(token_a)).json()["title"] == plan_data["title"]


def test_history_and_diff_between_versions(api, plan_data):
    client, token, _ = api
    pid = plan_data["person"]["local_id"]
    etag = put(client, token, plan_data).headers["ETag"]
    plan_data["title"] = "Projet révisé"
    put(client, token, plan_data, **{"If-Match": etag})
    history = client.get(f"/persons/{pid}/plan/versions", headers=auth(token)).json()["items"]
    assert [v["version"] for v in history] == [2, 1]
    assert client.get(f"/persons/{pid}/plan/versions/1", headers=auth(token)).json()["title"] != "Projet révisé"
    diff = client.get(f"/persons/{pid}/plan/diff?from=1&to=2", headers=auth(token)).json()
    assert diff["patch"] == [{"op": "replace", "path": "/title", "value": "Projet révisé"}]


def test_person_list_is_paginated_with_a_next_link(api, plan_data):
    client, token, _ = api
    for n in range(5):
        data = copy.deepcopy(plan_data)
        data["person"]["local_id"] = f"P{n:03d}"
        assert put(client, token, data).status_code == 201
    seen, url = [], "/persons?limit=2"
    while url:
        response = client.get(url, headers=auth(token))
        body = response.json()
        seen += [p["local_id"] for p in body["items"]]
        url = body["next"]
        if url:
            assert 'rel="next"' in response.headers["Link"]
    assert seen == [f"P{n:03d}" for n in range(5)]


def test_validate_endpoint_reports_without_storing(api, plan_data):
    client, token, _ = api
    plan_data["services"][0]["code"] = "2.3"
    response = client.post("/plans/$validate", content=json.dumps(plan_data),
                           headers=auth(token, **{"Content-Type": "application/json"}))
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False and body["problems"][0]["rule"] == "serafin-not-leaf"
    assert client.get("/persons", headers=auth(token)).json()["items"] == []


def test_nomenclature_lookups(api):
    client, _, _ = api
    found = client.get("/nomenclature/serafin", params={"q": "eleve"}).json()["items"]
    assert "2.3.3.1" in [c["code"] for c in found]
    shown = client.get("/nomenclature/serafin/2.3.3").json()
    assert [a["code"] for a in shown["ancestors"]] == ["2", "2.3"]
    assert len(shown["children"]) == 6
    assert_problem(client.get("/nomenclature/serafin/9.9"), 404, "not-found")


def test_unknown_routes_and_methods_answer_problem_json(api):
    client, token, _ = api
    assert_problem(client.get("/nowhere", headers=auth(token)), 404, "not-found")
    assert_problem(client.delete("/persons", headers=auth(token)), 405, "method-not-allowed")
    assert_problem(client.get("/persons?limit=0", headers=auth(token)), 400, "invalid-request")


def test_openapi_documents_the_plan_schema(api):
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    assert "Plan" in spec["components"]["schemas"]
    put_op = spec["paths"]["/persons/{person_id}/plan"]["put"]
    assert put_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Plan")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
