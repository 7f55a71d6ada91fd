"""The DMP connector's transactions against the sandbox DMP over mutual TLS (ITI-41 feed and
replace, ITI-18 queries, ITI-43 retrieve, ITI-57 updates), and its building blocks: SOAP 1.2 /
MTOM, the signed VIHF (compared with the official example when the reference set is present),
and the one error model."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from connectors.base import PermanentError, TransientError
from connectors.dmp import errors as E
from connectors.dmp import iti18, soap, vihf
from connectors.sandbox.dmp_peer import DmpPeer
from tests import dmp_support as S

PLAN = S.plan("p003-enfant-tnd.json")
OFFICIAL_VIHF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official" / "mss" / "vihf-automate-example.xml"
BOTH = (iti18.APPROVED, iti18.DEPRECATED)


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    with DmpPeer(tmp_path_factory.mktemp("dmp"), finess=PLAN.platform.finess, schema_check=False,
                 patients={S.submission(PLAN).patient}) as running:
        yield running


@pytest.fixture(scope="module")
def connector(peer):
    c = peer.connector()
    yield c
    c.close()


@pytest.fixture(scope="module")
def first(connector):
    sub = S.submission(PLAN)
    receipt = connector.send(S.envelope(sub))
    return sub, receipt


# ----------------------------------------------------------------------- transactions


def test_iti41_feeds_the_document_and_the_receipt_names_its_unique_id(first):
    sub, receipt = first
    assert receipt.status == "accepted" and receipt.peer_reference == sub.unique_id


def test_iti18_finds_the_persons_documents_with_their_metadata(connector, first):
    sub, _ = first
    entries = connector.find_documents(sub.patient, type_codes=("80788-3",))
    assert [e.unique_id for e in entries] == [sub.unique_id]
    (entry,) = entries
    assert entry.type_code == "80788-3" and entry.size == len(sub.content) and entry.approved


def test_iti43_retrieves_the_same_bytes(connector, first):
    sub, _ = first
    (entry,) = connector.get_documents(sub.patient, unique_ids=(sub.unique_id,))
    retrieved = connector.retrieve(sub.patient, entry.repository_unique_id, entry.unique_id)
    assert retrieved.content == sub.content and retrieved.mime_type == "text/xml"


def test_a_resend_is_recognised_as_the_same_document(connector, first):
    sub, _ = first
    assert connector.send(S.envelope(sub)).status == "duplicate"


def test_a_second_version_replaces_the_first(connector, first):
    sub, _ = first
    second = S.submission(PLAN, version=2)
    receipt = connector.send(S.envelope(second, "k2"))
    assert receipt.status == "accepted" and sub.unique_id in receipt.detail
    statuses = {e.unique_id: e.status for e in connector.find_documents(sub.patient, statuses=BOTH,
                                                                        type_codes=("80788-3",))}
    assert statuses == {sub.unique_id: iti18.DEPRECATED, second.unique_id: iti18.APPROVED}


def test_a_version_whose_predecessor_the_dmp_never_got_goes_as_an_original(connector):
    other = S.submission(PLAN, version=7)  # replaces version 6, never sent
    receipt = connector.send(S.envelope(other, "k7"))
    assert receipt.status == "accepted" and "comme original" in receipt.detail


def test_iti57_changes_visibility_with_a_new_metadata_version(connector):
    sub = S.submission(PLAN, version=7)
    connector.set_visibility(sub.patient, sub.unique_id, ("MASQUE_PS",))
    versions = [e for e in connector.find_documents(sub.patient, statuses=BOTH) if e.unique_id == sub.unique_id]
    current = [e for e in versions if e.approved]
    assert len(versions) == 2 and current[0].version == "2" and "MASQUE_PS" in current[0].confidentiality


def test_iti57_deprecates_a_document(connector):
    sub = S.submission(PLAN, version=7)
    connector.set_status(sub.patient, sub.unique_id, "deprecated")
    assert sub.unique_id not in [e.unique_id for e in connector.find_documents(sub.patient)]


def test_an_unreachable_dmp_is_a_transient_error(peer):
    c = peer.connector(base_url="https://127.0.0.1:9", timeout=2)
    with pytest.raises(TransientError):
        c.find_documents(S.submission(PLAN).patient)
    c.close()


def test_a_busy_dmp_is_transient_and_keeps_its_code(peer, connector):
    from connectors.sandbox.fhir_app import Fault

    peer.sandbox.faults.add(Fault(status=503))
    with pytest.raises(TransientError) as caught:
        connector.find_documents(S.submission(PLAN).patient)
    assert caught.value.code == "XDSRegistryBusy" and "indisponible" in caught.value.reason


def test_a_payload_that_is_not_a_dmp_submission_is_permanent(connector):
    bad = dataclasses.replace(S.envelope(S.submission(PLAN)), payload=b"{}")
    with pytest.raises(PermanentError) as caught:
        connector.send(bad)
    assert caught.value.code == "relais-dmp-payload"


# ----------------------------------------------------------------------- building blocks


def test_mtom_round_trip_keeps_binary_parts_byte_for_byte():
    body = etree.Element("{urn:x}Holder")
    soap.xop_include(body, "doc@relais")
    data = bytes(range(256)) * 10 + b"\r\n--not-a-boundary\r\n"
    content_type, raw = soap.mtom(soap.envelope("urn:a", body), [("doc@relais", "application/pdf", data)], action="urn:a")
    message = soap.read_message(content_type, raw)
    assert message.mtom and message.action == "urn:a"
    assert message.resolve(message.body[0]) == data


def test_vihf_carries_every_attribute_the_dmp_requires(connector):
    claims = connector._claims(S.submission(PLAN).patient, secret=True)
    assertion = vihf.build(claims, connector.seal, now=dt.datetime.now(dt.UTC))
    names = set(assertion.xpath("saml:AttributeStatement/saml:Attribute/@Name", namespaces=vihf.NS))
    assert set(vihf.REQUIRED) <= names and vihf.ATTR_CONFIDENTIALITY in names
    assert assertion[0].tag.endswith("Issuer") and assertion[1].tag == f"{{{vihf.DS}}}Signature"
    parsed = vihf.verify(assertion, [connector.seal.certificate], now=dt.datetime.now(dt.UTC))
    assert parsed.patient == claims.patient and parsed.secret_connection and parsed.version == "3.0"


def test_vihf_has_the_attributes_of_the_official_example(connector):
    if not OFFICIAL_VIHF.exists():
        pytest.skip(f"exemple officiel absent : {OFFICIAL_VIHF} (jeu de référence /work/shared non installé)")
    official = etree.parse(str(OFFICIAL_VIHF)).getroot()
    expected = set(official.xpath("//saml:Attribute/@Name", namespaces=vihf.NS))
    ours = vihf.build(dataclasses.replace(connector._claims("1^^^&1.2.250.1.213.1.4.10&ISO^NH"), lps_homologation="X"),
                      connector.seal, now=dt.datetime.now(dt.UTC))
    assert expected <= set(ours.xpath("//saml:Attribute/@Name", namespaces=vihf.NS))
    algorithms = set(official.xpath("//ds:*/@Algorithm", namespaces=vihf.NS))
    assert algorithms <= set(ours.xpath("//ds:*/@Algorithm", namespaces=vihf.NS))


def test_operation_outcome_and_registry_errors_share_one_model():
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "hash incorrect", "expression": ["DocumentReference.content"]}]}
    (fhir,) = E.from_operation_outcome(outcome, 422)
    error = E.failure([fhir], "DMP")
    assert isinstance(error, PermanentError) and error.code == "processing" and "hash incorrect" in error.reason
    busy = E.failure(E.from_operation_outcome({"issue": [{"severity": "error", "code": "transient"}]}, 503))
    assert isinstance(busy, TransientError)
    node = etree.fromstring(f'<rs:RegistryResponse xmlns:rs="{E.RS}" status="{E.FAILURE}"><rs:RegistryErrorList>'
                            f'<rs:RegistryError errorCode="XDSRegistryBusy" codeContext="occupé" severity="{E.SEVERITY_ERROR}"/>'
                            '</rs:RegistryErrorList></rs:RegistryResponse>')
    assert isinstance(E.failure(E.from_registry_errors(node)), TransientError)
