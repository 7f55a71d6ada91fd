"""POST /exchanges answers its errors in the same order whatever does the work: the key first
(401), then the body's size when it is streamed (413; a Content-Length over the limit is
refused before any route), its JSON (400) and its fields (400); the access log names
the tenant. The key, the body's checks and the submission run in one hand-off to a worker
thread (they were three: two sync dependencies and the submission)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.settings import Settings

PROBLEM = "application/problem+json"
BODY = {"person": "P1", "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
        "recipient": {"kind": "system", "identifier": "eparcours"}}


@pytest.fixture
def api(store):
    store.create_tenant("plateforme-a", "Plateforme A")
    _, token = store.create_api_key("plateforme-a", "test")
    with TestClient(create_app(store, Settings(max_body_bytes=4096))) as client:
        yield client, token


def streamed(data: bytes):
    """A body sent chunked, without Content-Length: its size is only known while reading it."""
    for i in range(0, len(data), 1000):
        yield data[i:i + 1000]


def kind(response) -> str:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    return f"{response.status_code} {response.json()['type']}"


@pytest.mark.parametrize("key", [None, "Bearer rk_unknown.secret", "Bearer nonsense"])
def test_a_missing_or_unknown_key_is_answered_before_anything_in_the_body(api, key):
    client, _ = api
    headers = {"Authorization": key} if key else {}
    oversized = json.dumps(dict(BODY, person="x" * 10_000)).encode()
    for content in (b"{not json", json.dumps(dict(BODY, purpose="marketing")).encode()):
        assert kind(client.post("/exchanges", content=content, headers=headers)) == "401 /problems/unauthorized"
    # A Content-Length over the limit is refused by the middleware before any route.
    assert kind(client.post("/exchanges", content=oversized, headers=headers)) == "413 /problems/too-large"
    # Streamed past the limit: the key is still judged first, as when it was a dependency.
    response = client.post("/exchanges", content=streamed(oversized), headers=headers)
    assert kind(response) == "401 /problems/unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="relais"'


def test_with_a_good_key_the_body_is_judged(api):
    client, token = api
    headers = {"Authorization": f"Bearer {token}"}
    oversized = json.dumps(dict(BODY, person="x" * 10_000)).encode()
    assert kind(client.post("/exchanges", content=oversized, headers=headers)) == "413 /problems/too-large"
    assert kind(client.post("/exchanges", content=streamed(oversized), headers=headers)) == "413 /problems/too-large"
    assert kind(client.post("/exchanges", content=b"{not json", headers=headers)).startswith("400 ")
    bad = client.post("/exchanges", json=dict(BODY, purpose="marketing"), headers=headers)
    assert kind(bad) == "400 /problems/invalid-request"
    assert [e["location"] for e in bad.json()["errors"]] == ["$.purpose"]
    unknown_kind = client.post("/exchanges", json=dict(BODY, payload_kind="nothing-known"), headers=headers)
    assert kind(unknown_kind) in ("400 /problems/invalid-request", "404 /problems/not-found")


def test_the_access_log_names_the_tenant(api, monkeypatch):
    from gateway.api import middleware

    client, token = api
    lines = []
    monkeypatch.setattr(middleware.log, "info", lambda event, **fields: lines.append((event, fields)))
    client.post("/exchanges", json=dict(BODY, purpose="marketing"), headers={"Authorization": f"Bearer {token}"})
    client.post("/exchanges", json=BODY)
    assert [(f["route"], f["status"], f["tenant"]) for _, f in lines] == [
        ("/exchanges", 400, "plateforme-a"), ("/exchanges", 401, None)]


def test_an_internal_key_error_is_not_blamed_on_the_request(store, monkeypatch):
    """Only an unknown payload kind is the caller's 400; a KeyError from inside the work (a bug, as
    a race in the gate once raised `KeyError: 'Extension'`) is a 500 without the key's name."""
    from gateway.delivery import pipeline

    store.create_tenant("plateforme-a", "Plateforme A")
    _, token = store.create_api_key("plateforme-a", "test")

    def broken(*args, **kwargs):
        raise KeyError("Extension")

    monkeypatch.setattr(pipeline, "submit", broken)
    with TestClient(create_app(store, Settings()), raise_server_exceptions=False) as client:
        response = client.post("/exchanges", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert "Extension" not in response.text
