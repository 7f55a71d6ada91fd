"""The sandbox DMP rejects what the real DMP rejects, with the same kind of error: each defect
below is surfaced by the connector as a PermanentError carrying the peer's code and words
(SOAP faults for the message, WS-Addressing and the VIHF; XDS RegistryErrors for the metadata
and the documents). Real HTTPS with mutual TLS on loopback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ssl

import httpx
import pytest
from lxml import etree

from connectors.base import PermanentError
from connectors.dmp import iti18, iti41, soap, vihf
from connectors.sandbox.dmp_peer import DmpPeer, issue_seal
from mappings.xds import metadata as M
from tests import dmp_support as S

PLAN = S.plan()
OTHER = S.plan("p002-enfant-tnd.json")


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    base = S.submission(PLAN)
    with DmpPeer(tmp_path_factory.mktemp("dmp"), finess=PLAN.platform.finess, schema_check=False,
                 patients={base.patient, S.submission(OTHER).patient}) as running:
        yield running


@pytest.fixture(scope="module")
def connector(peer):
    c = peer.connector()
    yield c
    c.close()


def rejected(connector, sub) -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        connector.provide(sub)
    return caught.value


def fresh(n: int, p=PLAN):
    """A submission no other test used (distinct version number → distinct uniqueId)."""
    return S.submission(p, version=100 + n)


# ----------------------------------------------------------------- metadata and documents


def _set_slot(name, value):
    def edit(root):
        S.slot_value(S.entry(root), name).text = value
    return edit


def _drop_slot(name):
    def edit(root):
        node = S.entry(root)
        node.remove(node.find(f"rim:Slot[@name='{name}']", S.NS))
    return edit


def _code(scheme, value):
    def edit(root):
        S.classification(S.entry(root), scheme).set("nodeRepresentation", value)
    return edit


def _patient(value, where="entry"):
    def edit(root):
        if where == "entry":
            S.external(S.entry(root), M.DE_PATIENT_ID).set("value", value)
        else:
            package = root.find("rim:RegistryObjectList/rim:RegistryPackage", S.NS)
            S.external(package, M.SS_PATIENT_ID).set("value", value)
    return edit


CX_OTHER = S.submission(OTHER).patient
CX_UNKNOWN = "299999999999999^^^&1.2.250.1.213.1.4.10&ISO^NH"

METADATA_DEFECTS = [
    ("unknown-type-code", _code(M.DE_TYPE, "11502-2"), "XDSRegistryMetadataError", "JDV_J66"),
    ("unknown-facility-code", _code(M.DE_FACILITY, "SA99"), "XDSRegistryMetadataError", "JDV_J61"),
    ("unknown-class-code", _code(M.DE_CLASS, "99"), "XDSRegistryMetadataError", "JDV_J57"),
    ("missing-creation-time", _drop_slot("creationTime"), "XDSRegistryMetadataError", "creationTime"),
    ("patient-id-not-an-ins", _patient(f"{PLAN.platform.finess}/X^^^&1.2.3&ISO^PI"), "XDSRegistryMetadataError", "INS"),
    ("entry-and-set-patients-differ", _patient(CX_OTHER, "package"), "XDSPatientIdDoesNotMatch", "lot de soumission"),
    ("hash-does-not-match", _set_slot("hash", "0" * 40), "XDSNonIdenticalHash", "hash"),
    ("size-does-not-match", _set_slot("size", "12"), "XDSNonIdenticalSize", "size"),
]


@pytest.mark.parametrize("name,edit,code,words", METADATA_DEFECTS, ids=[d[0] for d in METADATA_DEFECTS])
def test_defective_metadata_is_refused_with_the_xds_code(connector, name, edit, code, words):
    n = [d[0] for d in METADATA_DEFECTS].index(name)
    error = rejected(connector, S.edit_metadata(fresh(n), edit))
    assert error.code == code and words in error.reason and f"[{code}]" in error.reason


def test_a_person_without_an_open_dmp_is_refused(connector):
    sub = fresh(20)
    sub = dataclasses.replace(S.edit_metadata(sub, lambda r: (_patient(CX_UNKNOWN)(r), _patient(CX_UNKNOWN, "p")(r))),
                              patient=CX_UNKNOWN)
    assert rejected(connector, sub).code == "XDSUnknownPatientId"


def test_a_vihf_for_another_patient_than_the_documents_is_refused(connector):
    sub = dataclasses.replace(fresh(21), patient=CX_OTHER)
    error = rejected(connector, sub)
    assert error.code == "XDSPatientIdDoesNotMatch" and "VIHF" in error.reason


def test_a_document_without_its_metadata_is_refused(connector, monkeypatch):
    sub = fresh(22)
    real = iti41.request

    def extra(metadata, documents):
        return real(metadata, [*documents, iti41.Document("urn:uuid:00000000-0000-4000-8000-000000000001", b"<x/>")])
    monkeypatch.setattr(iti41, "request", extra)
    assert rejected(connector, sub).code == "XDSMissingDocumentMetadata"


def test_metadata_without_its_document_is_refused(connector, monkeypatch):
    real = iti41.request
    monkeypatch.setattr(iti41, "request", lambda metadata, documents: real(metadata, []))
    assert rejected(connector, fresh(23)).code == "XDSMissingDocument"


def test_the_same_unique_id_for_another_content_is_refused(connector):
    sub = fresh(24)
    connector.provide(sub)
    other = S.submission(PLAN, version=124, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert other.unique_id == sub.unique_id and other.content != sub.content
    assert rejected(connector, other).code == "XDSDocumentUniqueIdError"


def test_the_same_document_sent_again_is_recognised_not_refused(connector):
    sub = fresh(25)
    assert connector.provide(sub).status == "accepted"
    assert connector.provide(sub).status == "duplicate"


def test_a_cda_whose_header_contradicts_the_metadata_is_refused(connector):
    sub = fresh(26)
    content = sub.content.replace(sub.unique_id.encode(), b"2.25.1", 1)
    root = etree.fromstring(sub.metadata)
    S.slot_value(S.entry(root), "hash").text = hashlib.sha1(content).hexdigest()
    S.slot_value(S.entry(root), "size").text = str(len(content))
    sub = dataclasses.replace(sub, content=content, metadata=etree.tostring(root))
    error = rejected(connector, sub)
    assert error.code == "InvalidDocumentContent" and "uniqueId" in error.reason


def test_a_mime_type_other_than_the_mtom_part_is_refused(connector):
    error = rejected(connector, dataclasses.replace(fresh(27), mime_type="application/pdf"))
    assert error.code == "XDSRepositoryMetadataError"


def test_replacing_a_document_the_dmp_does_not_hold_is_refused(connector):
    def rplc(root):
        objects = root.find("rim:RegistryObjectList", S.NS)
        etree.SubElement(objects, f"{{{M.RIM}}}Association", id="urn:uuid:5f0a1c1e-1111-4111-8111-111111111111",
                         objectType=M.ASSOCIATION, associationType=M.RPLC, sourceObject=S.entry(root).get("id"),
                         targetObject="urn:uuid:5f0a1c1e-2222-4222-8222-222222222222")
    sub = dataclasses.replace(fresh(28), replaces=None)  # the connector would drop an RPLC it cannot resolve
    assert rejected(connector, S.edit_metadata(sub, rplc)).code == "UnresolvedReferenceException"


def test_a_secret_connection_needs_documents_invisible_to_legal_representatives(connector):
    error = rejected(connector, dataclasses.replace(fresh(29), secret_connection=True))
    assert error.code == "XDSRegistryMetadataError" and "représentants légaux" in error.reason


# ----------------------------------------------------------------- SOAP, WS-Addressing, VIHF


def _post(peer, path: str, content_type: str, data: bytes) -> soap.Message:
    context = ssl.create_default_context(cafile=str(peer.ca.cert))
    context.load_cert_chain(str(peer.client_cert.cert), str(peer.client_cert.key))
    with httpx.Client(verify=context, timeout=10) as http:
        response = http.post(peer.url + path, content=data, headers={"Content-Type": content_type})
    return soap.read_message(response.headers["content-type"], response.content)


def _signed(connector, claims=None, now=None):
    return vihf.build(claims or connector._claims(S.submission(PLAN).patient), connector.seal,
                      now=now or dt.datetime.now(dt.UTC))


def _query_envelope(connector, *, action=iti18.ACTION, message_id="urn:uuid:1", security="signed"):
    patient = S.submission(PLAN).patient
    assertion = _signed(connector) if security == "signed" else security
    raw = soap.envelope(action, iti18.find_documents(patient), message_id=message_id, security=assertion)
    if message_id is None:
        root = etree.fromstring(raw)
        header = root.find("soap:Header", soap.NS)
        header.remove(header.find("wsa:MessageID", soap.NS))
        raw = etree.tostring(root)
    return raw


def _fault(message: soap.Message):
    fault = message.fault()
    assert fault is not None
    return fault


def test_a_body_that_is_not_xml_is_a_soap_fault(peer):
    code, reason = _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), b"<soap:Envelope"))
    assert code == "InvalidEnvelope" and "mal formée" in reason


def test_a_soap_11_envelope_is_a_version_mismatch(peer):
    raw = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>'
    assert _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))[0] == "VersionMismatch"


def test_an_xop_include_without_its_mime_part_is_refused(peer, connector):
    sub = fresh(40)
    body, attachments = iti41.request(sub.metadata, [iti41.Document(sub.entry_uuid, sub.content)])
    raw = soap.envelope(iti41.ACTION, body, message_id="urn:uuid:2", security=_signed(connector))
    content_type, data = soap.mtom(raw, [], action=iti41.ACTION)
    code, reason = _fault(_post(peer, "/repository", content_type, data))
    assert code == "MtomError" and "absente" in reason


def test_provide_and_register_without_mtom_is_refused(peer, connector):
    sub = fresh(41)
    body, _ = iti41.request(sub.metadata, [])
    raw = soap.envelope(iti41.ACTION, body, message_id="urn:uuid:3", security=_signed(connector))
    assert _fault(_post(peer, "/repository", soap.soap_content_type(iti41.ACTION), raw))[0] == "MtomError"


def test_a_wrong_ws_addressing_action_is_refused(peer, connector):
    raw = _query_envelope(connector, action="urn:ihe:iti:2007:RegistryStoredQueryX")
    code, reason = _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))
    assert code == "wsa:ActionNotSupported" and "RegistryStoredQueryX" in reason


def test_an_action_sent_to_the_wrong_endpoint_is_refused(peer, connector):
    raw = _query_envelope(connector)
    assert _fault(_post(peer, "/repository", soap.soap_content_type(iti18.ACTION), raw))[0] == "wsa:ActionNotSupported"


def test_a_missing_message_id_is_refused(peer, connector):
    raw = _query_envelope(connector, message_id=None)
    assert _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))[0] == \
        "wsa:MessageAddressingHeaderRequired"


def test_a_request_without_vihf_is_refused(peer, connector):
    raw = _query_envelope(connector, security=None)
    code, reason = _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))
    assert code == "wsse:InvalidSecurity" and "VIHF absent" in reason


def test_a_tampered_vihf_fails_its_signature_check(peer, connector):
    assertion = _signed(connector)
    node = assertion.xpath("//saml:Attribute[@Name='Identifiant_Structure']/saml:AttributeValue", namespaces=vihf.NS)[0]
    node.text = "1999999999"
    raw = _query_envelope(connector, security=assertion)
    code, reason = _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))
    assert code == "wsse:FailedCheck" and "signature" in reason


def test_a_vihf_signed_by_an_unregistered_seal_is_refused(peer, connector, tmp_path):
    cert, key, _ = issue_seal(peer.ca, "Cachet inconnu du DMP", "unknown-seal")
    stranger = vihf.Seal.from_files(str(cert), str(key))
    assertion = vihf.build(connector._claims(S.submission(PLAN).patient), stranger, now=dt.datetime.now(dt.UTC))
    raw = _query_envelope(connector, security=assertion)
    code, reason = _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))
    assert code == "wsse:FailedAuthentication" and "non enregistré" in reason


def test_an_old_vihf_is_expired(peer, connector):
    assertion = _signed(connector, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    raw = _query_envelope(connector, security=assertion)
    assert _fault(_post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw))[0] == "wsse:MessageExpired"


@pytest.mark.parametrize("version,accepted", [("3.0", True), ("4.0", True), ("2.0", False)])
def test_vihf_versions_3_and_4_are_accepted_others_refused(peer, connector, version, accepted):
    claims = dataclasses.replace(connector._claims(S.submission(PLAN).patient), version=version)
    raw = _query_envelope(connector, security=_signed(connector, claims))
    message = _post(peer, "/registry", soap.soap_content_type(iti18.ACTION), raw)
    if accepted:
        assert message.fault() is None
    else:
        code, reason = _fault(message)
        assert code == "wsse:InvalidSecurity" and "VIHF_Version 2.0" in reason


def test_a_connection_without_the_structure_certificate_is_refused_at_tls(peer):
    context = ssl.create_default_context(cafile=str(peer.ca.cert))
    with httpx.Client(verify=context, timeout=5) as http, pytest.raises(httpx.TransportError):
        http.post(peer.url + "/registry", content=b"", headers={"Content-Type": soap.SOAP_MEDIA})


# ----------------------------------------------------------------- queries and retrieval


def test_an_unknown_stored_query_is_refused(peer, connector):
    body = iti18._query("urn:uuid:00000000-0000-0000-0000-000000000000", [])
    with pytest.raises(PermanentError) as caught:
        connector._query(S.submission(PLAN).patient, body)
    assert caught.value.code == "XDSUnknownStoredQuery"


def test_find_documents_without_status_is_refused(peer, connector):
    patient = S.submission(PLAN).patient
    body = iti18._query(iti18.FIND_DOCUMENTS, [("$XDSDocumentEntryPatientId", f"'{patient}'")])
    with pytest.raises(PermanentError) as caught:
        connector._query(patient, body)
    assert caught.value.code == "XDSStoredQueryParamNumber"


def test_retrieving_from_an_unknown_repository_or_document_is_refused(connector):
    patient = S.submission(PLAN).patient
    with pytest.raises(PermanentError) as caught:
        connector.retrieve(patient, "1.2.3.4", "2.25.1")
    assert caught.value.code == "XDSUnknownRepositoryId"
    from connectors.sandbox.dmp import REPOSITORY_ID

    with pytest.raises(PermanentError) as caught:
        connector.retrieve(patient, REPOSITORY_ID, "2.25.1")
    assert caught.value.code == "XDSDocumentUniqueIdError"


def test_a_status_change_from_a_wrong_original_status_is_refused(connector):
    sub = fresh(50)
    connector.provide(sub)
    (entry,) = connector.get_documents(sub.patient, unique_ids=(sub.unique_id,))
    connector.set_status(sub.patient, sub.unique_id, "deprecated")
    from connectors.dmp import iti57

    metadata = iti57.status_update(entry, iti57.STATUSES["deprecated"], finess=PLAN.platform.finess,
                                   platform_name="P", now=dt.datetime.now(dt.UTC))
    with pytest.raises(PermanentError) as caught:
        connector._update(sub.patient, metadata)
    assert caught.value.code == "XDSMetadataUpdateError"


# ----------------------------------------------------------------- submission-set signature (XAdES)


def test_an_unsigned_submission_set_is_refused(peer):
    unsigned = peer.connector(sign_submission=False)
    try:
        error = rejected(unsigned, fresh(60))
    finally:
        unsigned.close()
    assert error.code == "XDSRegistryMetadataError" and "non signé" in error.reason


def test_a_submission_signed_by_an_unregistered_seal_is_refused(peer, connector, monkeypatch):
    cert, key, _ = issue_seal(peer.ca, "Cachet inconnu (signature du lot)", "unknown-seal-2")
    monkeypatch.setattr(connector, "seal", vihf.Seal.from_files(str(cert), str(key)))
    monkeypatch.setattr(vihf, "build", _real_vihf_build(connector))
    error = rejected(connector, fresh(61))
    assert error.code == "InvalidDocumentContent" and "non enregistré" in error.reason


def _real_vihf_build(connector):
    real, seal = vihf.build, connector.seal.__class__.from_files(str(connector.settings.seal_cert),
                                                                  str(connector.settings.seal_key))
    return lambda claims, _seal, now: real(claims, seal, now=now)


def test_a_signature_that_does_not_cover_the_document_is_refused(connector, monkeypatch):
    from connectors.dmp import xades

    real = xades.sign
    monkeypatch.setattr(xades, "sign", lambda documents, seal: real([(uid, b"autre contenu") for uid, _ in documents], seal))
    error = rejected(connector, fresh(62))
    assert error.code == "InvalidDocumentContent" and "empreinte" in error.reason


def test_a_cda_that_breaks_the_cda_schema_is_refused(tmp_path):
    from connectors.sandbox.dmp_peer import cda_schema_check

    check = cda_schema_check()
    if check is None:
        pytest.skip("jeu de référence TestContenuCDA absent (RELAIS_CDA_SCHEMAS) : schéma CDA non disponible")
    sub = S.submission(PLAN, version=70)
    content = sub.content.replace(b"<languageCode", b"<inconnu>x</inconnu><languageCode", 1)
    root = etree.fromstring(sub.metadata)
    S.slot_value(S.entry(root), "hash").text = hashlib.sha1(content).hexdigest()
    S.slot_value(S.entry(root), "size").text = str(len(content))
    sub = dataclasses.replace(sub, content=content, metadata=etree.tostring(root), replaces=None)
    with DmpPeer(tmp_path, finess=PLAN.platform.finess, patients={sub.patient}) as strict:
        c = strict.connector()
        try:
            error = rejected(c, sub)
        finally:
            c.close()
    assert error.code == "InvalidDocumentContent" and "schéma" in error.reason
