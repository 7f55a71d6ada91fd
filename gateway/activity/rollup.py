"""The rollups the indicators read: per person, modality and day, then per month.

Both are recomputed from their source for the range a write touches (never adjusted by
deltas): `activity_days` from `activity_records` for the days touched, `activity_months` from
`activity_days` for the months holding them. What counts is decided in one place,
`day_totals` (see gateway.activity.model for the conventions). Callers hold the person's
write lock (the `activity_persons` row) for the whole transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.activity.model import month_of
from gateway.activity.tables import ALL_MODALITIES, activity_days, activity_months, activity_records

DAY_FIELDS = ("direct_events", "direct_minutes", "morning_events", "afternoon_events",
               "indirect_minutes", "events", "transport_m", "transport_minutes")
MONTH_FIELDS = ("days", "half_days", "direct_events", "direct_minutes", "indirect_minutes",
                 "events", "transport_m", "transport_minutes")


@dataclass
class DayTotals:
    direct_events: int = 0
    direct_minutes: int = 0
    morning_events: int = 0
    afternoon_events: int = 0
    indirect_minutes: int = 0
    events: int = 0
    transport_m: int = 0
    transport_minutes: int = 0

    def add(self, code: str, person_present: bool, minutes: int, morning: bool, afternoon: bool,
            transport_m: int | None, transport_minutes: int | None) -> None:
        """One finished activity of this person, modality and day."""
        self.events += 1
        self.transport_m += transport_m or 0
        self.transport_minutes += transport_minutes or 0
        if code.startswith("2."):
            if person_present:
                self.direct_events += 1
                self.direct_minutes += minutes
                self.morning_events += morning
                self.afternoon_events += afternoon
        else:
            self.indirect_minutes += minutes


@dataclass
class MonthTotals:
    days: int = 0
    half_days: int = 0
    direct_events: int = 0
    direct_minutes: int = 0
    indirect_minutes: int = 0
    events: int = 0
    transport_m: int = 0
    transport_minutes: int = 0
    _days_seen: set = field(default_factory=set, repr=False)
    _halves_seen: set = field(default_factory=set, repr=False)

    def add_day(self, day: dt.date, d) -> None:
        """Add one day row (`d` has the DayTotals fields); a day and each of its halves count
        once however many modalities (rows) carry them."""
        self.direct_events += d.direct_events
        self.direct_minutes += d.direct_minutes
        self.indirect_minutes += d.indirect_minutes
        self.events += d.events
        self.transport_m += d.transport_m
        self.transport_minutes += d.transport_minutes
        if d.direct_events > 0 and day not in self._days_seen:
            self._days_seen.add(day)
            self.days += 1
        for half, touched in ((0, d.morning_events), (1, d.afternoon_events)):
            if touched > 0 and (day, half) not in self._halves_seen:
                self._halves_seen.add((day, half))
                self.half_days += 1


def day_totals(rows: Iterable) -> dict[tuple[str, dt.date], DayTotals]:
    """(modality, day) -> totals, from finished activity rows (code, person_present, minutes,
    morning, afternoon, transport_m, transport_minutes, modality, day)."""
    out: dict[tuple[str, dt.date], DayTotals] = defaultdict(DayTotals)
    for r in rows:
        out[(r.modality, r.day)].add(r.code, r.person_present, r.minutes, r.morning, r.afternoon,
                                     r.transport_m, r.transport_minutes)
    return out


def month_totals(day_rows: Iterable) -> dict[tuple[str, int], MonthTotals]:
    """(modality, yyyymm) -> totals, with (`*`, yyyymm) for all modalities together."""
    out: dict[tuple[str, int], MonthTotals] = defaultdict(MonthTotals)
    for r in day_rows:
        month = month_of(r.day)
        out[(r.modality, month)].add_day(r.day, r)
        out[(ALL_MODALITIES, month)].add_day(r.day, r)
    return out


def _month_bounds(first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
    start = first.replace(day=1)
    following = (last.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start, following - dt.timedelta(days=1)


def refresh(conn: Connection, tenant_id: str, person_id: str, first: dt.date, last: dt.date) -> None:
    """Recompute the person's day rows for [first, last] and month rows for its months."""
    person = (activity_days.c.tenant_id == tenant_id, activity_days.c.person_id == person_id)
    r = activity_records.c
    records = conn.execute(
        sa.select(r.modality, r.day, r.code, r.person_present, r.minutes, r.morning, r.afternoon,
                  r.transport_m, r.transport_minutes)
        .where(r.tenant_id == tenant_id, r.person_id == person_id, r.day >= first, r.day <= last,
               r.status == "finished")
    ).all()
    conn.execute(sa.delete(activity_days).where(*person, activity_days.c.day >= first,
                                                activity_days.c.day <= last))
    days = day_totals(records)
    if days:
        conn.execute(sa.insert(activity_days), [
            {"tenant_id": tenant_id, "person_id": person_id, "modality": modality, "day": day,
             "month": month_of(day), **{f: getattr(t, f) for f in DAY_FIELDS}}
            for (modality, day), t in sorted(days.items())])
    m_first, m_last = _month_bounds(first, last)
    day_rows = conn.execute(
        sa.select(activity_days.c.modality, activity_days.c.day,
                  *(activity_days.c[f] for f in DAY_FIELDS))
        .where(*person, activity_days.c.day >= m_first, activity_days.c.day <= m_last)
    ).all()
    months = month_totals(day_rows)
    m = activity_months.c
    conn.execute(sa.delete(activity_months).where(
        m.tenant_id == tenant_id, m.person_id == person_id,
        m.month >= month_of(m_first), m.month <= month_of(m_last)))
    if months:
        conn.execute(sa.insert(activity_months), [
            {"tenant_id": tenant_id, "person_id": person_id, "modality": modality, "month": month,
             **{f: getattr(t, f) for f in MONTH_FIELDS}}
            for (modality, month), t in sorted(months.items())])
