"""Delivered activity from a TDDUI 2.2.0 Bundle: its `tddui-encounter-evenement` Encounters.

Each evenement becomes one activity (specs §1.3; TDDUI SD encounter-evenement): the DUI's
event id is the tail of its business identifier (`3`+FINESS`/`idUsager`-EVN-`id); the SERAFIN
code is its `type[serafin]`; `status`, `period` as sent. Modality, place and transport travel
in the Relais `plan-element` extension; the planned service in the Relais `service` extension,
a reference to a Task-prestation of the Bundle or of the person's current plan (its TDDUI
fullUrl). Without a modality, `class` HH (home health) reads as the ordinary environment.
Every problem is located by FHIRPath (`Bundle.entry[3].resource.type`). Other resources of the
Bundle are not activity: they are named in one `information` problem each, never stored.
"""

from __future__ import annotations

import datetime as dt
import re

from gateway.activity.model import Source
from gateway.activity.record import (
    ActivityRejected,
    RecordResult,
    check_and_normalise,
    current_plan,
    store_activities,
    timezone,
)
from gateway.conformance.fhir.structure import check_received_bundle
from gateway.model import Plan, Problem, Severity
from gateway.storage import Store, Tenant
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui import encounters
from mappings.fhir.tddui.context import build
from mappings.fhir.tddui.import_ import Reader

SOURCE = f"{c.TDDUI_PACKAGE}#{c.TDDUI_VERSION} (relais-activity)"
# ActivityInput field -> where it sits in an Encounter-evenement
_FHIRPATH = {"id": "identifier", "person": "identifier", "code": "type", "status": "status",
             "start": "period.start", "end": "period.end", "service_id": "extension",
             "modality": "extension", "place": "extension", "transport_km": "extension",
             "transport_minutes": "extension", "person_present": "extension"}
_ITEM_PATH = re.compile(r"^(Bundle\.entry\[\d+\]\.resource)(?:\.([a-z_]+))?(.*)$")


def _problem(location: str, rule: str, message: str, message_en: str,
             severity: Severity = Severity.error) -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=severity, source=SOURCE)


def locate(path: str) -> str:
    """`Bundle.entry[3].resource.code` (a field of the activity) -> `Bundle.entry[3].resource.type`."""
    match = _ITEM_PATH.match(path)
    if match is None or match.group(2) is None:
        return path
    return f"{match.group(1)}.{_FHIRPATH.get(match.group(2), match.group(2))}"


def _event_prefix(plan: Plan) -> str:
    return f"3{plan.platform.finess}/{plan.person.local_id}-{c.ID_EVENT[1]}-"


def persons_in_bundle(bundle: dict) -> set[str]:
    """idUsager of the evenement identifiers of a Bundle (`3`+FINESS`/`idUsager`-EVN-…)."""
    found = set()
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for entry in entries if isinstance(entries, list) else []:  # hostile shapes: no person found
        res = entry.get("resource") if isinstance(entry, dict) else None
        idents = res.get("identifier") if isinstance(res, dict) else None
        for ident in idents if isinstance(idents, list) else []:
            value = ident.get("value") if isinstance(ident, dict) else None
            if not isinstance(value, str) or ident.get("system") != c.ID_EVENT[0]:
                continue
            match = re.fullmatch(r"3[0-9AB]{9}/([A-Za-z0-9._\-]{1,64})-EVN-.+", value)
            if match:
                found.add(match.group(1))
    return found


def bundle_items(bundle: dict, plan: Plan) -> tuple[list[tuple[str, dict]], list[Problem]]:
    """(FHIRPath of the Encounter, activity input) of each evenement, and the problems met."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return [], [_problem("Bundle", "tddui-not-a-bundle", "le document n'est pas un Bundle FHIR",
                             "the document is not a FHIR Bundle")]
    structure = check_received_bundle(bundle)  # FHIR R4 base structure first: the reader trusts its types
    if structure:
        return [], structure
    reader = Reader(bundle)
    reader.read_entries()
    reader.assign_ids(f"3{plan.platform.finess}/{plan.person.local_id}", plan.platform.finess)
    problems = [p for p in reader.problems if p.severity is Severity.error]
    planned = {url: sid for sid, url in build(plan).urls["service"].items()}
    prefix = _event_prefix(plan)
    items = []
    ignored: dict[str, list[str]] = {}
    for entry in reader.entries:
        path = entry.node.path
        if entry.kind != "event":
            if entry.kind not in ("patient", "organization", "practitioner", "role", "service"):
                ignored.setdefault(f"{entry.rtype} ({entry.kind})", []).append(path)
            continue
        fields, refs = encounters.read_event(entry.node, entry.local_id)
        identifiers = [i.get("value") or "" for i in entry.node.data.get("identifier", [])
                       if isinstance(i, dict) and i.get("system") == c.ID_EVENT[0]]
        if not identifiers:
            problems.append(_problem(f"{path}.identifier", "activity-id-missing",
                                     "évènement sans identifiant métier (système EVN) : impossible de le "
                                     "reconnaître s'il est renvoyé", "event without a business identifier"))
            continue
        if not identifiers[0].startswith(prefix):
            problems.append(_problem(f"{path}.identifier", "activity-person-mismatch",
                                     f"évènement d'une autre personne ou structure ({identifiers[0]})",
                                     "event of another person or structure"))
            continue
        item = {"id": identifiers[0][len(prefix):][:64], "code": fields.get("code"),
                "status": fields.get("status", "finished")}
        period = fields.get("period") or {}
        item["start"], item["end"] = period.get("start"), period.get("end")
        for key in ("modality", "place", "transport_km", "transport_minutes", "person_present"):
            if fields.get(key) is not None:
                item[key] = fields[key]
        service = refs.get("service")
        if service:
            linked = reader.resolve(service, "service")
            service_id = linked.local_id if linked is not None else planned.get(service)
            if service_id is None:
                problems.append(_problem(f"{path}.extension", "tddui-reference-unresolved",
                                         f"prestation {service} introuvable (ni dans le Bundle ni dans le projet "
                                         "courant) : activité non rattachée", "planned service not found",
                                         Severity.warning))
            else:
                item["service_id"] = service_id
        if "modality" not in item and "service_id" not in item:
            klass = (entry.node.data.get("class") or {}).get("code")
            if klass == "HH":
                item["modality"] = "ordinary_environment"
        items.append((path, {k: v for k, v in item.items() if v is not None}))
    for what, paths in ignored.items():
        problems.append(_problem(paths[0], "activity-resource-ignored",
                                 f"{len(paths)} ressource(s) {what} : pas une activité réalisée, ignorée(s)",
                                 f"{len(paths)} {what} resource(s): not delivered activity, ignored",
                                 Severity.information))
    if not items and not problems:
        problems.append(_problem("Bundle.entry", "activity-none",
                                 "aucun évènement (tddui-encounter-evenement) dans le Bundle",
                                 "no tddui-encounter-evenement in the Bundle"))
    return items, problems


def record_bundle(store: Store, tenant: Tenant, local_id: str, bundle: dict, *, actor: str,
                  now: dt.datetime | None = None) -> RecordResult:
    """Validate and store the evenement Encounters of a TDDUI Bundle (all or nothing)."""
    now = now or dt.datetime.now(dt.UTC)
    plan, version = current_plan(store, tenant, local_id)
    items, problems = bundle_items(bundle, plan)
    activities, found = check_and_normalise(items, plan, local_id, now=now, tz=timezone(),
                                            source=Source.tddui, locate=locate)
    problems += found
    if any(p.severity is Severity.error for p in problems):
        raise ActivityRejected(problems)
    return store_activities(store, tenant, local_id, plan, version, activities, problems,
                            actor=actor, now=now)
