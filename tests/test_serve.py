"""`relais serve` as a user starts it: a real process, its API, and the delivery worker it embeds
when connectors are configured (RELAIS_WORKER_IN_PROCESS), so a single node delivers on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.sandbox.server import ThreadedServer, free_port
from gateway.storage import Store
from tests.faults.harness import local_id, platform, recording_peer

RELAIS = str(Path(sys.executable).with_name("relais"))


def serve(tmp_path: Path, database: str, peer_url: str, **extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "RELAIS_DATABASE_URL": database, "RELAIS_AUDIT_KEY_DIR": str(tmp_path / "keys"),
           "RELAIS_CONNECTORS__EPARCOURS__BASE_URL": peer_url,
           "RELAIS_CONNECTORS__EPARCOURS__TOKEN_URL": f"{peer_url}/oauth/token",
           "RELAIS_CONNECTORS__EPARCOURS__CLIENT_ID": "relais",
           "RELAIS_CONNECTORS__EPARCOURS__CLIENT_SECRET": "sandbox-secret", **extra}
    process = subprocess.Popen([RELAIS, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/persons", timeout=2).status_code == 401:
                return process, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "relais serve ne répond pas"
        time.sleep(0.1)


def status_after(client: httpx.Client, exchange_id: str, seconds: float, until: str) -> str:
    deadline = time.monotonic() + seconds
    while True:
        status = client.get(f"/exchanges/{exchange_id}").json()["status"]
        if status == until or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@pytest.mark.parametrize("embedded", [True, False], ids=["worker-in-process", "api-only"])
def test_relais_serve_delivers_with_its_embedded_worker_unless_told_not_to(tmp_path, embedded):
    database = f"sqlite:///{tmp_path / 'relais.db'}"
    store = Store(database)
    store.migrate()
    tenant = platform(store, 1)
    _, token = store.create_api_key(tenant.slug, "DUI")
    store.close()
    peer = recording_peer()
    with ThreadedServer(peer.app) as server:
        process, url = serve(tmp_path, database, server.url,
                             RELAIS_WORKER_IN_PROCESS="true" if embedded else "false")
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                answer = client.post("/exchanges", json={
                    "person": local_id(0), "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
                    "recipient": {"kind": "system", "identifier": "eparcours"}})
                assert answer.status_code == 201, answer.text
                status = status_after(client, answer.json()["id"], 30 if embedded else 2, "sent")
        finally:
            process.terminate()
            output = process.communicate(timeout=30)[0]
    if embedded:
        assert status == "sent", output
        assert peer.store.order_by_person() == {local_id(0): [1]}
        assert "travailleur d'envoi intégré : eparcours" in output
    else:  # an API-only node leaves the queue to `relais worker` processes
        assert status == "queued"
        assert peer.store.order_by_person() == {}
