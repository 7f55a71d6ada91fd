"""The delivery spine end to end, through real HTTP on loopback: consent decision → TDDUI
Bundle → gate → outbox → worker → e-parcours sandbox → receipt, with audit at every step."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Recipient, RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.server import ThreadedServer
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import hooks, outbox, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.worker import Worker
from gateway.model import Plan
from gateway.consent.vocab import CS_CONSENT_CATEGORY, CS_CONSENT_SCOPE, CS_LOINC

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
TODAY = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
TOOL = Recipient(kind="system", identifier="eparcours", display="Outil e-parcours régional")


def fixture_plan(name: str) -> Plan:
    return Plan.model_validate_json((FIXTURES / name).read_bytes())


@pytest.fixture
def peer():
    sandbox = eparcours_sandbox()
    with ThreadedServer(sandbox.app) as server:
        yield sandbox, server


@pytest.fixture
def spine(store, peer):
    sandbox, server = peer
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    connector = EparcoursConnector(FhirEndpoint(
        base_url=server.url, token_url=f"{server.url}/oauth/token", client_id="relais",
        client_secret="sandbox-secret", timeout=5.0), FAST)
    worker = Worker(store, {"eparcours": connector}, rng=random.Random(1))
    yield store, tenant, sandbox, worker
    connector.close()


def informed(store, tenant, local_id: str) -> None:
    ConsentRegistry(store).record_information(tenant, local_id, InformationRecord(
        id=f"info-{local_id}", informed_at=TODAY - dt.timedelta(days=30), method=InformationMethod.written,
        informed_by="coordinatrice", notice_version="notice-2026-01",
        topics=frozenset({InformationTopic.care_team_sharing})), actor="test", now=TODAY)


def stored(store, tenant, name: str, *, inform: bool = True) -> Plan:
    plan = fixture_plan(name)
    store.put_plan(tenant, plan, if_match=None, actor="test")
    if inform:
        informed(store, tenant, plan.person.local_id)
    return plan


def submit(store, tenant, plan: Plan, version: int | None = None):
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="eparcours", recipient=TOOL, purpose="COC",
        payload_kind="tddui-bundle", plan_version=version), actor="test", decider=consent_decider)


def audit_actions(store) -> list[str]:
    with store.reading() as conn:
        rows = conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq")).all()
    return [json.loads(r[0])["action"] for r in rows]


def test_an_allowed_plan_reaches_the_regional_tool_once_with_every_step_audited(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    exchange = submit(store, tenant, plan).exchange
    assert exchange.status is Status.queued and exchange.decision_id
    assert worker.drain() == 1
    with store.reading() as conn:
        done = outbox.get(conn, tenant.id, exchange.id)
    assert done.status is Status.sent and done.receipt["peer_reference"].startswith("CarePlan/")
    assert [e.status for e in done.history] == ["queued", "sending", "sent"]
    [careplan] = sandbox.store.all("CarePlan")
    assert careplan.resource["title"] == plan.title
    actions = audit_actions(store)
    assert actions.index("decision.permit") < actions.index("exchange.queued") < actions.index("exchange.sent")


def test_a_person_without_a_qualified_identity_is_refused_with_the_reason(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p005-enfant-tnd.json")  # VALI
    exchange = submit(store, tenant, plan).exchange
    assert exchange.status is Status.refused
    assert any("qualifi" in r for r in exchange.decision_reasons)
    assert worker.drain() == 0 and sandbox.store.count() == 0


def test_sharing_without_informing_the_person_is_refused(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json", inform=False)
    exchange = submit(store, tenant, plan).exchange
    assert exchange.status is Status.refused
    assert any("informée" in r for r in exchange.decision_reasons)


def test_submitting_the_same_request_twice_gives_the_same_exchange(spine):
    store, tenant, _, _ = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    first = submit(store, tenant, plan)
    again = submit(store, tenant, plan)
    assert first.created and not again.created and again.exchange.id == first.exchange.id


def test_a_transient_peer_failure_is_retried_and_delivered_once(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    sandbox.faults.add(Fault(status=503), times=2)
    sandbox.faults.add(Fault(reset=True))
    exchange = submit(store, tenant, plan).exchange
    worker.drain()
    with store.reading() as conn:
        done = outbox.get(conn, tenant.id, exchange.id)
    assert done.status is Status.sent and done.attempts == 4
    assert sandbox.store.count("CarePlan") == 1


def test_a_rejection_goes_to_dead_letters_with_the_peers_reason_and_can_be_replayed(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    sandbox.faults.add(Fault(status=422))
    exchange = submit(store, tenant, plan).exchange
    worker.drain()
    with store.reading() as conn:
        dead = outbox.get(conn, tenant.id, exchange.id)
    assert dead.status is Status.dead and "panne simulée (422)" in dead.last_error
    replayed = pipeline.replay(store, tenant, exchange.id, actor="test")
    assert replayed.replay_of == exchange.id and replayed.status is Status.queued
    worker.drain()
    with store.reading() as conn:
        assert outbox.get(conn, tenant.id, replayed.id).status is Status.sent
    assert sandbox.store.count("CarePlan") == 1


def test_a_newer_plan_version_supersedes_the_older_one_still_queued(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    old = submit(store, tenant, plan).exchange
    revised = plan.model_copy(update={"title": "Projet révisé"})
    etag = store.get_plan(tenant, plan.person.local_id).etag
    store.put_plan(tenant, revised, if_match=etag, actor="test")
    new = submit(store, tenant, plan, version=2).exchange
    worker.drain()
    with store.reading() as conn:
        assert outbox.get(conn, tenant.id, old.id).status is Status.superseded
        assert outbox.get(conn, tenant.id, new.id).status is Status.sent
    assert [c.resource["title"] for c in sandbox.store.all("CarePlan")] == ["Projet révisé"]


def test_an_opposition_cancels_the_pending_items_it_forbids(spine):
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    unsubscribe = hooks.subscribe(store)
    try:
        exchange = submit(store, tenant, plan).exchange
        parent = next(r for r in plan.person.representatives if r.role.value == "parent")
        opposition = {  # the parent opposes any sharing (L.1110-4 IV), on paper signed today
            "resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": CS_CONSENT_SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": CS_LOINC, "code": "59284-0"}]},
                         {"coding": [{"system": CS_CONSENT_CATEGORY, "code": "opposition-L1110-4-IV"}]}],
            "patient": {"reference": f"Patient/{plan.person.local_id}"},
            "dateTime": "2026-11-20T10:00:00+01:00",
            "performer": [{"reference": f"RelatedPerson/{parent.id}"}],
            "policy": [{"uri": "https://relais.example/notices/information-v1"}],
            "sourceReference": {"reference": "DocumentReference/evidence-1"},
            "provision": {"type": "deny"},
        }
        ConsentRegistry(store).record_consent(tenant, plan.person.local_id, opposition, actor="test", now=TODAY)
    finally:
        unsubscribe()
    with store.reading() as conn:
        assert outbox.get(conn, tenant.id, exchange.id).status is Status.cancelled
    assert worker.drain() == 0 and sandbox.store.count() == 0
    assert "exchange.cancelled" in audit_actions(store)


def test_the_api_creates_follows_and_isolates_exchanges(spine):
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.settings import Settings

    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    store.create_tenant("plateforme-b", "Plateforme B")
    _, token = store.create_api_key("plateforme-a", "test")
    _, other = store.create_api_key("plateforme-b", "test")
    body = {"person": plan.person.local_id, "system": "eparcours", "purpose": "COC",
            "payload_kind": "tddui-bundle",
            "recipient": {"kind": "system", "identifier": "eparcours", "display": "Outil régional"}}
    with TestClient(create_app(store, Settings())) as client:
        auth = {"Authorization": f"Bearer {token}"}
        created = client.post("/exchanges", json=body, headers=auth)
        assert created.status_code == 201 and created.json()["status"] == "queued"
        again = client.post("/exchanges", json=body, headers=auth)
        assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
        worker.drain()
        shown = client.get(created.headers["Location"], headers=auth).json()
        assert shown["status"] == "sent" and [h["status"] for h in shown["history"]][-1] == "sent"
        assert "payload" not in shown
        listed = client.get("/exchanges", params={"status": "sent"}, headers=auth).json()["items"]
        assert [e["id"] for e in listed] == [shown["id"]]
        foreign = client.get(created.headers["Location"], headers={"Authorization": f"Bearer {other}"})
        assert foreign.status_code == 404
        bad = client.post("/exchanges", json=dict(body, purpose="marketing"), headers=auth)
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        not_dead = client.post(f"/exchanges/{shown['id']}/$replay", headers=auth)
        assert not_dead.status_code == 409


def test_the_cli_syncs_lists_and_shows_exchanges_in_french(tmp_path, capsys):
    from gateway.cli.main import main
    from gateway.storage import Store

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    store.migrate()
    tenant = store.create_tenant("pf", "Plateforme", "510000011")
    allowed = stored(store, tenant, "p001-enfant-tnd.json")
    refused = stored(store, tenant, "p005-enfant-tnd.json")
    db = ["--database", url, "--tenant", "pf"]
    assert main(["sync", allowed.person.local_id, "--to", "eparcours", *db]) == 0
    assert "en file" in capsys.readouterr().out
    assert main(["sync", refused.person.local_id, "--to", "eparcours", *db]) == 1
    out = capsys.readouterr().out
    assert "refusé" in out and "qualifi" in out
    assert main(["exchanges", "list", "--status", "queued", *db]) == 0
    [line] = capsys.readouterr().out.splitlines()
    exchange_id = line.split("\t")[0]
    assert main(["exchanges", "show", exchange_id, *db]) == 0
    assert "en file" in capsys.readouterr().out
    assert main(["exchanges", "replay", exchange_id, *db]) == 4  # only dead letters replay


def test_the_worker_decides_again_when_it_claims_and_sends_nothing_now_forbidden(spine):
    """No event reaches the outbox here (nobody subscribed): the claim-time decision stops it."""
    store, tenant, sandbox, worker = spine
    plan = stored(store, tenant, "p001-enfant-tnd.json")
    exchange = submit(store, tenant, plan).exchange
    parent = next(r for r in plan.person.representatives if r.role.value == "parent")
    ConsentRegistry(store).record_consent(tenant, plan.person.local_id, {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": CS_CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": CS_LOINC, "code": "59284-0"}]},
                     {"coding": [{"system": CS_CONSENT_CATEGORY, "code": "opposition-L1110-4-IV"}]}],
        "patient": {"reference": f"Patient/{plan.person.local_id}"},
        "dateTime": "2026-11-25T10:00:00+01:00",
        "performer": [{"reference": f"RelatedPerson/{parent.id}"}],
        "policy": [{"uri": "https://relais.example/notices/information-v1"}],
        "sourceReference": {"reference": "DocumentReference/evidence-2"},
        "provision": {"type": "deny"},
    }, actor="test", now=TODAY)
    worker.drain()
    with store.reading() as conn:
        done = outbox.get(conn, tenant.id, exchange.id)
    assert done.status is Status.cancelled and "oppose" in done.history[-1].detail
    assert sandbox.store.count() == 0
