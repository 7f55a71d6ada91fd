"""PDSm / MHD endpoint of the sandbox DMP (specs §5.5): ITI-65 Provide Document Bundle
(`POST /fhir`), ITI-67 Find Document References (`GET /fhir/DocumentReference`, patient and
status mandatory), ITI-68 Retrieve Document (`GET /fhir/Binary/{id}`) — over the same registry
as the XDS endpoint, so a document fed one way is found the other way. Refusals are
OperationOutcomes whose issue carries the XDS error code in `details.coding` (same rules as
ITI-41: connectors/sandbox/dmp_rules.py). Security: mutual TLS (PDSm specifies none of its own)."""

from __future__ import annotations

import base64
import hashlib
import uuid

from lxml import etree
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.dmp.mhd import OIDS, document_reference
from connectors.sandbox import dmp_rules as R
from mappings.xds import metadata as M

FHIR_JSON = "application/fhir+json"
XDS_CODES = "urn:oid:1.3.6.1.4.1.19376.1.2.27.1"  # IHE XDS error codes as a code system


def outcome(status: int, code: str, text: str, expression: str | None = None, xds: str | None = None) -> JSONResponse:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    if xds:
        issue["details"] = {"coding": [{"system": XDS_CODES, "code": xds}], "text": text}
    if expression:
        issue["expression"] = [expression]
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status_code=status,
                        media_type=FHIR_JSON)


def _oid(coding: dict) -> tuple[str, str]:
    system = coding.get("system", "")
    return coding.get("code", ""), OIDS.get(system, system.removeprefix("urn:oid:"))


def _node(docref: dict, patient: str, content: bytes, entry_id: str) -> etree._Element:
    """The DocumentEntry (ebRIM) equivalent of a DocumentReference (PDSm4DMP equivalences)."""
    holder = etree.Element("holder")
    node = M._rim(holder, "ExtrinsicObject", id=entry_id, mimeType=docref["content"][0]["attachment"].get("contentType", ""),
                  objectType=M.DOCUMENT_ENTRY, status=M.APPROVED)

    def dtm(value: str) -> str:
        return value.replace("-", "").replace(":", "").replace("T", "")[:14].rstrip("Z")

    attachment = docref["content"][0]["attachment"]
    M._slot(node, "creationTime", dtm(attachment.get("creation") or docref.get("date", "")))
    M._slot(node, "hash", hashlib.sha1(content).hexdigest())
    M._slot(node, "size", str(len(content)))
    M._slot(node, "languageCode", attachment.get("language", "fr-FR"))
    period = (docref.get("context") or {}).get("period") or {}
    if period.get("start"):
        M._slot(node, "serviceStartTime", dtm(period["start"]))
    M._slot(node, "sourcePatientId", patient)
    M._name(node, attachment.get("title", ""))
    M._author_slots(node, entry_id, M.DE_AUTHOR, (docref.get("custodian") or {}).get("identifier", {}).get("value", "")[-9:],
                    "")
    for scheme, codings in ((M.DE_TYPE, (docref.get("type") or {}).get("coding", [])),
                            (M.DE_CLASS, [c for cc in docref.get("category", []) for c in cc.get("coding", [])]),
                            (M.DE_CONFIDENTIALITY, [c for cc in docref.get("securityLabel", []) for c in cc.get("coding", [])]),
                            (M.DE_FORMAT, [docref["content"][0].get("format") or {}]),
                            (M.DE_FACILITY, ((docref.get("context") or {}).get("facilityType") or {}).get("coding", [])),
                            (M.DE_PRACTICE, ((docref.get("context") or {}).get("practiceSetting") or {}).get("coding", []))):
        for index, coding in enumerate(c for c in codings if c):
            code, system = _oid(coding)
            M._classification(node, entry_id, scheme, (code, coding.get("display", code), system), index)
    master = (docref.get("masterIdentifier") or {}).get("value", "")
    M._external(node, entry_id, M.DE_PATIENT_ID, patient, "XDSDocumentEntry.patientId")
    M._external(node, entry_id, M.DE_UNIQUE_ID, master.removeprefix("urn:oid:"), "XDSDocumentEntry.uniqueId")
    return node


def _patient(reference: str) -> str:
    _, _, query = reference.partition("Patient?identifier=")
    system, _, value = query.partition("|")
    return R.check_patient_id(f"{value}^^^&{system.removeprefix('urn:oid:')}&ISO^NH", "DocumentReference.subject")


class MhdEndpoint:
    def __init__(self, sandbox):
        self.sandbox = sandbox

    def routes(self) -> list[Route]:
        return [Route("/fhir", self.provide, methods=["POST"]), Route("/fhir/", self.provide, methods=["POST"]),
                Route("/fhir/DocumentReference", self.find, methods=["GET"]),
                Route("/fhir/Binary/{rid}", self.retrieve, methods=["GET"])]

    def _refuse(self, status: int, code: str, text: str, expression: str | None = None, xds: str | None = None):
        self.sandbox.rejections.append(xds or code)
        return outcome(status, code, text, expression, xds)

    async def provide(self, request: Request):
        self.sandbox.requests += 1
        fault = self.sandbox.faults.next()
        if fault is not None and fault.status:
            return self._refuse(fault.status, "transient", f"DMP indisponible (panne simulée {fault.status})")
        if request.headers.get("content-type", "").split(";")[0].strip() != FHIR_JSON:
            return self._refuse(415, "not-supported", f"{FHIR_JSON} attendu")
        try:
            bundle = await request.json()
        except ValueError:
            return self._refuse(400, "structure", "JSON mal formé")
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            return self._refuse(400, "invalid", "un Bundle de type transaction est attendu (ITI-65)")
        entries = bundle.get("entry") or []
        by_url = {e.get("fullUrl"): e.get("resource") or {} for e in entries}
        lists = [r for r in by_url.values() if r.get("resourceType") == "List"]
        docrefs = [(u, r) for u, r in by_url.items() if r.get("resourceType") == "DocumentReference"]
        if len(lists) != 1 or not docrefs:
            return self._refuse(422, "processing", "ITI-65 : exactement un List SubmissionSet et au moins une "
                                "DocumentReference", xds="XDSRegistryMetadataError")
        results = []
        with self.sandbox.registry.lock:
            try:
                planned = [self._check(i, url, docref, by_url) for i, (url, docref) in enumerate(docrefs)]
            except R.Rejected as exc:
                return self._refuse(422, "processing", exc.text, exc.location, exc.code)
            for entry, content, target in planned:
                if entry is None:
                    results.append({"response": {"status": "200 OK"}})
                    continue
                self.sandbox._store(entry, content)
                if target is not None:
                    target.node.set("status", "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated")
                results.append({"response": {"status": "201 Created",
                                             "location": f"DocumentReference/{entry.entry_uuid[9:]}"}})
        return JSONResponse({"resourceType": "Bundle", "type": "transaction-response", "entry": results},
                            media_type=FHIR_JSON, status_code=200)

    def _check(self, index: int, url: str, docref: dict, by_url: dict):
        where = f"Bundle.entry[{index}]"
        if not (docref.get("masterIdentifier") or {}).get("value", "").startswith("urn:oid:"):
            raise R.Rejected("XDSRegistryMetadataError", f"{where} : masterIdentifier (urn:oid:…) absent", where)
        patient = _patient((docref.get("subject") or {}).get("reference", ""))
        if patient not in self.sandbox.patients:
            raise R.Rejected("XDSUnknownPatientId", f"{where} : aucun DMP ouvert pour l'INS {patient}", where)
        attachment = ((docref.get("content") or [{}])[0]).get("attachment") or {}
        binary = by_url.get(attachment.get("url"))
        if not binary or binary.get("resourceType") != "Binary":
            raise R.Rejected("XDSMissingDocument", f"{where} : attachment.url ne désigne aucun Binary du Bundle", where)
        content = base64.b64decode(binary.get("data", ""))
        if attachment.get("size") != len(content):
            raise R.Rejected("XDSNonIdenticalSize", f"{where} : size {attachment.get('size')} ≠ {len(content)}", where)
        if attachment.get("hash") != base64.b64encode(hashlib.sha1(content).digest()).decode():
            raise R.Rejected("XDSNonIdenticalHash", f"{where} : hash ≠ SHA-1 du document", where)
        entry_id = f"urn:uuid:{uuid.uuid4()}"
        entry = R.entry_of(_node(docref, patient, content, entry_id))
        R.check_cda(entry, content, self.sandbox.cda_check)
        known = self.sandbox.registry.by_unique_id(entry.unique_id)
        if known:
            if known[0].content != content:
                raise R.Rejected("XDSDocumentUniqueIdError", f"{where} : masterIdentifier déjà enregistré pour un "
                                 "autre contenu", where)
            return None, content, None
        target = None
        for relation in docref.get("relatesTo") or []:
            if relation.get("code") != "replaces":
                continue
            replaced = relation.get("target", {}).get("identifier", {}).get("value", "").removeprefix("urn:oid:")
            target = next((e for e in self.sandbox.registry.by_unique_id(replaced) if e.status == M.APPROVED), None)
            if target is None or target.patient != patient:
                raise R.Rejected("UnresolvedReferenceException", f"{where} : document remplacé {replaced} inconnu", where)
        return entry, content, target

    async def find(self, request: Request):
        self.sandbox.requests += 1
        params = dict(request.query_params)
        identifier, status = params.get("patient.identifier"), params.get("status")
        if not identifier or not status:
            return self._refuse(400, "required", "ITI-67 : paramètres patient.identifier et status obligatoires (PDSm)")
        system, _, value = identifier.partition("|")
        patient = f"{value}^^^&{system.removeprefix('urn:oid:')}&ISO^NH"
        wanted = {"current": M.APPROVED, "superseded": "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"}.get(status)
        found = [e for e in self.sandbox.registry.of_patient(patient) if e.status == wanted]
        entries = [{"fullUrl": f"DocumentReference/{e.entry_uuid[9:]}", "search": {"mode": "match"},
                    "resource": dict(document_reference(e.node, patient, binary_url=f"Binary/{e.entry_uuid[9:]}",
                                                        status=status), id=e.entry_uuid[9:])}
                   for e in found]
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries},
                            media_type=FHIR_JSON)

    async def retrieve(self, request: Request):
        self.sandbox.requests += 1
        stored = self.sandbox.registry.entries.get(f"urn:uuid:{request.path_params['rid']}")
        if stored is None:
            return self._refuse(404, "not-found", "document inconnu", xds="XDSDocumentUniqueIdError")
        return Response(stored.content, media_type=stored.mime_type)
