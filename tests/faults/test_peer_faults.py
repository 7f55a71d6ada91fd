"""Peer faults: the sandbox peers answer 500/503/429, reset the connection, stall past the
client's timeout (having applied the request: the outcome is unknown to Relais), return a
malformed body, refuse TLS, reject a document, or go down for minutes. Transient faults are
retried with exponential back-off and full jitter under each connector's own policy and
delivered once after recovery, in order per person; permanent ones — a rejected document, an
untrusted server certificate, a refused client certificate — go to dead letters at once with
the peer's own reason. All on loopback; minutes of outage run on a fake clock. Peer faults do
not depend on the database: SQLite here (the crash and restart tests cover PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from connectors.base import RetryPolicy
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.pki import TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles
from gateway.delivery import outbox, pipeline
from gateway.delivery.model import Status
from gateway.delivery.worker import Worker
from tests.faults.harness import (FakeClock, connector, delivered_exactly_once, history, local_id, new_version,
                                  platform, queue_direct, recording_peer, rows, submit)
from tests.faults.wire import ClientCertificateGate, HandshakeResetFront

FAST = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0)


@pytest.fixture
def peer():
    sandbox = recording_peer()
    with ThreadedServer(sandbox.app) as server:
        yield sandbox, server


def test_the_sandbox_transaction_stays_all_or_nothing_once_bundles_are_stored(db, peer):
    """The peer these tests rely on: a Bundle refused half-way leaves what was stored before
    exactly as it was."""
    from connectors.sandbox.fhir_store import FhirError

    sandbox, _ = peer
    tenant = platform(db, 2)
    good, bad = submit(db, tenant, 0).exchange, submit(db, tenant, 1).exchange

    def payload(exchange) -> dict:
        with db.reading() as conn:
            return json.loads(outbox.payload_of(conn, tenant.id, exchange.id)[0])

    sandbox.store.transaction(payload(good), sandbox.check_resource)
    before = {t: {i: s.version for i, s in d.items()} for t, d in sandbox.store._data.items()}

    def refuse_careplan(resource, index):
        if resource["resourceType"] == "CarePlan":
            raise FhirError(422, "processing", "refusé")

    with pytest.raises(FhirError):
        sandbox.store.transaction(payload(bad), refuse_careplan)
    assert {t: {i: s.version for i, s in d.items()} for t, d in sandbox.store._data.items()} == before


# ----------------------------------------------------------------------- transient faults


@pytest.mark.parametrize("fault", [
    pytest.param(Fault(status=500), id="500"),
    pytest.param(Fault(status=503), id="503"),
    pytest.param(Fault(status=429), id="429"),
    pytest.param(Fault(reset=True), id="reset"),
    pytest.param(Fault(malformed=True), id="malformed-body"),
    pytest.param(Fault(delay=1.0), id="stall-past-timeout"),
    pytest.param("stall-after-applying", id="stall-past-timeout-after-applying"),
])
def test_each_transient_fault_is_retried_and_the_plan_delivered_once(db, peer, fault):
    sandbox, server = peer
    tenant = platform(db, 1)
    if fault == "stall-after-applying":
        sandbox.store.stall_after_apply.extend([1.0, 1.0])
    else:
        sandbox.faults.add(fault, times=2)
    exchange = submit(db, tenant, 0).exchange
    worker = Worker(db, {"eparcours": connector(server.url, retry=FAST, timeout=0.5)}, rng=random.Random(1))
    worker.drain()
    done = history(db, tenant, exchange.id)
    assert done.status is Status.sent
    figures = delivered_exactly_once(db, tenant, sandbox)
    assert figures["sent"] == 1 and sandbox.store.count("CarePlan") == 1
    if fault == "stall-after-applying":
        # The peer stored the Bundle, then hung (its event loop with it): Relais could not
        # know, and sent it again — every attempt reached the peer, which recognised the
        # resends by their Bundle.identifier and stored nothing twice.
        assert done.attempts >= 3 and sandbox.store.posts.total() == done.attempts
    else:
        assert done.attempts == 3 and sandbox.store.posts.total() == 1
        assert [e.status for e in done.history].count("queued") == 3  # queued, then two retries


def test_retries_back_off_exponentially_with_full_jitter_under_each_connectors_policy(db, peer, tmp_path, quick_xdm):
    """e-parcours and MSSanté carry different policies; the worker schedules each item's
    next attempt with its own connector's: uniform in [0, min(max, base·2^(n-1))]."""
    from connectors.sandbox.mss import MssSandbox
    from connectors.sandbox.smtp_server import SmtpFault
    from gateway.delivery.model import ExchangeRequest
    from connectors.base import Recipient

    sandbox, server = peer
    tenant = platform(db, 1)
    clock = FakeClock()
    policies = {"eparcours": RetryPolicy(max_attempts=9, base_delay=2.0, max_delay=40.0),
                "mss": RetryPolicy(max_attempts=9, base_delay=30.0, max_delay=600.0)}
    with MssSandbox(tmp_path / "mss") as mss:
        connectors = {"eparcours": connector(server.url, retry=policies["eparcours"]),
                      "mss": mss.connector(state_dir=str(tmp_path / "state"), retry=policies["mss"])}
        sandbox.faults.add(Fault(status=503), times=7)
        mss.smtp.faults.add(SmtpFault("mail", "421 4.3.2 service indisponible"), times=7)
        items = {"eparcours": submit(db, tenant, 0).exchange,
                 "mss": pipeline.submit(db, tenant, ExchangeRequest(
                     person_local_id=local_id(0), system="mss", purpose="COC", payload_kind="xdm-message",
                     recipient=Recipient("professional", "jeanne.martin@medecin.sandbox.mssante.fr")),
                     actor="test", decider=lambda *a, **k: pipeline.DecisionView(True, "t", [])).exchange}
        worker = Worker(db, connectors, clock=clock, rng=random.Random(3), recheck=None)
        delays: dict[str, list[float]] = {"eparcours": [], "mss": []}
        for _ in range(30):
            worker.run_once()
            pending = []
            for system, item in items.items():
                state = history(db, tenant, item.id)
                if state.status is Status.queued:
                    wait = (state.next_attempt_at - clock()).total_seconds()
                    if len(delays[system]) < state.attempts:
                        delays[system].append(wait)
                    pending.append(state.next_attempt_at)
            if not pending:
                break
            clock.advance_to(min(pending))
        for system in items:
            assert history(db, tenant, items[system].id).status is Status.sent
    for system, waits in delays.items():
        policy = policies[system]
        assert len(waits) == 7
        for attempt, wait in enumerate(waits, start=1):
            assert 0 <= wait <= min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)) + 1e-6, (system, waits)
        assert len({round(w, 3) for w in waits}) == len(waits)  # jitter: no two waits alike
        assert max(waits) > policy.base_delay  # and it grows past the first ceiling
    assert sum(delays["mss"]) > sum(delays["eparcours"])  # each its own policy


def test_a_peer_down_for_minutes_is_ridden_out_and_everything_delivered_in_order(db, peer):
    """The e-parcours tool answers 503 for 20 minutes (simulated). The connector keeps its
    production policy (RetryPolicy() defaults). Eight persons have three plan versions
    queued each; nothing goes to dead letters, and after recovery every item is delivered
    once, each person's in version order."""
    sandbox, server = peer
    persons, outage = 8, dt.timedelta(minutes=20)
    tenant = platform(db, persons)
    clock = FakeClock()
    start = clock()
    for version in (1, 2, 3):
        for i in range(persons):
            queue_direct(db, tenant, i, version, at=start)
    sandbox.faults.down_for(10 ** 6, Fault(status=503))  # ended by the test at `start + outage`
    production = connector(server.url, retry=RetryPolicy())
    worker = Worker(db, {"eparcours": production}, clock=clock, rng=random.Random(5), batch=10)
    rounds = 0
    while True:
        if clock() - start >= outage:
            sandbox.faults.clear()
        worker.drain()
        rounds += 1
        with db.reading() as conn:
            waiting = outbox.listing(conn, tenant.id, status="queued", limit=200)
        if not waiting:
            break
        # Items behind another on their person's line are due but wait for it: the clock
        # moves to the next retry.
        clock.advance_to(min(r.next_attempt_at for r in waiting if r.next_attempt_at > clock()))
        assert rounds < 500
    assert clock() - start >= outage
    everything = rows(db, tenant)
    assert {r.status for r in everything} == {Status.sent.value}, [r.status for r in everything]
    figures = delivered_exactly_once(db, tenant, sandbox)
    assert figures["sent"] == 3 * persons
    assert sandbox.store.order_by_person() == {local_id(i): [1, 2, 3] for i in range(persons)}
    first = [r for r in everything if r.plan_version == 1]
    assert max(r.attempts for r in first) > 5  # it did take many attempts…
    assert max(r.attempts for r in first) < RetryPolicy().max_attempts  # …within the policy


# ---------------------------------------------------------------------- permanent faults


def test_a_rejected_document_goes_to_dead_letters_at_once_with_the_peers_reason(db, peer):
    """The tool refuses person 0's version 1 (a business rule of its own): dead letter on the
    first attempt with the tool's words; the person's next version is not held back by it and
    is delivered; the dead letter, replayed once the tool accepts it, is delivered too."""
    sandbox, server = peer
    tenant = platform(db, 1)
    rule = {"on": True}
    strict = sandbox.personality.validate_bundle

    def validate(bundle):
        titles = [e["resource"].get("title") for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"]
        if rule["on"] and titles == [f"{local_id(0)} v1"]:
            return [{"severity": "error", "code": "business-rule", "expression": ["CarePlan.subject"],
                     "diagnostics": "[OUTIL-07] personne hors du territoire couvert par l'outil"}]
        return strict(bundle)

    sandbox.personality.validate_bundle = validate
    rejected = submit(db, tenant, 0).exchange
    worker = Worker(db, {"eparcours": connector(server.url, retry=FAST)})
    worker.drain()
    dead = history(db, tenant, rejected.id)
    assert dead.status is Status.dead and dead.attempts == 1
    assert "[OUTIL-07] personne hors du territoire couvert par l'outil" in dead.last_error
    new_version(db, tenant, 0)
    following = submit(db, tenant, 0).exchange
    worker.drain()
    assert history(db, tenant, following.id).status is Status.sent
    rule["on"] = False
    replayed = pipeline.replay(db, tenant, rejected.id, actor="test")
    worker.drain()
    assert history(db, tenant, replayed.id).status is Status.sent
    assert [t for _, t in sandbox.store.applied] == [f"{local_id(0)} v2", f"{local_id(0)} v1"]


@pytest.fixture
def pki(tmp_path):
    ca = TestCA(tmp_path / "ca", name="IGC-Santé de test")
    return ca, ca.issue_server(), ca.issue_client("Plateforme (FINESS 750000001)")


def test_an_untrusted_server_certificate_is_a_permanent_tls_error(db, pki, tmp_path):
    ca, server_cert, client_cert = pki
    sandbox = recording_peer()
    stranger = TestCA(tmp_path / "stranger", name="Autorité inconnue")
    with ThreadedServer(sandbox.app, tls=TLSFiles(str(server_cert.cert), str(server_cert.key))) as server:
        tenant = platform(db, 1)
        exchange = submit(db, tenant, 0).exchange
        Worker(db, {"eparcours": connector(server.url, retry=FAST, ca_file=str(stranger.cert))}).drain()
    dead = history(db, tenant, exchange.id)
    assert dead.status is Status.dead and dead.attempts == 1
    assert dead.last_error == "[tls] certificat du serveur non reconnu par le magasin de confiance"
    assert sandbox.store.count() == 0


@pytest.mark.parametrize("with_certificate", [False, True], ids=["no-client-certificate", "untrusted-client-certificate"])
def test_a_refused_client_certificate_is_a_permanent_tls_error(db, pki, tmp_path, with_certificate):
    """A peer requiring mutual TLS refuses the handshake with a TLS alert: resending the same
    certificate (or none) cannot help, so the item goes to dead letters at once."""
    ca, server_cert, _ = pki
    other = TestCA(tmp_path / "other", name="Autre autorité").issue_client("Plateforme", stem="other")
    tenant = platform(db, 1)
    exchange = submit(db, tenant, 0).exchange
    extra = {"client_cert": str(other.cert), "client_key": str(other.key)} if with_certificate else {}
    with ClientCertificateGate(TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))) as gate:
        Worker(db, {"eparcours": connector(gate.url, retry=FAST, ca_file=str(ca.cert), **extra)}).drain()
    dead = history(db, tenant, exchange.id)
    assert dead.status is Status.dead and dead.attempts == 1, (dead.status, dead.last_error)
    assert dead.last_error.startswith("[tls] certificat client refusé par le serveur")


def test_an_mssante_operator_refusing_the_client_certificate_is_a_permanent_tls_error(pki, tmp_path):
    """The same decision for SMTP submission (implicit TLS here): the operator's TLS alert
    means the structure's certificate is refused — a dead letter, not retries."""
    from connectors.base import PermanentError
    from connectors.mss.smtp import SmtpEndpoint, SmtpSubmitter

    ca, server_cert, _ = pki
    other = TestCA(tmp_path / "other", name="Autre autorité").issue_client("Plateforme", stem="other")
    with ClientCertificateGate(TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))) as gate:
        for cert in (None, other):
            submitter = SmtpSubmitter(SmtpEndpoint("127.0.0.1", gate.port, "tls", "relais@x.mssante.fr", "secret",
                                                   str(ca.cert), str(cert.cert) if cert else None,
                                                   str(cert.key) if cert else None, timeout=5))
            with pytest.raises(PermanentError) as refused:
                submitter.submit("relais@x.mssante.fr", ["jeanne.martin@medecin.sandbox.mssante.fr"], b"x")
            assert refused.value.code == "tls" and "certificat client refusé" in refused.value.reason


def test_a_tls_handshake_reset_is_transient_and_the_plan_delivered_after_recovery(db, pki):
    """Connections reset in the middle of the TLS handshake (a front restarting, a saturated
    load balancer): retried, then delivered once over mutual TLS when the peer is back."""
    ca, server_cert, client_cert = pki
    sandbox = recording_peer()
    tls = TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
    with ThreadedServer(sandbox.app, tls=tls) as server, HandshakeResetFront(server.port, resets=3) as front:
        tenant = platform(db, 1)
        exchange = submit(db, tenant, 0).exchange
        mutual = connector(f"https://127.0.0.1:{front.port}", retry=FAST, ca_file=str(ca.cert),
                           client_cert=str(client_cert.cert), client_key=str(client_cert.key))
        Worker(db, {"eparcours": mutual}).drain()
        mutual.close()
    done = history(db, tenant, exchange.id)
    assert front.reset_count == 3
    assert done.status is Status.sent and done.attempts == 4
    retries = [e.detail for e in done.history if e.status == "queued" and e.attempt]
    assert len(retries) == 3 and all("[network]" in d for d in retries), retries
    assert sandbox.store.count("CarePlan") == 1


def test_a_batch_that_outlasts_its_lease_leaves_the_rest_to_another_worker(db, peer):
    """A slow peer (0.8 s a send, on the first worker's clock) and a 1 s lease over a batch of
    three: while the second item is being sent, the lease of the third runs out and another
    worker claims it and sends it. The first worker renews the lease of each item before
    sending it: it finds the third is no longer its own, and does not send it a second time."""
    sandbox, server = peer
    tenant = platform(db, 3)
    for i in range(3):
        submit(db, tenant, i)
    start = dt.datetime.now(dt.UTC)
    clock_a, clock_b = FakeClock(start), FakeClock(start + dt.timedelta(seconds=1.3))
    second = Worker(db, {"eparcours": connector(server.url)}, owner="w2", clock=clock_b)

    class SlowPeer:
        def __init__(self, inner):
            self.inner, self.sends = inner, 0
            self.system, self.payload_kinds, self.retry = inner.system, inner.payload_kinds, inner.retry

        def send(self, envelope):
            clock_a.advance(0.8)
            self.sends += 1
            if self.sends == 2:
                assert second.run_once() == 1  # the third item: its lease ran out at 1 s
            return self.inner.send(envelope)

    first = Worker(db, {"eparcours": SlowPeer(connector(server.url))}, owner="w1", clock=clock_a,
                   lease=dt.timedelta(seconds=1), batch=3)
    assert first.run_once() == 3
    figures = delivered_exactly_once(db, tenant, sandbox)
    assert figures["sent"] == 3 and max(sandbox.store.posts.values()) == 1, sandbox.store.posts
    assert first.connectors["eparcours"].sends == 2


def test_an_opposition_recorded_while_a_batch_is_being_sent_stops_the_items_not_yet_sent(db, peer):
    """Consent is decided again at claim; an opposition recorded after the claim, while the
    batch's first item is on the wire, cancels the person's item further down the batch, and
    the worker — renewing each lease before the send — does not send it."""
    from gateway.consent import ConsentRegistry
    from gateway.consent.vocab import CS_CONSENT_CATEGORY, CS_CONSENT_SCOPE, CS_LOINC
    from gateway.delivery import hooks

    sandbox, server = peer
    tenant = platform(db, 3)
    items = [submit(db, tenant, i).exchange for i in range(3)]
    opposed = items[1].person_local_id

    class Peer:
        def __init__(self, inner):
            self.inner, self.sends = inner, 0
            self.system, self.payload_kinds, self.retry = inner.system, inner.payload_kinds, inner.retry

        def send(self, envelope):
            self.sends += 1
            if self.sends == 1:
                ConsentRegistry(db).record_consent(tenant, opposed, {
                    "resourceType": "Consent", "status": "active",
                    "scope": {"coding": [{"system": CS_CONSENT_SCOPE, "code": "patient-privacy"}]},
                    "category": [{"coding": [{"system": CS_LOINC, "code": "59284-0"}]},
                                 {"coding": [{"system": CS_CONSENT_CATEGORY, "code": "opposition-L1110-4-IV"}]}],
                    "patient": {"reference": f"Patient/{opposed}"},
                    "dateTime": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
                    "performer": [{"reference": f"Patient/{opposed}"}],
                    "policy": [{"uri": "https://relais.example/notices/information-v1"}],
                    "sourceReference": {"reference": "DocumentReference/evidence-1"},
                    "provision": {"type": "deny"}}, actor="test", now=dt.datetime.now(dt.UTC))
            return self.inner.send(envelope)

    unsubscribe = hooks.subscribe(db)
    try:
        worker = Worker(db, {"eparcours": Peer(connector(server.url))}, batch=3)
        assert worker.run_once() == 3
    finally:
        unsubscribe()
    assert history(db, tenant, items[1].id).status is Status.cancelled
    assert [history(db, tenant, e.id).status for e in (items[0], items[2])] == [Status.sent, Status.sent]
    assert worker.connectors["eparcours"].sends == 2
    assert sorted(t for _, t in sandbox.store.applied) == [f"{local_id(0)} v1", f"{local_id(2)} v1"]
