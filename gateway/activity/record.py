"""Record delivered activity: validate it against the person's current plan, store it, keep
the rollups current — all or nothing, idempotent on the DUI's event id.

`record_activities(store, tenant, person, payload)` takes the API / file JSON (one activity,
or `{"activities": [...]}`); `gateway.activity.tddui.record_bundle` feeds the same path from a
TDDUI Bundle. Refusals raise `ActivityRejected` with every problem (JSON path or FHIRPath,
rule id, French and English message). Sending an activity again with the same `id` changes
nothing when identical, and replaces it otherwise (a DUI correcting an event or cancelling it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from gateway.activity import rollup
from gateway.activity.model import Activity, ActivityInput, Source, half_days, part_of_day_halves
from gateway.activity.tables import activity_persons, activity_records
from gateway.model import Plan, Problem, Severity
from gateway.model.plan import EventStatus
from gateway.plans.validate import _pydantic_problems, _serafin
from gateway.settings import settings
from gateway.storage import Store, Tenant
from gateway.storage.schema import persons

SOURCE = "relais-activity 1"
MAX_ACTIVITIES = 5000  # per request


class ActivityRejected(Exception):
    """The activities were refused; nothing was stored."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{sum(p.severity is Severity.error for p in problems)} problème(s) dans l'activité")
        self.problems = problems


@dataclass(frozen=True)
class ItemOutcome:
    id: str
    outcome: str  # created | replaced | unchanged


@dataclass
class RecordResult:
    person: str
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    items: list[ItemOutcome] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"person": self.person, "created": self.created, "replaced": self.replaced,
                "unchanged": self.unchanged, "items": [asdict(i) for i in self.items],
                "warnings": [w.model_dump(mode="json") for w in self.warnings]}


def _problem(location: str, rule: str, message: str, message_en: str, warning: bool = False) -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=Severity.warning if warning else Severity.error, source=SOURCE)


# ---------------------------------------------------------------------------- reading


def parse_payload(payload: object) -> tuple[list[tuple[str, dict]], list[Problem]]:
    """(JSON path, item) of each activity of `{"activities": [...]}`, a list, or one object."""
    if isinstance(payload, dict) and "activities" in payload:
        extra = sorted(set(payload) - {"activities", "person"})
        problems = [_problem(f"$.{k}", "unknown-field", "champ inconnu", "unknown field") for k in extra]
        items = payload["activities"]
        if not isinstance(items, list):
            return [], problems + [_problem("$.activities", "wrong-type", "une liste d'activités est attendue",
                                            "a list of activities is expected")]
        base = "$.activities"
        person = payload.get("person")
        items = [({"person": person, **i} if person is not None and isinstance(i, dict) and "person" not in i
                  else i) for i in items]
    elif isinstance(payload, list):
        items, base, problems = payload, "$", []
    else:
        return [(("$", payload))], []
    if len(items) > MAX_ACTIVITIES:
        return [], [_problem(base, "too-many-activities",
                             f"au plus {MAX_ACTIVITIES} activités par envoi ({len(items)} reçues)",
                             f"at most {MAX_ACTIVITIES} activities per request")]
    return [(f"{base}[{i}]", item) for i, item in enumerate(items)], problems


def _validated(path: str, item: object) -> tuple[ActivityInput | None, list[Problem]]:
    try:
        data = orjson.dumps(item, default=str)
    except orjson.JSONEncodeError:  # a lone surrogate (JSON escape \ud800…): no Unicode character
        return None, [_problem(path, "activity-not-unicode", "texte hors Unicode (substitut isolé \\ud800-\\udfff)",
                               "text outside Unicode (lone surrogate)")]
    try:
        return ActivityInput.model_validate_json(data, strict=True), []
    except ValidationError as exc:
        return None, [p.model_copy(update={"location": path + p.location[1:], "source": SOURCE})
                      for p in _pydantic_problems(exc)]


def _checks(path: str, item: ActivityInput, plan: Plan, person: str,
            now: dt.datetime) -> list[Problem]:
    out = [p.model_copy(update={"source": SOURCE})
           for p in _serafin(f"{path}.code", item.code, ("prestation_directe", "prestation_indirecte"), leaf=True)]
    if item.person is not None and item.person != person:
        out.append(_problem(f"{path}.person", "activity-person-mismatch",
                            f"activité d'une autre personne ({item.person}) envoyée pour {person}",
                            "activity of another person"))
    service = next((s for s in plan.services if s.id == item.service_id), None)
    if item.service_id is not None and service is None:
        out.append(_problem(f"{path}.service_id", "activity-unknown-service",
                            f"aucune prestation « {item.service_id} » dans le projet courant de la personne",
                            f"no planned service {item.service_id!r} in the current plan"))
    if item.modality is None and service is None:
        out.append(_problem(f"{path}.modality", "activity-modality-required",
                            "modalité obligatoire quand l'activité n'est liée à aucune prestation prévue",
                            "modality required when no planned service is named"))
    if service is not None and service.code != item.code:
        out.append(_problem(f"{path}.code", "activity-code-differs-from-service",
                            f"code {item.code} différent de celui de la prestation prévue ({service.code})",
                            "code differs from the planned service's", warning=True))
    if service is not None and item.modality is not None and item.modality != service.modality:
        out.append(_problem(f"{path}.modality", "activity-modality-differs-from-service",
                            f"modalité différente de celle de la prestation prévue ({service.modality.value})",
                            "modality differs from the planned service's", warning=True))
    begins = item.start or dt.datetime.combine(item.date, dt.time(0), dt.UTC)
    if item.status is EventStatus.finished and begins > now + dt.timedelta(hours=14):
        out.append(_problem(f"{path}.{'start' if item.start else 'date'}", "activity-finished-in-future",
                            "activité réalisée datée dans le futur", "finished activity dated in the future"))
    return out


def normalise(item: ActivityInput, plan: Plan, tz: ZoneInfo, source: Source = Source.api) -> Activity:
    """The record of a checked activity (modality, place, provider from the planned service)."""
    service = next((s for s in plan.services if s.id == item.service_id), None)
    if item.start is not None:
        start, end = item.start.astimezone(tz), item.end.astimezone(tz)
        minutes = round((end - start).total_seconds() / 60)
        morning, afternoon = half_days(start, end)
        day, start_at, end_at = start.date(), item.start.astimezone(dt.UTC), item.end.astimezone(dt.UTC)
    else:
        minutes, day, start_at, end_at = item.duration_minutes, item.date, None, None
        morning, afternoon = part_of_day_halves(item.part_of_day, minutes)
    provider = item.provider or (service.provider if service else None)
    place = item.place or (service.place if service else None)
    km = item.transport_km
    return Activity(
        source_id=item.id, code=item.code, status=item.status.value, person_present=item.person_present,
        start_at=start_at, end_at=end_at, day=day, minutes=minutes, morning=morning, afternoon=afternoon,
        modality=(item.modality or service.modality).value,
        place=place.value if place else None,
        provider_kind=provider.kind.value if provider else None,
        provider_name=provider.name if provider else None,
        provider_identifier=(f"{provider.identifier.system.value}:{provider.identifier.value}"
                             if provider and provider.identifier else None),
        service_id=item.service_id,
        transport_m=None if km is None else int((km * 1000).quantize(Decimal(1), ROUND_HALF_UP)),
        transport_minutes=item.transport_minutes, source=source.value)


def check_and_normalise(items: Sequence[tuple[str, object]], plan: Plan, person: str, *,
                        now: dt.datetime, tz: ZoneInfo, source: Source = Source.api,
                        locate: Callable[[str], str] | None = None,
                        ) -> tuple[list[Activity], list[Problem]]:
    """Validate every item; the activities only when no problem is an error. `locate` turns
    JSON paths into the caller's locations (FHIRPath for a TDDUI Bundle)."""
    problems: list[Problem] = []
    checked: list[ActivityInput] = []
    seen: dict[str, str] = {}
    for path, raw in items:
        item, found = _validated(path, raw)
        if item is not None:
            found = _checks(path, item, plan, person, now)
            if item.id in seen:
                found.append(_problem(f"{path}.id", "activity-duplicate-id",
                                      f"identifiant « {item.id} » déjà présent dans l'envoi ({seen[item.id]})",
                                      "duplicate activity id in the request"))
            seen.setdefault(item.id, path)
            checked.append(item)
        problems.extend(found)
    if locate is not None:
        problems = [p.model_copy(update={"location": locate(p.location)}) for p in problems]
    if any(p.severity is Severity.error for p in problems):
        return [], problems
    return [normalise(i, plan, tz, source) for i in checked], problems


# ---------------------------------------------------------------------------- writing


def content_hash(activity: Activity) -> str:
    return hashlib.sha256(orjson.dumps(activity.as_row(), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _upsert_person(backend: str) -> sa.sql.Insert:
    dialect = pg_dialect if backend == "postgresql" else sqlite_dialect
    stmt = dialect.insert(activity_persons)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "person_id"],
        set_={"local_id": stmt.excluded.local_id, "specialisations": stmt.excluded.specialisations,
              "plan_version": stmt.excluded.plan_version, "updated_at": stmt.excluded.updated_at})


def write(conn: Connection, backend: str, tenant_id: str, person_id: str, local_id: str,
          plan: Plan, plan_version: int, activities: Sequence[Activity], *, actor: str,
          now: dt.datetime) -> list[ItemOutcome]:
    """Store `activities` of one person in `conn`'s transaction and refresh the rollups of the
    days they touch (the person's `activity_persons` row is the write lock)."""
    conn.execute(_upsert_person(backend), {
        "tenant_id": tenant_id, "person_id": person_id, "local_id": local_id,
        "specialisations": " ".join(sorted(s.value for s in plan.specialisations)),
        "plan_version": plan_version, "updated_at": now})
    conn.execute(sa.select(activity_persons.c.person_id).where(
        activity_persons.c.tenant_id == tenant_id, activity_persons.c.person_id == person_id)
        .with_for_update())
    r = activity_records.c
    existing: dict[str, tuple[int, str, dt.date]] = {}
    ids = [a.source_id for a in activities]
    for i in range(0, len(ids), 500):
        rows = conn.execute(sa.select(r.seq, r.source_id, r.content_hash, r.day).where(
            r.tenant_id == tenant_id, r.person_id == person_id, r.source_id.in_(ids[i:i + 500]))).all()
        existing.update({row.source_id: (row.seq, row.content_hash, row.day) for row in rows})
    outcomes: list[ItemOutcome] = []
    inserts: list[dict] = []
    touched: set[dt.date] = set()
    for activity in activities:
        digest = content_hash(activity)
        values = {**activity.as_row(), "content_hash": digest, "received_at": now, "recorded_by": actor}
        before = existing.get(activity.source_id)
        if before is None:
            inserts.append({"tenant_id": tenant_id, "person_id": person_id, **values})
            outcomes.append(ItemOutcome(activity.source_id, "created"))
            touched.add(activity.day)
        elif before[1] == digest:
            outcomes.append(ItemOutcome(activity.source_id, "unchanged"))
        else:
            conn.execute(sa.update(activity_records).where(r.seq == before[0]).values(**values))
            outcomes.append(ItemOutcome(activity.source_id, "replaced"))
            touched.update((activity.day, before[2]))
    if inserts:
        conn.execute(sa.insert(activity_records), inserts)
    if touched:
        rollup.refresh(conn, tenant_id, person_id, min(touched), max(touched))
    return outcomes


def _person_id(conn: Connection, tenant: Tenant, local_id: str) -> str:
    return conn.execute(sa.select(persons.c.id).where(
        persons.c.tenant_id == tenant.id, persons.c.local_id == local_id)).scalar_one()


def store_activities(store: Store, tenant: Tenant, local_id: str, plan: Plan, plan_version: int,
                     activities: Sequence[Activity], problems: list[Problem], *, actor: str,
                     now: dt.datetime) -> RecordResult:
    result = RecordResult(person=local_id, warnings=problems)
    with store.transaction() as conn:
        person_id = _person_id(conn, tenant, local_id)
        result.items = write(conn, store.backend, tenant.id, person_id, local_id, plan, plan_version,
                             activities, actor=actor, now=now)
    for item in result.items:
        setattr(result, item.outcome, getattr(result, item.outcome) + 1)
    return result


def current_plan(store: Store, tenant: Tenant, local_id: str) -> tuple[Plan, int]:
    """The person's current plan and its version (NotFound when the person has none)."""
    stored = store.get_plan(tenant, local_id)
    return Plan.model_validate_json(stored.content), stored.version


def timezone() -> ZoneInfo:
    return ZoneInfo(settings().activity_timezone)


def record_activities(store: Store, tenant: Tenant, local_id: str, payload: object, *,
                      actor: str, now: dt.datetime | None = None) -> RecordResult:
    """Validate and store the activities of `payload` for the person (all or nothing)."""
    now = now or dt.datetime.now(dt.UTC)
    plan, version = current_plan(store, tenant, local_id)
    items, problems = parse_payload(payload)
    activities, found = check_and_normalise(items, plan, local_id, now=now, tz=timezone())
    problems += found
    if any(p.severity is Severity.error for p in problems):
        raise ActivityRejected(problems)
    return store_activities(store, tenant, local_id, plan, version, activities, problems,
                            actor=actor, now=now)
