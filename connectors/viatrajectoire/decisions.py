"""Flux 1 — PersonneOrienteeDecision (st_flux1.md): 1.1/1.2 search the new or updated decision
files, `GET [base]/DocumentReference?type=57830-2&_lastUpdated=gt[YYYY-MM-DD]&_elements=id`;
1.3/1.4 read each one, `GET [base]/DocumentReference/[id]`, which carries the CDA "Individu +
Décision" (base64 in content.attachment.data), idDecision (identifier use=usual) and
idNat_Decision (identifier use=official)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.base import PermanentError
from connectors.fhirhttp import FhirClient
from connectors.viatrajectoire import searchset, vocab
from connectors.viatrajectoire.cda_decision import (
    MAX_DOCUMENT_BYTES,
    DecisionDocument,
    DecisionDocumentError,
    parse_decision_cda,
)


def search(client: FhirClient, since: dt.date) -> Iterator[str]:
    """Flux 1.1: ids of the decision files created or updated after `since` (a date)."""
    params = {"type": vocab.DOC_DECISION, "_lastUpdated": f"gt{since.isoformat()}", "_elements": "id"}
    for resource in searchset.resources(client, "/DocumentReference", params,
                                        resource_type="DocumentReference"):
        if resource.get("id"):
            yield resource["id"]


def read(client: FhirClient, document_id: str) -> dict:
    """Flux 1.3/1.4: one DocumentReference, as the SI-SDO sent it."""
    resource = client.json(client.request("GET", f"/DocumentReference/{document_id}"))
    if resource.get("resourceType") != "DocumentReference":
        raise PermanentError(f"DocumentReference/{document_id} : réponse d'un autre type "
                             f"({resource.get('resourceType')!r})", code="malformed")
    return resource


@dataclass(frozen=True)
class DecisionFile:
    """A decision file read from the SI-SDO: its identifiers and its parsed CDA."""

    document_reference: str  # "DocumentReference/<id>"
    decision_number: str | None  # identifier use=usual (idDecision)
    national_id: str | None  # identifier use=official (idNat_Decision)
    document: DecisionDocument


def identifiers(document_reference: dict) -> tuple[str | None, str | None]:
    """(idDecision, idNat_Decision) of an esms-document-reference (sliced on identifier.use)."""
    usual = official = None
    idents = document_reference.get("identifier") if isinstance(document_reference, dict) else None
    for ident in idents if isinstance(idents, list) else []:
        if not isinstance(ident, dict):
            continue
        if ident.get("use") == "usual" and usual is None:
            usual = ident.get("value")
        elif ident.get("use") == "official" and official is None:
            official = ident.get("value")
    return usual, official


def attachment_bytes(document_reference: dict, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The document carried in content[0].attachment.data (base64), size-checked first."""
    contents = document_reference.get("content")
    content = contents[0] if isinstance(contents, list) and contents else None
    attachment = content.get("attachment") if isinstance(content, dict) else None
    data = attachment.get("data") if isinstance(attachment, dict) else None
    if not isinstance(data, str) or not data:
        raise DecisionDocumentError("document absent (content.attachment.data)", "DocumentReference.content")
    if len(data) > (max_bytes * 4) // 3 + 4:
        raise DecisionDocumentError("document CDA trop volumineux", "DocumentReference.content.attachment.data")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DecisionDocumentError("pièce jointe mal encodée (base64 attendu)",
                                    "DocumentReference.content.attachment.data") from None


def decision_file(document_reference: dict) -> DecisionFile:
    """Check the DocumentReference is a flux 1.4 decision file and parse its CDA. A peer's JSON
    of the wrong shape (a string where an object is expected…) is refused, with its place."""
    if not isinstance(document_reference, dict):
        raise DecisionDocumentError("DocumentReference attendu (objet JSON)", "DocumentReference")
    kind = document_reference.get("type")
    coding = kind.get("coding") if isinstance(kind, dict) else None
    codes = [c.get("code") for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []
    if vocab.DOC_DECISION not in codes:
        raise DecisionDocumentError(f"type de document {codes!r} : {vocab.DOC_DECISION} attendu",
                                    "DocumentReference.type")
    usual, official = identifiers(document_reference)
    if not usual:
        raise DecisionDocumentError("idDecision absent (identifier use=usual)", "DocumentReference.identifier")
    for name, value in (("idDecision", usual), ("idNat_Decision", official)):
        if value is not None and not isinstance(value, str):
            raise DecisionDocumentError(f"{name} invalide (texte attendu)", "DocumentReference.identifier")
    document = parse_decision_cda(attachment_bytes(document_reference))
    return DecisionFile(f"DocumentReference/{document_reference.get('id')}", usual, official, document)
