"""The sandbox DMP: a loopback XDS.b endpoint (SOAP 1.2 / MTOM over mutual TLS) that checks what
the real one checks and answers the way it answers — ITI-41 on `/repository`, ITI-43 on
`/repository`, ITI-18 and ITI-57 on `/registry` — plus PDSm / MHD on `/fhir` (dmp_mhd.py).

Checks, in order, each refusal with the code a DMP gives: the message (SOAP 1.2 envelope, MTOM
parts, `xop:Include` resolved: SOAP fault), WS-Addressing (Action known for the endpoint,
MessageID: `wsa:ActionNotSupported`, `wsa:MessageAddressingHeaderRequired`), the VIHF (present,
signed by a registered seal certificate, Issuer, fresh, version, attributes: `wsse:*` faults),
then the metadata and the documents (connectors/sandbox/dmp_rules.py: `XDS*` RegistryErrors,
`InvalidDocumentContent`). It stores, answers FindDocuments / GetDocuments, retrieves, replaces
(RPLC → the old entry Deprecated), updates (ITI-57), and can be told to fail (`faults`).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from connectors.dmp import errors as E
from connectors.dmp import iti18, iti41, iti43, iti57, soap, vihf
from connectors.sandbox import dmp_rules as R
from connectors.sandbox.fhir_app import Fault, Faults
from mappings.xds import metadata as M

REPOSITORY_ID = "1.2.250.1.213.1.1.9.1"  # the sandbox repository's uniqueId
ACTIONS = {
    "/repository": {iti41.ACTION: iti41.RESPONSE_ACTION, iti43.ACTION: iti43.RESPONSE_ACTION},
    "/registry": {iti18.ACTION: iti18.RESPONSE_ACTION, iti57.ACTION: iti57.RESPONSE_ACTION},
}
DEPRECATED = iti18.DEPRECATED


@dataclass
class Stored:
    node: etree._Element  # the DocumentEntry as registered (with repositoryUniqueId, hash, size)
    entry_uuid: str
    unique_id: str
    patient: str
    content: bytes
    mime_type: str
    logical_id: str
    version: int = 1

    @property
    def status(self) -> str:
        return self.node.get("status")


@dataclass
class Registry:
    entries: dict[str, Stored] = field(default_factory=dict)  # entryUUID → entry
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_unique_id(self, unique_id: str) -> list[Stored]:
        return [e for e in self.entries.values() if e.unique_id == unique_id]

    def of_patient(self, patient: str) -> list[Stored]:
        return [e for e in self.entries.values() if e.patient == patient]


def _registry_errors(errors: list[R.Rejected], severity: str = E.SEVERITY_ERROR) -> etree._Element:
    holder = etree.Element(f"{{{E.RS}}}RegistryErrorList", nsmap={"rs": E.RS})
    for error in errors:
        etree.SubElement(holder, f"{{{E.RS}}}RegistryError", errorCode=error.code, codeContext=error.text,
                         location=error.location or "", severity=severity)
    return holder


def registry_response(status: str, errors: list[R.Rejected] = (), severity: str = E.SEVERITY_ERROR) -> etree._Element:
    node = etree.Element(f"{{{E.RS}}}RegistryResponse", nsmap={"rs": E.RS}, status=status)
    if errors:
        node.append(_registry_errors(list(errors), severity))
    return node


class DmpSandbox:
    """`DmpSandbox(trusted_seals=[cert], patients={cx…}).app` is the ASGI app."""

    def __init__(self, *, trusted_seals: list[x509.Certificate], patients: set[str] | None = None,
                 cda_check: Callable[[etree._Element], list[str]] | None = None,
                 clock: Callable[[], dt.datetime] | None = None, require_signature: bool = True):
        self.trusted = list(trusted_seals)
        self.patients = set(patients or ())  # INS (CX) of persons with an open DMP
        self.cda_check = cda_check
        self.require_signature = require_signature  # ITI-41: the submission set signed XAdES (specs §5.1)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.registry = Registry()
        self.faults = Faults()
        self.requests = 0
        self.rejections: list[str] = []  # codes answered, in order (tests, demo)
        from connectors.sandbox.dmp_mhd import MhdEndpoint

        self.mhd = MhdEndpoint(self)
        self.app = Starlette(routes=[Route("/repository", self._endpoint, methods=["POST"]),
                                     Route("/registry", self._endpoint, methods=["POST"]),
                                     *self.mhd.routes()])

    # ------------------------------------------------------------------ plumbing

    def open_dmp(self, patient_cx: str) -> None:
        self.patients.add(patient_cx)

    def _reply(self, action: str, body: etree._Element, relates_to: str | None,
               attachments: list | None = None) -> Response:
        raw = soap.envelope(action, body, relates_to=relates_to)
        if attachments is not None:
            content_type, data = soap.mtom(raw, attachments, action=action)
            return Response(data, media_type=content_type)
        return Response(raw, headers={"content-type": soap.soap_content_type(action)})

    def _fault(self, code: str, reason: str, *, sender: bool = True, relates_to: str | None = None) -> Response:
        self.rejections.append(code)
        return Response(soap.fault_envelope(code, reason, sender=sender, relates_to=relates_to),
                        status_code=400 if sender else 500, headers={"content-type": soap.soap_content_type(
                            "http://www.w3.org/2005/08/addressing/soap/fault")})

    async def _endpoint(self, request: Request) -> Response:
        self.requests += 1
        fault = self.faults.next()
        if fault is not None:
            injected = await self._injected(fault)
            if injected is not None:
                return injected
        body = await request.body()
        try:
            message = soap.read_message(request.headers.get("content-type", ""), body)
        except soap.SoapRefused as exc:
            return self._fault(exc.code, exc.reason)
        path = request.url.path
        action, message_id = message.action, message.message_id
        if not action or action not in ACTIONS[path]:
            return self._fault("wsa:ActionNotSupported",
                               f"action WS-Addressing {action or 'absente'} non prise en charge par {path}")
        if not message_id:
            return self._fault("wsa:MessageAddressingHeaderRequired", "en-tête wsa:MessageID absent")
        security = message.header("wsse:Security")
        try:
            claims = vihf.verify(security[0] if security is not None and len(security) else None, self.trusted,
                                 now=self.clock())
        except vihf.VihfRefused as exc:
            return self._fault(exc.code, exc.reason, relates_to=message_id)
        handler = {iti41.ACTION: self._provide, iti43.ACTION: self._retrieve, iti18.ACTION: self._query,
                   iti57.ACTION: self._update}[action]
        try:
            return handler(message, claims, message_id)
        except soap.SoapRefused as exc:
            return self._fault(exc.code, exc.reason, relates_to=message_id)

    async def _injected(self, fault: Fault) -> Response | None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            return StreamingResponse(_broken(), media_type=soap.SOAP_MEDIA)
        if fault.malformed:
            return Response(b"<soap:Envelope", media_type=soap.SOAP_MEDIA)
        if fault.status:
            return self._fault("XDSRegistryBusy", f"DMP indisponible (panne simulée {fault.status})", sender=False) \
                if fault.status >= 500 else self._fault("soap:Sender", f"refus simulé ({fault.status})")
        return None

    def _failure(self, action: str, message_id: str, errors: list[R.Rejected]) -> Response:
        self.rejections.extend(e.code for e in errors)
        return self._reply(ACTIONS_RESPONSE[action], registry_response(E.FAILURE, errors), message_id)

    # ------------------------------------------------------------------ ITI-41

    def _provide(self, message: soap.Message, claims: vihf.Claims, message_id: str) -> Response:
        if not message.mtom:
            raise soap.SoapRefused("MtomError", "ITI-41 : message MTOM/XOP (multipart/related) requis")
        body = message.body
        if body is None or body.tag != f"{{{iti41.XDSB}}}ProvideAndRegisterDocumentSetRequest":
            raise soap.SoapRefused("InvalidRequest", "ProvideAndRegisterDocumentSetRequest attendu")
        try:
            results = self._check_submission(message, body, claims)
        except R.Rejected as exc:
            return self._failure(iti41.ACTION, message_id, [exc])
        duplicates = [r for r in results if r is None]
        if duplicates:
            warning = R.Rejected("XDSDocumentUniqueIdError", "document déjà déposé à l'identique (même uniqueId, "
                                 "même empreinte) : renvoi reconnu, rien de nouveau")
            return self._reply(iti41.RESPONSE_ACTION, registry_response(E.SUCCESS, [warning], E.SEVERITY_WARNING),
                               message_id)
        return self._reply(iti41.RESPONSE_ACTION, registry_response(E.SUCCESS), message_id)

    def _check_submission(self, message: soap.Message, body: etree._Element, claims: vihf.Claims) -> list:
        """Every check of an ITI-41 submission; stores it. Returns one item per DocumentEntry:
        the entry stored, or None for a document already held with the same content (a resend)."""
        submit = body.find("lcm:SubmitObjectsRequest", R.NS)
        if submit is None:
            raise R.Rejected("XDSRegistryMetadataError", "SubmitObjectsRequest absent")
        objects = submit.find("rim:RegistryObjectList", R.NS)
        objects = objects if objects is not None else etree.Element("empty")
        documents = {}
        for holder in body.iterfind(f"{{{iti41.XDSB}}}Document"):
            include = holder.find(f"{{{soap.XOP}}}Include")
            if include is None:
                raise soap.SoapRefused("MtomError", f"xdsb:Document {holder.get('id')} sans xop:Include")
            cid = include.get("href", "")[4:]
            documents[holder.get("id")] = (message.resolve(include), message.attachment_types.get(unquote(cid), ""))
        nodes = objects.findall("rim:ExtrinsicObject", R.NS)
        ids = {n.get("id") for n in nodes}
        for doc_id in documents:
            if doc_id not in ids:
                raise R.Rejected("XDSMissingDocumentMetadata", f"document {doc_id} sans DocumentEntry", doc_id)
        for node in nodes:
            if node.get("id") not in documents:
                raise R.Rejected("XDSMissingDocument", f"DocumentEntry {node.get('id')} sans document joint", node.get("id"))
        if not nodes:
            raise R.Rejected("XDSRegistryMetadataError", "aucun DocumentEntry dans la soumission")
        ss_patient = R.check_submission_set(objects.find("rim:RegistryPackage", R.NS))
        entries = [R.entry_of(n) for n in nodes]
        signatures = [e for e in entries if R.is_signature(e.node)]
        entries = [e for e in entries if not R.is_signature(e.node)]
        if not entries:
            raise R.Rejected("XDSRegistryMetadataError", "aucun document à enregistrer dans la soumission")
        seen: set[str] = set()
        results: list = []
        with self.registry.lock:
            for entry in entries:
                results.append(self._check_entry(entry, documents, claims, ss_patient, seen))
            self._check_signatures(signatures, entries, documents, claims)
            replaced = self._replacements(objects, entries)
            if all(r is None for r in results):
                return results  # a resend: nothing new (its fresh signature is not kept either)
            for entry in [*(e for e in results if e is not None), *signatures]:
                self._store(entry, documents[entry.entry_uuid][0])
            for target in replaced:
                target.node.set("status", DEPRECATED)
        return results

    def _check_entry(self, entry: R.Entry, documents: dict, claims: vihf.Claims, ss_patient: str,
                     seen: set[str]) -> R.Entry | None:
        where = f"ExtrinsicObject {entry.entry_uuid}"
        if entry.unique_id in seen:
            raise R.Rejected("XDSRegistryDuplicateUniqueIdInMessage", f"{where} : uniqueId en double", where)
        seen.add(entry.unique_id)
        if entry.patient != ss_patient:
            raise R.Rejected("XDSPatientIdDoesNotMatch",
                             f"{where} : patientId du document ≠ patientId du lot de soumission", where)
        if entry.patient != claims.patient:
            raise R.Rejected("XDSPatientIdDoesNotMatch", f"{where} : patientId ≠ patient du VIHF (resource-id)", where)
        if entry.patient not in self.patients:
            raise R.Rejected("XDSUnknownPatientId", f"{where} : aucun DMP ouvert pour l'INS {entry.patient}", where)
        content, declared = documents[entry.entry_uuid]
        R.check_content(entry, content, declared)
        visibility = [c for c, s in R.classifications(entry.node, M.DE_CONFIDENTIALITY) if s == M.TRE_A07]
        if claims.secret_connection and "INVISIBLE_REPRESENTANTS_LEGAUX" not in visibility:
            raise R.Rejected("XDSRegistryMetadataError", f"{where} : connexion secrète (mineur) : seul un "
                             "document invisible aux représentants légaux peut être déposé", where)
        R.check_cda(entry, content, self.cda_check)
        known = self.registry.by_unique_id(entry.unique_id)
        if known:
            if hashlib.sha1(known[0].content).digest() != hashlib.sha1(content).digest():
                raise R.Rejected("XDSDocumentUniqueIdError", f"{where} : uniqueId {entry.unique_id} déjà "
                                 "enregistré pour un autre contenu", where)
            return None
        return entry

    def _check_signatures(self, signatures: list[R.Entry], entries: list[R.Entry], documents: dict,
                          claims: vihf.Claims) -> None:
        """The submission set's XAdES signature (specs §5.1): one signature document, by a
        registered seal, covering exactly the documents of the submission."""
        from connectors.dmp import xades

        if not signatures:
            if self.require_signature:
                raise R.Rejected("XDSRegistryMetadataError",
                                 "lot de soumission non signé : signature XAdES (IHE DSG détachée) absente")
            return
        if len(signatures) > 1:
            raise R.Rejected("XDSRegistryMetadataError", "plusieurs signatures du lot de soumission")
        (signature,) = signatures
        visibility = [c for c, s in R.classifications(signature.node, M.DE_CONFIDENTIALITY) if s == M.TRE_A07]
        if claims.secret_connection and "INVISIBLE_REPRESENTANTS_LEGAUX" not in visibility:
            raise R.Rejected("XDSRegistryMetadataError", "connexion secrète (mineur) : la signature du lot doit "
                             "elle aussi être invisible aux représentants légaux", signature.entry_uuid)
        content, declared = documents[signature.entry_uuid]
        R.check_content(signature, content, declared)
        try:
            xades.verify(content, self.trusted, {e.unique_id: documents[e.entry_uuid][0] for e in entries})
        except xades.XadesRefused as exc:
            raise R.Rejected("InvalidDocumentContent", exc.reason, signature.entry_uuid) from None

    def _replacements(self, objects: etree._Element, entries: list[R.Entry]) -> list[Stored]:
        by_id = {e.entry_uuid: e for e in entries}
        targets = []
        for association in objects.iterfind("rim:Association", R.NS):
            kind = association.get("associationType")
            if kind in (M.HAS_MEMBER, M.SIGNS):
                continue
            if kind != M.RPLC:
                raise R.Rejected("XDSRegistryMetadataError", f"association {kind} non prise en charge", association.get("id"))
            source, target_id = by_id.get(association.get("sourceObject")), association.get("targetObject")
            target = self.registry.entries.get(target_id)
            if source is None or target is None or target.status != M.APPROVED:
                raise R.Rejected("UnresolvedReferenceException",
                                 f"remplacement (RPLC) : document {target_id} inconnu ou non approuvé", association.get("id"))
            if target.patient != source.patient:
                raise R.Rejected("XDSPatientIdDoesNotMatch", "remplacement d'un document d'un autre patient",
                                 association.get("id"))
            targets.append(target)
        return targets

    def _store(self, entry: R.Entry, content: bytes) -> Stored:
        node = copy.deepcopy(entry.node)
        node.set("status", M.APPROVED)
        node.set("lid", node.get("lid") or entry.entry_uuid)
        for name, value in (("hash", hashlib.sha1(content).hexdigest()), ("size", str(len(content))),
                            ("repositoryUniqueId", REPOSITORY_ID)):
            if not R.slot(node, name):
                slot = etree.SubElement(node, f"{{{M.RIM}}}Slot", name=name)
                etree.SubElement(etree.SubElement(slot, f"{{{M.RIM}}}ValueList"), f"{{{M.RIM}}}Value").text = value
                node.remove(slot)
                node.insert(0, slot)
        etree.SubElement(node, f"{{{M.RIM}}}VersionInfo", versionName="1")
        stored = Stored(node, entry.entry_uuid, entry.unique_id, entry.patient, content, entry.mime_type,
                        node.get("lid"))
        self.registry.entries[entry.entry_uuid] = stored
        return stored

    # ------------------------------------------------------------------ ITI-18

    def _query(self, message: soap.Message, claims: vihf.Claims, message_id: str) -> Response:
        body = message.body
        adhoc = body.find("rim:AdhocQuery", iti18.NS) if body is not None else None
        if adhoc is None:
            raise soap.SoapRefused("InvalidRequest", "AdhocQueryRequest attendu")
        params = {s.get("name"): s.xpath("rim:ValueList/rim:Value/text()", namespaces=iti18.NS)
                  for s in adhoc.iterfind("rim:Slot", iti18.NS)}

        def values(name: str) -> list[str]:
            out = []
            for raw in params.get(name, []):
                out += [v.strip().strip("'") for v in raw.strip("()").split(",") if v.strip()]
            return out

        try:
            query_id = adhoc.get("id")
            if query_id == iti18.FIND_DOCUMENTS:
                patient, statuses = values("$XDSDocumentEntryPatientId"), values("$XDSDocumentEntryStatus")
                if not patient or not statuses:
                    raise R.Rejected("XDSStoredQueryParamNumber",
                                     "FindDocuments : $XDSDocumentEntryPatientId et $XDSDocumentEntryStatus requis")
                if patient[0] != claims.patient:
                    raise R.Rejected("XDSPatientIdDoesNotMatch", "patient de la requête ≠ patient du VIHF")
                if patient[0] not in self.patients:
                    raise R.Rejected("XDSUnknownPatientId", f"aucun DMP ouvert pour l'INS {patient[0]}")
                types = set(values("$XDSDocumentEntryTypeCode"))
                found = [e for e in self.registry.of_patient(patient[0]) if e.status in statuses and (
                    not types or types & {c for c, _ in R.classifications(e.node, M.DE_TYPE)})]
            elif query_id == iti18.GET_DOCUMENTS:
                uuids, uids = values("$XDSDocumentEntryEntryUUID"), values("$XDSDocumentEntryUniqueId")
                if bool(uuids) == bool(uids):
                    raise R.Rejected("XDSStoredQueryParamNumber",
                                     "GetDocuments : $XDSDocumentEntryEntryUUID ou $XDSDocumentEntryUniqueId, l'un des deux")
                found = [e for e in self.registry.entries.values() if e.entry_uuid in uuids or e.unique_id in uids]
                if any(e.patient != claims.patient for e in found):
                    raise R.Rejected("XDSPatientIdDoesNotMatch", "document d'un autre patient que celui du VIHF")
            else:
                raise R.Rejected("XDSUnknownStoredQuery", f"requête stockée inconnue : {query_id}")
        except R.Rejected as exc:
            self.rejections.append(exc.code)
            response = etree.Element(f"{{{iti18.QUERY}}}AdhocQueryResponse", nsmap={"query": iti18.QUERY, "rs": E.RS},
                                     status=E.FAILURE)
            response.append(_registry_errors([exc]))
            return self._reply(iti18.RESPONSE_ACTION, response, message_id)
        response = etree.Element(f"{{{iti18.QUERY}}}AdhocQueryResponse",
                                 nsmap={"query": iti18.QUERY, "rim": M.RIM, "rs": E.RS}, status=E.SUCCESS)
        holder = etree.SubElement(response, f"{{{M.RIM}}}RegistryObjectList")
        for entry in sorted(found, key=lambda e: (R.slot(e.node, "creationTime") or [""])[0]):
            holder.append(copy.deepcopy(entry.node))
        return self._reply(iti18.RESPONSE_ACTION, response, message_id)

    # ------------------------------------------------------------------ ITI-43

    def _retrieve(self, message: soap.Message, claims: vihf.Claims, message_id: str) -> Response:
        body = message.body
        if body is None or body.tag != f"{{{iti43.XDSB}}}RetrieveDocumentSetRequest":
            raise soap.SoapRefused("InvalidRequest", "RetrieveDocumentSetRequest attendu")
        documents, errors = [], []
        for repository, unique_id in iti43.requested(body):
            if repository != REPOSITORY_ID:
                errors.append(R.Rejected("XDSUnknownRepositoryId", f"entrepôt inconnu : {repository}", unique_id))
                continue
            found = self.registry.by_unique_id(unique_id)
            if not found:
                errors.append(R.Rejected("XDSDocumentUniqueIdError", f"document inconnu : {unique_id}", unique_id))
                continue
            if found[0].patient != claims.patient:
                errors.append(R.Rejected("XDSPatientIdDoesNotMatch", "document d'un autre patient que celui du VIHF",
                                         unique_id))
                continue
            documents.append(iti43.Retrieved(REPOSITORY_ID, unique_id, found[0].mime_type, found[0].content))
        status = E.SUCCESS if not errors else (E.PARTIAL if documents else E.FAILURE)
        self.rejections.extend(e.code for e in errors)
        node, attachments = iti43.response(status, documents, _registry_errors(errors) if errors else None)
        return self._reply(iti43.RESPONSE_ACTION, node, message_id, attachments)

    # ------------------------------------------------------------------ ITI-57

    def _update(self, message: soap.Message, claims: vihf.Claims, message_id: str) -> Response:
        body = message.body
        if body is None or body.tag != f"{{{M.LCM}}}SubmitObjectsRequest":
            raise soap.SoapRefused("InvalidRequest", "SubmitObjectsRequest attendu")
        objects = body.find("rim:RegistryObjectList", R.NS)
        try:
            patient = R.check_submission_set(objects.find("rim:RegistryPackage", R.NS))
            if patient != claims.patient:
                raise R.Rejected("XDSPatientIdDoesNotMatch", "patient du lot ≠ patient du VIHF")
            with self.registry.lock:
                for association in objects.iterfind("rim:Association", R.NS):
                    if association.get("associationType") == M.UPDATE_AVAILABILITY:
                        self._status_change(association, patient)
                for node in objects.iterfind("rim:ExtrinsicObject", R.NS):
                    self._new_version(objects, node, patient)
        except R.Rejected as exc:
            return self._failure(iti57.ACTION, message_id, [exc])
        return self._reply(iti57.RESPONSE_ACTION, registry_response(E.SUCCESS), message_id)

    def _status_change(self, association: etree._Element, patient: str) -> None:
        target = self.registry.entries.get(association.get("targetObject"))
        if target is None or target.patient != patient:
            raise R.Rejected("UnresolvedReferenceException", f"document {association.get('targetObject')} inconnu")
        original, new = R.slot(association, "OriginalStatus"), R.slot(association, "NewStatus")
        if not original or not new or original[0] != target.status:
            raise R.Rejected("XDSMetadataUpdateError", f"statut d'origine {original} ≠ statut actuel {target.status}")
        if new[0] not in (M.APPROVED, DEPRECATED):
            raise R.Rejected("XDSMetadataUpdateError", f"nouveau statut non pris en charge : {new[0]}")
        target.node.set("status", new[0])

    def _new_version(self, objects: etree._Element, node: etree._Element, patient: str) -> None:
        entry = R.entry_of(node)
        current = next((e for e in self.registry.entries.values()
                        if e.logical_id == node.get("lid") and e.status == M.APPROVED), None)
        if current is None or current.patient != patient or entry.patient != patient:
            raise R.Rejected("UnresolvedReferenceException", f"aucune version approuvée pour lid {node.get('lid')}")
        member = objects.xpath(f"rim:Association[@targetObject='{entry.entry_uuid}']", namespaces=R.NS)
        previous = R.slot(member[0], "PreviousVersion") if member else []
        if previous != [str(current.version)]:
            raise R.Rejected("XDSMetadataVersionError", f"PreviousVersion {previous} ≠ version actuelle {current.version}")
        if entry.unique_id != current.unique_id:
            raise R.Rejected("XDSMetadataUpdateError", "une mise à jour ne change pas le uniqueId du document")
        stored = self._store(entry, current.content)
        stored.version = current.version + 1
        stored.node.find(f"{{{M.RIM}}}VersionInfo").set("versionName", str(stored.version))
        current.node.set("status", DEPRECATED)


ACTIONS_RESPONSE = {iti41.ACTION: iti41.RESPONSE_ACTION, iti57.ACTION: iti57.RESPONSE_ACTION}


async def _broken():
    yield b"--MIMEBoundary"
    raise ConnectionResetError("sandbox: connection reset on purpose")
