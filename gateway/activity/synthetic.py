"""A month of synthetic delivered activity for the fixtures' plans (`make demo`).

`record_synthetic_month(store, tenant, plans, start, seed)` invents, for every plan validated
or agreed, the sessions its planned services call for between `start` and the day before the
same date a month later, and records them through the real recording path
(`gateway.activity.record.record_activities`: validation, idempotent ids, rollups). It is
deterministic (same seed, same activity) and idempotent (run twice, nothing changes).

Consistent with each service: its modality, place and provider (taken from the plan), its
period, and its intensity — hours a week as one to five sessions a week on weekdays (every
day for housing and night care), half-days a week as sessions of 3 hours, morning or
afternoon; 1 hour a week when the plan gives no intensity; `3.2.4.*` transport services as
trips. About 4 % of sessions are cancelled and 4 % find the person absent; sessions away from
the platform carry the professional's trip (km, minutes). No session on French fixed-date
public holidays for day services.
When the platform has no authorised capacity yet and has a FINESS, a fictional authorisation
is recorded from the 1st of January: per modality, one place per person the plans serve in it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.activity.capacity import list_capacities, set_capacity
from gateway.activity.record import ActivityRejected, record_activities, timezone
from gateway.model import Plan
from gateway.model.plan import IntensityUnit, PlanStatus, Service, TaskStatus
from gateway.storage import NotFound, Store, Tenant

ACTIVE_PLANS = (PlanStatus.validated, PlanStatus.agreed)
ACTIVE_SERVICES = (TaskStatus.in_progress, TaskStatus.completed)
ALL_WEEK = {"full_time_housing", "night_care", "temporary_housing", "sequential"}
HOLIDAYS = {(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)}
AWAY = {"home", "school", "workplace", "leisure_club", "community", "partner_premises", "health_facility"}


@dataclass(frozen=True)
class SyntheticSummary:
    start: dt.date
    end: dt.date  # inclusive
    persons: int  # persons who got activity
    activities: int
    created: int
    replaced: int
    unchanged: int
    skipped: int  # plans not stored, not active, or refused
    capacity_recorded: bool


def month_after(start: dt.date) -> dt.date:
    """The day before the same date one month later (2026-11-01 -> 2026-11-30)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return dt.date(year, month, min(start.day, calendar.monthrange(year, month)[1])) - dt.timedelta(days=1)


def _days(service: Service, plan: Plan, start: dt.date, end: dt.date) -> list[dt.date]:
    first = max(start, service.period.start or plan.period.start or start)
    last = min(end, service.period.end or plan.period.end or end)
    out = []
    day = first
    while day <= last:
        if service.modality.value in ALL_WEEK or (day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS):
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def _sessions(service: Service, days: list[dt.date], rng: random.Random) -> list[tuple[dt.date, int, int]]:
    """(day, start minute of the day, duration minutes) of each session."""
    weeks: dict[tuple[int, int], list[dt.date]] = defaultdict(list)
    for day in days:
        weeks[day.isocalendar()[:2]].append(day)
    housed = service.modality.value in ALL_WEEK
    per_week_days = 7 if housed else 5
    out = []
    for week_days in weeks.values():
        share = len(week_days) / per_week_days
        if service.code.startswith("3."):  # a transport service: a return trip on two days a week
            count = _round(2 * share, rng)
            out += [(d, 8 * 60, rng.choice((20, 30, 45))) for d in sorted(rng.sample(week_days, min(count, len(week_days))))]
            continue
        intensity = service.intensity
        if intensity is not None and intensity.unit is IntensityUnit.half_days_per_week:
            halves = _round(float(intensity.value) * share, rng)
            slots = [(d, h) for d in week_days for h in (0, 1)]
            chosen = sorted(rng.sample(slots, min(halves, len(slots))))
            out += [(d, 9 * 60 if h == 0 else 13 * 60 + 30, 180) for d, h in chosen]
            continue
        hours = float(intensity.value) if intensity is not None else 1.0
        total = hours * 60 * share
        if total < 15:
            continue
        count = max(1, min(len(week_days), math.ceil(hours / 3), 5 if not housed else 7))
        length = max(15, int(round(total / count / 15)) * 15)
        for day in sorted(rng.sample(week_days, count)):
            if service.modality.value == "night_care":
                begin = 20 * 60
            elif length > 240:
                begin = 8 * 60 + 30
            else:
                begin = rng.choice((9 * 60, 10 * 60 + 30, 14 * 60, 15 * 60 + 30))
            out.append((day, begin, min(length, 24 * 60 - begin if service.modality.value != "night_care" else 12 * 60)))
    return out


def _round(value: float, rng: random.Random) -> int:
    """Round at random in proportion (1.3 -> 1 seven times in ten, 2 three times)."""
    base = math.floor(value)
    return base + (1 if rng.random() < value - base else 0)


def _activity(service: Service, n: int, day: dt.date, begin: int, minutes: int, tz: ZoneInfo,
              start: dt.date, rng: random.Random) -> dict:
    local = dt.datetime.combine(day, dt.time(begin // 60, begin % 60), tz)
    item = {"id": f"SYN{start:%Y%m%d}-{service.id}-{n:03d}"[:64], "code": service.code,
            "service_id": service.id, "start": local.isoformat(),
            "end": (local + dt.timedelta(minutes=minutes)).isoformat()}
    draw = rng.random()
    if draw < 0.04:
        item["status"] = "cancelled"
    elif draw < 0.08:
        item["person_present"] = False
    if service.code.startswith("3.") or service.place.value in AWAY:
        km = round(rng.uniform(2.0, 28.0), 1)
        item["transport_km"], item["transport_minutes"] = km, max(5, int(km * rng.uniform(1.6, 2.6)))
    elif rng.random() < 0.3:  # the person is brought to the platform
        km = round(rng.uniform(4.0, 35.0), 1)
        item["transport_km"], item["transport_minutes"] = km, max(10, int(km * 2))
    return item


def synthetic_activities(plan: Plan, start: dt.date, seed: int, tz: ZoneInfo) -> list[dict]:
    """The activity inputs of one plan for the month from `start` (pure, deterministic)."""
    end = month_after(start)
    if plan.status not in ACTIVE_PLANS:
        return []
    rng = random.Random(f"{seed}:{plan.person.local_id}:{start.isoformat()}")
    out = []
    for service in plan.services:
        if service.status not in ACTIVE_SERVICES:
            continue
        sessions = _sessions(service, _days(service, plan, start, end), rng)
        out += [_activity(service, n, d, b, m, tz, start, rng) for n, (d, b, m) in enumerate(sessions, 1)]
    return out


def _capacity(store: Store, tenant: Tenant, plans: list[Plan], start: dt.date, actor: str) -> bool:
    if tenant.finess is None or list_capacities(store, tenant):
        return False
    persons: dict[str, set[str]] = defaultdict(set)
    for plan in plans:
        if plan.status in ACTIVE_PLANS:
            for service in plan.services:
                if service.status in ACTIVE_SERVICES and service.code.startswith("2."):
                    persons[service.modality.value].add(plan.person.local_id)
    for modality, who in sorted(persons.items()):
        set_capacity(store, tenant, modality, places=len(who),
                     valid_from=dt.date(start.year, 1, 1), actor=actor)
    return bool(persons)


def record_synthetic_month(store: Store, tenant: Tenant, plans: Iterable[Plan], start: dt.date,
                           seed: int, *, actor: str = "demo") -> SyntheticSummary:
    """Record a month of synthetic delivered activity for `plans` (already stored) from `start`."""
    plans = sorted(plans, key=lambda p: p.person.local_id)
    end = month_after(start)
    tz = timezone()
    now = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(12), tz)
    capacity = _capacity(store, tenant, plans, start, actor)
    persons = activities = created = replaced = unchanged = skipped = 0
    for plan in plans:
        items = synthetic_activities(plan, start, seed, tz)
        if not items:
            skipped += 1
            continue
        try:
            result = record_activities(store, tenant, plan.person.local_id, {"activities": items},
                                       actor=actor, now=now)
        except (NotFound, ActivityRejected):
            skipped += 1
            continue
        persons += 1
        activities += len(items)
        created, replaced, unchanged = (created + result.created, replaced + result.replaced,
                                        unchanged + result.unchanged)
    return SyntheticSummary(start, end, persons, activities, created, replaced, unchanged, skipped, capacity)
