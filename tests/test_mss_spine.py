"""The `xdm-message` payload through the delivery spine and the worker with the MSSanté connector:
a temporary SMTP failure is retried and delivered once, a permanent one goes to dead letters
with the operator's words. (Consent is the consent engine's business, tested elsewhere: here a
permissive decider.)"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from connectors.base import Recipient, RetryPolicy
from connectors.sandbox.mss import MssSandbox
from connectors.sandbox.smtp_server import SmtpFault
from gateway.delivery import payload_mss, pipeline
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import PayloadKind, kind, register
from gateway.delivery.worker import Worker
from gateway.model import Plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
DOCTOR = "jeanne.martin@medecin.sandbox.mssante.fr"


def permit(conn, tenant, request, plan, actor, now):
    return pipeline.DecisionView(permit=True, decision_id="test-permit", reasons=["test"])


@pytest.fixture
def quick_kind():
    """The real builder; validation without the CDA gate (its schematrons take long to compile
    and are tested with the CDA mapping)."""
    real = kind("xdm-message")
    register(PayloadKind(name=real.name, content_type=real.content_type, build=real.build,
                         validate=lambda payload: payload_mss.validate_message(payload, use_cda_gate=False)))
    yield
    register(real)


@pytest.fixture
def spine(store, tmp_path, quick_kind):
    with MssSandbox(tmp_path / "mss") as sandbox:
        tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
        connector = sandbox.connector(state_dir=str(tmp_path / "state"), retry=FAST)
        worker = Worker(store, {"mss": connector}, rng=random.Random(1), recheck=None)  # consent: see docstring
        yield store, tenant, sandbox, worker


def submitted(store, tenant, name: str = "p001-enfant-tnd.json"):
    plan = Plan.model_validate_json((FIXTURES / name).read_bytes())
    store.put_plan(tenant, plan, if_match=None, actor="test")
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="mss", recipient=Recipient("professional", DOCTOR),
        purpose="COC", payload_kind="xdm-message"), actor="test", decider=permit).exchange


def status(store, tenant, exchange_id: str):
    from gateway.delivery import outbox

    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id)


def test_the_plan_is_queued_as_an_xdm_message(spine):
    store, tenant, _, _ = spine
    exchange = submitted(store, tenant)
    assert exchange.status is Status.queued and exchange.payload_kind == "xdm-message"


def test_a_temporary_smtp_failure_is_retried_and_delivered_once(spine):
    store, tenant, sandbox, worker = spine
    exchange = submitted(store, tenant)
    sandbox.smtp.faults.add(SmtpFault("data", "451 4.3.0 file d'attente saturée"))
    worker.drain()
    final = status(store, tenant, exchange.id)
    assert final.status is Status.sent and final.attempts == 2
    assert len(sandbox.store.messages(DOCTOR)) == 1
    assert final.receipt["peer_reference"].startswith(f"<{exchange.idempotency_key}@")


def test_a_permanent_smtp_failure_goes_to_dead_letters_with_the_operators_words(spine):
    store, tenant, sandbox, worker = spine
    exchange = submitted(store, tenant)
    sandbox.smtp.faults.add(SmtpFault("data", "554 5.7.1 contenu refusé par la politique de l'opérateur"))
    worker.drain()
    final = status(store, tenant, exchange.id)
    assert final.status is Status.dead and final.attempts == 1
    assert "554 5.7.1 contenu refusé" in final.last_error
    assert sandbox.store.messages(DOCTOR) == []


def test_an_operator_down_for_every_attempt_ends_in_dead_letters(spine):
    store, tenant, sandbox, worker = spine
    exchange = submitted(store, tenant)
    sandbox.smtp.faults.add(SmtpFault("mail", "421 4.3.2 service indisponible"), times=FAST.max_attempts)
    worker.drain()
    final = status(store, tenant, exchange.id)
    assert final.status is Status.dead and final.attempts == FAST.max_attempts
    assert "421" in final.last_error
