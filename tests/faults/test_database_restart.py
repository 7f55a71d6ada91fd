"""Database faults: PostgreSQL is stopped as by a crash (`pg_ctl stop -m immediate`: every
connection cut mid-transaction) in the middle of a run and started again a few seconds later,
while clients POST /exchanges to the API, an in-process worker and a `relais worker` process
deliver, and the audit checkpointer signs. Nobody intervenes: the API answers 503 (with
Retry-After) while the database is away and the clients' retries go through afterwards; both
workers carry on; every exchange is delivered exactly once as the peer sees it; the audit
trail verifies. A server of its own (it is restarted), not the session's."""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from connectors.sandbox.server import ThreadedServer
from gateway.audit import Checkpointer
from gateway.api.app import create_app
from gateway.delivery.worker import Worker
from gateway.settings import settings
from gateway.storage import Store
from tests.faults.harness import (audit_verifies, claim_owners, connector, delivered_exactly_once, local_id,
                                  platform, recording_peer, rows)
from tests.support.postgres import PostgresServer, start_or_skip

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 40


@pytest.fixture(scope="module")
def restartable():
    # Durable, as in production: the test servers' synchronous_commit=off would lose the last
    # commits on a crash — exchanges whose 201 the client already has.
    server = PostgresServer(durable=True)
    if server.external_url:
        pytest.skip("RELAIS_TEST_POSTGRES_URL : un serveur externe ne peut pas être redémarré ici")
    start_or_skip(server)
    yield server
    server.stop()


class Clients:
    """Coordinators' software asking for one sync per person, retrying what fails (POST
    /exchanges is idempotent: the same request gives the same exchange)."""

    def __init__(self, url: str, token: str, persons: int):
        self.url, self.token, self.persons = url, token, persons
        self.answers: collections.Counter[str] = collections.Counter()
        self.retry_after: set[str] = set()
        self.done = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for i in range(self.persons):
                body = {"person": local_id(i), "system": "eparcours", "purpose": "COC",
                        "payload_kind": "tddui-bundle", "recipient": {"kind": "system", "identifier": "eparcours"}}
                for _ in range(600):
                    try:
                        answer = http.post("/exchanges", json=body, headers={"Authorization": f"Bearer {self.token}"})
                    except httpx.TransportError as exc:
                        self.answers[type(exc).__name__] += 1
                        time.sleep(0.05)
                        continue
                    self.answers[str(answer.status_code)] += 1
                    if answer.status_code in (200, 201):
                        break
                    self.retry_after.add(answer.headers.get("retry-after", ""))
                    time.sleep(0.05)
                self.done += 1
                time.sleep(0.05)


def cli_worker(url: str, peer_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "RELAIS_DATABASE_URL": url, "RELAIS_WORKER_LEASE_SECONDS": "2",
           "RELAIS_CONNECTORS__EPARCOURS__BASE_URL": peer_url,
           "RELAIS_CONNECTORS__EPARCOURS__TOKEN_URL": f"{peer_url}/oauth/token",
           "RELAIS_CONNECTORS__EPARCOURS__CLIENT_ID": "relais",
           "RELAIS_CONNECTORS__EPARCOURS__CLIENT_SECRET": "sandbox-secret"}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "worker"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str, state=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"délai dépassé : {what} {state()}")
        time.sleep(0.1)


def test_a_postgresql_restart_mid_run_needs_no_operator_and_loses_nothing(restartable, tmp_path):
    url = restartable.create_database("relais_restart")
    store = Store(url)
    store.migrate()
    tenant = platform(store, PERSONS)
    _, token = store.create_api_key(tenant.slug, "clients")
    config = settings().model_copy(update={"audit_key_dir": tmp_path / "keys", "audit_origin": "relais.test/restart",
                                           "audit_checkpoint_seconds": 0.2})
    peer = recording_peer(gate=False)
    with ThreadedServer(peer.app) as peer_server, ThreadedServer(create_app(store, config)) as api, \
            Checkpointer(store.engine, config) as checkpointer:
        process = cli_worker(url, peer_server.url, tmp_path / "worker.log")
        worker = Worker(store, {"eparcours": connector(peer_server.url, timeout=2.0)}, lease=dt.timedelta(seconds=2))
        worker.start(idle=0.05)
        clients = Clients(api.url, token, PERSONS)
        try:
            wait_for(lambda: b"d\xc3\xa9marr\xc3\xa9" in (tmp_path / "worker.log").read_bytes(), 60,
                     "démarrage de relais worker")
            clients.thread.start()
            wait_for(lambda: clients.done >= PERSONS // 3, 60, "premières demandes")
            restartable.restart(down=3.0)  # crash, 3 s away, back: nobody touches Relais
            restarted_at = dt.datetime.now(dt.UTC)
            clients.thread.join(120)
            assert clients.done == PERSONS

            def all_sent() -> bool:
                try:
                    return sum(r.status == "sent" for r in rows(store, tenant)) == PERSONS
                except Exception:  # noqa: BLE001 - the pool reconnects
                    return False

            wait_for(all_sent, 90, "livraison de tous les échanges", lambda: (
                collections.Counter((r.status, r.attempts) for r in rows(store, tenant)), process.poll(),
                (tmp_path / "worker.log").read_text(errors="replace")[-1500:]))
            assert process.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")[-2000:]
            wait_for(lambda: checkpointer.pending() == 0, 30, "point de contrôle après le redémarrage")
        finally:
            worker.stop()
            process.terminate()
            process.wait(30)
            worker.connectors["eparcours"].close()

    log = (tmp_path / "worker.log").read_text(errors="replace")
    figures = delivered_exactly_once(store, tenant, peer)
    assert figures["sent"] == PERSONS
    assert "503" in clients.answers and "500" not in clients.answers, clients.answers
    assert clients.retry_after == {"1"}, clients.retry_after
    owners = claim_owners(store)
    assert str(process.pid) in owners and len(owners) >= 2, owners  # both workers delivered
    with store.reading() as conn:  # the relais worker process went on after the restart
        late = conn.execute(__import__("sqlalchemy").text(
            "SELECT count(*) FROM exchange_events WHERE status = 'sent' AND at > :t"), {"t": restarted_at}).scalar_one()
    assert late > 0
    audit_verifies(store, tmp_path)
    store.close()
    print(f"\nredémarrage : réponses {dict(clients.answers)}, preneurs {dict(owners)}, "
          f"renvois reconnus {figures['resends_recognised']}, relais worker : "
          f"{log.count('worker_pass_failed')} passage(s) en échec pendant l'arrêt")
