"""A TDDUI Bundle holding a value of the wrong JSON type (a list or a number where FHIR has a
string, a string where it has an object, a list, a boolean or a number) is refused before any
mapping reads it: problem+json naming the place (FHIRPath) and the reason, never a 500, nothing
stored. Property-style: every place of a valid Bundle, one at a time, on both routes that read
TDDUI (`POST /$import-tddui`, `POST /persons/{id}/activity` as application/fhir+json)."""

from __future__ import annotations

import datetime as dt
import json

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.activity.tddui import bundle_items
from gateway.api.app import create_app
from gateway.conformance.fhir.structure import read_tddui_bundle
from gateway.settings import Settings
from gateway.storage import Store
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui import plan_to_bundle
from tests.security.conftest import snapshot
from tests.test_activity_record import _plan_with_events

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
TODAY = NOW.date()
FHIR = "application/fhir+json"


def _places(value, path=()):
    """(JSON path, value) of every element below the root, containers included."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield path + (key,), child
        yield from _places(child, path + (key,))


def _wrong_types(value) -> list:
    """Values of another JSON type than `value`'s."""
    if isinstance(value, str):
        return [["ZQ"], 12345]
    if isinstance(value, bool | int | float):
        return ["ZQ"]
    return ["ZQ", 12345] if isinstance(value, dict) else ["ZQ", {"a": 1}]


def _fhirpath(path: tuple) -> str:
    return "Bundle" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)


def _mutated(bundle: dict, path: tuple, value) -> dict:
    out = orjson.loads(orjson.dumps(bundle))
    here = out
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(client, headers, person, bundle) on a platform whose person holds the plan the Bundle carries."""
    folder = tmp_path_factory.mktemp("tddui-hostile")
    store = Store(f"sqlite:///{folder / 'relais.db'}")
    store.migrate()
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "750000001")
    _, token = store.create_api_key("plateforme-a", "test")
    plan = _plan_with_events()
    store.put_plan(tenant, plan, if_match=None, actor="test")
    bundle = json.loads(json.dumps(plan_to_bundle(plan, NOW)))
    settings = Settings(max_body_bytes=512 * 1024, audit_key_dir=folder / "keys")
    with TestClient(create_app(store, settings), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {token}", "Content-Type": FHIR}, plan.person.local_id, bundle, store
    store.close()


def _located(errors: list[dict], where: str) -> bool:
    """An error at the mutated place, or at the resource holding it (its `resourceType`)."""
    holder = where.removesuffix(".resourceType")
    return any(e["location"] in (where, holder) and e["severity"] == "error" for e in errors)


def _mutations(bundle: dict, every: bool):
    """(FHIRPath, mutated Bundle): every place with each wrong type, or (`every=False`) the first
    place of each shape (resource type and path without indexes: the entries repeat themselves)
    with one wrong type, each in turn."""
    shapes = set()
    for path, value in list(_places(bundle)):
        resource = bundle["entry"][path[1]]["resource"] if path[:1] == ("entry",) and len(path) > 2 else {}
        shape = (resource.get("resourceType"), tuple(k for k in path if isinstance(k, str)))
        if not every and shape in shapes:
            continue
        shapes.add(shape)
        wrongs = _wrong_types(value)
        for wrong in wrongs if every else [wrongs[len(shapes) % len(wrongs)]]:
            yield _fhirpath(path), _mutated(bundle, path, wrong)


def _refusal(response) -> str | None:
    """None when the answer is a 4xx problem+json; else what is wrong with it."""
    if response.status_code >= 500 or response.status_code < 400:
        return f"{response.status_code} {response.text[:200]}"
    if not response.headers["content-type"].startswith("application/problem+json"):
        return response.headers["content-type"]
    return None


def test_the_reference_bundle_is_imported_and_recorded(world):
    client, headers, person, bundle, _ = world
    assert client.post("/$import-tddui", content=json.dumps(bundle), headers=headers).status_code == 200
    assert client.post(f"/persons/{person}/activity", content=json.dumps(bundle),
                       headers=headers).status_code in (200, 201)


def test_a_value_of_the_wrong_json_type_is_refused_before_mapping_naming_its_place(world):
    """Every place, each wrong type, through what both routes call (no HTTP: fast)."""
    _, _, _, bundle, _ = world
    plan = _plan_with_events()
    failures = []
    for where, mutated in _mutations(bundle, every=True):
        result, problems = read_tddui_bundle(mutated, TODAY)
        if result is not None or not _located([p.model_dump() for p in problems], where):
            failures.append(f"import {where}: {[p.line() for p in problems][:3]}")
        items, problems = bundle_items(mutated, plan)
        if items or not _located([p.model_dump() for p in problems], where):
            failures.append(f"activity {where}: {[p.line() for p in problems][:3]}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("route", ["/$import-tddui", "/persons/{person}/activity"])
def test_each_route_answers_a_wrong_json_type_with_a_problem_naming_its_place(world, route):
    client, headers, person, bundle, store = world
    route = route.format(person=person)
    client.post(route, content=json.dumps(bundle), headers=headers)  # the reference activity, recorded once
    before = snapshot(store)
    failures = []
    for where, mutated in _mutations(bundle, every=False):
        response = client.post(route, content=json.dumps(mutated), headers=headers)
        wrong = _refusal(response)
        if wrong is None and not _located(response.json().get("errors", []), where):
            wrong = f"not named in {response.text[:300]}"
        if wrong:
            failures.append(f"{where}: {wrong}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    assert snapshot(store) == before


def test_a_resource_of_a_type_fhir_does_not_have_is_not_read_whatever_it_holds(world):
    """The structure check cannot type the values of an unknown resource type: the readers leave
    such a resource out (reported), even when it claims a TDDUI profile or identifier system."""
    client, headers, person, bundle, _ = world
    plan = _plan_with_events()
    for i, entry in enumerate(bundle["entry"]):
        mutated = _mutated(bundle, ("entry", i, "resource", "resourceType"), "Unknown")
        resource = mutated["entry"][i]["resource"]
        resource["meta"]["profile"].insert(0, ["ZQ"])
        resource["identifier"] = [{"system": [c.ID_EVENT[0]], "value": 12345}, *entry["resource"].get("identifier", [])]
        resource["status"] = ["ZQ"]
        _, problems = read_tddui_bundle(mutated, TODAY)
        assert any(p.location == f"Bundle.entry[{i}].resource" for p in problems), [p.line() for p in problems]
        bundle_items(mutated, plan)
        for route in ("/$import-tddui", f"/persons/{person}/activity"):
            assert client.post(route, content=json.dumps(mutated), headers=headers).status_code < 500


def test_relais_fhir_import_refuses_a_wrong_json_type_naming_its_place(world, tmp_path, capsys):
    """`relais fhir import` reads a Bundle as `$import-tddui` does: exit 1 with the place, no traceback."""
    from gateway.cli.main import main

    _, _, _, bundle, _ = world
    path = tmp_path / "bundle.json"
    path.write_bytes(orjson.dumps(_mutated(bundle, ("entry", 0, "fullUrl"), ["ZQ"])))
    assert main(["fhir", "import", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: Bundle.entry[0].fullUrl: [fhir-structure]" in out
