"""SERAFIN evaluations: QuestionnaireResponse (TDDUI 2.2.0 tddui-questionnaire-response) answering
the Questionnaire `tddui-questionnaire-serafin` (specs §1.2, §1.3)."""

from __future__ import annotations

from gateway.model.plan import SerafinEvaluation
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import Node, meta
from mappings.fhir.tddui.context import Ctx
from mappings.serafin import nomenclature

_STATUS = {"completed": "completed", "in_progress": "in-progress"}


def link_id(code: str) -> str:
    return c.SERAFIN_LINK_IDS.get(code) or f"{c.FALLBACK_LINK_PREFIX}{code}"


def code_of_link(link: str) -> str | None:
    if link in c.CODE_BY_LINK_ID:
        return c.CODE_BY_LINK_ID[link]
    if link.startswith(c.FALLBACK_LINK_PREFIX):
        return link[len(c.FALLBACK_LINK_PREFIX):]
    return None


def evaluation(ctx: Ctx, item: SerafinEvaluation) -> dict:
    system, code = c.ID_EVALUATION
    terms = nomenclature()
    items = []
    for answer in item.items:
        entry: dict = {}
        if answer.comment:
            entry["extension"] = [{"url": c.X_COMMENT, "valueString": answer.comment}]
        entry["linkId"] = link_id(answer.code)
        concept = terms.get(answer.code)
        if concept is not None:
            entry["text"] = concept.label
        entry["answer"] = [{"valueInteger": answer.value}]
        items.append(entry)
    res: dict = {
        "resourceType": "QuestionnaireResponse",
        "meta": meta(c.P_EVALUATION),
        "identifier": {"system": system, "value": ctx.business(code, item.id)},
        "questionnaire": c.QUESTIONNAIRE_SERAFIN,
        "status": _STATUS[item.status],
        "subject": {"reference": ctx.patient},
        "authored": item.date.isoformat(),
    }
    if item.assessor_id:  # source = Évaluateur (SD questionnaire-response mapping)
        res["source"] = {"reference": ctx.url("practitioner", item.assessor_id)}
    res["item"] = items
    return res


def is_serafin(node: Node) -> bool:
    return (node.peek("questionnaire") or "").split("|")[0] == c.QUESTIONNAIRE_SERAFIN


def read_evaluation(node: Node, local_id: str) -> tuple[dict, str | None, list[tuple[str, str]]]:
    """(evaluation fields, assessor reference, unreadable items as (path, linkId))."""
    out: dict = {"id": local_id, "items": []}
    ident = node.node("identifier")
    if ident is not None and ident.peek("system") == c.ID_EVALUATION[0]:
        ident.mark()
    node.take("questionnaire")
    node.take("subject")
    status = node.get("status")
    if status:
        out["status"] = {v: k for k, v in _STATUS.items()}.get(status, status)
    authored = node.get("authored")
    if authored:
        out["date"] = authored[:10]
    source = node.node("source")
    assessor = source.get("reference") if source is not None else None
    unreadable = []
    for item in node.nodes("item"):
        code = code_of_link(item.peek("linkId") or "")
        answers = item.nodes("answer")
        if code is None or len(answers) != 1 or not isinstance(answers[0].peek("valueInteger"), int):
            unreadable.append((item.path, item.peek("linkId")))
            continue
        item.get("linkId")
        item.take("text")
        answers[0].mark()
        entry = {"code": code, "value": answers[0].data["valueInteger"]}
        for ext in item.extensions(c.X_COMMENT):
            if ext.peek("valueString"):
                ext.mark()
                entry["comment"] = ext.data["valueString"]
        out["items"].append(entry)
    return out, assessor, unreadable
