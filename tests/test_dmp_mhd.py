"""PDSm / MHD, the DMP's second transport (specs §5.5): ITI-65 feed and replacement, ITI-67
search (patient and status mandatory), ITI-68 retrieve of the same bytes, one registry shared
with XDS, and OperationOutcome refusals read into the same error model (peer code kept)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from connectors.base import PermanentError, TransientError
from connectors.dmp import iti65, iti67, iti68, mhd
from connectors.sandbox.dmp_peer import DmpPeer
from connectors.sandbox.fhir_app import Fault
from tests import dmp_support as S

PLAN = S.plan("p006-enfant-tnd.json")


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    with DmpPeer(tmp_path_factory.mktemp("dmp-mhd"), finess=PLAN.platform.finess, schema_check=False,
                 patients={S.submission(PLAN).patient}) as running:
        yield running


@pytest.fixture(scope="module")
def connector(peer):
    c = peer.connector(transport="mhd")
    yield c
    c.close()


@pytest.fixture(scope="module")
def first(connector):
    sub = S.submission(PLAN)
    return sub, connector.send(S.envelope(sub))


def test_iti65_feeds_the_document_as_a_pdsm_bundle(first):
    sub, receipt = first
    assert receipt.status == "accepted" and "201 Created" in receipt.detail


def test_the_bundle_follows_the_pdsm_comprehensive_profiles():
    sub = S.submission(PLAN)
    bundle = mhd.provide_bundle(sub.metadata, sub.content, sub.patient)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["List", "DocumentReference", "Binary"] and bundle["type"] == "transaction"
    docref = bundle["entry"][1]["resource"]
    assert docref["masterIdentifier"]["value"] == f"urn:oid:{sub.unique_id}"
    assert docref["content"][0]["attachment"]["hash"] == mhd.sha1_base64(sub.content)
    assert docref["subject"]["reference"].startswith("Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|")
    assert docref["type"]["coding"][0] == {"system": "http://loinc.org", "code": "80788-3",
                                           "display": "Projet personnalisé d'accompagnement"}


def test_iti67_and_iti68_give_back_the_same_bytes(connector, first):
    sub, _ = first
    (docref,) = iti67.find(connector, sub.patient)
    assert iti68.retrieve(connector, docref) == sub.content


def test_a_resend_is_recognised(connector, first):
    sub, _ = first
    assert connector.send(S.envelope(sub)).status == "duplicate"


def test_a_document_fed_over_mhd_is_found_over_xds(peer, first):
    sub, _ = first
    xds = peer.connector()
    assert sub.unique_id in [e.unique_id for e in xds.find_documents(sub.patient)]
    xds.close()


def test_a_second_version_replaces_the_first_over_mhd(connector, first):
    sub, _ = first
    second = S.submission(PLAN, version=2)
    connector.send(S.envelope(second, "k2"))
    assert [d["masterIdentifier"]["value"] for d in iti67.find(connector, sub.patient)] == [f"urn:oid:{second.unique_id}"]
    assert [d["masterIdentifier"]["value"] for d in iti67.find(connector, sub.patient, "superseded")] == \
        [f"urn:oid:{sub.unique_id}"]


def test_iti67_without_status_is_refused(peer, connector):
    with pytest.raises(PermanentError) as caught:
        iti65.request(connector, "GET", f"{peer.url}/fhir/DocumentReference", params={"patient.identifier": "x|y"})
    assert caught.value.code == "required" and "obligatoires" in caught.value.reason


def test_a_wrong_hash_is_an_operation_outcome_with_the_xds_code(connector, monkeypatch):
    sub = S.submission(PLAN, version=30)
    real = mhd.provide_bundle

    def forged(*args, **kwargs):
        bundle = real(*args, **kwargs)
        bundle["entry"][1]["resource"]["content"][0]["attachment"]["hash"] = mhd.sha1_base64(b"autre")
        return bundle
    monkeypatch.setattr(iti65, "provide_bundle", forged)
    with pytest.raises(PermanentError) as caught:
        connector.send(S.envelope(sub, "k30"))
    assert caught.value.code == "XDSNonIdenticalHash" and "SHA-1" in caught.value.reason


def test_an_unknown_patient_is_refused_over_mhd(peer, connector):
    sub = S.submission(PLAN, version=31)
    peer.sandbox.patients.discard(sub.patient)
    try:
        with pytest.raises(PermanentError) as caught:
            connector.send(S.envelope(dataclasses.replace(sub, replaces=None), "k31"))
    finally:
        peer.sandbox.patients.add(sub.patient)
    assert caught.value.code == "XDSUnknownPatientId"


def test_an_unavailable_mhd_endpoint_is_transient(peer, connector):
    peer.sandbox.faults.add(Fault(status=503))
    with pytest.raises(TransientError):
        connector.send(S.envelope(dataclasses.replace(S.submission(PLAN, version=32), replaces=None), "k32"))


def test_a_json_body_is_refused_without_the_fhir_media_type(peer):
    import ssl

    context = ssl.create_default_context(cafile=str(peer.ca.cert))
    context.load_cert_chain(str(peer.client_cert.cert), str(peer.client_cert.key))
    with httpx.Client(verify=context) as http:
        response = http.post(f"{peer.url}/fhir", json={"resourceType": "Bundle"})
    assert response.status_code == 415 and response.json()["resourceType"] == "OperationOutcome"
