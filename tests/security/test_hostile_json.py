"""Hostile and bad JSON at every JSON entry point of the API, and in query parameters, path
parameters and headers: each is refused with problem+json naming the place (JSON path or
parameter) and the reason, never a 5xx, and the database is left exactly as it was."""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import MAX_BODY, assert_problem, dumps, snapshot

JSON, FHIR = "application/json", "application/fhir+json"

# Every route that reads a JSON body: (method, path template, media type).
BODY_ROUTES = [
    ("PUT", "/persons/{person}/plan", JSON),
    ("POST", "/persons/{person}/consents", FHIR),
    ("PUT", "/persons/{person}/care-team", FHIR),
    ("POST", "/persons/{person}/information", JSON),
    ("POST", "/decisions", JSON),
    ("POST", "/$import-tddui", FHIR),
    ("POST", "/exchanges", JSON),
    ("POST", "/inbound/{inbound}/$reject", JSON),
    ("POST", "/persons/{person}/activity", JSON),
    ("PUT", "/activity/capacity", JSON),
]

# Hostile documents: (bytes, JSON rule expected in errors[0], HTTP status).
HOSTILE = {
    "deep-arrays": (b"[" * 100 + b"]" * 100, "json-too-deep", 400),
    "deep-objects": (b'{"a":' * 80 + b"1" + b"}" * 80, "json-too-deep", 400),
    "very-deep-arrays": (b"[" * 8_000 + b"]" * 8_000, "json-too-deep", 400),  # within every route's size limit
    "huge-float": (b'{"id": 1e400}', "json-non-finite", 400),
    "huge-negative-float": (b'{"id": -1e400}', "json-non-finite", 400),
    "thousand-digit-integer": (b'{"id": ' + b"9" * 1000 + b"}", "json-number-too-large", 400),
    "integer-beyond-64-bits": (b'{"id": 9223372036854775808}', "json-number-too-large", 400),
    "nan": (b'{"id": NaN}', "json-non-finite", 400),
    "infinity": (b'{"id": Infinity}', "json-non-finite", 400),
    "duplicate-key": (b'{"id": "a", "id": "b"}', "json-duplicate-key", 400),
    "nested-duplicate-key": (b'{"a": [{"k": 1, "k": 2}]}', "json-duplicate-key", 400),
    "nul-in-string": (b'{"a": {"b": "x\\u0000y"}}', "json-nul-character", 400),
    "nul-in-key": (b'{"a\\u0000": 1}', "json-nul-character", 400),
    "invalid-utf8": (b'{"a": "\xff\xfe"}', "json-encoding", 400),
    "truncated": (b'{"a": [1, 2', "json-syntax", 400),
    "trailing-garbage": (b'{"a": 1} {"b": 2}', "json-syntax", 400),
    "empty": (b"", "json-syntax", 400),
}


def _path(world, template: str) -> str:
    return template.format(person=world.person, inbound=world.inbound_id)


# Every hostile document at every body route, but an empty body on `$reject`: there it is a
# rejection without a stated reason, which is allowed (documented), not hostile input.
CASES = [pytest.param(method, template, media, case, id=f"{case}-{template}")
         for case in sorted(HOSTILE) for method, template, media in BODY_ROUTES
         if not (case == "empty" and template.endswith("$reject"))]


@pytest.mark.parametrize("method, template, media, case", CASES)
def test_hostile_json_is_refused_at_every_body_route_and_nothing_is_written(shared_world, method, template, media, case):
    raw, rule, status = HOSTILE[case]
    before = snapshot(shared_world.store)
    response = shared_world.client.request(method, _path(shared_world, template), content=raw,
                                     headers=shared_world.auth(**{"Content-Type": media}))
    body = assert_problem(response, status)
    assert body["errors"][0]["rule"] == rule, body
    assert body["errors"][0]["location"].startswith("$")
    assert snapshot(shared_world.store) == before


def test_a_nul_character_is_located_by_its_json_path(shared_world):
    data = dict(shared_world.plan, needs=[dict(shared_world.plan["needs"][0], description="a\u0000b")])
    response = shared_world.client.put(f"/persons/{shared_world.person}/plan", content=dumps(data),
                                headers=shared_world.auth(**{"Content-Type": JSON}))
    body = assert_problem(response, 400, "invalid-json")
    assert body["errors"][0]["location"] == "$.needs[0].description"


@pytest.mark.parametrize("method, template, media", BODY_ROUTES, ids=[r[1] for r in BODY_ROUTES])
def test_oversized_bodies_are_refused_with_413_before_being_read(shared_world, method, template, media):
    before = snapshot(shared_world.store)
    raw = b'{"pad": "' + b"x" * (MAX_BODY + 10) + b'"}'
    response = shared_world.client.request(method, _path(shared_world, template), content=raw,
                                     headers=shared_world.auth(**{"Content-Type": media}))
    assert_problem(response, 413, "too-large")
    assert snapshot(shared_world.store) == before


# Well-formed JSON of the wrong shape: each route answers 4xx naming the field.
WRONG_TYPES = [
    ("PUT", "/persons/{person}/plan", JSON, [], None),
    ("PUT", "/persons/{person}/plan", JSON, {"id": 12, "status": ["agreed"]}, "$"),
    ("POST", "/persons/{person}/consents", FHIR, {"resourceType": "Consent", "status": 3}, None),
    ("PUT", "/persons/{person}/care-team", FHIR, {"resourceType": "CareTeam", "participant": "all"}, None),
    ("POST", "/persons/{person}/information", JSON, {"informed_at": ["2026"], "method": "written"}, "$.informed_at"),
    ("POST", "/decisions", JSON, {"person": ["U1"], "system": "mss"}, "$.person"),
    ("POST", "/decisions", JSON, {"person": "U1", "system": "mss", "purpose": "COC", "data_categories": ["plan"],
                                  "recipient": {"kind": "professional", "rpps": 10000000001}}, "$.recipient.rpps"),
    ("POST", "/$import-tddui", FHIR, {"resourceType": "Bundle", "entry": "none"}, None),
    ("POST", "/exchanges", JSON, {"person": "U1", "system": "eparcours", "purpose": "COC",
                                  "payload_kind": "tddui-bundle", "recipient": {"kind": "system", "identifier": "e"},
                                  "plan_version": [1]},
     "$.plan_version"),
    ("POST", "/exchanges", JSON, ["not", "an", "object"], "$"),
    ("POST", "/inbound/{inbound}/$reject", JSON, "rejeté", "$"),
    ("POST", "/persons/{person}/activity", JSON, {"activities": {"id": 1}}, None),
    ("PUT", "/activity/capacity", JSON, {"valid_from": 2026, "capacities": [{"modality": "x", "places": -1}]}, None),
]


@pytest.mark.parametrize("method, template, media, data, location", WRONG_TYPES,
                         ids=[f"{r[1]}-{i}" for i, r in enumerate(WRONG_TYPES)])
def test_wrong_types_are_refused_naming_the_field(shared_world, method, template, media, data, location):
    before = snapshot(shared_world.store)
    response = shared_world.client.request(method, _path(shared_world, template), content=json.dumps(data),
                                    headers=shared_world.auth(**{"Content-Type": media}))
    assert 400 <= response.status_code < 500, response.text
    body = assert_problem(response)
    assert body.get("errors"), body
    if location:
        assert any(e["location"].startswith(location) for e in body["errors"]), body["errors"]
    assert snapshot(shared_world.store) == before


@pytest.mark.parametrize("template", ["/persons/{person}/plan", "/persons/{person}/consents",
                                      "/decisions", "/persons/{person}/activity"])
def test_a_body_in_another_media_type_is_refused(shared_world, template):
    method = "PUT" if template.endswith("/plan") else "POST"
    response = shared_world.client.request(method, _path(shared_world, template), content=b"<plan/>",
                                    headers=shared_world.auth(**{"Content-Type": "application/xml"}))
    assert_problem(response, 415, "unsupported-media-type")


def test_the_validation_route_reports_hostile_json_without_storing(shared_world):
    before = snapshot(shared_world.store)
    for raw, rule, _ in HOSTILE.values():
        response = shared_world.client.post("/plans/$validate", content=raw, headers=shared_world.auth(**{"Content-Type": JSON}))
        assert response.status_code == 200
        assert response.json()["valid"] is False
        assert response.json()["problems"][0]["rule"] == rule
    assert snapshot(shared_world.store) == before


# --------------------------------------------------------------- query, path and headers

BIG = str(10**30)
BAD_PARAMETERS = [
    f"/persons/{{person}}/plan/versions/{BIG}",
    f"/persons/{{person}}/plan/versions?before={BIG}",
    f"/persons/{{person}}/plan/diff?from=1&to={BIG}",
    f"/persons/{{person}}/consents/c1/_history/{BIG}",
    f"/exchanges?before={BIG}",
    f"/inbound?before={BIG}",
    f"/audit/entries/{BIG}",
    f"/audit/proof/inclusion?index={BIG}",
    f"/audit/proof/consistency?from={BIG}",
    f"/activity/dataset/{BIG}.json",
    f"/activity/measure-reports?year={BIG}",
    "/activity/indicators?from=9999-12-01&to=9999-12-31",
    "/activity/indicators?from=0001-01-01&to=0001-01-05",
    "/persons/{person}/activity?from=9999-12-01&to=9999-12-31",
    "/activity/indicators?from=2026-13-45",
    "/activity/indicators?reference_week=9999-W99",
    "/persons?limit=0",
    "/persons?limit=100000",
    "/persons?limit=-1",
    "/persons?after=../../etc/passwd",
    "/exchanges?status=%00",
    "/inbound?status=' OR 1=1 --",
    "/nomenclature/serafin?q=" + "x" * 500,
    "/persons/%00/plan",
    "/persons/%00/consents",
    "/persons/a%00b/care-team",
    "/exchanges/%00",
    "/inbound/a%00b",
    "/persons/" + "x" * 5000 + "/plan",
    "/persons/%C3%A9%E2%80%AE/consents",
    "/persons/..%2F..%2Fetc%2Fpasswd/plan",
]


@pytest.mark.parametrize("template", BAD_PARAMETERS)
def test_bad_query_and_path_parameters_get_a_4xx_problem_never_a_5xx(shared_world, template):
    before = snapshot(shared_world.store)
    response = shared_world.client.get(_path(shared_world, template), headers=shared_world.auth())
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response)
    assert snapshot(shared_world.store) == before


@pytest.mark.parametrize("headers", [
    {"If-Match": "x" * 8000},
    {"If-Match": '"\\u0000"'},
    {"If-Match": "*, W/\"1\", \"\""},
    {"If-None-Match": "\x7f" * 100},
    {"Content-Type": "application/json; charset=latin-1; " + "p=1;" * 500},
    {"Content-Type": ""},
    {"X-Api-Key": "rls_" + "a" * 10_000},
])
def test_hostile_headers_on_a_write_are_refused_or_ignored_safely(shared_world, headers):
    before = snapshot(shared_world.store)
    headers = {"Authorization": f"Bearer {shared_world.token_a}", "Content-Type": JSON, **headers}
    response = shared_world.client.put(f"/persons/{shared_world.person}/plan", content=dumps(shared_world.plan), headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response)
        assert snapshot(shared_world.store) == before


@pytest.mark.parametrize("authorization", ["Bearer " + "a" * 10_000, "Bearer rls_000000000000_" + "x" * 43, "Bearer", "Bearer  ", "bearer\tx"])
def test_malformed_keys_get_401_problem(shared_world, authorization):
    response = shared_world.client.get("/persons", headers={"Authorization": authorization})
    assert_problem(response, 401, "unauthorized")
