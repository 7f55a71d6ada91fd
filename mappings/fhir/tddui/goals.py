"""Needs, expectations and objectives (TDDUI 2.2.0 tddui-service-request-besoin,
tddui-goal-attente, tddui-goal-objectif; specs §1.3)."""

from __future__ import annotations

from gateway.model.plan import Expectation, Need, Objective
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import (
    Node,
    code_of,
    concept,
    discriminator,
    meta,
    plan_element,
    put,
    read_plan_element,
)
from mappings.fhir.tddui.context import Ctx
from mappings.serafin import nomenclature

_NEED_EXTRA = ("level", "method", "tool")
_EXPECTATION_EXTRA = ("expressed_on",)
_OBJECTIVE_EXTRA = ("outcome_note",)


def _careplan_ref(ctx: Ctx) -> dict:
    return {"url": c.X_CAREPLAN_REF, "valueReference": {"reference": ctx.careplan}}


def _life_domain(value: str) -> list[dict]:
    return [concept(c.CS_LIFE_DOMAIN, value)]


def _note(code: str, text: str | None) -> list[dict]:
    return [{"extension": [discriminator(code)], "text": text}] if text else []


# ServiceRequest besoin: category = SERAFIN-PH 1.x (JDV_J285), code.text = description,
# orderDetail.text = professional analysis, basedOn = the CarePlan (SD service-request-besoin).
def need(ctx: Ctx, item: Need) -> dict:
    label = nomenclature().get(item.code)
    res: dict = {"resourceType": "ServiceRequest", "meta": meta(c.P_NEED)}
    extra = plan_element(item, _NEED_EXTRA)
    if extra:
        res["extension"] = [extra]
    system, code = c.ID_NEED
    res["identifier"] = [{"system": system, "value": ctx.business(code, item.id)}]
    res["basedOn"] = [{"reference": ctx.careplan}]
    res["status"] = "active"
    res["intent"] = "plan"
    res["category"] = [concept(c.SERAFIN, item.code, label.label if label else None)]
    res["code"] = {"text": item.description}
    if item.analysis:
        res["orderDetail"] = [{"text": item.analysis}]
    res["subject"] = {"reference": ctx.patient}
    res["authoredOn"] = item.assessed_on.isoformat()
    if item.assessor_id:
        res["requester"] = {"reference": ctx.url("practitioner", item.assessor_id)}
    return res


def expectation(ctx: Ctx, item: Expectation) -> dict:
    res: dict = {"resourceType": "Goal", "meta": meta(c.P_EXPECTATION)}
    extensions = [_careplan_ref(ctx)]
    extra = plan_element(item, _EXPECTATION_EXTRA)
    if extra:
        extensions.append(extra)
    res["extension"] = extensions
    system, code = c.ID_EXPECTATION
    res["identifier"] = [{"system": system, "value": ctx.business(code, item.id)}]
    res["lifecycleStatus"] = "active"
    res["category"] = _life_domain(item.life_domain.value)
    res["description"] = {"text": item.text}
    res["subject"] = {"reference": ctx.patient}
    res["note"] = (_note("origineAttente", c.EXPRESSED_BY_TEXT[item.expressed_by.value])
                   + _note("commentaireAttente", item.comment))
    return res


def objective(ctx: Ctx, item: Objective) -> dict:
    res: dict = {"resourceType": "Goal", "meta": meta(c.P_OBJECTIVE)}
    extensions = [_careplan_ref(ctx)]
    extra = plan_element(item, _OBJECTIVE_EXTRA)
    if extra:
        extensions.append(extra)
    res["extension"] = extensions
    system, code = c.ID_OBJECTIVE
    res["identifier"] = [{"system": system, "value": ctx.business(code, item.id)}]
    res["lifecycleStatus"] = item.status.value  # SD: ENPREPARATION→planned, ACTIF→active, …
    if item.outcome is not None:
        if item.outcome.value in c.OUTCOME:
            res["achievementStatus"] = concept(c.GOAL_ACHIEVEMENT, c.OUTCOME[item.outcome.value])
        else:  # partially_achieved: no goal-achievement code (binding is only `preferred`)
            res["achievementStatus"] = concept(c.CS_OUTCOME, item.outcome.value)
    res["category"] = _life_domain(item.life_domain.value)
    res["description"] = {"text": item.description}
    res["subject"] = {"reference": ctx.patient}
    if item.start_date:
        res["startDate"] = item.start_date.isoformat()
    target: dict = {}
    if item.expected_result:
        # R4 gol-1: a target detail needs a measure; the guide's own pattern (tddui-goal-projet-vie)
        # is a measure carrying only a data-absent-reason.
        target["measure"] = {"extension": [{"url": c.X_DATA_ABSENT, "valueCode": "not-applicable"}]}
        target["detailString"] = item.expected_result
    if item.target_date:
        target["dueDate"] = item.target_date.isoformat()
    if target:
        res["target"] = [target]
    put(res, "addresses", [{"reference": ctx.url("need", ref)} for ref in item.need_ids])
    res["note"] = (_note("titreObjectif", item.title) + _note("avisUsagerObjectif", item.person_opinion)
                   + _note("strategieMiseEnOeuvreObjectif", item.strategy))
    return res


# ------------------------------------------------------------------------------ import


def _extras(node: Node, model) -> dict:
    out: dict = {}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, model))
    for ext in node.extensions(c.X_CAREPLAN_REF):
        ext.mark()
    return out


def read_need(node: Node, local_id: str) -> dict:
    out = {"id": local_id, **_extras(node, Need)}
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_NEED[0]:
            ident.mark()
    for key in ("basedOn", "status", "intent", "subject"):
        node.take(key)
    categories = node.nodes("category")
    if categories:
        code = code_of(categories[0], c.SERAFIN)
        if code:
            out["code"] = code
    code_node = node.node("code")
    if code_node is not None and code_node.peek("text"):
        out["description"] = code_node.get("text")
    details = node.nodes("orderDetail")
    if details and details[0].peek("text"):
        out["analysis"] = details[0].get("text")
    authored = node.get("authoredOn")
    if authored:
        out["assessed_on"] = authored[:10]
    return out


def note_texts(node: Node) -> dict[str, str]:
    """Goal.note slices by their tddui-discriminator code (2.2.0 system, or the older `-cs` one)."""
    out: dict[str, str] = {}
    systems = (c.CS_DISCRIMINATOR, *[old for old, new in c.LEGACY_CODE_SYSTEMS.items() if new == c.CS_DISCRIMINATOR])
    for note in node.nodes("note"):
        for ext in note.extensions(c.X_DISCRIMINATOR):
            code = code_of(ext.node("valueCodeableConcept"), systems)
            if code and note.peek("text") and code not in out:
                ext.mark()
                out[code] = note.get("text")
    return out


def _life_domain_of(node: Node) -> str | None:
    for cat in node.nodes("category"):
        code = code_of(cat, c.CS_LIFE_DOMAIN)
        if code:
            return code
    return None


def read_expectation(node: Node, local_id: str) -> dict:
    out = {"id": local_id, **_extras(node, Expectation)}
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_EXPECTATION[0]:
            ident.mark()
    for key in ("lifecycleStatus", "subject"):
        node.take(key)
    domain = _life_domain_of(node)
    if domain:
        out["life_domain"] = domain
    desc = node.node("description")
    if desc is not None and desc.peek("text"):
        out["text"] = desc.get("text")
    notes = note_texts(node)
    if "origineAttente" in notes:
        out["expressed_by"] = notes["origineAttente"]  # free text: matched by the import
    if "commentaireAttente" in notes:
        out["comment"] = notes["commentaireAttente"]
    return out


def read_objective(node: Node, local_id: str) -> dict:
    out = {"id": local_id, **_extras(node, Objective)}
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_OBJECTIVE[0]:
            ident.mark()
    node.take("subject")
    status = node.get("lifecycleStatus")
    if status:
        out["status"] = status
    achievement = node.node("achievementStatus")
    if achievement is not None:
        code = code_of(achievement, c.CS_OUTCOME)
        if code is None:
            code = {v: k for k, v in c.OUTCOME.items()}.get(code_of(achievement, c.GOAL_ACHIEVEMENT) or "")
        if code:
            out["outcome"] = code
    domain = _life_domain_of(node)
    if domain:
        out["life_domain"] = domain
    desc = node.node("description")
    if desc is not None and desc.peek("text"):
        out["description"] = desc.get("text")
    start = node.get("startDate")
    if start:
        out["start_date"] = start
    for target in node.nodes("target"):
        if target.peek("detailString"):
            out["expected_result"] = target.get("detailString")
            measure = target.node("measure")
            if measure is not None and [e.get("url") for e in measure.data.get("extension", [])] == [c.X_DATA_ABSENT]:
                measure.mark()
        if target.peek("dueDate"):
            out["target_date"] = target.get("dueDate")
    notes = note_texts(node)
    for code, field in (("titreObjectif", "title"), ("avisUsagerObjectif", "person_opinion"),
                        ("strategieMiseEnOeuvreObjectif", "strategy")):
        if code in notes:
            out[field] = notes[code]
    return out
