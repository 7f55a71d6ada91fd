"""What the sandbox DMP checks in an ITI-41 submission, each defect answered with the XDS error
code a registry/repository answers (IHE ITI TF-3 Table 4.2.4.1-2), and what the DMP adds: an
INS as patientId, codes from the DMP value sets, the VIHF patient matching the documents, the
CDA header matching its metadata, a minor's secret connection only with documents invisible to
the legal representatives.

The value sets below are the medico-social subset of specs §5.4 (JDV_J07/J66 typeCode, TRE_A03
classCode, J02/J61 facility, J04 practice setting, J08 confidentiality, J10 format); the DMP's
own JDV contents are not in the sources (specs §12): a code outside these sets is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from mappings.xds import metadata as M

RIM = M.RIM
NS = {"rim": RIM, "lcm": M.LCM, "cda": "urn:hl7-org:v3"}
LOINC, TRE_A05, TRE_A03 = "2.16.840.1.113883.6.1", "1.2.250.1.213.1.1.4.12", "1.2.250.1.213.1.1.4.1"
TYPE_CODES = {(c, LOINC) for c in ("80788-3", "28653-4", "34842-5", "83981-1", "88348-8", "18776-5", "80771-9",
                                   "83869-8", "77604-7", "56446-8", "74207-2")} | {("EXPORT_DUI", TRE_A05),
                                                                                   ("BIL_AUTO", TRE_A05)}
CLASS_CODES = {(c, TRE_A03) for c in ("10", "11", "44", "95")}
FACILITY_CODES = {(f"SA{n}", "1.2.250.1.71.4.2.4") for n in (16, 17, 18, 20, 21, 41)}
PRACTICE_CODES = {(c, "1.2.250.1.213.1.1.4.9") for c in ("ESSMS", "MAD", "SAD", "AMBULATOIRE", "ETABLISSEMENT",
                                                         "HAD", "PALLIATIF", "DEPISTAGE", "SAMU_SMUR", "AMO")}
CONFIDENTIALITY_CODES = ({(c, "2.16.840.1.113883.5.25") for c in "NRV"}
                         | {(c, M.TRE_A07) for c in M.VISIBILITY})
FORMAT_CODES = {("urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3"),
                ("urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3")}
VALUE_SETS = {
    M.DE_TYPE: ("typeCode", "JDV_J66-TypeCode-DMP", TYPE_CODES),
    M.DE_CLASS: ("classCode", "JDV_J57-ClassCode-DMP", CLASS_CODES),
    M.DE_FACILITY: ("healthcareFacilityTypeCode", "JDV_J61-HealthcareFacilityTypeCode-DMP", FACILITY_CODES),
    M.DE_PRACTICE: ("practiceSettingCode", "JDV_J04-XdsPracticeSettingCode-CISIS", PRACTICE_CODES),
    M.DE_CONFIDENTIALITY: ("confidentialityCode", "JDV_J08-XdsConfidentialityCode-CISIS", CONFIDENTIALITY_CODES),
    M.DE_FORMAT: ("formatCode", "JDV_J60-FormatCode-DMP", FORMAT_CODES),
}
# The submission set's signature document (IHE DSG detached, connectors/dmp/xades.py).
SIGNATURE_VALUE_SETS = {
    **VALUE_SETS,
    M.DE_TYPE: ("typeCode", "IHE DSG", {M.SIGNATURE_TYPE[::2]}),
    M.DE_CLASS: ("classCode", "IHE DSG", {M.SIGNATURE_CLASS[::2]}),
    M.DE_FORMAT: ("formatCode", "TRE_A11 (signature détachée)", {M.SIGNATURE_FORMAT[::2]}),
    M.DE_CONFIDENTIALITY: ("confidentialityCode", "JDV_J08-XdsConfidentialityCode-CISIS", CONFIDENTIALITY_CODES),
}
INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")
REQUIRED_SLOTS = ("creationTime", "languageCode", "sourcePatientId", "serviceStartTime")


class Rejected(Exception):
    """One XDS error: code, text (codeContext) and location."""

    def __init__(self, code: str, text: str, location: str = ""):
        super().__init__(text)
        self.code, self.text, self.location = code, text, location


@dataclass
class Entry:
    """A DocumentEntry as read from a submission."""

    node: etree._Element
    entry_uuid: str
    unique_id: str
    patient: str
    mime_type: str


def slot(node, name: str) -> list[str]:
    return node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)


def external(node, scheme: str) -> str | None:
    found = node.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value", namespaces=NS)
    return found[0] if found else None


def classifications(node, scheme: str) -> list[tuple[str, str]]:
    return [(c.get("nodeRepresentation", ""), (slot(c, "codingScheme") or [""])[0])
            for c in node.xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces=NS)]


def check_patient_id(value: str | None, where: str) -> str:
    if not value:
        raise Rejected("XDSRegistryMetadataError", f"{where} : patientId absent", where)
    ident, _, rest = value.partition("^^^&")
    oid, _, kind = rest.partition("&ISO^")
    if oid not in INS_OIDS or kind != "NH" or not ident:
        raise Rejected("XDSRegistryMetadataError",
                       f"{where} : patientId {value!r} n'est pas un INS (OID {', '.join(INS_OIDS)}, type NH)", where)
    return value


def is_signature(node: etree._Element) -> bool:
    return (M.SIGNATURE_FORMAT[0], M.SIGNATURE_FORMAT[2]) in classifications(node, M.DE_FORMAT)


def entry_of(node: etree._Element) -> Entry:
    uid = node.get("id", "")
    value_sets = SIGNATURE_VALUE_SETS if is_signature(node) else VALUE_SETS
    where = f"ExtrinsicObject {uid}"
    for name in REQUIRED_SLOTS:
        if not slot(node, name):
            raise Rejected("XDSRegistryMetadataError", f"{where} : métadonnée {name} absente", where)
    if not node.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS):
        raise Rejected("XDSRegistryMetadataError", f"{where} : titre (Name) absent", where)
    if not node.get("mimeType"):
        raise Rejected("XDSRegistryMetadataError", f"{where} : mimeType absent", where)
    for scheme, (label, value_set, allowed) in value_sets.items():
        codes = classifications(node, scheme)
        if not codes:
            raise Rejected("XDSRegistryMetadataError", f"{where} : {label} absent", where)
        for code in codes:
            if code not in allowed:
                raise Rejected("XDSRegistryMetadataError",
                               f"{where} : {label} {code[0]} ({code[1]}) hors {value_set}", where)
    if not node.xpath(f"rim:Classification[@classificationScheme='{M.DE_AUTHOR}']", namespaces=NS):
        raise Rejected("XDSRegistryMetadataError", f"{where} : auteur absent", where)
    unique_id = external(node, M.DE_UNIQUE_ID)
    if not unique_id:
        raise Rejected("XDSRegistryMetadataError", f"{where} : uniqueId absent", where)
    patient = check_patient_id(external(node, M.DE_PATIENT_ID), where)
    return Entry(node, uid, unique_id, patient, node.get("mimeType"))


def check_content(entry: Entry, content: bytes, declared_type: str) -> None:
    where = f"ExtrinsicObject {entry.entry_uuid}"
    for name, actual, code in (("hash", hashlib.sha1(content).hexdigest(), "XDSNonIdenticalHash"),
                               ("size", str(len(content)), "XDSNonIdenticalSize")):
        declared = slot(entry.node, name)
        if declared and declared[0].lower() != actual:
            raise Rejected(code, f"{where} : {name} déclaré {declared[0]}, document reçu {actual}", where)
    if declared_type.split(";")[0].strip() != entry.mime_type:
        raise Rejected("XDSRepositoryMetadataError",
                       f"{where} : mimeType {entry.mime_type} différent de la partie MTOM ({declared_type})", where)


def check_cda(entry: Entry, content: bytes, extra_check=None) -> None:
    """The CDA is well formed, is a ClinicalDocument, and its header says what the metadata says
    (id = uniqueId, code = typeCode, patient INS = patientId); then `extra_check` (the CDA schema)."""
    where = f"Document {entry.entry_uuid}"
    try:
        root = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise Rejected("InvalidDocumentContent", f"{where} : CDA mal formé ({exc})", where) from None
    if root.tag != "{urn:hl7-org:v3}ClinicalDocument":
        raise Rejected("InvalidDocumentContent", f"{where} : ClinicalDocument CDA R2 attendu ({root.tag})", where)
    ident = root.find("cda:id", NS)
    cda_id = (ident.get("root", "") + (f"^{ident.get('extension')}" if ident.get("extension") else "")) if ident is not None else ""
    if cda_id != entry.unique_id:
        raise Rejected("InvalidDocumentContent", f"{where} : id du CDA ({cda_id}) ≠ uniqueId ({entry.unique_id})", where)
    code = root.find("cda:code", NS)
    types = [c for c, _ in classifications(entry.node, M.DE_TYPE)]
    if code is None or code.get("code") not in types:
        raise Rejected("InvalidDocumentContent", f"{where} : code du CDA ≠ typeCode", where)
    ins, _, rest = entry.patient.partition("^^^&")
    oid = rest.split("&")[0]
    ids = root.xpath("cda:recordTarget/cda:patientRole/cda:id", namespaces=NS)
    if not any(i.get("root") == oid and i.get("extension") == ins for i in ids):
        raise Rejected("XDSPatientIdDoesNotMatch", f"{where} : l'INS du CDA ne correspond pas au patientId", where)
    if extra_check is not None:
        problems = extra_check(root)
        if problems:
            raise Rejected("InvalidDocumentContent", f"{where} : CDA non conforme au schéma : {problems[0]}", where)


def check_submission_set(package: etree._Element | None) -> str:
    if package is None:
        raise Rejected("XDSRegistryMetadataError", "lot de soumission (RegistryPackage) absent")
    where = f"RegistryPackage {package.get('id')}"
    for label, scheme in (("uniqueId", M.SS_UNIQUE_ID), ("sourceId", M.SS_SOURCE_ID)):
        if not external(package, scheme):
            raise Rejected("XDSRegistryMetadataError", f"{where} : {label} absent", where)
    if not slot(package, "submissionTime"):
        raise Rejected("XDSRegistryMetadataError", f"{where} : submissionTime absent", where)
    if not classifications(package, M.SS_CONTENT_TYPE):
        raise Rejected("XDSRegistryMetadataError", f"{where} : contentTypeCode absent", where)
    return check_patient_id(external(package, M.SS_PATIENT_ID), where)
