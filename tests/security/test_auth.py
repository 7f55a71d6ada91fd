"""Authentication and isolation: a platform's key never reaches another platform's data on any
route of the OpenAPI document (read or write), a revoked key fails at once (also from another
process), and brute force on the DPO console is slowed then locked over real HTTP."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from connectors.sandbox.server import ThreadedServer
from gateway.api.app import create_app
from gateway.console import accounts
from gateway.settings import Settings
from gateway.storage import Store
from tests.security.conftest import assert_problem

ROOT = Path(__file__).resolve().parents[2]


def tenant_rows(store: Store, tenant_id: str) -> dict[str, str]:
    """Digest of every row belonging to one platform (tables with a tenant_id column)."""
    meta = sa.MetaData()
    meta.reflect(store.engine)
    out = {}
    with store.engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if "tenant_id" not in table.c:
                continue
            rows = sorted(repr(tuple(r)) for r in conn.execute(sa.select(table).where(table.c.tenant_id == tenant_id)))
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16] + f":{len(rows)}"
    return out


PUBLIC = {"/health", "/schemas/plan", "/problems/{slug}", "/nomenclature/serafin", "/nomenclature/serafin/{code}"}


def _operations(client) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    return [(method.upper(), path) for path, item in sorted(doc["paths"].items()) for method in item
            if method in ("get", "post", "put", "delete", "patch")]


def _fill(path: str, world) -> str:
    values = {"person_id": world.person, "consent_id": world.consent_id, "exchange_id": world.exchange_id,
              "item_id": world.inbound_id, "version": "1", "index": "0", "year": "2026", "code": "2.3.3.1",
              "slug": "not-found"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _secrets_of_a(world) -> list[str]:
    person = world.plan["person"]
    return [person["birth_family_name"], person["ins"]["value"], world.plan["title"], world.consent_id,
            world.exchange_id, world.inbound_id, world.plan["needs"][0]["description"]]


def _body_for(method: str, path: str, world) -> bytes | None:
    if method == "GET":
        return None
    if path.endswith("/plan"):
        return json.dumps(world.plan).encode()
    if path.endswith("/consents") or path.endswith("/care-team"):
        return b'{"resourceType": "Consent"}'
    if path.endswith("$reject"):
        return b'{"reason": "test"}'
    return b"{}"


def test_a_key_never_reaches_another_platforms_data_on_any_route(world):
    """Platform B, with its own valid key, aims every operation at platform A's ids."""
    store, client = world.store, world.client
    a_before = tenant_rows(store, world.a.id)
    secrets = _secrets_of_a(world)
    seen = []
    for method, template in _operations(client):
        path = _fill(template, world)
        headers = world.auth(world.token_b, **{"Content-Type": "application/json", "If-Match": "*"})
        response = client.request(method, path, content=_body_for(method, template, world), headers=headers)
        seen.append((method, template, response.status_code))
        assert response.status_code < 500, (method, path, response.text)
        if template in PUBLIC:  # the same for everyone (documentation, nomenclature)
            continue
        text = response.text
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            text = json.dumps({k: v for k, v in response.json().items() if k != "instance"})
        leaked = [s for s in secrets if s in text and s not in path]  # echoing B's own request is no leak
        # B may create *its own* person under the same local id (PUT plan): that is B's data.
        if method == "PUT" and template == "/persons/{person_id}/plan":
            leaked = [s for s in leaked if s not in (world.plan["title"], world.plan["needs"][0]["description"],
                                                     world.plan["person"]["birth_family_name"])]
        assert not leaked, (method, path, leaked, text[:300])
    assert tenant_rows(store, world.a.id) == a_before, "platform B changed platform A's data"
    assert len(seen) >= 45
    # B's own listings show nothing of A.
    for path in ("/persons", "/exchanges", "/inbound", "/activity/capacity"):
        body = client.get(path, headers=world.auth(world.token_b)).text
        assert not [s for s in secrets if s in body], path


def test_a_withdrawal_replay_or_review_aimed_at_another_platform_is_not_found(world):
    client = world.client
    b = world.auth(world.token_b)
    for path in (f"/persons/{world.person}/consents/{world.consent_id}/$withdraw",
                 f"/exchanges/{world.exchange_id}/$replay", f"/inbound/{world.inbound_id}/$apply",
                 f"/inbound/{world.inbound_id}/$reject"):
        assert_problem(client.post(path, headers=b, content=b"{}"), 404, "not-found")
    # …while A can reach them: the ids were real.
    assert client.get(f"/inbound/{world.inbound_id}", headers=world.auth()).status_code == 200


def test_a_revoked_key_fails_at_once_even_when_revoked_by_another_process(world, tmp_path):
    store = world.store
    url = store.engine.url.render_as_string(hide_password=False)
    key_id = world.token_a.split("_")[1]
    with ThreadedServer(create_app(store, Settings(audit_key_dir=tmp_path / "keys"))) as server, \
            httpx.Client(base_url=server.url, timeout=20) as http:
        headers = {"Authorization": f"Bearer {world.token_a}"}
        assert http.get("/persons", headers=headers).status_code == 200
        revoked = subprocess.run([sys.executable, "-m", "gateway.cli.main", "tenant", "revoke", key_id,
                                  "--database", url], cwd=ROOT, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "RELAIS_LOG_LEVEL": "WARNING"})
        assert revoked.returncode == 0, revoked.stderr
        response = http.get("/persons", headers=headers)  # the very next request
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert http.get("/persons", headers={"Authorization": f"Bearer {world.token_b}"}).status_code == 200


def test_a_key_revoked_through_a_second_store_is_refused_by_the_first_at_once(world):
    """Two gateway processes on one database: no cache lets a revoked key through."""
    other = Store(world.store.engine.url.render_as_string(hide_password=False))
    try:
        assert world.client.get("/persons", headers=world.auth()).status_code == 200
        other.revoke_api_key(world.token_a.split("_")[1])
        assert_problem(world.client.get("/persons", headers=world.auth()), 401, "unauthorized")
    finally:
        other.close()


# ----------------------------------------------------------------------- console brute force


def _login(http: httpx.Client, password: str, login: str = "dpo.a") -> httpx.Response:
    page = http.get("/console/connexion")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return http.post("/console/connexion", data={"csrf": token, "plateforme": "plateforme-a",
                                                  "identifiant": login, "mot_de_passe": password, "suite": ""},
                     headers={"Origin": str(http.base_url).rstrip("/")})


@pytest.fixture
def console_server(world, tmp_path):
    config = Settings(database_url=world.store.engine.url.render_as_string(hide_password=False),
                      audit_key_dir=tmp_path / "keys", console_scrypt_log2_n=12,
                      console_login_delay_seconds=0.1, console_lockout_failures=5, console_lockout_minutes=15)
    accounts.create_account(world.store, "plateforme-a", "dpo.a", "phrase de passe du DPO 2026", config=config)
    with ThreadedServer(create_app(world.store, config)) as server:
        yield server, config


def test_console_brute_force_over_http_is_slowed_then_locked_with_the_real_clock(world, console_server):
    server, config = console_server
    right = "phrase de passe du DPO 2026"
    with httpx.Client(base_url=server.url, timeout=20, follow_redirects=False) as http:
        assert _login(http, "mauvais mot de passe 1").status_code == 401
        assert _login(http, "mauvais mot de passe 2").status_code == 401
        slowed = _login(http, right)  # at once: even the right password must wait
        assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
        outcomes = []
        for n in (3, 4, 5):
            time.sleep(config.console_login_delay_seconds * 2 ** (n - 2) + 0.05)  # wait out the growing delay
            outcomes.append(_login(http, f"mauvais mot de passe {n}").status_code)
        assert outcomes == [401, 401, 429]  # the 5th failure locks the login
        time.sleep(1.0)  # longer than any delay so far: only the lock-out still refuses
        locked = _login(http, right)
        assert locked.status_code == 429 and "bloquée" in html.unescape(locked.text)
        assert int(locked.headers["retry-after"]) > 14 * 60  # locked for the configured 15 minutes
    with world.store.reading() as conn:
        outcomes = [json.loads(bytes(b))["outcome"] for b in conn.execute(sa.text(
            "SELECT body FROM audit_entries WHERE action = 'console.login' ORDER BY seq")).scalars()]
    assert "throttled" in outcomes and "locked" in outcomes and "success" not in outcomes


def test_unlocking_lets_the_dpo_in_again(world, console_server):
    server, config = console_server
    with httpx.Client(base_url=server.url, timeout=20, follow_redirects=False) as http:
        for n in range(config.console_lockout_failures):
            _login(http, f"mauvais mot de passe {n}")
            time.sleep(config.console_login_delay_seconds * 2 ** max(n - 1, 0) + 0.05)
        assert _login(http, "phrase de passe du DPO 2026").status_code == 429
        assert accounts.unlock(world.store, "plateforme-a", "dpo.a") is True
        assert _login(http, "phrase de passe du DPO 2026").status_code == 303
