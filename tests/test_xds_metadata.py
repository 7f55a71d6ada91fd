"""XDS.b metadata of the plan's CDA: every required slot, classification and external identifier,
with the IHE scheme UUIDs and the medico-social codes of the CI-SIS value sets."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from lxml import etree

from gateway.model import IdentityStatus, Plan
from mappings.cda import constants as C
from mappings.cda import document_ids, plan_to_cda
from mappings.xds import Destination, MetadataError, entry_uuid, submit_objects_request
from mappings.xds import metadata as M

ROOT = Path(__file__).resolve().parent.parent
PLANS = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
NS = {"lcm": M.LCM, "rim": M.RIM}


def load(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load(PLANS[0])


@pytest.fixture(scope="module")
def cda(plan) -> bytes:
    return plan_to_cda(plan, now=NOW)


@pytest.fixture(scope="module")
def request_(plan, cda) -> etree._Element:
    return etree.fromstring(submit_objects_request(plan, cda, document_ids(plan), now=NOW))


def entry(req):
    return req.find("rim:RegistryObjectList/rim:ExtrinsicObject", NS)


def package(req):
    return req.find("rim:RegistryObjectList/rim:RegistryPackage", NS)


def slot(node, name: str) -> list[str]:
    return [v.text for v in node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=NS)]


def classifications(node, scheme: str) -> list[tuple[str, str]]:
    found = node.xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces=NS)
    return [(c.get("nodeRepresentation"), slot(c, "codingScheme")[0] if slot(c, "codingScheme") else None)
            for c in found]


def external(node, scheme: str) -> str:
    (value,) = node.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value", namespaces=NS)
    return value


def test_root_is_an_ebrim_submit_objects_request(request_):
    assert request_.tag == f"{{{M.LCM}}}SubmitObjectsRequest"
    assert entry(request_).get("objectType") == "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    assert entry(request_).get("mimeType") == "text/xml"


@pytest.mark.parametrize("scheme,expected", [
    ("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", [("44", C.TRE_A03)]),
    ("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", [("80788-3", C.LOINC)]),
    ("urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", [("N", "2.16.840.1.113883.5.25")]),
    ("urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
     [("urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3")]),
    ("urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", [("SA16", "1.2.250.1.71.4.2.4")]),
    ("urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", [("ESSMS", "1.2.250.1.213.1.1.4.9")]),
], ids=["classCode", "typeCode", "confidentialityCode", "formatCode", "healthcareFacilityTypeCode",
        "practiceSettingCode"])
def test_document_entry_codes(request_, scheme, expected):
    assert classifications(entry(request_), scheme) == expected


def test_event_code_list_holds_the_planned_serafin_services(request_, plan):
    events = classifications(entry(request_), "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4")
    assert [code for code, _ in events] == sorted({s.code for s in plan.services})
    assert {system for _, system in events} == {C.SERAFIN_CS}


def test_patient_id_is_the_ins_as_cx_with_its_oid(request_, plan):
    expected = f"{plan.person.ins.value}^^^&{plan.person.ins.oid}&ISO^NH"
    assert external(entry(request_), "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427") == expected
    assert external(package(request_), "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446") == expected
    assert slot(entry(request_), "sourcePatientId") == [f"{plan.platform.finess}/{plan.person.local_id}"
                                                         f"^^^&{C.ID_PERSON_LOCAL}&ISO^PI"]


def test_unique_id_is_the_cda_document_id(request_, plan, cda):
    ids = document_ids(plan)
    assert external(entry(request_), "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab") == ids.document_id
    doc = etree.fromstring(cda)
    assert doc.find(f"{{{C.NS}}}id").get("root") == ids.document_id
    assert entry(request_).get("id") == entry_uuid(ids.document_id)


def test_hash_and_size_match_the_document_bytes(request_, cda):
    assert slot(entry(request_), "hash") == [hashlib.sha1(cda).hexdigest()]
    assert slot(entry(request_), "size") == [str(len(cda))]


def test_creation_time_language_title_and_service_times(request_, plan):
    assert slot(entry(request_), "creationTime") == ["20261126090000"]  # UTC
    assert slot(entry(request_), "languageCode") == ["fr-FR"]
    assert slot(entry(request_), "serviceStartTime") == [plan.period.start.strftime("%Y%m%d")]
    title = entry(request_).find("rim:Name/rim:LocalizedString", NS)
    assert title.get("value") == plan.title
    assert slot(entry(request_), "legalAuthenticator")[0].endswith(f"&{C.IDNAT_PS}&ISO^D^^^IDNPS")
    assert any(v.startswith("PID-5|") for v in slot(entry(request_), "sourcePatientInfo"))


@pytest.mark.parametrize("owner,scheme", [(entry, "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"),
                                          (package, "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d")],
                         ids=["document-entry", "submission-set"])
def test_author_person_institution_role_speciality(request_, plan, owner, scheme):
    (author,) = owner(request_).xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces=NS)
    assert slot(author, "authorInstitution") == [
        f"{plan.platform.name}^^^^^&{C.IDNAT_STRUCT}&ISO^IDNST^^^1{plan.platform.finess}"]
    assert slot(author, "authorPerson")[0].startswith(f"3{plan.platform.finess}/RELAIS^Relais")
    assert slot(author, "authorRole")[0].startswith("LOGICIEL_DUI^")
    assert slot(author, "authorSpecialty") == [f"LOGICIEL_DUI^Logiciel de Dossier Usager Informatisé^{C.TRE_A00}"]


def test_submission_set_identifiers_content_type_and_membership(request_):
    ss = package(request_)
    assert slot(ss, "submissionTime") == ["20261126090000"]
    for scheme in ("urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"):
        assert external(ss, scheme).startswith("2.25.")
    assert classifications(ss, "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500") == [("44", C.TRE_A03)]
    node = request_.xpath("rim:RegistryObjectList/rim:Classification", namespaces=NS)[0]
    assert node.get("classificationNode") == "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    assert node.get("classifiedObject") == ss.get("id")
    (member,) = request_.xpath("rim:RegistryObjectList/rim:Association", namespaces=NS)
    assert member.get("associationType") == "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    assert (member.get("sourceObject"), member.get("targetObject")) == (ss.get("id"), entry(request_).get("id"))
    assert slot(member, "SubmissionSetStatus") == ["Original"]


def test_every_classification_and_identifier_points_at_its_owner(request_):
    for owner in (entry(request_), package(request_)):
        for child in owner.xpath("rim:Classification", namespaces=NS):
            assert child.get("classifiedObject") == owner.get("id")
        for child in owner.xpath("rim:ExternalIdentifier", namespaces=NS):
            assert child.get("registryObject") == owner.get("id")
    ids = request_.xpath("//@id")
    assert len(ids) == len(set(ids)) and all(i.startswith("urn:uuid:") for i in ids)


def test_new_version_replaces_the_previous_entry(plan):
    v2 = document_ids(plan, 2)
    req = etree.fromstring(submit_objects_request(plan, plan_to_cda(plan, now=NOW, ids=v2), v2, now=NOW))
    rplc = req.xpath(f"rim:RegistryObjectList/rim:Association[@associationType='{M.RPLC}']", namespaces=NS)
    assert len(rplc) == 1
    assert rplc[0].get("sourceObject") == entry_uuid(v2.document_id)
    assert rplc[0].get("targetObject") == entry_uuid(document_ids(plan, 1).document_id)


def test_dmp_visibility_codes_and_xdm_uri(plan, cda):
    destination = Destination(visibility=("INVISIBLE_PATIENT", "MASQUE_PS"), uri="DOC0001.XML")
    req = etree.fromstring(submit_objects_request(plan, cda, document_ids(plan), now=NOW,
                                                  destination=destination))
    codes = classifications(entry(req), "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f")
    assert codes == [("N", "2.16.840.1.113883.5.25"), ("INVISIBLE_PATIENT", M.TRE_A07), ("MASQUE_PS", M.TRE_A07)]
    assert slot(entry(req), "URI") == ["DOC0001.XML"]
    with pytest.raises(MetadataError):
        submit_objects_request(plan, cda, document_ids(plan), now=NOW, destination=Destination(visibility=("X",)))


def test_unqualified_identity_cannot_be_indexed_on_the_ins():
    plan = next(p for p in map(load, PLANS) if p.person.identity_status is not IdentityStatus.QUAL)
    cda = plan_to_cda(plan, now=NOW)
    with pytest.raises(MetadataError, match="non qualifiée"):
        submit_objects_request(plan, cda, document_ids(plan), now=NOW)
    req = etree.fromstring(submit_objects_request(plan, cda, document_ids(plan), now=NOW,
                                                  destination=Destination(require_ins=False)))
    assert external(entry(req), "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427").endswith("&ISO^PI")


def test_metadata_is_deterministic(plan, cda):
    one = submit_objects_request(plan, cda, document_ids(plan), now=NOW)
    assert one == submit_objects_request(load(PLANS[0]), cda, document_ids(plan), now=NOW)


def test_naive_now_is_refused(plan, cda):
    with pytest.raises(ValueError):
        submit_objects_request(plan, cda, document_ids(plan), now=dt.datetime(2026, 11, 26))
