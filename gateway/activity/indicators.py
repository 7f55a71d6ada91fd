"""Activity indicators in SERAFIN-PH units, each defined once, with its formula and the seed
passage it implements (Anap guide « Vers une offre de services coordonnés », Pilier 2,
Composante 3 « Le suivi de l'activité » and « Modèle de transition de la réforme SERAFIN-PH »;
shared/seeds/002_…).

Notation, for a window W of D days (inclusive dates), a person p and a modality m:
- direct service: a finished SERAFIN-PH 2.x activity with the person present;
- days(p, m) = local days of W on which p received at least one direct service in m;
  days(p) the same across modalities (a day counted once);
- half(p, m), half(p): half-days touched by those services (morning < 13:00 ≤ afternoon);
- hours(p, m) = direct-service minutes / 60;
- places(m, W) = authorised places of m in force, weighted by the days of W they cover;
- capacity_days(m, W) = Σ over the days d of W: places(m, d) × opening_days(m) / days of d's year.

The indicators read the monthly rollup for the months W covers fully and the daily rollup
for its partial months (gateway.activity.rollup): a year is about twelve rows per person and
modality, never the events themselves.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.activity.model import MODALITIES, Capacity, month_of
from gateway.activity.tables import (
    ALL_MODALITIES,
    activity_capacities,
    activity_days,
    activity_months,
    activity_persons,
)

MEAN_MONTH_DAYS = 365.2425 / 12  # Gregorian mean month, for "per month" intensities
_SUMS = ("days", "half_days", "direct_events", "direct_minutes", "indirect_minutes", "events",
         "transport_m", "transport_minutes")


# ------------------------------------------------------------------------- the inputs


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date  # inclusive

    def __post_init__(self):
        if self.end < self.start:
            raise ValueError("la fin de la période précède son début")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def overlap(self, start: dt.date, end: dt.date) -> int:
        return max(0, (min(self.end, end) - max(self.start, start)).days + 1)


class Sums(NamedTuple):
    """Counts of one person and modality (or "*") over a window or a month."""

    days: int = 0
    half_days: int = 0
    direct_events: int = 0
    direct_minutes: int = 0
    indirect_minutes: int = 0
    events: int = 0
    transport_m: int = 0
    transport_minutes: int = 0


# A row of the data: (person, modality or "*", yyyymm, *Sums)
Row = tuple


@dataclass
class ActivityData:
    """What every indicator of a window needs, read once."""

    window: Window
    reference_week: Window
    rows: list[Row]  # per person, modality (and "*") and month of the window
    week_presence: set[tuple[str, str]]  # (person, modality) with a direct service in the week
    capacities: list[Capacity] = field(default_factory=list)
    families: dict[str, tuple[str, ...]] = field(default_factory=dict)  # person -> specialisations
    _totals: dict[tuple[str, str], Sums] | None = field(default=None, repr=False)

    def totals(self) -> dict[tuple[str, str], Sums]:
        """(person, modality or "*") -> sums over the window (computed once)."""
        if self._totals is None:
            acc: dict[tuple[str, str], list[int]] = {}
            for row in self.rows:
                key = row[0], row[1]
                sums = acc.get(key)
                if sums is None:
                    acc[key] = list(row[3:])
                else:
                    for i, value in enumerate(row[3:]):
                        sums[i] += value
            self._totals = {key: Sums(*sums) for key, sums in acc.items()}
        return self._totals

    def only(self, family: str) -> ActivityData:
        """The persons of one specialisation family (no capacity: it is not per family)."""
        keep = {p for p, fams in self.families.items() if family in fams}
        return ActivityData(self.window, self.reference_week, [],
                            {k for k in self.week_presence if k[0] in keep}, [], self.families,
                            {k: v for k, v in self.totals().items() if k[0] in keep})

    def months(self) -> dict[int, ActivityData]:
        """The data of each month of the window (yyyymm -> data over that month only)."""
        rows: dict[int, list[Row]] = defaultdict(list)
        for row in self.rows:
            rows[row[2]].append(row)
        out = {}
        for month in months_of(self.window):
            key = month_of(month.start)
            out[key] = ActivityData(month, self.reference_week, rows.get(key, []), set(), self.capacities,
                                    self.families)
        return out


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _segments(window: Window) -> tuple[tuple[int, int] | None, list[tuple[dt.date, dt.date]]]:
    """(full months as yyyymm range, or None; partial-month date ranges)."""
    first_full = window.start if window.start.day == 1 else _month_end(window.start) + dt.timedelta(days=1)
    last_full = window.end if window.end == _month_end(window.end) else window.end.replace(day=1) - dt.timedelta(days=1)
    if first_full > last_full:  # no whole month inside: the window's part of one or two months
        if window.end <= _month_end(window.start):
            return None, [(window.start, window.end)]
        return None, [(window.start, _month_end(window.start)), (window.end.replace(day=1), window.end)]
    partial = []
    if window.start < first_full:
        partial.append((window.start, first_full - dt.timedelta(days=1)))
    if last_full < window.end:
        partial.append((last_full + dt.timedelta(days=1), window.end))
    return (month_of(first_full), month_of(last_full)), partial


def _positive(column) -> sa.ColumnElement:
    return sa.func.sum(sa.case((column > 0, 1), else_=0))


def _partial_rows(conn: Connection, tenant_id: str, first: dt.date, last: dt.date) -> list[Row]:
    """The monthly rows of [first, last] (inside one month) summed from the daily rollup, with
    the rule of gateway.activity.rollup.MonthTotals: a day (a half-day) counts when it has a
    direct service, once per modality and once for `*` whatever the modalities."""
    d = activity_days.c
    month = month_of(first)
    scope = (d.tenant_id == tenant_id, d.day >= first, d.day <= last)
    sums = [sa.func.sum(d[name]) for name in _SUMS[2:]]
    per_modality = conn.execute(
        sa.select(d.person_id, d.modality, _positive(d.direct_events),
                  _positive(d.morning_events) + _positive(d.afternoon_events), *sums)
        .where(*scope).group_by(d.person_id, d.modality)).all()
    per_day = (sa.select(d.person_id, *(sa.func.sum(d[name]).label(name) for name in
                                        ("direct_events", "morning_events", "afternoon_events", *_SUMS[3:])))
               .where(*scope).group_by(d.person_id, d.day).subquery())
    everything = conn.execute(
        sa.select(per_day.c.person_id, _positive(per_day.c.direct_events),
                  _positive(per_day.c.morning_events) + _positive(per_day.c.afternoon_events),
                  *(sa.func.sum(per_day.c[name]) for name in _SUMS[2:]))
        .group_by(per_day.c.person_id)).all()
    return ([(r[0], r[1], month, *(int(v or 0) for v in r[2:])) for r in per_modality]
            + [(r[0], ALL_MODALITIES, month, *(int(v or 0) for v in r[1:])) for r in everything])


def load(conn: Connection, tenant_id: str, window: Window, reference_week: Window) -> ActivityData:
    """Read the rollups, capacities and persons of `tenant_id` for `window`."""
    full, partial = _segments(window)
    rows: list[Row] = []
    if full is not None:
        m = activity_months.c
        rows.extend(tuple(r) for r in conn.execute(
            sa.select(m.person_id, m.modality, m.month, *(m[name] for name in _SUMS))
            .where(m.tenant_id == tenant_id, m.month >= full[0], m.month <= full[1])))
    for first, last in partial:
        rows.extend(_partial_rows(conn, tenant_id, first, last))
    d = activity_days.c
    week = {(r.person_id, r.modality) for r in conn.execute(
        sa.select(d.person_id, d.modality).distinct()
        .where(d.tenant_id == tenant_id, d.day >= reference_week.start, d.day <= reference_week.end,
               d.direct_events > 0))}
    return ActivityData(window, reference_week, rows, week, load_capacities(conn, tenant_id),
                        load_families(conn, tenant_id))


def load_capacities(conn: Connection, tenant_id: str) -> list[Capacity]:
    c = activity_capacities.c
    return [Capacity(r.modality, r.valid_from, r.places, r.opening_days, r.finess)
            for r in conn.execute(sa.select(c.modality, c.valid_from, c.places, c.opening_days, c.finess)
                                  .where(c.tenant_id == tenant_id).order_by(c.modality, c.valid_from))]


def load_families(conn: Connection, tenant_id: str) -> dict[str, tuple[str, ...]]:
    p = activity_persons.c
    return {r.person_id: tuple(r.specialisations.split()) for r in conn.execute(
        sa.select(p.person_id, p.specialisations).where(p.tenant_id == tenant_id))}


# ------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class Rate:
    numerator: float
    denominator: float

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def as_dict(self) -> dict:
        value = self.value
        return {"numerator": _round(self.numerator), "denominator": _round(self.denominator),
                "value": None if value is None else round(value, 4)}


@dataclass(frozen=True)
class Count:
    all: int
    by_modality: dict[str, int]

    def as_dict(self) -> dict:
        return {"all": self.all, "by_modality": dict(self.by_modality)}


@dataclass(frozen=True)
class Intensity:
    persons: int
    days: int
    half_days: int
    hours: float
    per_day: float | None  # hours per day of support
    per_week: float | None  # hours per person per week
    per_month: float | None  # hours per person per month
    half_days_per_week: float | None

    def as_dict(self) -> dict:
        return {k: _round(v) for k, v in self.__dict__.items()}


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


# ---------------------------------------------------------------------- the indicators


def file_active(data: ActivityData) -> Count:
    """File active of the window: persons who received at least one delivered direct
    service during W, globally and per modality.

        FA(W) = |{p : days(p) > 0}|        FA_m(W) = |{p : days(p, m) > 0}|

    Seed 002, « Le suivi de l'activité »: « Le volume d'activité peut être retracé par un nombre
    […] de personnes accompagnées » ; modèle de transition : « la file active globale ».
    A person counts once globally and once in each modality used, so Σ_m FA_m ≥ FA.
    """
    totals = data.totals()
    by_modality = {m: 0 for m in MODALITIES}
    overall = 0
    for (_, modality), sums in totals.items():
        if sums.days > 0:
            if modality == ALL_MODALITIES:
                overall += 1
            else:
                by_modality[modality] += 1
    return Count(overall, by_modality)


def file_active_reference_week(data: ActivityData) -> Count:
    """File active over the reference week R (Monday–Sunday): persons who received at least
    one delivered direct service during R, globally and per modality.

        FA(R) = |{p : ∃m, days_R(p, m) > 0}|        FA_m(R) = |{p : days_R(p, m) > 0}|

    Seed 002, « Modèle de transition de la réforme SERAFIN-PH »: « la dotation principale est
    modulée par […] la file active globale, la file active par modalité d'accueil sur une
    semaine de référence ». Default R: see gateway.activity.model.default_reference_week.
    """
    by_modality = {m: 0 for m in MODALITIES}
    for _, modality in data.week_presence:
        by_modality[modality] = by_modality.get(modality, 0) + 1
    return Count(len({person for person, _ in data.week_presence}), by_modality)


def capacity_days(capacities: Iterable[Capacity], modality: str, window: Window) -> float:
    """Days the authorised capacity of `modality` allows during W:
    Σ_d places(m, d) × opening_days(m) / days_in_year(d) over the days d of W."""
    total = 0.0
    for start, end, cap in _in_force(capacities, modality, window):
        day = start
        while day <= end:  # split at year ends (365 / 366)
            year_end = min(end, dt.date(day.year, 12, 31))
            span = (year_end - day).days + 1
            total += cap.places * cap.opening_days * span / (366 if calendar.isleap(day.year) else 365)
            day = year_end + dt.timedelta(days=1)
    return total


def mean_places(capacities: Iterable[Capacity], modality: str, window: Window) -> float:
    """Authorised places of `modality`, weighted by the share of W each authorisation covers."""
    return sum(cap.places * ((end - start).days + 1)
               for start, end, cap in _in_force(capacities, modality, window)) / window.days


def _in_force(capacities: Iterable[Capacity], modality: str, window: Window):
    """(first day, last day, capacity) of each authorisation line of `modality` within W."""
    lines = sorted((c for c in capacities if c.modality == modality), key=lambda c: c.valid_from)
    for i, cap in enumerate(lines):
        until = lines[i + 1].valid_from - dt.timedelta(days=1) if i + 1 < len(lines) else dt.date.max
        start, end = max(cap.valid_from, window.start), min(until, window.end)
        if start <= end:
            yield start, end, cap


def occupancy(data: ActivityData) -> tuple[Rate, dict[str, Rate]]:
    """Occupancy rate: days delivered over the days the authorised capacity allows.

        TO_m(W) = Σ_p days(p, m) / capacity_days(m, W)
        TO(W)   = Σ_{m ∈ C} Σ_p days(p, m) / Σ_{m ∈ C} capacity_days(m, W),  C = modalities with places

    Seed 002, « Le suivi de l'activité »: « un taux d'occupation, c'est-à-dire le niveau de
    mobilisation du capacitaire de l'ESMS (nombre de journées réalisées rapporté au nombre de
    journées que l'ESMS est théoriquement en capacité de réaliser au regard de son nombre de
    places […]) » ; modèle de transition : « le taux d'occupation annuel ».
    A day of presence is a day with at least one delivered direct service in the modality,
    also in the ordinary environment (a day of intervention).
    """
    days = defaultdict(int)
    for (_, modality), sums in data.totals().items():
        if modality != ALL_MODALITIES:
            days[modality] += sums.days
    by_modality = {m: Rate(days[m], capacity_days(data.capacities, m, data.window)) for m in MODALITIES}
    with_capacity = [r for r in by_modality.values() if r.denominator > 0]
    overall = Rate(sum(r.numerator for r in with_capacity), sum(r.denominator for r in with_capacity))
    return overall, by_modality


def turnover(data: ActivityData) -> tuple[Rate, dict[str, Rate]]:
    """Turnover rate: persons supported over the persons the authorised capacity allows.

        TR_m(W) = FA_m(W) / places(m, W)
        TR(W)   = Σ_{m ∈ C} FA_m(W) / Σ_{m ∈ C} places(m, W),   C = modalities with places

    Seed 002, « Le suivi de l'activité »: « du nombre de personnes que l'ESMS a réellement
    accompagné -rapporté au nombre de personnes que son capacitaire lui permet en théorie
    d'accompagner- » and « Le nombre de personnes accompagnées pour chaque modalité d'accueil
    (taux de rotation) » ; modèle de transition : « le taux de rotation annuel ».
    The capacity allows `places` persons at a time, so TR is the number of persons per place
    (1 = each place held by one person over W, 2 = two persons in turn…). A person supported in
    two modalities holds a place in each, so the overall rate sums persons per modality, like
    the overall occupancy sums days per modality; it lies between the modalities' rates.
    """
    active = file_active(data).by_modality
    by_modality = {m: Rate(active[m], mean_places(data.capacities, m, data.window)) for m in MODALITIES}
    with_capacity = [r for r in by_modality.values() if r.denominator > 0]
    overall = Rate(sum(r.numerator for r in with_capacity), sum(r.denominator for r in with_capacity))
    return overall, by_modality


def intensity(data: ActivityData) -> tuple[Intensity, dict[str, Intensity]]:
    """Intensity: direct-service time per person and unit of time.

        per day            = Σ_p hours(p) / Σ_p days(p)              (hours per day of support)
        per week           = Σ_p hours(p) / (FA(W) × D / 7)
        per month          = Σ_p hours(p) / (FA(W) × D / 30.436875)
        half-days per week = Σ_p half(p) / (FA(W) × D / 7)
    and the same per modality with days(p, m), hours(p, m), half(p, m) and FA_m(W).

    Seed 002, « Le suivi de l'activité »: « L'intensité peut être retracée par le nombre d'unités
    de temps d'accompagnement réalisé en moyenne pour les personnes accompagnées au sein d'une
    même journée, d'une même semaine, d'un même mois (par exemple : nombre moyen d'heures de
    prestations directes par jour, nombre moyen de demi-journées d'accompagnement en prestations
    directes par semaine...) ». Per week and per month are calendar rates over W, comparable
    with the plan's intensities (hours or half-days per week).
    """
    grouped: dict[str, list[Sums]] = defaultdict(list)
    for (_, modality), sums in data.totals().items():
        if sums.days > 0:
            grouped[modality].append(sums)

    def measure(items: list[Sums]) -> Intensity:
        persons = len(items)
        days = sum(s.days for s in items)
        halves = sum(s.half_days for s in items)
        hours = sum(s.direct_minutes for s in items) / 60
        weeks = persons * data.window.days / 7
        months = persons * data.window.days / MEAN_MONTH_DAYS
        return Intensity(persons, days, halves, hours, hours / days if days else None,
                         hours / weeks if weeks else None, hours / months if months else None,
                         halves / weeks if weeks else None)

    return measure(grouped[ALL_MODALITIES]), {m: measure(grouped[m]) for m in MODALITIES}


def modularity(data: ActivityData) -> dict:
    """Modularity: how persons spread over modalities, and how many combine several.

        share_m    = FA_m(W) / FA(W)
        combining  = |{p : |{m : days(p, m) > 0}| ≥ 2}|,   share = combining / FA(W)
        mean       = Σ_p |{m : days(p, m) > 0}| / FA(W)

    Seed 002, « Le suivi de l'activité »: « La modularité peut être retracée par la diversité des
    modalités de réalisation des prestations (en milieu ordinaire, en accueil de jour ou de
    nuit, en accompagnement à temps plein...) ».
    """
    used: dict[str, set[str]] = defaultdict(set)
    for (person, modality), sums in data.totals().items():
        if modality != ALL_MODALITIES and sums.days > 0:
            used[person].add(modality)
    persons = len(used)
    by_count: dict[int, int] = defaultdict(int)
    for modalities in used.values():
        by_count[len(modalities)] += 1
    per_modality = {m: sum(1 for mods in used.values() if m in mods) for m in MODALITIES}
    combining = sum(n for k, n in by_count.items() if k >= 2)
    return {
        "persons": persons,
        "by_modality": {m: {"persons": n, "share": round(n / persons, 4) if persons else None}
                        for m, n in per_modality.items()},
        "by_number_of_modalities": {str(k): by_count[k] for k in sorted(by_count)},
        "combining_several": {"persons": combining, "share": round(combining / persons, 4) if persons else None},
        "mean_modalities": round(sum(len(m) for m in used.values()) / persons, 4) if persons else None,
    }


def transport(data: ActivityData) -> dict:
    """Transport volumes of delivered activities (persons and professionals), in km and hours.

        km = Σ transport_km,   hours = Σ transport_minutes / 60   (finished activities, 2.x and 3.x)

    Seed 002, « Le suivi de l'activité »: « Le volume (en kilomètres, en heures) des transports
    des professionnels et des personnes en situation de handicap est également une indication
    utile au suivi de l'activité ».
    """
    km: dict[str, float] = defaultdict(float)
    minutes: dict[str, int] = defaultdict(int)
    for (_, modality), sums in data.totals().items():
        km[modality] += sums.transport_m / 1000
        minutes[modality] += sums.transport_minutes
    return {"km": round(km[ALL_MODALITIES], 3), "hours": round(minutes[ALL_MODALITIES] / 60, 4),
            "by_modality": {m: {"km": round(km[m], 3), "hours": round(minutes[m] / 60, 4)} for m in MODALITIES}}


# ------------------------------------------------------------------------- together


def _rates(pair: tuple[Rate, dict[str, Rate]]) -> dict:
    overall, by_modality = pair
    return {"all": overall.as_dict(), "by_modality": {m: r.as_dict() for m, r in by_modality.items()}}


def _intensities(pair: tuple[Intensity, dict[str, Intensity]]) -> dict:
    overall, by_modality = pair
    return {"all": overall.as_dict(), "by_modality": {m: i.as_dict() for m, i in by_modality.items()}}


def indicator_set(data: ActivityData, *, capacity: bool = True) -> dict:
    """Every indicator of `data` as JSON-ready dicts (occupancy and turnover need capacity)."""
    out = {
        "file_active": file_active(data).as_dict(),
        "file_active_reference_week": file_active_reference_week(data).as_dict(),
        "intensity": _intensities(intensity(data)),
        "modularity": modularity(data),
        "transport": transport(data),
    }
    if capacity:
        out["occupancy"] = _rates(occupancy(data))
        out["turnover"] = _rates(turnover(data))
    return out


def months_of(window: Window) -> list[Window]:
    out, day = [], window.start
    while day <= window.end:
        end = min(window.end, _month_end(day))
        out.append(Window(day, end))
        day = end + dt.timedelta(days=1)
    return out


def monthly_series(data: ActivityData) -> list[dict]:
    """The main indicators month by month over the window (for charts)."""
    series = []
    for sub in data.months().values():
        fa = file_active(sub)
        occ, occ_m = occupancy(sub)
        inten, _ = intensity(sub)
        series.append({"month": f"{sub.window.start:%Y-%m}", "start": sub.window.start.isoformat(),
                       "end": sub.window.end.isoformat(), "file_active": fa.as_dict(),
                       "occupancy": occ.as_dict(),
                       "occupancy_by_modality": {m: r.as_dict() for m, r in occ_m.items()},
                       "hours": round(inten.hours, 4), "half_days": inten.half_days})
    return series


def reference_week_for(window: Window, week: tuple[dt.date, dt.date] | None = None) -> Window:
    """The given week, or the default one of the window (gateway.activity.model)."""
    from gateway.activity.model import default_reference_week
    from gateway.settings import settings

    if week is None:
        week = default_reference_week(window.start, window.end, settings().activity_reference_week)
    return Window(*week)


def report(store, tenant, window: Window, *, reference_week: tuple[dt.date, dt.date] | None = None,
           by: str | None = None, series: bool = True) -> dict:
    """The indicators of the platform (tenant) over `window`: by modality always, by
    specialisation family when `by == "specialisation"`, month by month when `series`."""
    week = reference_week_for(window, reference_week)
    with store.reading() as conn:
        data = load(conn, tenant.id, window, week)
    out = {
        "platform": {"name": tenant.name, "finess": tenant.finess},
        "period": {"from": window.start.isoformat(), "to": window.end.isoformat(), "days": window.days},
        "reference_week": {"from": week.start.isoformat(), "to": week.end.isoformat(),
                           "iso_week": "{}-W{:02d}".format(*week.start.isocalendar()[:2])},
        "capacity": [{"modality": c.modality, "valid_from": c.valid_from.isoformat(), "places": c.places,
                      "opening_days": c.opening_days, "finess": c.finess} for c in data.capacities],
        **indicator_set(data),
    }
    if by == "specialisation":
        families = sorted({f for fams in data.families.values() for f in fams})
        out["by_specialisation"] = {f: indicator_set(data.only(f), capacity=False) for f in families}
    if series:
        out["series"] = monthly_series(data)
    return out
