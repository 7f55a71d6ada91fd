"""Actions and planned services (TDDUI 2.2.0 tddui-task-action, tddui-task-prestation with the
SERAFIN-PH 2.x/3.x `typePrestation` input; specs §1.3)."""

from __future__ import annotations

from gateway.model.plan import Action, Provider, Service
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import (
    Node,
    code_of,
    concept,
    meta,
    period,
    plan_element,
    put,
    read_plan_element,
)
from mappings.fhir.tddui.context import Ctx
from mappings.serafin import nomenclature

_SERVICE_EXTRA = ("modality", "place", "intensity")
_PROVIDER_EXTRA = ("kind",)


def _input(system: str, code: str, key: str, value) -> dict:
    return {"type": concept(system, code), key: value}


def action(ctx: Ctx, item: Action) -> dict:
    system, code = c.ID_ACTION
    res: dict = {"resourceType": "Task", "meta": meta(c.P_ACTION),
                 "identifier": [{"system": system, "value": ctx.business(code, item.id)}],
                 "basedOn": [{"reference": ctx.careplan}],
                 "status": c.TASK_STATUS[item.status.value],
                 "intent": "plan"}
    put(res, "description", item.description)
    res["for"] = {"reference": ctx.patient}
    put(res, "executionPeriod", period(item.period.start, item.period.end))
    owner: dict = {}
    if item.owner_id:
        owner["reference"] = ctx.url("practitioner", item.owner_id)
    put(owner, "display", item.owner_label)  # as the IME example: "AESH" as display text
    put(res, "owner", owner)
    inputs = [_input(c.CS_TASK_ACTION, "titre", "valueString", item.title)]
    if item.person_opinion:
        inputs.append(_input(c.CS_TASK_ACTION, "avisUsager", "valueString", item.person_opinion))
    if item.expected_result:
        inputs.append(_input(c.CS_TASK_ACTION, "resultatAttendu", "valueString", item.expected_result))
    for ref in item.objective_ids:
        inputs.append(_input(c.CS_TASK_ACTION, "objectif", "valueReference",
                             {"reference": ctx.url("objective", ref)}))
    res["input"] = inputs
    return res


def service(ctx: Ctx, item: Service) -> dict:
    system, code = c.ID_SERVICE
    res: dict = {"resourceType": "Task", "meta": meta(c.P_SERVICE)}
    extensions = [{"url": c.X_RELAIS_OBJECTIVE, "valueReference": {"reference": ctx.url("objective", ref)}}
                  for ref in item.objective_ids]  # the profile has no objective input
    extra = plan_element(item, _SERVICE_EXTRA)
    if extra:
        extensions.append(extra)
    put(res, "extension", extensions)
    res["identifier"] = [{"system": system, "value": ctx.business(code, item.id)}]
    res["basedOn"] = [{"reference": ctx.careplan}]
    if item.action_id:
        res["partOf"] = [{"reference": ctx.url("action", item.action_id)}]
    res["status"] = c.TASK_STATUS[item.status.value]
    res["intent"] = "plan"
    put(res, "description", item.description)
    res["for"] = {"reference": ctx.patient}
    put(res, "executionPeriod", period(item.period.start, item.period.end))
    res["owner"] = _provider(item.provider)
    label = nomenclature().get(item.code)
    res["input"] = [
        _input(c.CS_TASK_SERVICE, "titre", "valueString", item.title),
        _input(c.CS_TASK_SERVICE, "typePrestation", "valueCodeableConcept",
               concept(c.SERAFIN, item.code, label.label if label else None)),
    ]
    return res


def _provider(provider: Provider) -> dict:
    owner: dict = {}
    extra = plan_element(provider, _PROVIDER_EXTRA)
    if extra:
        owner["extension"] = [extra]
    if provider.identifier is not None:
        owner["identifier"] = {"system": c.IDENTIFIER_SYSTEMS[provider.identifier.system.value],
                               "value": provider.identifier.value}
    owner["display"] = provider.name
    return owner


# ------------------------------------------------------------------------------ import


def _inputs(node: Node, systems: tuple[str, ...]) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in node.nodes("input"):
        code = code_of(item.node("type"), systems)
        if code is None:
            continue
        for key in ("valueString", "valueReference", "valueCodeableConcept"):
            if item.peek(key) is not None:
                out.setdefault(code, []).append((item, key))
                break
    return out


def _systems(current: str) -> tuple[str, ...]:
    return (current, *[old for old, new in c.LEGACY_CODE_SYSTEMS.items() if new == current])


def read_common(node: Node, out: dict) -> None:
    status = node.get("status")
    if status:
        out["status"] = {v: k for k, v in c.TASK_STATUS.items()}.get(status, status)
    node.take("intent")
    node.take("basedOn")
    node.take("for")
    if node.peek("description"):
        out["description"] = node.get("description")
    span = node.node("executionPeriod")
    if span is not None:
        out["period"] = {k: span.get(k)[:10] for k in ("start", "end") if span.peek(k)}


def read_action(node: Node, local_id: str) -> tuple[dict, list[str], str | None]:
    """(action fields, objective references, owner reference)."""
    out: dict = {"id": local_id}
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_ACTION[0]:
            ident.mark()
    read_common(node, out)
    inputs = _inputs(node, _systems(c.CS_TASK_ACTION))
    for code, field in (("titre", "title"), ("avisUsager", "person_opinion"), ("resultatAttendu", "expected_result")):
        if code in inputs:
            item, key = inputs[code][0]
            item.mark()
            out[field] = item.data[key]
    objective_refs = []
    for item, key in inputs.get("objectif", []):
        if key == "valueReference" and item.data[key].get("reference"):
            item.mark()
            objective_refs.append(item.data[key]["reference"])
    owner_ref = None
    owner = node.node("owner")
    if owner is not None:
        owner_ref = owner.get("reference")
        if owner.peek("display"):
            out["owner_label"] = owner.get("display")
    return out, objective_refs, owner_ref


def read_service(node: Node, local_id: str) -> tuple[dict, list[str], str | None]:
    """(service fields, objective references, action reference)."""
    out: dict = {"id": local_id}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Service))
    objective_refs = []
    for ext in node.extensions(c.X_RELAIS_OBJECTIVE):
        value = ext.node("valueReference")
        if value is not None and value.peek("reference"):
            ext.mark()
            objective_refs.append(value.data["reference"])
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_SERVICE[0]:
            ident.mark()
    read_common(node, out)
    action_ref = None
    parts = node.nodes("partOf")
    if parts and parts[0].peek("reference"):
        action_ref = parts[0].get("reference")
    inputs = _inputs(node, _systems(c.CS_TASK_SERVICE))
    if "titre" in inputs:
        item, key = inputs["titre"][0]
        item.mark()
        out["title"] = item.data[key]
    for item, key in inputs.get("typePrestation", [])[:1]:
        code = code_of(item.node(key), c.SERAFIN)
        if code:
            item.get("type")
            out["code"] = code
    owner = node.node("owner")
    if owner is not None:
        provider: dict = {}
        for ext in owner.extensions(c.X_RELAIS_PLAN):
            ext.get("url")
            provider.update(read_plan_element(ext, Provider))
        ident = owner.node("identifier")
        systems = {v: k for k, v in c.IDENTIFIER_SYSTEMS.items()}
        if ident is not None and ident.peek("system") in systems and ident.peek("value"):
            provider["identifier"] = {"system": systems[ident.get("system")], "value": ident.get("value")}
        if owner.peek("display"):
            provider["name"] = owner.get("display")
        provider.setdefault("kind", "platform_team" if "identifier" not in provider else "specialised_partner")
        out["provider"] = provider
    return out, objective_refs, action_ref
