"""ViaTrajectoire end to end through the spine: a decision comes in, the coordinator applies
it, then the person's consent (flux 2) and the platform's status (flux 4) go out — each
decided by the consent engine, validated against SDO 4.0.7, sent once — and the evaluation
(flux 3) becomes readable."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from connectors.base import Recipient, RetryPolicy
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox import sdo
from connectors.sandbox.server import ThreadedServer
from connectors.viatrajectoire import ViaTrajectoireConnector
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import outbox, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.worker import Worker
from gateway.inbound import review
from gateway.inbound.receive import poll
from gateway.model import Plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
FINESS = "510000011"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
SDO_RECIPIENT = Recipient(kind="system", identifier="viatrajectoire", display="SI-SDO ViaTrajectoire")


@pytest.fixture
def world(store):
    tenant = store.create_tenant("plateforme-a", "Plateforme A", FINESS)
    data = json.loads((FIXTURES / "p001-enfant-tnd.json").read_text("utf-8"))
    store.put_plan(tenant, Plan.model_validate({**data, "orientation_decisions": []}), if_match=None, actor="test")
    ConsentRegistry(store).record_information(tenant, data["person"]["local_id"], InformationRecord(
        id="info-1", informed_at=NOW - dt.timedelta(days=10), method=InformationMethod.written,
        informed_by="coordinatrice", notice_version="notice-2026-01",
        topics=frozenset({InformationTopic.care_team_sharing})), actor="test", now=NOW)
    peer = sdo.sdo_sandbox(FINESS, [data])
    with ThreadedServer(peer.app) as server:
        connector = ViaTrajectoireConnector(FhirEndpoint(
            base_url=server.url, token_url=f"{server.url}/oauth/token", client_id="relais",
            client_secret="sandbox-secret"), struct_idnat=FINESS, retry=RetryPolicy(base_delay=0, max_delay=0))
        yield store, tenant, data["person"]["local_id"], peer, connector
        connector.close()


def send(store, tenant, person: str, kind: str, connector) -> outbox.Exchange:
    submitted = pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=person, system="viatrajectoire", recipient=SDO_RECIPIENT, purpose="COC",
        payload_kind=kind), actor="test", decider=consent_decider)
    Worker(store, {"viatrajectoire": connector}, rng=random.Random(1)).drain()
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, submitted.exchange.id)


def test_nothing_goes_to_the_sdo_before_a_decision_was_received(world):
    store, tenant, person, peer, connector = world
    exchange = send(store, tenant, person, "sdo-status", connector)
    assert exchange.status is Status.invalid
    assert exchange.problems[0]["rule"] == "sdo-no-decision"


def test_decision_in_consent_and_status_out_then_the_evaluation(world):
    store, tenant, person, peer, connector = world
    assert poll(store, tenant, connector)["proposed"] >= 1
    for item in review.listing(store, tenant, status="proposed", person=person):
        review.apply(store, tenant, item.id, if_match=None, actor="test", today=NOW.date())
    plan = Plan.model_validate_json(store.get_plan(tenant, person).content)
    assert all(d.national_id for d in plan.orientation_decisions)

    consent = send(store, tenant, person, "sdo-consent", connector)
    status = send(store, tenant, person, "sdo-status", connector)
    assert consent.status is Status.sent and consent.receipt["peer_reference"].startswith("Consent/")
    assert status.status is Status.sent and status.receipt["peer_reference"].startswith("Task/")
    [task] = [t.resource for t in peer.store.all("Task")
              if any(i.get("valueIdentifier", {}).get("value") == "1" + FINESS for i in t.resource["input"])]
    codes = [c["code"] for i in task["input"] for c in i.get("valueCodeableConcept", {}).get("coding", [])]
    assert "47" in codes  # agreed plan: « Usager entré »

    # Flux 3: once the consent is accepted, the evaluation is served and recorded.
    counts = poll(store, tenant, connector)
    assert counts["recorded"] >= 1
    kinds = {i.kind for i in review.listing(store, tenant, person=person)}
    assert "sdo-evaluation" in kinds


def test_the_same_status_sent_again_is_not_duplicated_at_the_sdo(world):
    store, tenant, person, peer, connector = world
    poll(store, tenant, connector)
    for item in review.listing(store, tenant, status="proposed", person=person):
        review.apply(store, tenant, item.id, if_match=None, actor="test", today=NOW.date())
    first = send(store, tenant, person, "sdo-status", connector)
    replayed_request = send(store, tenant, person, "sdo-status", connector)  # same request: same exchange
    assert replayed_request.id == first.id
    tasks = [t for t in peer.store.all("Task")
             if any(i.get("valueIdentifier", {}).get("value") == "1" + FINESS for i in t.resource["input"])]
    assert len(tasks) == 1
