"""The `cda-document` payload through the delivery spine, the real consent engine and the worker
to the sandbox DMP: feeding needs written information (L9), an opposition sends nothing (L7),
a transient outage is retried, a refusal goes to dead letters with the DMP's code and words,
and a minor's secrecy (L12) gives a document invisible to the legal representatives."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid

import pytest

from connectors.base import Recipient, RetryPolicy
from connectors.sandbox.dmp_peer import DmpPeer
from connectors.sandbox.fhir_app import Fault
from gateway.consent import ConsentRegistry, DecisionRequest, Requester, decide
from gateway.consent import Recipient as ConsentRecipient
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import outbox, payload_dmp, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import kind, register
from gateway.delivery.worker import Worker
from gateway.demo.consents import opposition
from tests import dmp_support as S

FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
PLAN = S.plan()


@pytest.fixture
def quick_kind():
    """The real builder and consent loading; metadata checks without the CDA gate (tested with
    the CDA mapping; its schematrons take long to compile)."""
    real = kind("cda-document")
    register(dataclasses.replace(real, validate=lambda p: payload_dmp.validate_submission(p, use_cda_gate=False)))
    yield
    register(real)


@pytest.fixture(scope="module")
def running_peer(tmp_path_factory):
    with DmpPeer(tmp_path_factory.mktemp("dmp"), finess=PLAN.platform.finess, schema_check=False) as peer:
        yield peer


@pytest.fixture
def spine(store, running_peer, quick_kind):
    tenant = store.create_tenant("plateforme-a", "Plateforme A", PLAN.platform.finess)
    store.put_plan(tenant, PLAN, if_match=None, actor="test")
    patient = S.submission(PLAN).patient
    peer = running_peer
    peer.sandbox.registry.entries.clear()  # a fresh DMP for each test
    peer.sandbox.patients = {patient}
    peer.sandbox.faults.clear()
    peer.sandbox.requests = 0
    connector = peer.connector(retry=FAST)
    worker = Worker(store, {"dmp": connector}, rng=random.Random(1))
    yield store, tenant, peer, worker, patient
    connector.close()


NOW = dt.datetime.now(dt.UTC)


def inform(store, tenant, topics=(InformationTopic.dmp,), method=InformationMethod.written):
    ConsentRegistry(store).record_information(tenant, PLAN.person.local_id, InformationRecord(
        id=uuid.uuid4().hex, informed_at=NOW - dt.timedelta(days=1), method=method, informed_by="coordinatrice",
        notice_version="notice-dmp-v1", topics=frozenset(topics)), actor="test", now=NOW)


def submit(store, tenant, labels=()):
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=PLAN.person.local_id, system="dmp", recipient=Recipient("system", "dmp"),
        purpose="COC", payload_kind="cda-document", labels=tuple(labels)), actor="test",
        decider=consent_decider).exchange


def documents(peer, patient):
    """The CDA documents the sandbox holds for the person (not the submission signatures)."""
    from connectors.sandbox.dmp_rules import is_signature

    return [e for e in peer.sandbox.registry.of_patient(patient) if not is_signature(e.node)]


def final(store, tenant, exchange_id):
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id)


def test_a_person_informed_in_writing_has_the_plan_fed_to_the_dmp(spine):
    store, tenant, peer, worker, patient = spine
    inform(store, tenant)
    exchange = submit(store, tenant)
    assert exchange.status is Status.queued
    worker.drain()
    done = final(store, tenant, exchange.id)
    assert done.status is Status.sent
    (stored,) = documents(peer, patient)
    assert done.receipt["peer_reference"] == stored.unique_id


def test_without_written_information_nothing_is_sent(spine):
    store, tenant, peer, worker, _ = spine
    inform(store, tenant, method=InformationMethod.oral)
    exchange = submit(store, tenant)
    assert exchange.status is Status.refused and "écrite" in exchange.decision_reasons[0]
    worker.drain()
    assert peer.sandbox.requests == 0


def test_an_opposition_sends_nothing(spine):
    store, tenant, peer, worker, _ = spine
    inform(store, tenant)
    ConsentRegistry(store).record_consent(tenant, PLAN.person.local_id,
                                          opposition(PLAN, NOW.date(), NOW - dt.timedelta(hours=1)),
                                          actor="test", now=NOW)
    exchange = submit(store, tenant)
    assert exchange.status is Status.refused and "oppose" in exchange.decision_reasons[0]
    worker.drain()
    assert peer.sandbox.requests == 0


def test_a_dmp_outage_is_retried_and_the_document_stored_once(spine):
    store, tenant, peer, worker, patient = spine
    inform(store, tenant)
    peer.sandbox.faults.add(Fault(status=503), times=2)
    exchange = submit(store, tenant)
    worker.drain()
    done = final(store, tenant, exchange.id)
    assert done.status is Status.sent and done.attempts == 3
    assert len(documents(peer, patient)) == 1


def test_a_dmp_refusal_goes_to_dead_letters_with_its_code_and_words(spine):
    store, tenant, peer, worker, patient = spine
    inform(store, tenant)
    peer.sandbox.patients.discard(patient)  # the person closed their DMP
    exchange = submit(store, tenant)
    worker.drain()
    done = final(store, tenant, exchange.id)
    assert done.status is Status.dead and done.attempts == 1
    assert "[XDSUnknownPatientId]" in done.last_error and "aucun DMP ouvert" in done.last_error


def test_the_consent_record_sets_no_visibility_flag_nobody_asked_for(spine):
    store, tenant, peer, worker, patient = spine
    inform(store, tenant)
    worker.drain() if submit(store, tenant) else None
    (stored,) = documents(peer, patient)
    from connectors.sandbox.dmp_rules import classifications
    from mappings.xds import metadata as M

    assert classifications(stored.node, M.DE_CONFIDENTIALITY) == [("N", "2.16.840.1.113883.5.25")]


# ------------------------------------------------------------------- minor's secrecy (L12)


def _minor_secret_obligations(store, tenant) -> tuple[str, ...]:
    state = ConsentRegistry(store).policy_state(tenant.id, PLAN.person.local_id)
    decision = decide(state, DecisionRequest(
        tenant_id=tenant.id, person_local_id=PLAN.person.local_id,
        recipient=ConsentRecipient.from_identifier("system", "dmp"), system="dmp", purpose="COC",
        data_categories=frozenset({"identity", "plan"}), requester=Requester("test"), names_ins=True,
        labels=frozenset({"minor-secret"})), now=NOW)
    assert decision.permitted
    return decision.obligations


def test_a_minors_secrecy_makes_the_document_invisible_to_legal_representatives(spine):
    store, tenant, peer, _, patient = spine
    inform(store, tenant)
    assert PLAN.person.age_on(NOW.date()) < 18
    obligations = _minor_secret_obligations(store, tenant)
    assert "dmp-invisible-representants-legaux" in obligations
    sub = S.submission(PLAN, obligations=obligations)
    assert sub.visibility == ("INVISIBLE_REPRESENTANTS_LEGAUX",) and sub.secret_connection
    assert payload_dmp.validate_submission(sub.dumps(), use_cda_gate=False) == []
    connector = peer.connector()
    assert connector.provide(sub).status == "accepted"  # in a secret connection: accepted
    entries = connector.find_documents(patient)  # the document and the submission's signature
    assert len(entries) == 2 and all("INVISIBLE_REPRESENTANTS_LEGAUX" in e.confidentiality for e in entries)
    connector.close()


def test_an_exchange_labelled_minor_secret_reaches_the_dmp_invisible_to_legal_representatives(spine):
    store, tenant, peer, worker, patient = spine
    inform(store, tenant)
    exchange = submit(store, tenant, labels=("minor-secret",))
    assert exchange.status is Status.queued and exchange.labels == ("minor-secret",)
    worker.drain()
    assert final(store, tenant, exchange.id).status is Status.sent
    connector = peer.connector()
    entries = connector.find_documents(patient)  # the document and the submission's signature
    connector.close()
    assert entries and all("INVISIBLE_REPRESENTANTS_LEGAUX" in e.confidentiality for e in entries)


def test_flags_that_disagree_with_the_obligations_do_not_pass_validation():
    sub = S.submission(PLAN, obligations=("dmp-masking-flags",))
    forged = dataclasses.replace(sub, obligations=("dmp-masking-flags", "dmp-invisible-representants-legaux"))
    problems = payload_dmp.validate_submission(forged.dumps(), use_cda_gate=False)
    assert [p.rule for p in problems] == ["dmp-visibility"]


def test_without_a_qualified_ins_the_payload_cannot_be_built():
    from gateway.delivery.payloads import BuildError

    unqualified = PLAN.model_copy(update={"person": PLAN.person.model_copy(update={"identity_status": "VALI"})})
    with pytest.raises(BuildError) as caught:
        S.submission(unqualified)
    assert caught.value.problems[0].rule == "dmp-no-qualified-ins"


def test_without_the_cda_reference_set_the_payload_passes_with_an_information(monkeypatch, tmp_path):
    """A fresh machine without the TestContenuCDA set: the gate's "jeu de schématrons
    introuvable" is an information naming what could not be run, not an error."""
    from gateway.conformance.cda import gate as G

    monkeypatch.setattr(G, "cda_gate", lambda: G.CdaGate(tmp_path / "absent"))
    problems = payload_dmp.validate_submission(S.submission(PLAN).dumps())
    assert [(p.severity.value, p.rule) for p in problems] == [("information", "cda-schematron-set-missing")]
    assert "ni le schéma CDA ni les schématrons" in problems[0].message
