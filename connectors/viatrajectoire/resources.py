"""The two resources an ESMS writes to the SI-SDO, as pure functions (no I/O, no clock: pass
`now`): the oriented person's consent (flux 2, `esms-consent`) and the platform's status for
the person (flux 4, `sdo-task` with its sliced inputs).

Each carries a stable business identifier (`identifier`, system urn:ietf:rfc:3986, a name-based
UUID of what it says) so that the connector's conditional create (`If-None-Exist`) recognises a
resend: the same consent, or the same status, is never stored twice.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass

from connectors.viatrajectoire import vocab

# Name-based UUIDs (RFC 4122 §4.3) of Relais' SDO resources live under this namespace.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://relais.invalid/ns/sdo")
_FINESS = re.compile(r"^(?:[0-9]{2}|2[AB])[0-9]{7}$")
_ID_NAT_STRUCT = re.compile(r"^(?:1(?:[0-9]{2}|2[AB])[0-9]{7}|3[0-9]{14})$")


class ResourceError(ValueError):
    """What was asked cannot make a conformant resource; one French reason per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def id_nat_struct(finess_or_id: str) -> str:
    """idNat_Struct (TRE_G07 prefix + number, specs §0.2): a FINESS gets the prefix "1"."""
    value = finess_or_id.strip().upper()
    if _FINESS.match(value):
        return "1" + value
    if _ID_NAT_STRUCT.match(value):
        return value
    raise ResourceError([f"identifiant de structure invalide : {finess_or_id!r} (FINESS sur 9 "
                         "caractères, ou idNat_Struct 1+FINESS / 3+SIRET)"])


def business_identifier(kind: str, *parts: object) -> dict:
    """A stable identifier for what `parts` say: same content → same identifier."""
    name = json.dumps([kind, *parts], ensure_ascii=False, sort_keys=True, default=str)
    return {"system": vocab.RFC3986, "value": f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"}


def _instant(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise ResourceError(["l'horodatage doit porter un fuseau horaire"])
    return now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------- flux 2


def build_consent(*, structure: str, national_decision_id: str, collected_on: dt.date | dt.datetime,
                  now: dt.datetime) -> dict:
    """esms-consent (specs §3.3, st_flux2): the oriented person's agreement that this ESMS reads
    the evaluation of decision `national_decision_id` (idNat_Decision).

    `structure`: the ESMS's FINESS EG (or its idNat_Struct). `collected_on`: when the ESMS
    collected the agreement (Consent.dateTime)."""
    struct = id_nat_struct(structure)
    if not (national_decision_id or "").strip():
        raise ResourceError(["idNat_Decision absent : l'accord porte sur une décision reçue du SI-SDO"])
    when = collected_on.isoformat() if not isinstance(collected_on, dt.datetime) else _instant(collected_on)
    return {
        "resourceType": "Consent",
        # meta.source 1..1 = idNat_Struct of the ESMS that benefits from the agreement
        "meta": {"source": struct, "profile": [vocab.PROFILE_CONSENT], "lastUpdated": _instant(now)},
        "identifier": [business_identifier("esms-consent", struct, national_decision_id)],
        "status": "active",  # fixed to active since 4.0.3 (ESMSConsent status)
        "scope": {"coding": [{"system": vocab.CONSENT_SCOPE_CS, "code": "patient-privacy",
                              "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": vocab.LOINC, "code": vocab.CONSENT_CATEGORY,
                                  "display": "Consent"}]}],
        "dateTime": when,
        # R4 invariant ppc-1 (policy or policyRule): opt-in, as the guide's example
        "policyRule": {"coding": [{"system": vocab.ACT_CODE_CS, "code": "OPTIN"}]},
        # provision.data 1..1, meaning = related, logical reference to the DocumentReference by
        # its official identifier = idNat_Decision (4.0.1: reference.identifier, not .reference)
        "provision": {"data": [{"meaning": "related", "reference": {
            "identifier": {"use": "official", "value": national_decision_id}}}]},
    }


# ------------------------------------------------------------------------- flux 4


@dataclass(frozen=True)
class StatusReport:
    """What the platform says about one oriented person for one decision (flux 4).

    Codes come from the national value sets bound by sdo-task: `status` JDV_J252, `reason`
    JDV_J251 (mandatory for some statuses, ASS_A32), `unit_status` JDV_J253, `unit_reason`
    JDV_J250, `care_mode` JDV_J264 (46/47/48), `reception_timing` JDV_J30 (01/02),
    `organisation_category` TRE_R244 (JDV_J34)."""

    structure: str  # FINESS EG of the ESMS (or its idNat_Struct)
    esms_name: str
    decision_number: str  # idDecision (MDPH)
    national_decision_id: str  # idNat_Decision (SI-SDO)
    status: str | None = None
    status_date: dt.date | None = None
    reason: str | None = None
    unit_id: str | None = None  # ROR internal organisation id
    unit_name: str | None = None
    unit_status: str | None = None
    unit_status_date: dt.date | None = None
    unit_reason: str | None = None
    organisation_category: str | None = None
    reception_timing: str | None = None
    sequential: bool | None = None
    care_mode: str | None = None
    comment: str | None = None  # Task.description
    decision_number_system: str | None = None  # the MDPH's OID as a URI, when known


def _coded_input(slice_name: str, code: str) -> dict:
    system, allowed = vocab.TASK_BINDINGS[slice_name]
    coding = {"system": system, "code": code}
    if allowed is not None and allowed.get(code):
        coding["display"] = allowed[code]
    return {"valueCodeableConcept": {"coding": [coding]}}


def _input(slice_name: str, value: dict) -> dict:
    return {"type": {"coding": [{"system": vocab.INPUT_TASK_CS, "code": slice_name}]}, **value}


def check_status(report: StatusReport) -> list[str]:
    """The sdo-task constraints a report must meet (specs §3.3), as French reasons."""
    problems = []
    for name in ("esms_name", "decision_number", "national_decision_id"):
        if not (getattr(report, name) or "").strip():
            problems.append(f"{name} est obligatoire (sdo-task input 1..1)")
    for field_name, slice_name in (("status", "statutESMS"), ("reason", "motifESMS"),
                                   ("unit_status", "statutUnite"), ("unit_reason", "motifUnite"),
                                   ("care_mode", "modePriseCharge"),
                                   ("reception_timing", "temporaliteAccueil")):
        code = getattr(report, field_name)
        allowed = vocab.TASK_BINDINGS[slice_name][1]
        if code is not None and allowed is not None and code not in allowed:
            problems.append(f"{slice_name} : code {code!r} hors du jeu de valeurs national")
    if report.organisation_category is not None and not re.fullmatch(r"\d{2,3}", report.organisation_category):
        problems.append(f"categorieOrganisation : code {report.organisation_category!r} invalide (TRE_R244)")
    if report.status is None and report.unit_status is None:
        problems.append("un statut (ESMS ou unité) est attendu")
    if report.reason and not report.status:
        problems.append("motifESMS sans statutESMS")
    if report.unit_reason and not report.unit_status:
        problems.append("motifUnite sans statutUnite")
    if report.unit_status:  # regle-StatutUnite
        missing = [label for label, value in (("idUnite", report.unit_id), ("nomUnite", report.unit_name),
                                              ("categorieOrganisation", report.organisation_category),
                                              ("modePriseCharge", report.care_mode),
                                              ("dateStatutUnite", report.unit_status_date)) if not value]
        if missing:
            problems.append("statutUnite renseigné : " + ", ".join(missing) + " attendu(s) (regle-StatutUnite)")
    return problems


def build_status_task(report: StatusReport, *, now: dt.datetime) -> dict:
    """sdo-task / esms-task (specs §3.3, st_flux4): one status event of the ESMS for a decision.

    Flux 4 is POST-only since 4.0.1 ("1 Task = 1 évènement"): each status is its own Task, and
    its identifier names the event, so the same status resent is recognised."""
    problems = check_status(report)
    struct = id_nat_struct(report.structure) if not problems else None
    if problems:
        raise ResourceError(problems)
    decision_ident = {"value": report.decision_number}
    if report.decision_number_system:
        decision_ident["system"] = report.decision_number_system
    inputs = [
        # idNat_Struct 1..1 (Identifier): 1 + FINESS, or 3 + SIRET
        _input("idNat_Struct", {"valueIdentifier": {"system": vocab.ID_NAT_STRUCT_OID, "value": struct}}),
        _input("nomESMS", {"valueString": report.esms_name}),  # nomESMS 1..1
    ]
    if report.status:
        inputs.append(_input("statutESMS", _coded_input("statutESMS", report.status)))  # JDV_J252
    if report.reason:
        inputs.append(_input("motifESMS", _coded_input("motifESMS", report.reason)))  # JDV_J251
    if report.status_date:
        inputs.append(_input("dateStatutESMS", {"valueDate": report.status_date.isoformat()}))
    if report.unit_id:  # ROR internal organisation
        inputs.append(_input("idUnite", {"valueIdentifier": {"value": report.unit_id}}))
    if report.unit_name:
        inputs.append(_input("nomUnite", {"valueString": report.unit_name}))
    if report.organisation_category:  # JDV_J34 (TRE_R244)
        inputs.append(_input("categorieOrganisation", _coded_input("categorieOrganisation",
                                                                   report.organisation_category)))
    if report.reception_timing:  # JDV_J30
        inputs.append(_input("temporaliteAccueil", _coded_input("temporaliteAccueil", report.reception_timing)))
    if report.sequential is not None:
        inputs.append(_input("accueilSequentiel", {"valueBoolean": report.sequential}))
    if report.care_mode:  # JDV_J264, regle-ModePriseEnCharge: 46/47/48, coding 1..1
        inputs.append(_input("modePriseCharge", _coded_input("modePriseCharge", report.care_mode)))
    if report.unit_status:  # JDV_J253
        inputs.append(_input("statutUnite", _coded_input("statutUnite", report.unit_status)))
    if report.unit_status_date:
        inputs.append(_input("dateStatutUnite", {"valueDate": report.unit_status_date.isoformat()}))
    if report.unit_reason:  # JDV_J250
        inputs.append(_input("motifUnite", _coded_input("motifUnite", report.unit_reason)))
    inputs.append(_input("idDecision", {"valueIdentifier": decision_ident}))  # idDecision 1..1
    inputs.append(_input("idNat_Decision", {"valueIdentifier": {"value": report.national_decision_id}}))
    task = {
        "resourceType": "Task",
        # meta.lastUpdated 1.. in the profile although the server sets it: sent anyway
        "meta": {"lastUpdated": _instant(now), "profile": [vocab.PROFILE_TASK, vocab.PROFILE_TASK_ESMS]},
        "identifier": [],
        "status": "completed",  # fixed by the profile
        "intent": "plan",  # fixed by the profile
        "input": inputs,
    }
    if report.comment:
        task["description"] = report.comment
    task["identifier"] = [status_event_identifier(task)]
    return task


def task_inputs(task: dict) -> dict[str, dict]:
    """The Task's inputs by slice (input-task-sdo-codesystem code), without their `type`."""
    out = {}
    for item in task.get("input") or []:
        codes = [c.get("code") for c in (item.get("type") or {}).get("coding") or []
                 if c.get("system") == vocab.INPUT_TASK_CS]
        if codes:
            out[codes[0]] = {k: v for k, v in item.items() if k != "type"}
    return out


def _value(entry: dict | None):
    if not entry:
        return None
    for key, value in entry.items():
        if key.startswith("value"):
            if key == "valueIdentifier":
                return value.get("value")
            if key == "valueCodeableConcept":
                return [(c.get("system"), c.get("code")) for c in value.get("coding") or []]
            return value
    return None


def status_event_identifier(task: dict) -> dict:
    """The identifier of one status event: structure, decision, and every status input."""
    inputs = task_inputs(task)
    return business_identifier("sdo-task-event", sorted((k, _value(v)) for k, v in inputs.items()),
                               task.get("description"))


def status_dossier_identifier(task: dict) -> dict:
    """The identifier of the platform's status record for one decision (one structure, one
    decision), used when updates are PUT on the same Task."""
    inputs = task_inputs(task)
    return business_identifier("sdo-task-dossier", _value(inputs.get("idNat_Struct")),
                               _value(inputs.get("idNat_Decision")))


def same_status(a: dict, b: dict) -> bool:
    """Do two Tasks say the same thing (same inputs, same description)?"""
    def said(task):
        return sorted((k, _value(v)) for k, v in task_inputs(task).items()), task.get("description")
    return said(a) == said(b)
