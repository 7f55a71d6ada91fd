"""The DMP connector (specs §5): XDS.b over SOAP 1.2 / MTOM with a signed VIHF in every request
and mutual TLS with the structure's certificate — ITI-41 feed and replace, ITI-18 queries,
ITI-43 retrieve, ITI-57 status and visibility updates — and FHIR PDSm (MHD) where the DMP offers
it (ITI-65 / 67 / 68, `transport="mhd"`).

`send(envelope)` takes a `cda-document` payload (connectors/dmp/submission.py). A replacement
(RPLC) is checked first with ITI-18: when the DMP never received the version being replaced
(it was refused or never sent), the document goes as an original and the receipt says so.
Errors keep the peer's code and words (connectors/dmp/errors.py).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields

import httpx
from lxml import etree

from connectors.base import Envelope, Inbound, PermanentError, Receipt, RetryPolicy, TransientError
from connectors.dmp import errors as E
from connectors.dmp import iti18, iti41, iti43, iti57, soap, vihf
from connectors.dmp.submission import CONTENT_TYPE, Submission, SubmissionError, loads
from mappings.xds import metadata as M

SYSTEM = "dmp"
PAYLOAD_KIND = "cda-document"


@dataclass(frozen=True)
class DmpSettings:
    base_url: str  # the DMP web services (…/repository for ITI-41/43, …/registry for ITI-18/57)
    finess: str
    platform_name: str = "Plateforme"
    seal_cert: str | None = None  # certificat de cachet (VIHF signature)
    seal_key: str | None = None
    client_cert: str | None = None  # the structure's certificate (mutual TLS)
    client_key: str | None = None
    ca_file: str | None = None  # IGC-Santé trust anchors in production
    repository_path: str = "/repository"
    registry_path: str = "/registry"
    transport: str = "xds"  # "xds" | "mhd"
    mhd_url: str | None = None  # PDSm base (…/fhir)
    structure_id: str | None = None  # Identifiant_Structure (default 1 + FINESS)
    responsible_id: str | None = None  # Subject/NameID: the person responsible for the processing
    sector: str = "SA16"  # Secteur_Activite (JDV_J61)
    lps_id: str = "2.25.1"  # LPS_ID: the software's OID (set the one given at homologation)
    lps_name: str = "Relais"
    lps_version: str = "0.1.0"
    lps_homologation: str | None = None
    vihf_version: str = vihf.DEFAULT_VERSION
    sign_submission: bool = True  # XAdES signature of the submission set (specs §5.1)
    timeout: float = 30.0

    @classmethod
    def from_mapping(cls, config: Mapping[str, object]) -> "DmpSettings":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in known}
        if "timeout" in values:
            values["timeout"] = float(values["timeout"])
        if isinstance(values.get("sign_submission"), str):
            values["sign_submission"] = values["sign_submission"].lower() in ("1", "true", "oui", "yes")
        return cls(**values)


class DmpConnector:
    system = SYSTEM
    payload_kinds = frozenset({PAYLOAD_KIND})

    def __init__(self, settings: DmpSettings, *, retry: RetryPolicy | None = None,
                 clock: Callable[[], dt.datetime] | None = None):
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        s = settings
        if not (s.seal_cert and s.seal_key):
            raise ValueError("DMP : certificat de cachet requis (seal_cert, seal_key) pour signer le VIHF")
        self.seal = vihf.Seal.from_files(s.seal_cert, s.seal_key)
        self.http = httpx.Client(verify=_ssl_context(s), timeout=s.timeout)

    # ------------------------------------------------------------------ transport

    def _claims(self, patient: str, secret: bool = False) -> vihf.Claims:
        s = self.settings
        return vihf.Claims(
            structure_id=s.structure_id or f"1{s.finess}", subject_name_id=s.responsible_id or f"3{s.finess}/RELAIS",
            subject_id=f"{s.lps_name}, Relais passerelle, {s.platform_name}", patient=patient, sector=s.sector,
            secret_connection=secret, lps_id=s.lps_id, lps_name=s.lps_name, lps_version=s.lps_version,
            lps_homologation=s.lps_homologation, version=s.vihf_version)

    def call(self, path: str, action: str, body: etree._Element, *, patient: str, secret: bool = False,
             attachments: list | None = None, response_action: str | None = None,
             claims: vihf.Claims | None = None) -> soap.Message:
        """One SOAP exchange: envelope (WS-Addressing, VIHF), MTOM when there are attachments or
        the transaction requires it, and the answer parsed — a SOAP fault raised as an error."""
        url = self.settings.base_url.rstrip("/") + path
        assertion = vihf.build(claims or self._claims(patient, secret), self.seal, now=self.clock())
        message_id = soap.new_message_id()
        raw = soap.envelope(action, body, to=url, message_id=message_id, security=assertion)
        if attachments is not None:
            content_type, data = soap.mtom(raw, attachments, action=action)
        else:
            content_type, data = soap.soap_content_type(action), raw
        try:
            response = self.http.post(url, content=data, headers={"Content-Type": content_type})
        except httpx.TimeoutException as exc:
            raise TransientError(f"DMP : délai dépassé ({type(exc).__name__})", code="timeout") from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # will not fix itself: no retry
                raise PermanentError("DMP : certificat du serveur non reconnu par le magasin de confiance",
                                     code="tls") from None
            raise TransientError(f"DMP injoignable : {type(exc).__name__} {exc}", code="network") from None
        try:
            message = soap.read_message(response.headers.get("content-type", ""), response.content)
        except soap.SoapRefused:
            raise E.failure([E.from_http(response.status_code, response.text)], "DMP") from None
        fault = message.fault()
        if fault is not None:
            code, reason = fault
            raise E.failure([E.from_soap_fault(code, reason, receiver=response.status_code >= 500)], "DMP")
        if response.status_code >= 400:
            raise E.failure([E.from_http(response.status_code, response.text)], "DMP")
        if response_action and message.action != response_action:
            raise PermanentError(f"DMP : action de réponse {message.action!r}, {response_action} attendue",
                                 code="wsa:ActionMismatch")
        return message

    # ------------------------------------------------------------------------ send

    def send(self, envelope: Envelope) -> Receipt:
        if envelope.payload_kind not in self.payload_kinds:
            raise PermanentError(f"contenu {envelope.payload_kind!r} non pris en charge par le DMP")
        try:
            submission = loads(envelope.payload)
        except SubmissionError as exc:
            raise PermanentError(str(exc), code="relais-dmp-payload") from None
        if self.settings.transport == "mhd":
            from connectors.dmp import iti65

            return iti65.provide(self, submission)
        return self.provide(submission)

    def provide(self, submission: Submission) -> Receipt:
        """ITI-41, after checking what a replacement replaces."""
        metadata, note = submission.metadata, ""
        if submission.replaces:
            metadata, note = self._replacement(submission)
        documents = [iti41.Document(submission.entry_uuid, submission.content, submission.mime_type)]
        if self.settings.sign_submission:
            metadata, signature = self._signed(submission, metadata)
            documents.append(signature)
        body, attachments = iti41.request(metadata, documents)
        message = self.call(self.settings.repository_path, iti41.ACTION, body, patient=submission.patient,
                            secret=submission.secret_connection, attachments=attachments,
                            response_action=iti41.RESPONSE_ACTION)
        result = iti41.parse_response(message)
        if not result.ok:
            raise E.failure(result.errors, "DMP ITI-41 refusé")
        duplicate = any(e.code == "XDSDocumentUniqueIdError" and e.severity == "warning" for e in result.errors)
        detail = "; ".join(filter(None, [note, *(e.line() for e in result.errors)])) or "Success"
        return Receipt(status="duplicate" if duplicate else "accepted", peer_reference=submission.unique_id,
                       detail=detail, received_at=self.clock())

    def _signed(self, submission: Submission, metadata: bytes) -> tuple[bytes, iti41.Document]:
        """The submission set signed XAdES with the seal certificate (connectors/dmp/xades.py):
        the signature document and its DocumentEntry (`signs` the CDA)."""
        from connectors.dmp import xades
        from mappings.cda.constants import derived_oid

        now = self.clock()
        signature = xades.sign([(submission.unique_id, submission.content)], self.seal)
        unique_id = derived_oid("submission-signature", submission.unique_id, now.isoformat())
        metadata = M.add_signature(metadata, signature, unique_id=unique_id, now=now)
        return metadata, iti41.Document(M.entry_uuid(unique_id), signature, "text/xml")

    def _replacement(self, submission: Submission) -> tuple[bytes, str]:
        found = self.get_documents(submission.patient, unique_ids=(submission.replaces,))
        target = next((e for e in found if e.approved), None)
        root = etree.fromstring(submission.metadata, etree.XMLParser(resolve_entities=False, no_network=True))
        rplc = root.xpath(f"//rim:Association[@associationType='{M.RPLC}']", namespaces={"rim": M.RIM})
        if target is None:
            for association in rplc:
                association.getparent().remove(association)
            return (etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                    "version précédente absente du DMP : document déposé comme original")
        for association in rplc:
            association.set("targetObject", target.entry_uuid)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), f"remplace {target.unique_id}"

    # --------------------------------------------------------------- queries etc.

    def _query(self, patient: str, request: etree._Element) -> list[iti18.DocumentEntry]:
        message = self.call(self.settings.registry_path, iti18.ACTION, request, patient=patient,
                            response_action=iti18.RESPONSE_ACTION)
        result = iti18.parse_response(message)
        if not result.ok:
            raise E.failure(result.errors, "DMP ITI-18 refusé")
        return result.entries

    def find_documents(self, patient: str, *, statuses: tuple[str, ...] = (iti18.APPROVED,),
                       type_codes: tuple[str, ...] = ()) -> list[iti18.DocumentEntry]:
        return self._query(patient, iti18.find_documents(patient, statuses, type_codes))

    def get_documents(self, patient: str, *, unique_ids: tuple[str, ...] = (),
                      entry_uuids: tuple[str, ...] = ()) -> list[iti18.DocumentEntry]:
        return self._query(patient, iti18.get_documents(unique_ids=unique_ids, entry_uuids=entry_uuids))

    def retrieve(self, patient: str, repository_unique_id: str, unique_id: str) -> iti43.Retrieved:
        message = self.call(self.settings.repository_path, iti43.ACTION, iti43.request(repository_unique_id, [unique_id]),
                            patient=patient, attachments=[], response_action=iti43.RESPONSE_ACTION)
        result = iti43.parse_response(message)
        if any(e.severity == "error" for e in result.errors) or not result.documents:
            raise E.failure(result.errors, "DMP ITI-43 refusé")
        return result.documents[0]

    def _update(self, patient: str, metadata: bytes) -> None:
        body = etree.fromstring(metadata, etree.XMLParser(resolve_entities=False, no_network=True))
        message = self.call(self.settings.registry_path, iti57.ACTION, body, patient=patient,
                            response_action=iti57.RESPONSE_ACTION)
        result = iti41.parse_response(message)
        if not result.ok:
            raise E.failure(result.errors, "DMP ITI-57 refusé")

    def _entry(self, patient: str, unique_id: str) -> iti18.DocumentEntry:
        found = self.get_documents(patient, unique_ids=(unique_id,))
        current = next((e for e in found if e.approved), found[0] if found else None)
        if current is None:
            raise PermanentError(f"document {unique_id} inconnu du DMP", code="XDSDocumentUniqueIdError")
        return current

    def set_status(self, patient: str, unique_id: str, status: str) -> None:
        """Deprecate (or approve again) a document: ITI-57 UpdateAvailabilityStatus."""
        entry = self._entry(patient, unique_id)
        s = self.settings
        self._update(patient, iti57.status_update(entry, iti57.STATUSES[status], finess=s.finess,
                                                  platform_name=s.platform_name, now=self.clock()))

    def set_visibility(self, patient: str, unique_id: str, visibility: tuple[str, ...]) -> None:
        """Masking / invisibility flags: a new version of the document's metadata (ITI-57)."""
        entry = self._entry(patient, unique_id)
        s = self.settings
        self._update(patient, iti57.visibility_update(entry, visibility, finess=s.finess,
                                                      platform_name=s.platform_name, now=self.clock()))

    def poll(self) -> Iterable[Inbound]:
        return iter(())  # the DMP pushes nothing: queries are explicit (find_documents / retrieve)

    def close(self) -> None:
        self.http.close()


def _ssl_context(settings: DmpSettings) -> ssl.SSLContext:
    """Server certificate always verified (IGC-Santé anchors in production), TLS 1.2 minimum,
    the structure's certificate presented (mutual TLS)."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.client_cert and settings.client_key:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def build(config: Mapping[str, object]) -> DmpConnector:
    retry = config.get("retry")
    settings = DmpSettings.from_mapping({k: v for k, v in config.items() if k != "retry"})
    return DmpConnector(settings, retry=retry if isinstance(retry, RetryPolicy) else None)


__all__ = ["CONTENT_TYPE", "DmpConnector", "DmpSettings", "PAYLOAD_KIND", "SYSTEM", "build"]
