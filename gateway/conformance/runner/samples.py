"""Sample artefacts for the runner's own tests and benchmark: valid ones made with Relais's own
mappings (a TDDUI Bundle, its CDA document, XDS metadata, an XDM archive, an ITI-41 message),
and deliberately broken copies, each made by one mutation of a valid artefact and paired with
the rule that must catch it. Synthetic data only (fixture plans, test INS OID)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from lxml import etree

from mappings.xds import metadata as M

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XDSB = "urn:ihe:iti:xds-b:2007"
ITI41_ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"


# --- valid artefacts ------------------------------------------------------------------------------
def fixture_plan(index: int = 0):
    """A fixture plan whose person has a qualified INS (the DMP indexes on it)."""
    import json
    from pathlib import Path

    from gateway.model import IdentityStatus, Plan

    root = Path(__file__).resolve().parents[3] / "fixtures" / "plans"
    plans = [Plan.model_validate(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(root.glob("*.json"))]
    qualified = [p for p in plans if p.person.identity_status is IdentityStatus.QUAL and p.person.ins]
    return qualified[index % len(qualified)]


def relais_artefacts(plan=None) -> dict[str, bytes]:
    """What Relais emits for one plan: TDDUI Bundle (JSON and XML), CDA, XDS metadata, XDM, ITI-41."""
    from connectors.mss import xdm
    from mappings.cda import document_ids
    from mappings.fhir.tddui import plan_to_bundle
    from mappings.xds import submit_objects_request

    plan = plan or fixture_plan()
    packed = xdm.pack_plan(plan, now=NOW)
    metadata = submit_objects_request(plan, packed.cda, document_ids(plan), now=NOW)
    bundle = plan_to_bundle(plan, NOW)
    return {"bundle.json": orjson.dumps(bundle, option=orjson.OPT_INDENT_2), "bundle.xml": fhir_xml(bundle),
            "cda.xml": packed.cda, "metadata.xml": metadata, "IHE_XDM.zip": packed.archive,
            "iti41.xml": iti41_message(metadata, packed.cda), "iti41.mime": iti41_message(metadata, packed.cda, mtom=True)}


def fhir_xml(resource: dict) -> bytes:
    """The FHIR XML form of a resource (fhir.resources' writer)."""
    from fhir.resources.R4B import get_fhir_model_class

    xml = get_fhir_model_class(resource["resourceType"]).model_validate(resource).model_dump_xml()
    return xml.encode("utf-8") if isinstance(xml, str) else xml


def iti41_message(metadata: bytes, document: bytes, *, mtom: bool = False) -> bytes:
    """An ITI-41 Provide and Register Document Set-b request (SOAP 1.2): the document inline in
    base64, or as an MTOM/XOP part. No VIHF assertion (added by the transport to the DMP)."""
    submit = etree.fromstring(metadata)
    entry_id = submit.find(f"{{{M.RIM}}}RegistryObjectList/{{{M.RIM}}}ExtrinsicObject").get("id")
    envelope = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soap": SOAP12, "wsa": WSA, "xdsb": XDSB})
    header = etree.SubElement(envelope, f"{{{SOAP12}}}Header")
    etree.SubElement(header, f"{{{WSA}}}Action").text = ITI41_ACTION
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = "urn:uuid:" + hashlib.sha1(metadata).hexdigest()[:32]
    body = etree.SubElement(envelope, f"{{{SOAP12}}}Body")
    request = etree.SubElement(body, f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest")
    request.append(submit)
    doc = etree.SubElement(request, f"{{{XDSB}}}Document", id=entry_id)
    if not mtom:
        doc.text = base64.b64encode(document).decode()
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    include = etree.SubElement(doc, "{http://www.w3.org/2004/08/xop/include}Include", href="cid:doc1@relais")
    include.tail = None
    root = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    boundary = "MIMEBoundary_relais"
    parts = [
        f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
        "Content-Transfer-Encoding: binary\r\nContent-ID: <root@relais>\r\n\r\n".encode() + root + b"\r\n",
        f"--{boundary}\r\nContent-Type: text/xml\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: <doc1@relais>\r\n\r\n".encode() + document + b"\r\n",
    ]
    head = (f"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"{boundary}\"; "
            "type=\"application/xop+xml\"; start=\"<root@relais>\"; start-info=\"application/soap+xml\"\r\n\r\n").encode()
    return head + b"".join(parts) + f"--{boundary}--\r\n".encode()


# --- broken copies --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Broken:
    id: str
    base: str  # key of the valid artefact it mutates
    rule: str  # the rule that must catch it
    what: str  # the mutation, in words
    mutate: Callable[[bytes], bytes]
    name: str = ""  # file name (default: the base's)


def _json(fn: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        doc = orjson.loads(data)
        fn(doc)
        return orjson.dumps(doc)
    return apply


def _entry(bundle: dict, rtype: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _xml(fn: Callable) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        root = etree.fromstring(data)
        fn(root)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return apply


CDA_NS = {"cda": "urn:hl7-org:v3"}
RIM = {"rim": M.RIM, "lcm": M.LCM}


def _first(root, path: str, ns=None):
    return root.xpath(path, namespaces=ns or CDA_NS)[0]


def _remove(path: str, ns=None):
    def fn(root):
        node = _first(root, path, ns)
        node.getparent().remove(node)
    return fn


def _set(path: str, attr: str, value: str, ns=None):
    def fn(root):
        _first(root, path, ns).set(attr, value)
    return fn


def _zip(fn: Callable[[dict[str, bytes]], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            files = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
        fn(files)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, content in files.items():
                z.writestr(name, content)
        return out.getvalue()
    return apply


def _de(root):
    return root.xpath("//rim:ExtrinsicObject", namespaces=RIM)[0]


def _drop_classification(scheme: str):
    def fn(root):
        node = [c for c in _de(root).findall(f"{{{M.RIM}}}Classification") if c.get("classificationScheme") == scheme][0]
        node.getparent().remove(node)
    return fn


def _code(scheme: str, value: str):
    def fn(root):
        [c for c in _de(root).findall(f"{{{M.RIM}}}Classification")
         if c.get("classificationScheme") == scheme][0].set("nodeRepresentation", value)
    return fn


def _slot(owner_xpath: str, name: str, value: str):
    def fn(root):
        node = root.xpath(f"{owner_xpath}/rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=RIM)[0]
        node.text = value
    return fn


def _external(owner_xpath: str, scheme: str, value: str):
    def fn(root):
        root.xpath(f"{owner_xpath}/rim:ExternalIdentifier[@identificationScheme='{scheme}']", namespaces=RIM)[0].set(
            "value", value)
    return fn


def _soap(fn):
    return _xml(fn)


def _tamper_document(data: bytes) -> bytes:
    found = re.search(rb"(<xdsb:Document[^>]*>)([^<]+)(</xdsb:Document>)", data)
    content = base64.b64decode(found.group(2)).replace(b"<title>", b"<title>X", 1)
    return data[:found.start(2)] + base64.b64encode(content) + data[found.end(2):]


def _tddui(fn):
    return _json(fn)


PATIENT_IDENT = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]},
                 "use": "usual", "system": "https://identifiant-medicosocial-localusager.esante.gouv.fr",
                 "value": "3750000001/123456"}

BROKEN: list[Broken] = [
    # FHIR TDDUI 2.2.0 (the valid reference Bundle of gateway/conformance/fhir/examples.py)
    Broken("careplan-sans-titre", "tddui.json", "cardinality-min", "CarePlan.title supprimé",
           _tddui(lambda b: _entry(b, "CarePlan").pop("title"))),
    Broken("prestation-code-besoin", "tddui.json", "binding-required",
           "Task.input[typePrestation] porte un code de besoin SERAFIN-PH (1.1.1)",
           _tddui(lambda b: _entry(b, "Task")["input"][1]["valueCodeableConcept"]["coding"][0].update(code="1.1.1"))),
    Broken("evenement-code-inconnu", "tddui.json", "binding-required", "Encounter.type SERAFIN-PH 9.9.9",
           _tddui(lambda b: _entry(b, "Encounter")["type"][0]["coding"][0].update(code="9.9.9"))),
    Broken("date-impossible", "tddui.json", "fhir-structure", "Patient.birthDate 2012-02-30",
           _tddui(lambda b: _entry(b, "Patient").update(birthDate="2012-02-30"))),
    Broken("element-inconnu", "tddui.json", "fhir-structure", "élément « titre » ajouté au Goal",
           _tddui(lambda b: _entry(b, "Goal").update(titre="x"))),
    Broken("reference-interne-cassee", "tddui.json", "reference-unresolved", "CarePlan.subject vers un urn:uuid absent",
           _tddui(lambda b: _entry(b, "CarePlan")["subject"].update(reference="urn:uuid:00000000-0000-4000-8000-0000000000ff"))),
    Broken("reference-mauvais-type", "tddui.json", "reference-target-type", "Goal.addresses vers le Patient",
           _tddui(lambda b: _entry(b, "Goal")["addresses"][0].update(reference=b["entry"][0]["fullUrl"]))),
    Broken("request-url-nom-de-profil", "tddui.json", "request-url", "request.url = TDDUIPatient (défaut §11.2 reproduit)",
           _tddui(lambda b: b["entry"][0]["request"].update(url="TDDUIPatient"))),
    Broken("systeme-identifiant", "tddui.json", "pattern-value", "CarePlan.identifier.system hors du motif",
           _tddui(lambda b: _entry(b, "CarePlan")["identifier"][0].update(system="https://example.org/pp"))),
    Broken("identite-qualifiee-sans-ins", "tddui.json", "invariant:fr-core-1", "identité VALI sans identifiant INS",
           _tddui(lambda b: _entry(b, "Patient").update(identifier=[copy.deepcopy(PATIENT_IDENT)]))),
    Broken("element-vide", "tddui.json", "invariant:ele-1", "CarePlan.period vide",
           _tddui(lambda b: _entry(b, "CarePlan").update(period={}))),
    Broken("extension-valeur-et-enfants", "tddui.json", "invariant:ext-1", "extension avec valeur et sous-extension",
           _tddui(lambda b: _entry(b, "Goal")["extension"][0].update(extension=[{"url": "x", "valueString": "y"}]))),
    Broken("tranche-accord-absente", "tddui.json", "slice-cardinality", "discriminant accordStructure → titreObjectif",
           _tddui(lambda b: _entry(b, "CarePlan")["supportingInfo"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]
                  .update(code="titreObjectif"))),
    Broken("tache-sans-titre", "tddui.json", "slice-cardinality", "Task.input[titre] supprimé",
           _tddui(lambda b: _entry(b, "Task")["input"].pop(0))),
    Broken("profil-inconnu", "tddui.json", "profile-package-missing", "meta.profile vers un profil qu'aucun paquet ne définit",
           _tddui(lambda b: _entry(b, "Goal")["meta"].update(
               profile=["https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-goal-inexistant"]))),
    Broken("bundle-pas-transaction", "tddui.json", "pattern-value", "Bundle.type = collection",
           _tddui(lambda b: b.update(type="collection"))),
    Broken("statut-tache-inconnu", "tddui.json", "binding-required", "Task.status = en-cours",
           _tddui(lambda b: _entry(b, "Task").update(status="en-cours"))),
    Broken("xml-careplan-sans-titre", "tddui.xml", "cardinality-min", "FHIR XML : CarePlan.title supprimé",
           _xml(lambda r: [t.getparent().remove(t) for t in r.xpath("//f:CarePlan/f:title",
                                                                    namespaces={"f": "http://hl7.org/fhir"})])),
    # official SERAFIN QuestionnaireResponse (TDDUI)
    Broken("qr-statut-inconnu", "qr.json", "binding-required", "QuestionnaireResponse.status = termine",
           _json(lambda q: q.update(status="termine"))),
    # CDA (Relais's own document, and the CI-SIS LDL-SES example)
    Broken("cda-sans-code", "cda.xml", "cda-schema", "ClinicalDocument/code supprimé", _xml(_remove("/cda:ClinicalDocument/cda:code"))),
    Broken("cda-element-inconnu", "cda.xml", "cda-schema", "élément inconnu dans l'en-tête",
           _xml(lambda r: r.insert(3, etree.Element("{urn:hl7-org:v3}inconnu")))),
    Broken("cda-doctype", "cda.xml", "xml-doctype-forbidden", "DOCTYPE avec entité (XXE)",
           lambda d: d.replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>', 1)),
    Broken("ldl-confidentialite", "ldl-ses.xml", "template-1.2.250.1.213.1.1.1.1-2017-12-13T103531", "confidentialityCode = X (hors JDV)",
           _xml(_set("/cda:ClinicalDocument/cda:confidentialityCode", "code", "X"))),
    Broken("ldl-sans-naissance", "ldl-ses.xml", "Entete_LDL-SES", "patient sans birthTime",
           _xml(_remove("//cda:recordTarget/cda:patientRole/cda:patient/cda:birthTime"))),
    # XDS metadata for the DMP (Relais's)
    Broken("xds-sans-typecode", "metadata.xml", "xds-de-code-missing", "typeCode supprimé", _xml(_drop_classification(M.DE_TYPE))),
    Broken("xds-typecode-hors-jdv", "metadata.xml", "xds-code-not-in-value-set", "typeCode 99999-9",
           _xml(_code(M.DE_TYPE, "99999-9"))),
    Broken("xds-classcode-incoherent", "metadata.xml", "xds-class-code-inconsistent", "classCode 10 pour 80788-3",
           _xml(_code(M.DE_CLASS, "10"))),
    Broken("xds-patient-local", "metadata.xml", "xds-patient-id-not-ins", "patientId = identifiant local",
           _xml(_external("//rim:ExtrinsicObject", M.DE_PATIENT_ID, "123456^^^&1.2.250.1.213.1.4.99&ISO^PI"))),
    Broken("xds-date-iso", "metadata.xml", "xds-time-format", "creationTime au format ISO",
           _xml(_slot("//rim:ExtrinsicObject", "creationTime", "2026-11-26T09:00:00Z"))),
    Broken("xds-sans-hasmember", "metadata.xml", "xds-has-member-missing", "association HasMember supprimée",
           _xml(_remove(f"//rim:Association[@associationType='{M.HAS_MEMBER}']", RIM))),
    Broken("xds-patients-differents", "metadata.xml", "xds-patient-id-inconsistent", "patientId du lot différent",
           _xml(_external("//rim:RegistryPackage", M.SS_PATIENT_ID, "1840399999999^^^&1.2.250.1.213.1.4.10&ISO^NH"))),
    # XDM archive (MSSanté)
    Broken("xdm-document-altere", "IHE_XDM.zip", "xdm-hash-mismatch", "DOC0001.XML modifié après coup",
           _zip(lambda f: f.update({"IHE_XDM/SUBSET01/DOC0001.XML":
                                    f["IHE_XDM/SUBSET01/DOC0001.XML"].replace(b"<title>", b"<title>X", 1)}))),
    Broken("xdm-sans-metadata", "IHE_XDM.zip", "xdm-metadata-missing", "METADATA.XML supprimé",
           _zip(lambda f: f.pop("IHE_XDM/SUBSET01/METADATA.XML"))),
    Broken("xdm-document-absent", "IHE_XDM.zip", "xdm-document-missing", "DOC0001.XML supprimé",
           _zip(lambda f: f.pop("IHE_XDM/SUBSET01/DOC0001.XML"))),
    # ITI-41 message (DMP)
    Broken("iti41-action", "iti41.xml", "iti41-wsa-action", "wsa:Action de ITI-18",
           _soap(lambda r: setattr(r.find(f"{{{SOAP12}}}Header/{{{WSA}}}Action"), "text",
                                   "urn:ihe:iti:2007:RegistryStoredQuery"))),
    Broken("iti41-document-altere", "iti41.xml", "iti41-hash-mismatch", "document modifié (hash différent)",
           _tamper_document),
    Broken("iti41-sans-document", "iti41.xml", "iti41-document-missing", "xdsb:Document supprimé",
           _soap(_remove("//xdsb:Document", {"xdsb": XDSB}))),
]


def bases(reference: "Path | None" = None) -> dict[str, bytes]:
    """The valid artefacts the broken copies start from (official ones when the reference is there)."""
    from pathlib import Path

    from gateway.conformance.fhir import examples as ex

    made = relais_artefacts()
    out = {"tddui.json": orjson.dumps(ex.bundle(), option=orjson.OPT_INDENT_2), "tddui.xml": fhir_xml(ex.bundle()),
           "cda.xml": made["cda.xml"], "metadata.xml": made["metadata.xml"], "IHE_XDM.zip": made["IHE_XDM.zip"],
           "iti41.xml": made["iti41.xml"]}
    if reference is not None:
        ref = Path(reference)
        qr = ref / "official/tddui/QuestionnaireResponse-tddui-questionnaire-response-serafin-precision-example.no-narrative.json"
        ldl = ref / "official/cda/TestContenuCDA-3-0/ExemplesCDA/LDL-SES_2022.01.xml"
        if qr.is_file():
            out["qr.json"] = qr.read_bytes()
        if ldl.is_file():
            out["ldl-ses.xml"] = ldl.read_bytes()
    return out
