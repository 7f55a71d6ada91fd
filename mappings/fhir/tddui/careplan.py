"""The personalised project: CarePlan (TDDUI 2.2.0 tddui-careplan-projet-personnalise) and the
agreements it rests on (tddui-consent-accord); specs §1.2, §1.3."""

from __future__ import annotations

from gateway.model.plan import Agreement, Plan
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import (
    Node,
    concept,
    discriminator,
    meta,
    period,
    plan_element,
    put,
    read_plan_element,
)
from mappings.fhir.tddui.context import Ctx

# Plan fields without a CarePlan element (TDDUI 2.2.0 has no life-project Goal: that profile,
# tddui-goal-projet-vie, first appears in 2.3.0-ballot).
PLAN_EXTRA = ("version_label", "next_review", "reviews", "specialisations", "orientation_decisions",
              "life_project", "participation", "consent_refs")


def careplan(ctx: Ctx) -> dict:
    plan = ctx.plan
    res: dict = {"resourceType": "CarePlan", "meta": meta(c.P_CAREPLAN)}
    extra = plan_element(plan, PLAN_EXTRA)
    if extra:
        res["extension"] = [extra]
    system, code = c.ID_CAREPLAN
    res["identifier"] = [{"system": system, "value": ctx.business(code, plan.id)}]
    res["status"] = c.CAREPLAN_STATUS[plan.status.value]
    # validated and agreed are both `active`: the exact plan status rides on the element.
    res["_status"] = {"extension": [{"url": c.X_RELAIS_PLAN_STATUS, "valueCode": plan.status.value}]}
    res["intent"] = "plan"
    if plan.category_code:
        res["category"] = [concept(c.CAREPLAN_CATEGORY, plan.category_code)]
    res["title"] = plan.title
    res["subject"] = {"reference": ctx.patient}
    put(res, "period", period(plan.period.start, plan.period.end))
    res["created"] = plan.established_on.isoformat()
    coordinator = plan.platform.coordinator
    author: dict = {"reference": ctx.url("role", coordinator.professional_id)}
    if coordinator.since:
        author["extension"] = [{"url": c.X_RELAIS_COORDINATOR_SINCE, "valueDate": coordinator.since.isoformat()}]
    res["author"] = author
    # supportingInfo:accordUsager / :accordStructure, discriminated by tddui-discriminator
    support = []
    for agreement in plan.agreements:
        slice_code = "accordStructure" if agreement.party.value == "structure" else "accordUsager"
        support.append({"extension": [discriminator(slice_code)],
                        "reference": ctx.url("agreement", agreement.id)})
    put(res, "supportingInfo", support)
    if plan.notes:
        res["note"] = [{"text": plan.notes}]
    return res


def _performer(ctx: Ctx, agreement: Agreement) -> str:
    if agreement.performer_kind == "person":
        return ctx.patient
    if agreement.performer_kind == "representative":
        return ctx.url("representative", agreement.performer_id)
    return ctx.url("practitioner", agreement.performer_id)


def consent(ctx: Ctx, agreement: Agreement) -> dict:
    # As the official consent example: scope patient-privacy, LOINC 59284-0, CNSA policy; R4
    # ppc-2 asks for `patient` with that scope (the example omits it).
    res: dict = {"resourceType": "Consent", "meta": meta(c.P_CONSENT)}
    span = period(agreement.period.start, agreement.period.end)
    if span:
        res["extension"] = [{"url": c.X_CONSENT_PERIOD, "valuePeriod": span}]
    res["identifier"] = [{"system": c.ID_RELAIS_AGREEMENT,
                          "value": ctx.business(c.ID_AGREEMENT_CODE, agreement.id)}]
    res["status"] = "active"
    res["scope"] = concept(c.CONSENT_SCOPE, "patient-privacy")
    res["category"] = [concept(c.LOINC, "59284-0")]
    res["patient"] = {"reference": ctx.patient}
    res["dateTime"] = agreement.date.isoformat()
    res["performer"] = [{"reference": _performer(ctx, agreement)}]
    res["policy"] = [{"authority": c.CNSA}]
    return res


# ------------------------------------------------------------------------------ import


def read_careplan(node: Node) -> dict:
    """Plan fields of the CarePlan (references are resolved by the import)."""
    out: dict = {}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Plan))
    node.take("intent")
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_CAREPLAN[0]:
            ident.mark()
    title = node.get("title")
    if title:
        out["title"] = title
    categories = node.nodes("category")
    if categories:
        for cod in categories[0].nodes("coding"):
            if cod.peek("system") == c.CAREPLAN_CATEGORY and cod.peek("code"):
                cod.mark()
                out["category_code"] = cod.data["code"]
    span = node.node("period")
    if span is not None:
        out["period"] = {k: span.get(k) for k in ("start", "end") if span.peek(k)}
    created = node.get("created")
    if created:
        out["established_on"] = created[:10]
    notes = node.nodes("note")
    if notes and notes[0].peek("text"):
        out["notes"] = notes[0].get("text")
    return out


def plan_status(node: Node) -> tuple[str | None, str | None]:
    """(plan status, FHIR status): the Relais extension when present, else from the table."""
    fhir_status = node.get("status")
    element = node.node("_status")
    if element is not None:
        for ext in element.extensions(c.X_RELAIS_PLAN_STATUS):
            if ext.peek("valueCode") in c.CAREPLAN_STATUS and c.CAREPLAN_STATUS[ext.data["valueCode"]] == fhir_status:
                ext.mark()
                return ext.data["valueCode"], fhir_status
    reverse = {"draft": "draft", "active": "validated", "on-hold": "suspended", "completed": "closed",
               "revoked": "closed"}
    return reverse.get(fhir_status), fhir_status


def read_consent(node: Node, local_id: str) -> dict:
    out: dict = {"id": local_id}
    for ext in node.extensions(c.X_CONSENT_PERIOD):
        span = ext.node("valuePeriod")
        if span is not None:
            ext.get("url")
            out["period"] = {k: span.get(k) for k in ("start", "end") if span.peek(k)}
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_RELAIS_AGREEMENT:
            ident.mark()
    for key in ("status", "patient"):
        node.take(key)
    scope = node.node("scope")
    if scope is not None and any(cd.get("code") == "patient-privacy" for cd in scope.data.get("coding", [])):
        scope.mark()
    for cat in node.nodes("category"):
        if any(cd.get("system") == c.LOINC and cd.get("code") == "59284-0" for cd in cat.data.get("coding", [])):
            cat.mark()
    for pol in node.nodes("policy"):
        if pol.peek("authority") == c.CNSA and len(pol.data) == 1:
            pol.mark()
    when = node.get("dateTime")
    if when:
        out["date"] = when
    return out

