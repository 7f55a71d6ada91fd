"""What an inbound item means: who it is about (identifiers to match), what a coordinator
reads (summary, French), and what it proposes to change in the plan (never applied here).

One function per kind; each returns an `Interpretation` or raises `Unreadable` with the
reason (the item is then quarantined, the original kept)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import Inbound

INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")


class Unreadable(ValueError):
    pass


@dataclass
class Interpretation:
    identifiers: list[tuple[str, str]]  # ("ins", value), ("decision", number), ("decision-nat", id)
    summary: dict
    proposal: dict | None = None  # e.g. {"orientation_decisions": [...]} merged on review
    notes: list[str] = field(default_factory=list)
    # A proposal that depends on the person's current plan (e.g. a JSON Patch): called once
    # the person is matched, with their current plan.
    propose: Callable[[object], dict | None] | None = None
    # An acknowledgement of one of our own exchanges: (idempotency key, ok, detail).
    acknowledges: tuple[str, bool, str] | None = None
    about_person: bool = True  # False: nothing to match (a plain message)


def _json(item: Inbound) -> dict:
    # What a peer sent is read like any untrusted input (strict reader: nesting, size, duplicate
    # keys, NaN, NUL…): a plain json.loads let a deeply nested document raise RecursionError
    # out of the recording transaction instead of quarantining the item.
    from gateway.plans import JsonInputError, loads_strict

    try:
        value = loads_strict(item.payload, max_bytes=20 * 1024 * 1024)
    except JsonInputError as exc:
        raise Unreadable(f"contenu reçu illisible : {exc.problem.message}") from None
    if not isinstance(value, dict):
        raise Unreadable("contenu reçu inattendu (objet JSON attendu)")
    return value


def sdo_decision(item: Inbound) -> Interpretation:
    """SDO flux 1.4: the CDA "Individu + Décision" → the plan's orientation records."""
    from connectors.viatrajectoire import DecisionDocumentError, decision_file, orientation_records

    try:
        found = decision_file(_json(item))
    except DecisionDocumentError as exc:
        raise Unreadable(f"décision illisible : {exc.reason}") from None
    national = item.metadata.get("idNat_Decision") or None
    records = orientation_records(found.document, national_id=national)
    person = found.document.person
    identifiers = []
    if getattr(person, "ins", None):
        identifiers.append(("ins", person.ins))
    for record in records:
        identifiers.append(("decision", record["decision_number"]))
    first = records[0] if records else {}
    summary = {
        "titre": "Décision d'orientation de la CDAPH"
                 + (" (mise à jour)" if item.metadata.get("update") == "true" else ""),
        "décision": first.get("decision_number"),
        "date": first.get("decision_date"),
        "orientation": first.get("orientation"),
        "validité": first.get("validity"),
        "MDPH": first.get("mdph"),
    }
    return Interpretation(identifiers, summary, {"orientation_decisions": records})


def sdo_decision_rejected(item: Inbound) -> Interpretation:
    raise Unreadable(f"décision refusée à la lecture : {item.metadata.get('reason', '?')}")


def sdo_status(item: Inbound) -> Interpretation:
    """SDO flux 5.2: another ESMS's (or our own) status for an oriented person."""
    m = item.metadata
    identifiers = [(k, m[key]) for k, key in (("decision-nat", "idNat_Decision"), ("decision", "idDecision"))
                   if m.get(key)]
    elsewhere = m.get("entryElsewhere") == "true"
    summary = {
        "titre": "Admission dans un autre ESMS" if elsewhere else "Statut d'un ESMS pour la personne",
        "structure": m.get("idNat_Struct"),
        "statut ESMS": m.get("statutESMS"),
        "motif": m.get("motifESMS") or None,
        "date": m.get("dateStatutESMS") or None,
        "statut de l'unité": m.get("statutUnite") or None,
        "notre structure": m.get("own") == "true",
    }
    return Interpretation(identifiers, summary)


def sdo_evaluation(item: Inbound) -> Interpretation:
    m = item.metadata
    identifiers = [(k, m[key]) for k, key in (("decision-nat", "idNat_Decision"), ("decision", "idDecision"))
                   if m.get(key)]
    return Interpretation(identifiers, {"titre": "Évaluation MDPH reçue (après accord)",
                                        "décision": m.get("idDecision") or m.get("idNat_Decision")})


def nde_event(item: Inbound) -> Interpretation:
    """Notification d'évènements flux 3 (nde-eventdeclaration): the person is in a contained
    Patient, named by INS; the event type is an extension (TRE_R254-TypeEvenement)."""
    resource = _json(item)
    identifiers = []
    for contained in resource.get("contained") or []:
        if contained.get("resourceType") != "Patient":
            continue
        for ident in contained.get("identifier") or []:
            system = str(ident.get("system", ""))
            if system.removeprefix("urn:oid:") in INS_OIDS and ident.get("value"):
                if not isinstance(ident["value"], str):
                    raise Unreadable("notification illisible : INS non textuelle "
                                     "(contained.Patient.identifier.value)")
                identifiers.append(("ins", ident["value"]))
    event = next((e.get("valueCoding") for e in resource.get("extension") or []
                  if str(e.get("url", "")).endswith("/EventType")), None) or {}
    text = " ".join(p.get("contentString", "") for p in resource.get("payload") or [])
    summary = {"titre": f"Évènement signalé : {event.get('display') or event.get('code') or 'non précisé'}",
               "code": event.get("code"), "détail": text or None,
               "date": (resource.get("meta") or {}).get("lastUpdated")}
    return Interpretation(identifiers, summary)


def mss_document(item: Inbound) -> Interpretation:
    """A CDA received over MSSanté (IHE XDM): the person is the METADATA.XML patientId (INS,
    Ref#2 ECO.2.1.2); the document is proposed as a plan update (JSON Patch) for review."""
    from connectors.mss.inbound import propose as read_cda

    m = item.metadata
    identifiers = [("ins", m["ins"])] if m.get("ins") else []
    summary = {"titre": "Document reçu par MSSanté", "expéditeur": m.get("sender"),
               "type": m.get("type_code"), "document": m.get("document_id"),
               "remplace": m.get("action") == "C"}

    def propose(current) -> dict | None:
        try:
            proposal = read_cda(item.payload, current)
        except ValueError:  # safety net: the reader reports bad dates and numbers as problems
            raise Unreadable("document CDA illisible comme projet : date ou nombre mal formé") from None
        except Exception as exc:  # noqa: BLE001 - a pure reader of untrusted bytes: its failure is the document's
            # safety net (the reader reports malformed input as problems): quarantined, not a
            # traceback out of the recording transaction
            raise Unreadable(f"document CDA illisible comme projet : structure inattendue "
                             f"({type(exc).__name__})") from None
        if proposal.plan is None:
            raise Unreadable("document CDA illisible comme projet : "
                             + "; ".join(p.message for p in proposal.problems[:2]))
        return {"patch": proposal.patch} if proposal.patch else None

    return Interpretation(identifiers, summary, propose=propose)


def mss_acknowledgement(item: Inbound) -> Interpretation:
    """An MDN, a delivery status notification or an error mail about a message we sent."""
    m = item.metadata
    ok = m.get("ok") == "true"
    detail = (f"{m.get('acknowledgement', 'accusé')} « {m.get('disposition')} »"
              + ("" if ok else f" : {m.get('error_code', '')} {m.get('error_text', '')}".rstrip()))
    summary = {"titre": "Accusé de traitement" if ok else "Accusé d'erreur d'intégration",
               "détail": detail, "destinataire": m.get("final_recipient")}
    key = m.get("idempotency_key") or ""
    return Interpretation([], summary, acknowledges=(key, ok, detail) if key else None)


def mss_message(item: Inbound) -> Interpretation:
    return Interpretation([], {"titre": "Message MSSanté sans document structuré",
                               "expéditeur": item.metadata.get("sender")}, about_person=False)


def mss_quarantined(item: Inbound) -> Interpretation:
    raise Unreadable(f"archive refusée : {item.metadata.get('reason', '?')}")


HANDLERS = {
    "mss-document": mss_document,
    "mss-acknowledgement": mss_acknowledgement,
    "mss-message": mss_message,
    "mss-quarantined": mss_quarantined,
    "sdo-decision": sdo_decision,
    "sdo-decision-rejected": sdo_decision_rejected,
    "sdo-status": sdo_status,
    "sdo-evaluation": sdo_evaluation,
    "nde-event": nde_event,
}


def interpret(item: Inbound) -> Interpretation:
    handler = HANDLERS.get(item.kind)
    if handler is None:
        raise Unreadable(f"type de message reçu non pris en charge : {item.kind}")
    try:
        return handler(item)
    except (AttributeError, TypeError) as exc:
        # A peer's well-formed JSON of the wrong shape (a string where a list or an object is
        # expected…): quarantined, not a traceback out of the recording transaction.
        raise Unreadable(f"contenu reçu de structure inattendue ({item.kind}, {type(exc).__name__})") from None
