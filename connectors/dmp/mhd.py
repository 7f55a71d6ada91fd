"""PDSm / MHD resources from the DMP submission (specs §5.5, PDSm 3.1.1 comprehensive profiles,
PDSm4DMP TD2 / TD2.1 / TD3.1 / TD3.2) and back: the XDS → FHIR equivalences of PDSm4DMP
(uniqueId → masterIdentifier, entryUUID → identifier, SubmissionSet uniqueId → List.identifier,
sourceId → ihe-sourceId), codes carried over from the XDS metadata unchanged."""

from __future__ import annotations

import base64
import hashlib
import uuid

from lxml import etree

from mappings.xds import metadata as M

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition"
IHE = "https://profiles.ihe.net/ITI/MHD"
TRE_A07_URL = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
SYSTEMS = {  # CDA / XDS OIDs → FHIR canonical systems
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "1.2.250.1.213.1.1.4.1": "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument",
    "1.2.250.1.71.4.2.4": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
    "1.2.250.1.213.1.1.4.9": "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice",
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    M.TRE_A07: TRE_A07_URL,
    "1.3.6.1.4.1.19376.1.2.3": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
}
OIDS = {v: k for k, v in SYSTEMS.items()}
NS = {"rim": M.RIM}


def _slot(node, name):
    return node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)


def _codes(node, scheme) -> list[dict]:
    out = []
    for c in node.xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces=NS):
        system = (_slot(c, "codingScheme") or [""])[0]
        display = (c.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS) or [None])[0]
        coding = {"system": SYSTEMS.get(system, f"urn:oid:{system}"), "code": c.get("nodeRepresentation")}
        if display:
            coding["display"] = display
        out.append(coding)
    return out


def _instant(ts: str) -> str:
    """XDS DTM (UTC) → FHIR instant/date."""
    if len(ts) >= 14:
        return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[8:10]}:{ts[10:12]}:{ts[12:14]}Z"
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}"


def patient_reference(patient_cx: str) -> tuple[str, str]:
    value, _, rest = patient_cx.partition("^^^&")
    return f"urn:oid:{rest.split('&')[0]}", value


def document_reference(entry: etree._Element, patient_cx: str, *, binary_url: str, replaces: str | None = None,
                       status: str = "current") -> dict:
    """A pdsm-comprehensive-document-reference from an XDS DocumentEntry."""
    system, value = patient_reference(patient_cx)
    unique_id = entry.xpath(f"rim:ExternalIdentifier[@identificationScheme='{M.DE_UNIQUE_ID}']/@value", namespaces=NS)[0]
    author = (_slot(entry.xpath(f"rim:Classification[@classificationScheme='{M.DE_AUTHOR}']", namespaces=NS)[0],
                    "authorInstitution") or [""])[0]
    finess = author.rsplit("^", 1)[-1]
    resource = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [f"{PDSM}/pdsm-comprehensive-document-reference"]},
        "contained": [{"resourceType": "Device", "id": "author", "deviceName": [{"name": "Relais", "type": "manufacturer-name"}],
                       "owner": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": finess}}}],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{unique_id}"},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": entry.get("id")}],
        "status": status,
        "type": {"coding": _codes(entry, M.DE_TYPE)},
        "category": [{"coding": _codes(entry, M.DE_CLASS)}],
        "subject": {"reference": f"Patient?identifier={system}|{value}"},
        "date": _instant(_slot(entry, "creationTime")[0]),
        "author": [{"reference": "#author"}],
        "custodian": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": finess}},
        "securityLabel": [{"coding": [c]} for c in _codes(entry, M.DE_CONFIDENTIALITY)],
        "content": [{"attachment": {
            "contentType": entry.get("mimeType"), "language": (_slot(entry, "languageCode") or ["fr-FR"])[0],
            "url": binary_url, "size": int(_slot(entry, "size")[0]),
            "hash": base64.b64encode(bytes.fromhex(_slot(entry, "hash")[0])).decode("ascii"),
            "title": entry.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS)[0],
            "creation": _instant(_slot(entry, "creationTime")[0])},
            "format": (_codes(entry, M.DE_FORMAT) or [{}])[0]}],
        "context": {"period": {"start": _instant(_slot(entry, "serviceStartTime")[0])},
                    "facilityType": {"coding": _codes(entry, M.DE_FACILITY)},
                    "practiceSetting": {"coding": _codes(entry, M.DE_PRACTICE)}},
    }
    if _slot(entry, "serviceStopTime"):
        resource["context"]["period"]["end"] = _instant(_slot(entry, "serviceStopTime")[0])
    if replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {"identifier": {
            "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{replaces}"}}}]
    return resource


def provide_bundle(metadata: bytes, content: bytes, patient_cx: str, *, replaces: str | None = None) -> dict:
    """ITI-65 Provide Document Bundle (pdsm-comprehensive-provide-document-bundle): the
    SubmissionSet List, the DocumentReference and the Binary holding the document."""
    root = etree.fromstring(metadata, etree.XMLParser(resolve_entities=False, no_network=True))
    entry = root.find("rim:RegistryObjectList/rim:ExtrinsicObject", NS)
    package = root.find("rim:RegistryObjectList/rim:RegistryPackage", NS)
    external = {e.get("identificationScheme"): e.get("value")
                for e in package.iterfind("rim:ExternalIdentifier", NS)}
    system, value = patient_reference(patient_cx)
    ids = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("list", "doc", "bin")}
    docref = document_reference(entry, patient_cx, binary_url=ids["bin"], replaces=replaces)
    submission_set = {
        "resourceType": "List",
        "meta": {"profile": [f"{PDSM}/pdsm-submissionset-comprehensive"]},
        "extension": [
            {"url": f"{IHE}/StructureDefinition/ihe-designationType",
             "valueCodeableConcept": {"coding": _codes(package, M.SS_CONTENT_TYPE)}},
            {"url": f"{IHE}/StructureDefinition/ihe-sourceId",
             "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{external[M.SS_SOURCE_ID]}"}}],
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{external[M.SS_UNIQUE_ID]}"}],
        "status": "current", "mode": "working",
        "code": {"coding": [{"system": f"{IHE}/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
        "subject": {"reference": f"Patient?identifier={system}|{value}"},
        "date": _instant(_slot(package, "submissionTime")[0]),
        "source": {"reference": "#author"},
        "contained": docref["contained"],
        "entry": [{"item": {"reference": ids["doc"]}}],
    }
    binary = {"resourceType": "Binary", "contentType": entry.get("mimeType"),
              "data": base64.b64encode(content).decode("ascii")}
    return {"resourceType": "Bundle", "type": "transaction",
            "meta": {"profile": [f"{PDSM}/pdsm-comprehensive-provide-document-bundle"]},
            "entry": [{"fullUrl": ids["list"], "resource": submission_set, "request": {"method": "POST", "url": "List"}},
                      {"fullUrl": ids["doc"], "resource": docref, "request": {"method": "POST", "url": "DocumentReference"}},
                      {"fullUrl": ids["bin"], "resource": binary, "request": {"method": "POST", "url": "Binary"}}]}


def sha1_base64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha1(content).digest()).decode("ascii")
