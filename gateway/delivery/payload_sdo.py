"""SDO payloads (ViaTrajectoire / SI-SDO, specs §3): the oriented person's consent (flux 2,
esms-consent) and the platform's status for the person (flux 4, esms-task), validated against
the SDO 4.0.7 profiles compiled in `mappings/fhir/profiles/sdo-4.0.7.rules.json`.

Both concern one orientation decision received from the SI-SDO (it has an idNat_Decision):
the one in force on the day of sending, else the latest. Decisions made by Relais:
- the status comes from the plan's status (the plan carries no ESMS status code): draft →
  41 « Contact effectué »; validated, agreed or suspended → 47 « Usager entré » on the plan's
  start; closed → 48 « Usager sorti » on its end (TRE_R357, JDV_J252);
- the consent's date is the person's agreement to the project (TDDUI accordUsager): without
  it there is nothing to send.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from importlib import resources

import orjson

from gateway.delivery.payloads import BuildContext, BuildError, PayloadKind, register
from gateway.model import Plan, Problem
from gateway.model.plan import OrientationDecision, PlanStatus
from gateway.plans import JsonInputError, loads_object

FHIR_JSON = "application/fhir+json"
SDO = "https://interop.esante.gouv.fr/ig/fhir/sdo/StructureDefinition/"
RULES = "sdo-4.0.7.rules.json"


def _problem(location: str, rule: str, fr: str, en: str) -> Problem:
    return Problem(location=location, rule=rule, message=fr, message_en=en, source="relais-sdo 4.0.7")


def decision_for(plan: Plan, day: dt.date) -> OrientationDecision:
    known = [d for d in plan.orientation_decisions if d.national_id]
    if not known:
        raise BuildError([_problem("$.orientation_decisions", "sdo-no-decision",
                                   "aucune décision d'orientation reçue du SI-SDO (idNat_Decision) pour cette personne",
                                   "no orientation decision received from the SI-SDO")])
    in_force = [d for d in known if d.validity.start <= day <= d.validity.end]
    return max(in_force or known, key=lambda d: d.decision_date)


def _status(plan: Plan) -> tuple[str, dt.date]:
    if plan.status is PlanStatus.draft:
        return "41", plan.established_on
    if plan.status is PlanStatus.closed:
        return "48", plan.period.end or plan.established_on
    return "47", plan.period.start or plan.established_on


def build_status(plan: Plan, context: BuildContext) -> bytes:
    from connectors.viatrajectoire import ResourceError, StatusReport, build_status_task

    decision = decision_for(plan, context.now.date())
    code, day = _status(plan)
    try:
        task = build_status_task(StatusReport(
            structure=context.tenant_finess or plan.platform.finess, esms_name=plan.platform.name,
            decision_number=decision.decision_number, national_decision_id=decision.national_id,
            status=code, status_date=day), now=context.now)
    except ResourceError as exc:
        raise BuildError([_problem("$", "sdo-status", str(exc), str(exc))]) from None
    return orjson.dumps(task)


def build_consent(plan: Plan, context: BuildContext) -> bytes:
    from connectors.viatrajectoire import ResourceError
    from connectors.viatrajectoire import build_consent as consent

    decision = decision_for(plan, context.now.date())
    agreed = [a for a in plan.agreements if a.party.value == "person"]
    if not agreed:
        raise BuildError([_problem("$.agreements", "sdo-no-person-agreement",
                                   "l'accord de la personne n'est pas recueilli : rien à transmettre au SI-SDO",
                                   "the person's agreement is not on file")])
    try:
        resource = consent(structure=context.tenant_finess or plan.platform.finess,
                           national_decision_id=decision.national_id,
                           collected_on=max(a.date for a in agreed), now=context.now)
    except ResourceError as exc:
        raise BuildError([_problem("$", "sdo-consent", str(exc), str(exc))]) from None
    return orjson.dumps(resource)


@cache
def _validator():
    from gateway.conformance.fhir.rules import RuleSet
    from gateway.conformance.fhir.validator import Validator

    raw = resources.files("mappings.fhir.profiles").joinpath(RULES).read_bytes()
    return Validator(RuleSet(orjson.loads(raw)))


def _against(profile: str):
    def validate(payload: bytes) -> list[Problem]:
        try:
            resource = loads_object(payload)
        except JsonInputError as exc:
            return [exc.problem]
        # Judged against the pinned 4.0.7 profile whatever older names meta.profile also claims.
        return _validator().validate(resource, SDO + profile)

    return validate


register(PayloadKind(name="sdo-status", content_type=FHIR_JSON, build=build_status,
                     validate=_against("esms-task")))
register(PayloadKind(name="sdo-consent", content_type=FHIR_JSON, build=build_consent,
                     validate=_against("esms-consent")))
