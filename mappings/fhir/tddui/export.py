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


def _entry(url: str, resource: dict) -> dict:
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


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
