"""The MSSanté mailbox directory: the ANS "API Messagerie Sécurisée de Santé" (IG ans.fhir.fr.mss
0.1.0-snapshot, specs §4.3) over the Annuaire Santé FHIR API. It is a directory of mailboxes,
not a way to send: Relais uses it to find a professional's or a structure's MSSanté address.

A mailbox is a `telecom` (system `email`) of a Practitioner, PractitionerRole or Organization
with the extension `as-ext-mailbox-mss-metadata` (sub-extensions `type` from TRE_R257-TypeBAL
— PER, ORG, APP, CAB — and `listeRouge`). Search parameters: `identifier` (RPPS idNat
`8…` under urn:oid:1.2.250.1.71.4.2.1, FINESS under https://finess.esante.gouv.fr), `name`,
`mailbox-mss-type`; header `ESANTE-API-KEY`.

Decision (specs §11.8): the IG's examples put `mailbox-mss-type` under TRE_R256; Relais sends
the TRE_R257 system (where the type codes live). Mailboxes on the red list (`listeRouge`) are
never returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.base import PermanentError, Recipient
from connectors.fhirhttp import FhirClient, FhirEndpoint

TRE_R257 = "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
TRE_R256 = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
EXT_MAILBOX = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
EXT_EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
FINESS = "https://finess.esante.gouv.fr"
TYPES = ("PER", "ORG", "APP", "CAB")
PREFERENCE = {"organisation": ("APP", "ORG", "CAB", "PER"), "professional": ("PER", "CAB", "ORG", "APP")}


@dataclass(frozen=True)
class Mailbox:
    address: str
    type: str  # TRE_R257
    owner: str  # display name of the practitioner or the structure
    resource: str  # Practitioner/…, Organization/…
    identifier: str  # idNat PS or FINESS

    def line(self) -> str:
        return f"{self.address}\t{self.type}\t{self.owner}\t{self.identifier}\t{self.resource}"


def _owner(resource: dict) -> str:
    if resource.get("resourceType") == "Organization":
        return resource.get("name", "")
    for name in resource.get("name", []) or []:
        given = " ".join(name.get("given", []) or [])
        return " ".join(filter(None, [given, name.get("family", "")]))
    return ""


def _identifier(resource: dict) -> str:
    for ident in resource.get("identifier", []) or []:
        if ident.get("system") in (IDNAT_PS, FINESS):
            return ident.get("value", "")
    return ""


def mailboxes_of(resource: dict) -> list[Mailbox]:
    out = []
    for telecom in resource.get("telecom", []) or []:
        if telecom.get("system") != "email" or not telecom.get("value"):
            continue
        meta = next((e for e in telecom.get("extension", []) or [] if e.get("url") == EXT_MAILBOX), None)
        if meta is None:
            continue
        fields = {e.get("url"): e for e in meta.get("extension", []) or []}
        if (fields.get("listeRouge") or {}).get("valueBoolean"):
            continue
        codings = ((fields.get("type") or {}).get("valueCodeableConcept") or {}).get("coding", [])
        kind = next((c.get("code") for c in codings if c.get("code") in TYPES), "")
        out.append(Mailbox(telecom["value"], kind, _owner(resource),
                           f"{resource.get('resourceType')}/{resource.get('id')}", _identifier(resource)))
    return out


class MailboxDirectory:
    def __init__(self, client: FhirClient):
        self.client = client

    def close(self) -> None:
        self.client.close()

    def _search(self, rtype: str, params: dict[str, str]) -> list[Mailbox]:
        bundle = self.client.json(self.client.request("GET", f"/{rtype}", params=params))
        found = []
        for entry in bundle.get("entry", []) or []:
            found.extend(mailboxes_of(entry.get("resource") or {}))
        return found

    def lookup(self, query: str, *, mailbox_type: str | None = None) -> list[Mailbox]:
        """By FINESS (9 digits), RPPS (11 digits, or its idNat `8…`), address, or name."""
        query = query.strip()
        extra = {"mailbox-mss-type": f"{TRE_R257}|{mailbox_type}"} if mailbox_type else {}
        digits = re.fullmatch(r"\d+", query)
        if digits and len(query) == 9:
            found = self._search("Organization", {"identifier": f"{FINESS}|{query}", **extra})
        elif digits and len(query) in (11, 12):
            idnat = query if len(query) == 12 else f"8{query}"
            found = self._search("Practitioner", {"identifier": f"{IDNAT_PS}|{idnat}", **extra})
        elif "@" in query:
            found = [m for rtype in ("Practitioner", "Organization")
                     for m in self._search(rtype, {"mailbox-mss": query, **extra})]
        else:
            found = [m for rtype in ("Practitioner", "Organization")
                     for m in self._search(rtype, {"name": query, **extra})]
        if mailbox_type:
            found = [m for m in found if m.type == mailbox_type]
        return list(dict.fromkeys(found))

    def address_for(self, recipient: Recipient) -> str:
        """The MSSanté address to write to for a professional (RPPS) or a structure (FINESS)."""
        found = self.lookup(recipient.identifier)
        order = PREFERENCE.get(recipient.kind, TYPES)
        found.sort(key=lambda m: order.index(m.type) if m.type in order else len(order))
        if not found:
            raise PermanentError(f"aucune BAL MSSanté publiée dans l'annuaire pour {recipient.kind} "
                                 f"{recipient.identifier}", code="directory")
        return found[0].address


def directory_from_settings(config: Mapping[str, object]) -> MailboxDirectory | None:
    url = config.get("directory_url")
    if not url:
        return None
    headers = {"ESANTE-API-KEY": str(config.get("directory_api_key", ""))}
    return MailboxDirectory(FhirClient(FhirEndpoint(
        base_url=str(url), ca_file=config.get("directory_ca_file") or config.get("ca_file"),
        timeout=float(config.get("timeout", 10.0)), headers=headers)))
