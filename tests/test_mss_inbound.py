"""MSSanté through the whole gateway: the plan leaves as an XDM message to a doctor of the care
team (consent decided), the doctor's MDN acknowledges the exchange, and the CDA she sends back
becomes a proposed update that only the coordinator applies."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from connectors.base import Recipient, RetryPolicy
from connectors.sandbox.mss import MssSandbox
from gateway.consent import ConsentRegistry
from gateway.consent.fhir_careteam import MemberSpec, care_team_resource
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic, Profession
from gateway.delivery import outbox, payload_mss, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import PayloadKind, kind, register
from gateway.delivery.worker import Worker
from gateway.inbound import review
from gateway.inbound.receive import poll
from gateway.model import Plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
DOCTOR_RPPS = "10001234567"


@pytest.fixture
def quick_kind():
    """The real builder; validation without the CDA schematrons (slow to compile; tested with
    the CDA mapping)."""
    real = kind("xdm-message")
    register(PayloadKind(name=real.name, content_type=real.content_type, build=real.build,
                         validate=lambda payload: payload_mss.validate_message(payload, use_cda_gate=False)))
    yield
    register(real)


@pytest.fixture
def world(store, tmp_path, quick_kind):
    tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
    plan = Plan.model_validate_json((FIXTURES / "p001-enfant-tnd.json").read_bytes())
    store.put_plan(tenant, plan, if_match=None, actor="test")
    registry = ConsentRegistry(store)
    local_id = plan.person.local_id
    registry.put_care_team(tenant, local_id, care_team_resource(
        local_id, [MemberSpec("PractitionerRole", ("rpps", DOCTOR_RPPS), Profession.health)]), actor="test", now=NOW)
    registry.record_information(tenant, local_id, InformationRecord(
        id="info-1", informed_at=NOW - dt.timedelta(days=10), method=InformationMethod.written,
        informed_by="coordinatrice", notice_version="v1",
        topics=frozenset({InformationTopic.care_team_sharing, InformationTopic.cross_category_exchange})),
        actor="test", now=NOW)
    with MssSandbox(tmp_path / "mss") as sandbox:
        connector = sandbox.connector(state_dir=str(tmp_path / "state"),
                                      retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0))
        yield store, tenant, plan, sandbox, connector
        connector.close()


def test_a_plan_goes_to_a_care_team_doctor_and_her_reply_waits_for_review(world):
    store, tenant, plan, sandbox, connector = world
    exchange = pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="mss",
        recipient=Recipient("professional", DOCTOR_RPPS, "Dr Jeanne MARTIN", "health"),
        purpose="COC", payload_kind="xdm-message"), actor="test", decider=consent_decider).exchange
    assert exchange.status is Status.queued, exchange.decision_reasons
    Worker(store, {"mss": connector}, rng=random.Random(1)).drain()
    assert sandbox.wait(30)

    counts = poll(store, tenant, connector)
    assert counts["proposed"] == 1 and counts["recorded"] >= 1
    with store.reading() as conn:
        done = outbox.get(conn, tenant.id, exchange.id)
    assert done.status is Status.acknowledged  # the doctor's processing MDN

    [item] = review.listing(store, tenant, status="proposed", person=plan.person.local_id)
    assert item.system == "mss" and item.proposal["patch"]
    assert Plan.model_validate_json(store.get_plan(tenant, plan.person.local_id).content) == plan
    version = review.apply(store, tenant, item.id, if_match=None, actor="test", today=NOW.date())
    assert version == 2
    assert poll(store, tenant, connector).get("proposed", 0) == 0  # fetched again: imported once


def test_a_doctor_outside_the_care_team_gets_nothing_without_prior_consent(world):
    store, tenant, plan, sandbox, connector = world
    exchange = pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="mss",
        recipient=Recipient("professional", "10009999999", "Dr Inconnu", "health"),
        purpose="COC", payload_kind="xdm-message"), actor="test", decider=consent_decider).exchange
    assert exchange.status is Status.refused
    assert any("équipe de soins" in r for r in exchange.decision_reasons)
