"""XDS.b metadata of the plan's CDA document: ebRIM 3.0 `lcm:SubmitObjectsRequest` with the
DocumentEntry, the SubmissionSet, their HasMember association (and RPLC for a new version).

Implements specs §5.2 (IHE ITI TF-3 §4.2.5 scheme UUIDs), §5.3 (CDA header -> XDS, HL7CDA
`mapping.md`) and §5.4 (medico-social codes of the CI-SIS value sets). The same request is the
METADATA.XML of an MSSanté XDM package (§4.2: add `uri`) and the body of a DMP ITI-41.
Pure: ids, hash and times come from the arguments; every entryUUID is derived from the
document's uniqueId, so a replacement can point at the entry it replaces.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

from lxml import etree

from gateway.model import IdentityStatus, Plan
from mappings.cda import constants as C
from mappings.cda.export import DocumentIds

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NSMAP = {"lcm": LCM, "rim": RIM}

# IHE ITI TF-3 §4.2.5 (specs §5.2)
DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
UPDATE_AVAILABILITY = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"  # ITI-57
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"  # IHE DSG: signature document → signed document
# IHE DSG signature DocumentEntry (the submission set's XAdES signature, specs §5.1). formatCode
# from TRE_A11 ("Signature détachée"); classCode and typeCode as IHE DSG defines them — the DMP's
# own values for this entry are not in the sources (specs §12).
SIGNATURE_FORMAT = ("urn:ihe:iti:dsg:detached:2014", "Signature détachée", "1.3.6.1.4.1.19376.1.2.3")
SIGNATURE_CLASS = ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "Digital Signature", "URN")
SIGNATURE_TYPE = ("E1762", "Full Document", "ASTM")
CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_IDENTIFIER = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
ASSOCIATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"

# Codes (specs §5.4). classCode 44 from typeCode 80788-3 via ASS_X04; the TRE_A03 label of
# class 44 is not verified in the sources (specs §12): the display below is descriptive.
CLASS_CODE = (C.DOC_CLASS_CODE, "Plan de prise en charge", C.TRE_A03)
TYPE_CODE = (C.DOC_TYPE_CODE, C.DOC_TYPE_DISPLAY, C.LOINC)
# No CI-SIS formatCode exists for this CDA model (no ASS_A11 entry, specs §5.4 [open]): the
# IHE generic "mime type sufficient" code of TRE_A11-IheFormatCode, until ANS publishes one.
FORMAT_CODE = ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "Format déterminé par le type MIME",
               "1.3.6.1.4.1.19376.1.2.3")
FACILITY_CODE = (*C.FACILITY_TYPE, C.TRE_R02)
PRACTICE_CODE = (*C.PRACTICE_SETTING, C.TRE_A01)
# DMP visibility (JDV_J08 / TRE_A07, specs §5.4): extra confidentialityCode classifications.
TRE_A07 = "1.2.250.1.213.1.1.4.13"
VISIBILITY = {
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
    "MASQUE_PS": "Masqué aux professionnels de santé",
}
_NS_UUID = uuid.uuid5(uuid.NAMESPACE_OID, C.RELAIS_ROOT)


class MetadataError(ValueError):
    """The document cannot be described for this destination (e.g. no qualified INS)."""


@dataclass(frozen=True)
class Destination:
    """What differs between the DMP and an XDM package."""

    visibility: tuple[str, ...] = ()  # DMP masking codes (VISIBILITY)
    uri: str | None = None  # XDM: file name of the document in SUBSETnn (e.g. DOC0001.XML)
    require_ins: bool = True  # the DMP indexes by INS; an XDM for a person without INS may not
    format_code: tuple[str, str, str] = FORMAT_CODE


def entry_uuid(unique_id: str) -> str:
    """The entryUUID of the DocumentEntry of a document uniqueId (stable across submissions)."""
    return f"urn:uuid:{uuid.uuid5(_NS_UUID, 'entry|' + unique_id)}"


def _uuid(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS_UUID, '|'.join(parts))}"


def _utc(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("`now` doit porter un fuseau horaire (les dates XDS sont en UTC)")
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%S")


def _rim(parent, tag: str, **attrs) -> etree._Element:
    return etree.SubElement(parent, f"{{{RIM}}}{tag}", attrs)


def _slot(parent, name: str, *values: str) -> None:
    slot = _rim(parent, "Slot", name=name)
    value_list = _rim(slot, "ValueList")
    for value in values:
        _rim(value_list, "Value").text = value


def _name(parent, text: str, tag: str = "Name") -> None:
    node = _rim(parent, tag)
    _rim(node, "LocalizedString", charset="UTF-8", value=text).set(
        "{http://www.w3.org/XML/1998/namespace}lang", C.LANGUAGE)


def _classification(parent, owner: str, scheme: str, code: tuple[str, str, str], index: int = 0) -> None:
    value, display, system = code
    node = _rim(parent, "Classification", id=_uuid(owner, scheme, str(index), value),
                objectType=CLASSIFICATION, classificationScheme=scheme, classifiedObject=owner,
                nodeRepresentation=value)
    _slot(node, "codingScheme", system)
    _name(node, display)


def _external(parent, owner: str, scheme: str, value: str, label: str) -> None:
    node = _rim(parent, "ExternalIdentifier", id=_uuid(owner, scheme), objectType=EXTERNAL_IDENTIFIER,
                identificationScheme=scheme, registryObject=owner, value=value)
    _name(node, label)


def _author(parent, owner: str, scheme: str, plan: Plan) -> None:
    """authorPerson (the DUI software, XCN), authorInstitution (platform, XON with FINESS),
    authorRole and authorSpecialty (LOGICIEL_DUI, TRE_A00 / J01): CDA author, specs §5.3."""
    _author_slots(parent, owner, scheme, plan.platform.finess, plan.platform.name)


def _author_slots(parent, owner: str, scheme: str, finess: str, platform_name: str) -> None:
    node = _rim(parent, "Classification", id=_uuid(owner, scheme), objectType=CLASSIFICATION,
                classificationScheme=scheme, classifiedObject=owner, nodeRepresentation="")
    _slot(node, "authorPerson", f"3{finess}/RELAIS^{C.SOFTWARE_NAME}^^^^^^^&{C.IDNAT_PS}&ISO^D^^^IDNPS")
    _slot(node, "authorInstitution", f"{platform_name}^^^^^&{C.IDNAT_STRUCT}&ISO^IDNST^^^1{finess}")
    code, display = C.AUTHOR_DEVICE_CODE
    _slot(node, "authorRole", f"{code}^{display}^{C.TRE_A00}")
    _slot(node, "authorSpecialty", f"{code}^{display}^{C.TRE_A00}")


def patient_cx(plan: Plan, require_ins: bool = True) -> str:
    """patientId as HL7 v2 CX: `matricule^^^&OID&ISO^NH` (INS of a qualified identity only)."""
    person = plan.person
    if person.ins is not None and person.identity_status is IdentityStatus.QUAL:
        return f"{person.ins.value}^^^&{person.ins.oid}&ISO^NH"
    if require_ins:
        raise MetadataError("identité non qualifiée : pas d'INS utilisable (RNIV), le document ne peut "
                            "pas être indexé sur l'INS")
    return local_cx(plan)


def local_cx(plan: Plan) -> str:
    return f"{plan.platform.finess}/{plan.person.local_id}^^^&{C.ID_PERSON_LOCAL}&ISO^PI"


def _source_patient_info(plan: Plan) -> list[str]:
    person = plan.person
    sex = C.GENDER[person.sex.value][0]
    return [f"PID-3|{local_cx(plan)}",
            f"PID-5|{person.birth_family_name}^{person.birth_given_names[0]}^^^^^L",
            f"PID-7|{person.birth_date.strftime('%Y%m%d')}", f"PID-8|{sex}"]


def _legal_authenticator(plan: Plan) -> str | None:
    pros = {p.id: p for p in plan.professionals}
    signer = next((pros[a.performer_id] for a in plan.agreements
                   if a.party.value == "structure" and a.performer_id in pros), None)
    signer = signer or pros.get(plan.platform.coordinator.professional_id)
    if signer is None:
        return None
    ident = f"8{signer.rpps}" if signer.rpps else f"3{plan.platform.finess}/{signer.id}"
    return f"{ident}^{signer.family_name}^{signer.given_name or ''}^^^^^^&{C.IDNAT_PS}&ISO^D^^^IDNPS"


def submit_objects_request(
    plan: Plan, document: bytes, ids: DocumentIds, *, now: dt.datetime, confidentiality: str = "N",
    destination: Destination = Destination(),
) -> bytes:
    """The ebRIM SubmitObjectsRequest describing `document` (the plan's CDA bytes)."""
    if confidentiality not in C.CONFIDENTIALITY_DISPLAY:
        raise MetadataError(f"code de confidentialité inconnu : {confidentiality}")
    unknown = [v for v in destination.visibility if v not in VISIBILITY]
    if unknown:
        raise MetadataError(f"code de visibilité DMP inconnu : {', '.join(unknown)}")
    patient = patient_cx(plan, destination.require_ins)
    de = entry_uuid(ids.document_id)
    ss = _uuid("submission-set", ids.document_id)
    root = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = _rim(root, "RegistryObjectList")

    entry = _rim(objects, "ExtrinsicObject", id=de, mimeType="text/xml", objectType=DOCUMENT_ENTRY,
                 status=APPROVED)
    _slot(entry, "creationTime", _utc(now))
    _slot(entry, "hash", hashlib.sha1(document).hexdigest())
    _slot(entry, "size", str(len(document)))
    _slot(entry, "languageCode", C.LANGUAGE)
    authenticator = _legal_authenticator(plan)
    if authenticator:
        _slot(entry, "legalAuthenticator", authenticator)
    if plan.period.start:
        _slot(entry, "serviceStartTime", plan.period.start.strftime("%Y%m%d"))
    if plan.period.end:
        _slot(entry, "serviceStopTime", plan.period.end.strftime("%Y%m%d"))
    _slot(entry, "sourcePatientId", local_cx(plan))
    _slot(entry, "sourcePatientInfo", *_source_patient_info(plan))
    if destination.uri:
        _slot(entry, "URI", destination.uri)
    _name(entry, plan.title)
    _author(entry, de, DE_AUTHOR, plan)
    _classification(entry, de, DE_CLASS, CLASS_CODE)
    _classification(entry, de, DE_CONFIDENTIALITY,
                    (confidentiality, C.CONFIDENTIALITY_DISPLAY[confidentiality], C.CONFIDENTIALITY))
    for index, code in enumerate(destination.visibility, start=1):
        _classification(entry, de, DE_CONFIDENTIALITY, (code, VISIBILITY[code], TRE_A07), index)
    # eventCodeList: the SERAFIN-PH services the plan organises (its "acts"), distinct, sorted.
    for index, code in enumerate(sorted({s.code for s in plan.services}), start=1):
        _classification(entry, de, DE_EVENT, (code, _serafin_label(code), C.SERAFIN_CS), index)
    _classification(entry, de, DE_FORMAT, destination.format_code)
    _classification(entry, de, DE_FACILITY, FACILITY_CODE)
    _classification(entry, de, DE_PRACTICE, PRACTICE_CODE)
    _classification(entry, de, DE_TYPE, TYPE_CODE)
    _external(entry, de, DE_PATIENT_ID, patient, "XDSDocumentEntry.patientId")
    _external(entry, de, DE_UNIQUE_ID, ids.document_id, "XDSDocumentEntry.uniqueId")

    package = _rim(objects, "RegistryPackage", id=ss, objectType=REGISTRY_PACKAGE, status=APPROVED)
    _slot(package, "submissionTime", _utc(now))
    _name(package, plan.title)
    _author(package, ss, SS_AUTHOR, plan)
    # contentTypeCode: the document class (TRE_A03), as the PDSm4DMP submission examples do.
    _classification(package, ss, SS_CONTENT_TYPE, CLASS_CODE)
    _external(package, ss, SS_UNIQUE_ID, C.derived_oid("submission-set", ids.document_id),
              "XDSSubmissionSet.uniqueId")
    _external(package, ss, SS_SOURCE_ID, C.derived_oid("source", plan.platform.finess),
              "XDSSubmissionSet.sourceId")
    _external(package, ss, SS_PATIENT_ID, patient, "XDSSubmissionSet.patientId")
    _rim(objects, "Classification", id=_uuid(ss, "node"), objectType=CLASSIFICATION,
         classifiedObject=ss, classificationNode=SUBMISSION_SET_NODE)
    member = _rim(objects, "Association", id=_uuid(ss, "member", de), objectType=ASSOCIATION,
                  associationType=HAS_MEMBER, sourceObject=ss, targetObject=de)
    _slot(member, "SubmissionSetStatus", "Original")
    if ids.replaces:
        _rim(objects, "Association", id=_uuid(de, "replaces", ids.replaces), objectType=ASSOCIATION,
             associationType=RPLC, sourceObject=de, targetObject=entry_uuid(ids.replaces))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _serafin_label(code: str) -> str:
    from mappings.serafin import nomenclature

    concept = nomenclature().get(code)
    return concept.label if concept else code


def metadata_update(*, patient: str, finess: str, platform_name: str, now: dt.datetime, seed: str,
                    status_change: tuple[str, str, str] | None = None,
                    new_version: etree._Element | None = None, previous_version: str | None = None) -> bytes:
    """ITI-57 Update Document Set (IHE ITI TF-2b §3.57; DMP TD3.3, specs §5.1): a SubmissionSet
    carrying either an availability status change (`status_change` = (entryUUID, original, new)
    status URNs, association UpdateAvailabilityStatus) or a new version of a DocumentEntry's
    metadata (`new_version`: the ExtrinsicObject with a new id and the same `lid`, HasMember
    with PreviousVersion). `seed` makes the SubmissionSet ids unique and reproducible."""
    ss = _uuid("update-set", seed)
    root = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = _rim(root, "RegistryObjectList")
    if new_version is not None:
        objects.append(new_version)
    package = _rim(objects, "RegistryPackage", id=ss, objectType=REGISTRY_PACKAGE, status=APPROVED)
    _slot(package, "submissionTime", _utc(now))
    _name(package, "Mise à jour des métadonnées")
    _author_slots(package, ss, SS_AUTHOR, finess, platform_name)
    _classification(package, ss, SS_CONTENT_TYPE, CLASS_CODE)
    _external(package, ss, SS_UNIQUE_ID, C.derived_oid("update-set", seed), "XDSSubmissionSet.uniqueId")
    _external(package, ss, SS_SOURCE_ID, C.derived_oid("source", finess), "XDSSubmissionSet.sourceId")
    _external(package, ss, SS_PATIENT_ID, patient, "XDSSubmissionSet.patientId")
    _rim(objects, "Classification", id=_uuid(ss, "node"), objectType=CLASSIFICATION,
         classifiedObject=ss, classificationNode=SUBMISSION_SET_NODE)
    if status_change is not None:
        target, original, new = status_change
        change = _rim(objects, "Association", id=_uuid(ss, "status", target), objectType=ASSOCIATION,
                      associationType=UPDATE_AVAILABILITY, sourceObject=ss, targetObject=target)
        _slot(change, "OriginalStatus", original)
        _slot(change, "NewStatus", new)
    if new_version is not None:
        member = _rim(objects, "Association", id=_uuid(ss, "member", new_version.get("id")), objectType=ASSOCIATION,
                      associationType=HAS_MEMBER, sourceObject=ss, targetObject=new_version.get("id"))
        _slot(member, "SubmissionSetStatus", "Original")
        _slot(member, "PreviousVersion", previous_version or "1")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def add_signature(request: bytes, signature: bytes, *, unique_id: str, now: dt.datetime) -> bytes:
    """The SubmitObjectsRequest with the submission set's signature document added (IHE DSG):
    its DocumentEntry (patient, source patient, author, facility and practice of the signed
    documents), HasMember from the SubmissionSet, and `signs` to each signed DocumentEntry."""
    root = etree.fromstring(request, etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True))
    ns = {"rim": RIM}
    objects = root.find("rim:RegistryObjectList", ns)
    signed = objects.findall("rim:ExtrinsicObject", ns)
    package = objects.find("rim:RegistryPackage", ns)
    first = signed[0]
    sig = entry_uuid(unique_id)
    holder = etree.Element("holder")
    entry = _rim(holder, "ExtrinsicObject", id=sig, mimeType="text/xml", objectType=DOCUMENT_ENTRY, status=APPROVED)
    _slot(entry, "creationTime", _utc(now))
    _slot(entry, "hash", hashlib.sha1(signature).hexdigest())
    _slot(entry, "size", str(len(signature)))
    _slot(entry, "languageCode", C.LANGUAGE)
    for name in ("serviceStartTime", "serviceStopTime", "sourcePatientId"):
        values = first.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=ns)
        if values:
            _slot(entry, name, *values)
    _name(entry, "Signature du lot de soumission")
    author = first.find(f"rim:Classification[@classificationScheme='{DE_AUTHOR}']", ns)
    if author is not None:
        copied = etree.fromstring(etree.tostring(author))
        copied.set("id", _uuid(sig, DE_AUTHOR))
        copied.set("classifiedObject", sig)
        entry.append(copied)
    _classification(entry, sig, DE_CLASS, SIGNATURE_CLASS)
    # the signed document's confidentiality and visibility (the signature reveals that it exists)
    for index, found in enumerate(first.findall(f"rim:Classification[@classificationScheme='{DE_CONFIDENTIALITY}']", ns)):
        code = found.get("nodeRepresentation")
        system = found.xpath("rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value/text()", namespaces=ns)[0]
        display = found.xpath("rim:Name/rim:LocalizedString/@value", namespaces=ns)
        _classification(entry, sig, DE_CONFIDENTIALITY, (code, display[0] if display else code, system), index)
    _classification(entry, sig, DE_FORMAT, SIGNATURE_FORMAT)
    _classification(entry, sig, DE_FACILITY, FACILITY_CODE)
    _classification(entry, sig, DE_PRACTICE, PRACTICE_CODE)
    _classification(entry, sig, DE_TYPE, SIGNATURE_TYPE)
    patient = first.xpath(f"rim:ExternalIdentifier[@identificationScheme='{DE_PATIENT_ID}']/@value", namespaces=ns)[0]
    _external(entry, sig, DE_PATIENT_ID, patient, "XDSDocumentEntry.patientId")
    _external(entry, sig, DE_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId")
    objects.insert(objects.index(signed[-1]) + 1, entry)
    ss = package.get("id")
    member = _rim(objects, "Association", id=_uuid(ss, "member", sig), objectType=ASSOCIATION,
                  associationType=HAS_MEMBER, sourceObject=ss, targetObject=sig)
    _slot(member, "SubmissionSetStatus", "Original")
    for document in signed:
        _rim(objects, "Association", id=_uuid(sig, "signs", document.get("id")), objectType=ASSOCIATION,
             associationType=SIGNS, sourceObject=sig, targetObject=document.get("id"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
