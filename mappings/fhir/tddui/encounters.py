"""Stays and delivered events (TDDUI 2.2.0 tddui-encounter-sejour, tddui-encounter-evenement with
its `serafin` type slice; specs §1.2, §1.3)."""

from __future__ import annotations

from gateway.model.plan import Event, Stay
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import (
    Node,
    code_of,
    coding,
    concept,
    meta,
    period,
    plan_element,
    read_plan_element,
)
from mappings.fhir.tddui.context import Ctx
from mappings.serafin import nomenclature

_STAY_EXTRA = ("modality",)
# Transport: the guide's tddui-task-transport-{usager,professionnel} say *who* travelled; the
# plan does not, so distance and duration stay on the event (Relais plan-element).
_EVENT_EXTRA = ("modality", "place", "cancel_reason", "transport_km", "transport_minutes")


def _class(modality: str | None, place: str | None) -> dict:
    if place == "home" or modality == "ordinary_environment" and place is None:
        code = "HH"
    elif modality in c.HOUSED:
        code = "NONAC"
    else:
        code = "AMB"
    return coding(c.ACT_CODE, code)


def _simple(url: str, key: str, value) -> dict:
    return {"url": url, key: value}


def stay(ctx: Ctx, item: Stay) -> dict:
    system, code = c.ID_STAY
    extensions = []
    if item.admission_date:
        extensions.append(_simple(c.X_ADMISSION_DATE, "valueDateTime", item.admission_date.isoformat()))
    if item.entry_mode:
        extensions.append(_simple(c.X_ENTRY_MODE, "valueString", item.entry_mode))
    if item.exit_mode:
        extensions.append(_simple(c.X_EXIT_MODE, "valueString", item.exit_mode))
    if item.comment:
        extensions.append(_simple(c.X_COMMENT, "valueString", item.comment))
    extra = plan_element(item, _STAY_EXTRA)
    if extra:
        extensions.append(extra)
    res: dict = {"resourceType": "Encounter", "meta": meta(c.P_STAY)}
    if extensions:
        res["extension"] = extensions
    res["identifier"] = [{
        "type": {"coding": [coding(c.CS_ENCOUNTER_ID, "SEJ", "Identifiant du séjour")]},
        "system": system, "value": ctx.business(code, item.id)}]
    res["status"] = "finished" if item.period.end else "in-progress"  # derived, not carried
    res["class"] = _class(item.modality.value if item.modality else None, None)
    res["subject"] = {"reference": ctx.patient}
    span = period(item.period.start, item.period.end)
    if span:
        res["period"] = span
    res["serviceProvider"] = {"reference": ctx.organization}
    return res


def event(ctx: Ctx, item: Event) -> dict:
    system, code = c.ID_EVENT
    extensions = []
    if item.service_id:
        extensions.append({"url": c.X_RELAIS_SERVICE, "valueReference": {"reference": ctx.url("service", item.service_id)}})
    if item.label:
        extensions.append(_simple(c.X_EVENT_LABEL, "valueString", item.label))
    if item.report:
        extensions.append(_simple(c.X_EVENT_REPORT, "valueString", item.report))
    if item.outside_plan:
        extensions.append(_simple(c.X_OUTSIDE_SERVICE, "valueBoolean", True))
    extensions.append(_simple(c.X_PATIENT_PRESENT, "valueBoolean", item.person_present))
    extra = plan_element(item, _EVENT_EXTRA)
    if extra:
        extensions.append(extra)
    label = nomenclature().get(item.code)
    res: dict = {
        "resourceType": "Encounter", "meta": meta(c.P_EVENT), "extension": extensions,
        "identifier": [{"type": concept(c.CS_FRCORE_ID_TYPE, "VN"), "system": system,
                        "value": ctx.business(code, item.id)}],
        "status": c.EVENT_STATUS[item.status.value],
        "class": _class(item.modality.value if item.modality else None, item.place.value if item.place else None),
        # type:serafin — system fixed to the SERAFIN-PH terminology, families 2 and 3
        "type": [concept(c.SERAFIN, item.code, label.label if label else None)],
        "subject": {"reference": ctx.patient},
    }
    participants = [{"type": [concept(c.PARTICIPATION_TYPE, "PART")],
                     "individual": {"reference": ctx.url("practitioner", pro)}}
                    for pro in item.professional_ids]
    if participants:
        res["participant"] = participants
    res["period"] = period(item.period.start, item.period.end)
    res["serviceProvider"] = {"reference": ctx.organization}
    if item.stay_id:
        res["partOf"] = {"reference": ctx.url("stay", item.stay_id)}
    return res


# ------------------------------------------------------------------------------ import


def _string_ext(node: Node, url: str, key: str = "valueString"):
    for ext in node.extensions(url):
        if ext.peek(key) is not None:
            ext.mark()
            return ext.data[key]
    return None


def read_stay(node: Node, local_id: str) -> dict:
    out: dict = {"id": local_id}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Stay))
    admission = _string_ext(node, c.X_ADMISSION_DATE, "valueDateTime")
    if admission:
        out["admission_date"] = admission[:10]
    for url, field in ((c.X_ENTRY_MODE, "entry_mode"), (c.X_EXIT_MODE, "exit_mode"), (c.X_COMMENT, "comment")):
        value = _string_ext(node, url)
        if value:
            out[field] = value
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_STAY[0]:
            ident.mark()
    for key in ("status", "class", "subject", "serviceProvider"):
        node.take(key)
    span = node.node("period")
    if span is not None:
        out["period"] = {k: span.get(k)[:10] for k in ("start", "end") if span.peek(k)}
    return out


def read_event(node: Node, local_id: str) -> tuple[dict, dict]:
    """(event fields, references to resolve: service, stay, professionals)."""
    out: dict = {"id": local_id}
    refs: dict = {"professionals": []}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Event))
    for ext in node.extensions(c.X_RELAIS_SERVICE):
        value = ext.node("valueReference")
        if value is not None and value.peek("reference"):
            ext.mark()
            refs["service"] = value.data["reference"]
    for url, field in ((c.X_EVENT_LABEL, "label"), (c.X_EVENT_REPORT, "report")):
        value = _string_ext(node, url)
        if value:
            out[field] = value
    for url, field in ((c.X_OUTSIDE_SERVICE, "outside_plan"), (c.X_PATIENT_PRESENT, "person_present")):
        value = _string_ext(node, url, "valueBoolean")
        if value is not None:
            out[field] = value
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_EVENT[0]:
            ident.mark()
    status = node.get("status")
    if status:
        out["status"] = {v: k for k, v in c.EVENT_STATUS.items()}.get(status, status)
    for key in ("class", "subject", "serviceProvider"):
        node.take(key)
    for kind in node.nodes("type"):
        code = code_of(kind, c.SERAFIN)
        if code and "code" not in out:
            out["code"] = code
    for part in node.nodes("participant"):
        types = [cd.get("code") for t in part.data.get("type", []) for cd in t.get("coding", [])]
        individual = part.node("individual")
        if "PART" in types and individual is not None and individual.peek("reference"):
            part.mark()
            refs["professionals"].append(individual.data["reference"])
    span = node.node("period")
    if span is not None:
        out["period"] = {k: span.get(k) for k in ("start", "end") if span.peek(k)}
    part_of = node.node("partOf")
    if part_of is not None and part_of.peek("reference"):
        refs["stay"] = part_of.get("reference")
    return out, refs
