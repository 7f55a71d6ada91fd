"""Flux 2 — Accord (st_flux2.md): `POST [base]/Consent` (esms-consent) → 201 Created.

Sent as a conditional create on the consent's business identifier (`If-None-Exist`), so a
resend (retry after a timeout, the same agreement submitted twice) is recognised by the SI-SDO
instead of creating a second Consent."""

from __future__ import annotations

from connectors.base import PermanentError, Receipt
from connectors.fhirhttp import FhirClient
from connectors.viatrajectoire import resources, vocab


def decision_of(consent: dict) -> str | None:
    """The idNat_Decision the consent is about (provision.data[0].reference.identifier)."""
    data = ((consent.get("provision") or {}).get("data") or [{}])[0] or {}
    return ((data.get("reference") or {}).get("identifier") or {}).get("value")


def with_identifier(consent: dict) -> dict:
    """The consent with Relais' business identifier (added when the payload has none)."""
    ours = [i for i in consent.get("identifier") or [] if isinstance(i, dict) and i.get("system") == vocab.RFC3986]
    if ours:
        return consent
    source = (consent.get("meta") or {}).get("source")
    ident = resources.business_identifier("esms-consent", source, decision_of(consent))
    return {**consent, "identifier": [*(consent.get("identifier") or []), ident]}


def conditional(ident: dict) -> str:
    return f"identifier={ident['system']}|{ident['value']}"


def post(client: FhirClient, consent: dict, body: bytes) -> Receipt:
    """POST the consent (its JSON `body`) once; 201 → accepted, 200 (it existed) → duplicate."""
    ident = next(i for i in consent["identifier"] if i.get("system") == vocab.RFC3986)
    response = client.request("POST", "/Consent", body=body, headers={"If-None-Exist": conditional(ident)})
    stored = client.json(response) if response.content else {}
    if stored and stored.get("resourceType") not in (None, "Consent"):
        raise PermanentError("réponse inattendue au dépôt de l'accord", code="malformed")
    reference = _reference(response, stored, "Consent")
    if response.status_code == 201:
        return Receipt("accepted", reference, "accord enregistré par le SI-SDO (201)")
    return Receipt("duplicate", reference, f"accord déjà enregistré (HTTP {response.status_code})")


def _reference(response, stored: dict, rtype: str) -> str | None:
    if stored.get("id"):
        return f"{rtype}/{stored['id']}"
    location = response.headers.get("location", "")
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return f"{rtype}/{parts[-1]}" if len(parts) >= 2 and parts[-2] == rtype else None
