"""Plan → TDDUI 2.2.0 transaction Bundle (issue 4 item 1; specs §1.1–§1.3).

One `transaction` Bundle (tddui-bundle), every entry `request.method = POST` and `request.url` =
the resource type (specs §11.2: the official examples wrongly put profile names there);
`fullUrl` = `urn:uuid:` + uuid5 of the element's business identifier, and references point at
those fullUrls, so one plan always gives the same Bundle (`now` only sets `Bundle.timestamp`).
The pinned version is recorded in every `meta.profile` (`…|2.2.0`).
"""

from __future__ import annotations

import datetime as dt

from gateway.model import Plan
from mappings.fhir.tddui import actors, careplan, encounters, goals, patient, questionnaire, tasks
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import meta
from mappings.fhir.tddui.context import build


# Actors shared by every sync of every person (the person, the platform, its professionals,
# the representatives) are conditional creates on their business identifier (FHIR R4
# http.html#ccreate, still TDDUI's POST-only flux 1): a re-sync or a resend after a crash does
# not duplicate them at the consumer, and other flows (cercle de soins) can find them again.
_SHARED = {"Patient", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson"}


def _entry(url: str, resource: dict) -> dict:
    request = {"method": "POST", "url": resource["resourceType"]}
    if resource["resourceType"] in _SHARED and resource.get("identifier"):
        first = resource["identifier"][0]
        if first.get("system") and first.get("value"):
            request["ifNoneExist"] = f"identifier={first['system']}|{first['value']}"
    return {"fullUrl": url, "resource": resource, "request": request}


def plan_to_bundle(plan: Plan, now: dt.datetime) -> dict:
    """The TDDUI Bundle (a JSON-ready dict) of a valid plan."""
    ctx = build(plan)
    entries = [_entry(url, res) for url, res in actors.organizations(ctx)]
    for pro in plan.professionals:
        entries.append(_entry(ctx.url("practitioner", pro.id), actors.practitioner(ctx, pro)))
        entries.append(_entry(ctx.url("role", pro.id), actors.practitioner_role(ctx, pro)))
    entries.append(_entry(ctx.patient, patient.patient(ctx)))
    for rep in plan.person.representatives:
        entries.append(_entry(ctx.url("representative", rep.id), patient.related_person(ctx, rep)))
    entries.append(_entry(ctx.careplan, careplan.careplan(ctx)))
    for agreement in plan.agreements:
        entries.append(_entry(ctx.url("agreement", agreement.id), careplan.consent(ctx, agreement)))
    for kind, items, make in (
        ("need", plan.needs, goals.need),
        ("expectation", plan.expectations, goals.expectation),
        ("objective", plan.objectives, goals.objective),
        ("action", plan.actions, tasks.action),
        ("service", plan.services, tasks.service),
        ("stay", plan.stays, encounters.stay),
        ("event", plan.events, encounters.event),
        ("evaluation", plan.evaluations, questionnaire.evaluation),
    ):
        for item in items:
            entries.append(_entry(ctx.url(kind, item.id), make(ctx, item)))
    return {
        "resourceType": "Bundle",
        "meta": meta(c.P_BUNDLE),
        "type": "transaction",
        "timestamp": now.isoformat(timespec="seconds"),
        "entry": entries,
    }
