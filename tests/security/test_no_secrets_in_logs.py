"""Secrets and personal data never reach a log line, whichever way the gateway is driven.

One run with every logger at DEBUG writing to a file: the HTTP API (writes, reads, refusals,
consent decisions), the DPO console (a wrong then a right password), the command line (plan
validation and import, consent explanation), and a delivery through the worker to the
e-parcours sandbox (OAuth2 client secret) with a transient failure on the way. Then the whole
log output is searched for the API key, the console password, the OAuth secret, and the
person's names, INS, birth date, address and free texts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from pathlib import Path

from fastapi.testclient import TestClient

from connectors.base import Recipient, RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.server import ThreadedServer
from gateway import logs
from gateway.api.app import create_app
from gateway.cli.main import main as relais
from gateway.console import accounts
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest
from gateway.delivery.worker import Worker
from gateway.model import Plan
from gateway.settings import Settings, settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Phrase secrète n°42 de la déléguée"
OAUTH_SECRET = "sandbox-secret"  # what the sandbox expects; a secret all the same
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)


def personal_values(data: dict) -> set[str]:
    person = data["person"]
    values = {person["birth_family_name"], *person["birth_given_names"], person["birth_date"],
              person["birth_date"].replace("-", ""), person["ins"]["value"], *person["address"]["lines"]}
    for rep in person.get("representatives", []):
        values |= {rep.get("family_name", ""), *rep.get("given_names", [])}
    for key in ("needs", "objectives", "expectations"):
        values |= {item.get("description", "") or item.get("text", "") for item in data.get(key, [])}
    values.add(data.get("notes") or "")
    return {v for v in values if len(v) >= 5}


def test_api_console_cli_and_delivery_leave_no_secret_or_personal_data_in_logs(store, tmp_path, monkeypatch, capfd):
    log_file = tmp_path / "relais.log"
    data = json.loads((ROOT / "fixtures/plans/p001-enfant-tnd.json").read_text("utf-8"))
    data["notes"] = "Situation familiale confidentielle : séparation récente des parents"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(data), "utf-8")
    bad = dict(data, needs=[dict(data["needs"][0], code="9.9.9")])
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad), "utf-8")
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("RELAIS_DATABASE_URL", url)
    monkeypatch.setenv("RELAIS_AUDIT_KEY_DIR", str(tmp_path / "keys"))
    settings.cache_clear()
    logs.configure("DEBUG", log_file)
    try:
        tenant = store.create_tenant("plateforme-a", "Plateforme A", data["platform"]["finess"])
        _, token = store.create_api_key("plateforme-a", "DUI")
        config = Settings(database_url=url, audit_key_dir=tmp_path / "keys", console_scrypt_log2_n=12)
        accounts.create_account(store, "plateforme-a", "dpo", PASSWORD, config=config)
        person = data["person"]["local_id"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        # --- the command line
        assert relais(["plan", "validate", str(plan_file), str(bad_file)]) == 1
        assert relais(["plan", "import", str(bad_file), "--tenant", "plateforme-a"]) == 1

        # --- the HTTP API and the console
        with TestClient(create_app(store, config), raise_server_exceptions=False) as client:
            assert client.put(f"/persons/{person}/plan", content=json.dumps(data), headers=headers).status_code == 201
            assert client.get(f"/persons/{person}/plan", headers=headers).status_code == 200
            assert client.get(f"/persons/{person}/plan/$tddui", headers=headers).status_code == 200
            assert client.put(f"/persons/{person}/plan", content=json.dumps(bad),
                              headers={**headers, "If-Match": "*"}).status_code == 422
            client.post("/plans/$validate", content=json.dumps(bad), headers=headers)
            client.get("/persons", headers={"Authorization": f"Bearer {token}x"})  # a wrong key
            client.post("/decisions", headers=headers, json={
                "person": person, "system": "eparcours", "purpose": "COC", "data_categories": ["plan"],
                "recipient": {"kind": "professional", "rpps": "10000000001", "profession": "health"}})
            client.post(f"/persons/{person}/information", headers=headers, json={
                "informed_at": "2026-11-20T10:00:00+01:00", "method": "written", "informed_by": "PRO-1",
                "notice_version": "v1", "topics": ["care-team-sharing", "cross-category-exchange"]})
            page = client.get("/console/connexion")
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            for password in ("pas le bon mot de passe", PASSWORD):
                client.post("/console/connexion", data={"csrf": csrf, "plateforme": "plateforme-a",
                                                         "identifiant": "dpo", "mot_de_passe": password},
                            headers={"Origin": "http://testserver"})
        assert relais(["consent", "explain", person, "--tenant", "plateforme-a", "--to", "eparcours",
                       "--purpose", "COC"]) in (0, 1)

        # --- a delivery through the worker, OAuth2 client credentials, one transient failure
        registry = ConsentRegistry(store)
        registry.record_information(tenant, person, InformationRecord(
            id="i-log", informed_at=NOW - dt.timedelta(days=3), method=InformationMethod.written,
            informed_by="PRO-1", notice_version="v1", topics=frozenset({InformationTopic.care_team_sharing})),
            actor="test", now=NOW)
        peer = eparcours_sandbox()
        with ThreadedServer(peer.app) as server:
            connector = EparcoursConnector(FhirEndpoint(base_url=server.url, token_url=f"{server.url}/oauth/token",
                                                        client_id="relais", client_secret=OAUTH_SECRET),
                                           RetryPolicy(base_delay=0, max_delay=0))
            try:
                exchange = pipeline.submit(store, tenant, ExchangeRequest(
                    person_local_id=person, system="eparcours", recipient=Recipient("system", "eparcours"),
                    purpose="COC", payload_kind="tddui-bundle"), actor="test", decider=consent_decider).exchange
                assert exchange.status.value == "queued", exchange.decision_reasons
                peer.faults.add(Fault(status=503))  # one transient failure, retried
                worker = Worker(store, {"eparcours": connector}, rng=random.Random(1))
                worker.drain()
                worker.drain()
            finally:
                connector.close()
        logging.getLogger("relais.test").info("probe %s", "fin")
        logs.get_logger("relais.test").info("careless", name=data["person"]["birth_family_name"],
                                             password=PASSWORD, token=token)
    finally:
        logs.configure("WARNING")
        settings.cache_clear()

    captured = capfd.readouterr()
    text = log_file.read_text("utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = {r.get("event") for r in records}
    assert {"request", "plan_stored", "exchange_retry", "exchange_sent"} <= events, sorted(e for e in events if e)
    stderr_logs = "\n".join(line for line in captured.err.splitlines() if line.startswith("{"))
    everything = text + "\n" + stderr_logs
    secrets = {token, token.split("_", 2)[2], PASSWORD, OAUTH_SECRET}  # the secret part may hold "_"
    leaked = sorted(v for v in secrets | personal_values(data) if v in everything)
    assert leaked == [], f"secrets or personal data in the logs: {leaked}"
    # the run did log, at DEBUG, from every part (httpx's and httpcore's own lines, which held
    # outbound URLs, are no longer among them: gateway/logs.py keeps them at WARNING)
    assert len(records) > 15
    assert not any(str(r.get("event", "")).startswith(("HTTP Request:", "connect_tcp")) for r in records)
