"""The audit routes: newest checkpoint, verifier keys, inclusion and consistency proofs that
verify against the signed root, a tenant's own entries only, problem+json errors."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.audit import merkle, note
from gateway.audit.checkpoint import sign_checkpoint
from gateway.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
def api(store, sample_plan, tmp_path):
    config = Settings(audit_key_dir=tmp_path / "keys", audit_origin="relais.test/audit")
    tenant_a = store.create_tenant("plateforme-a", "Plateforme A")
    store.create_tenant("plateforme-b", "Plateforme B")
    _, token_a = store.create_api_key("plateforme-a", "test")
    _, token_b = store.create_api_key("plateforme-b", "test")
    store.put_plan(tenant_a, sample_plan, if_match=None, actor="key:plateforme-a")  # entry 0
    first = sign_checkpoint(store.engine, config)  # + the key's entry: size 2
    store.put_plan(tenant_a, sample_plan.model_copy(update={"title": "v2"}), if_match="*", actor="cli")
    second = sign_checkpoint(store.engine, config)
    with TestClient(create_app(store, config)) as client:
        yield client, {"Authorization": f"Bearer {token_a}"}, {"Authorization": f"Bearer {token_b}"}, first, second


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_the_newest_checkpoint_is_a_signed_note_that_opens_with_the_served_keys(api):
    client, a, _, _, second = api
    response = client.get("/audit/checkpoint", headers=a)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    keys = client.get("/audit/keys", headers=a).text.split()
    opened = note.open_note(response.text, [note.parse_vkey(k) for k in keys])
    assert opened.verified and note.parse_checkpoint(opened.text).size == second.size == 3


def test_an_inclusion_proof_leads_to_the_signed_root(api):
    client, a, _, first, second = api
    body = client.get("/audit/proof/inclusion", params={"index": 0}, headers=a).json()
    leaf = merkle.leaf_hash(body["entry"].encode())
    assert b64(body["leaf_hash"]) == leaf and body["size"] == second.size
    merkle.verify_inclusion(0, second.size, leaf, [b64(h) for h in body["hashes"]], second.root)
    assert note.parse_checkpoint(note.parse_note(body["checkpoint"])[0]).root == second.root
    older = client.get("/audit/proof/inclusion", params={"index": 0, "size": first.size}, headers=a).json()
    merkle.verify_inclusion(0, first.size, leaf, [b64(h) for h in older["hashes"]], first.root)


def test_a_consistency_proof_links_two_checkpoints(api):
    client, a, _, first, second = api
    body = client.get("/audit/proof/consistency", params={"from": first.size, "to": second.size}, headers=a).json()
    merkle.verify_consistency(first.size, second.size, first.root, second.root, [b64(h) for h in body["hashes"]])


def test_a_tenant_sees_only_its_own_entries(api):
    client, a, b, _, _ = api
    assert client.get("/audit/entries/0", headers=a).json()["action"] == "plan.version.stored"
    for path, params in (("/audit/entries/0", {}), ("/audit/proof/inclusion", {"index": 0})):
        response = client.get(path, params=params, headers=b)
        assert response.status_code == 404 and response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("path,params,status", [
    ("/audit/proof/inclusion", {"index": 0, "size": 99}, 400),
    ("/audit/proof/inclusion", {"index": -1}, 400),
    ("/audit/proof/consistency", {"from": 3, "to": 2}, 400),
    ("/audit/proof/consistency", {"from": 1, "to": 99}, 400),
])
def test_out_of_range_proofs_are_refused_as_problems(api, path, params, status):
    client, a, _, _, _ = api
    response = client.get(path, params=params, headers=a)
    assert response.status_code == status and response.headers["content-type"].startswith(PROBLEM)


def test_audit_routes_need_an_api_key(api):
    client = api[0]
    for path in ("/audit/checkpoint", "/audit/keys", "/audit/proof/consistency?from=1"):
        response = client.get(path)
        assert response.status_code == 401 and response.headers["content-type"].startswith(PROBLEM)
