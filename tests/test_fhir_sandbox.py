"""The sandbox FHIR server is strict like a real one, and the FHIR connector reads its answers
right: transient vs permanent, the peer's words kept, TLS verified, mutual TLS honoured."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.base import Envelope, PermanentError, Recipient, TransientError
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.fhir_app import Fault, FhirSandbox, Personality
from connectors.sandbox.pki import TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles

TYPES = frozenset({"Patient", "CarePlan", "Goal", "CareTeam", "CommunicationRequest"})


def bundle(ident: str = "b-1", ref: str = "urn:uuid:00000000-0000-4000-8000-000000000001") -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{ident}"},
        "entry": [
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "P1"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
             "resource": {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                          "subject": {"reference": ref}},
             "request": {"method": "POST", "url": "CarePlan"}},
        ],
    }


@pytest.fixture
def sandbox():
    peer = FhirSandbox(Personality(name="e-parcours test", resource_types=TYPES,
                                   transaction_error_status=500))
    with ThreadedServer(peer.app) as server:
        yield peer, server


def connector(server, **extra) -> EparcoursConnector:
    endpoint = FhirEndpoint(base_url=server.url, token_url=f"{server.url}/oauth/token",
                            client_id="relais", client_secret="sandbox-secret", timeout=1.0, **extra)
    return EparcoursConnector(endpoint)


def envelope(payload: dict, attempt: int = 1) -> Envelope:
    return Envelope(exchange_id="x1", idempotency_key="k1", system="eparcours",
                    payload_kind="tddui-bundle", content_type="application/fhir+json",
                    payload=json.dumps(payload).encode(), recipient=Recipient("system", "eparcours"),
                    attempt=attempt)


def test_a_transaction_is_stored_with_references_rewritten(sandbox):
    peer, server = sandbox
    receipt = connector(server).send(envelope(bundle()))
    assert receipt.status == "accepted" and receipt.peer_reference.startswith("CarePlan/")
    [careplan] = peer.store.all("CarePlan")
    [patient] = peer.store.all("Patient")
    assert careplan.resource["subject"]["reference"] == f"Patient/{patient.resource['id']}"


def test_the_same_bundle_sent_twice_is_stored_once(sandbox):
    peer, server = sandbox
    client = connector(server)
    client.send(envelope(bundle()))
    again = client.send(envelope(bundle(), attempt=2))
    assert again.status in ("accepted", "duplicate")
    assert peer.store.count("CarePlan") == 1 and peer.store.count("Patient") == 1


def test_requests_without_a_token_or_with_the_wrong_media_type_are_refused(sandbox):
    _, server = sandbox
    raw = json.dumps(bundle()).encode()
    no_token = httpx.post(f"{server.url}/", content=raw, headers={"Content-Type": "application/fhir+json"})
    assert no_token.status_code == 401 and no_token.json()["resourceType"] == "OperationOutcome"
    token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials",
                                                          "client_id": "relais", "client_secret": "sandbox-secret"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Content-Type": "text/plain"}
    assert httpx.post(f"{server.url}/", content=raw, headers=headers).status_code == 415
    wrong = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials",
                                                          "client_id": "relais", "client_secret": "nope"})
    assert wrong.status_code == 401


def test_an_unresolved_reference_is_a_permanent_error_with_the_peers_reason(sandbox):
    peer, server = sandbox
    with pytest.raises(PermanentError) as caught:
        connector(server).send(envelope(bundle(ref="urn:uuid:99999999-0000-4000-8000-000000000009")))
    assert "référence non résolue" in caught.value.reason
    assert caught.value.code == "500"  # the cercle de soins style 500 carries a content error
    assert peer.store.count() == 0  # all or nothing


def test_a_structurally_invalid_resource_is_rejected_and_nothing_is_stored(sandbox):
    peer, server = sandbox
    bad = bundle()
    bad["entry"][1]["resource"]["status"] = 42
    with pytest.raises(PermanentError):
        connector(server).send(envelope(bad))
    assert peer.store.count() == 0


@pytest.mark.parametrize("where, value", [
    ("status", 42),                        # a code given as a number
    ("intent", None),                      # null for a required element
    ("created", "2026-02-30"),             # no such day
    ("subject", {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001", "bogus": 1}),
])
def test_the_base_structure_error_says_where_it_is_in_the_transaction(sandbox, where, value):
    peer, server = sandbox
    bad = bundle()
    bad["entry"][1]["resource"][where] = value
    token = httpx.post(f"{server.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "relais", "client_secret": "sandbox-secret"}).json()
    answer = httpx.post(f"{server.url}/", content=json.dumps(bad), headers={
        "Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/fhir+json"})
    outcome = answer.json()
    assert answer.status_code == 500 and outcome["resourceType"] == "OperationOutcome"  # CDS style
    assert all(i["code"] == "structure" and i["severity"] == "error" for i in outcome["issue"])
    assert any(e.startswith(f"Bundle.entry[1].resource.{where}") for i in outcome["issue"] for e in i["expression"])
    assert peer.store.count() == 0


@pytest.mark.parametrize("fault, code", [
    (Fault(status=503), "503"),
    (Fault(status=429), "429"),
    (Fault(reset=True), "network"),
    (Fault(malformed=True), "malformed"),
    (Fault(delay=1.5), "timeout"),
])
def test_transient_peer_faults_are_retryable(sandbox, fault, code):
    peer, server = sandbox
    peer.faults.add(fault)
    with pytest.raises(TransientError) as caught:
        connector(server).send(envelope(bundle()))
    assert caught.value.code == code


def test_after_a_transient_fault_the_resend_succeeds_once(sandbox):
    peer, server = sandbox
    peer.faults.add(Fault(status=503), times=2)
    client = connector(server)
    for attempt in (1, 2):
        with pytest.raises(TransientError):
            client.send(envelope(bundle(), attempt))
    assert client.send(envelope(bundle(), 3)).status == "accepted"
    assert peer.store.count("CarePlan") == 1


def test_notifications_are_polled_once_each(sandbox):
    peer, server = sandbox
    peer.store.create({"resourceType": "CommunicationRequest", "status": "active"})
    client = connector(server)
    assert len(list(client.poll())) == 1
    assert list(client.poll()) == []
    peer.store.create({"resourceType": "CommunicationRequest", "status": "active"})
    assert len(list(client.poll())) == 1


@pytest.fixture
def tls_sandbox(tmp_path):
    ca = TestCA(tmp_path / "pki")
    server_cert = ca.issue_server()
    client_cert = ca.issue_client("Plateforme test (FINESS 510000011)")
    peer = FhirSandbox(Personality(name="mTLS", resource_types=TYPES))
    tls = TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
    with ThreadedServer(peer.app, tls=tls) as server:
        yield peer, server, ca, client_cert, tmp_path


def test_mutual_tls_with_the_structure_certificate_is_accepted(tls_sandbox):
    peer, server, ca, client_cert, _ = tls_sandbox
    client = connector(server, ca_file=str(ca.cert), client_cert=str(client_cert.cert),
                       client_key=str(client_cert.key))
    assert client.send(envelope(bundle())).status == "accepted"


def test_without_a_client_certificate_the_handshake_fails(tls_sandbox):
    _, server, ca, _, _ = tls_sandbox
    with pytest.raises((TransientError, PermanentError)):
        connector(server, ca_file=str(ca.cert)).send(envelope(bundle()))


def test_a_server_certificate_from_an_unknown_authority_is_refused(tls_sandbox):
    _, server, _, client_cert, tmp_path = tls_sandbox
    stranger = TestCA(tmp_path / "other", name="Unknown CA")
    client = connector(server, ca_file=str(stranger.cert), client_cert=str(client_cert.cert),
                       client_key=str(client_cert.key))
    with pytest.raises(PermanentError) as caught:
        client.send(envelope(bundle()))
    assert caught.value.code == "tls"
