"""The annual SERAFIN-PH data set of a platform, format `relais-serafin-dataset/1`.

Seed 002, « Modèle de transition de la réforme SERAFIN-PH »: « À partir de 2026, chaque année,
les établissements et services concernés par la réforme devront transmettre un nombre limité
et identique à tous les ESMS de données permettant de calculer leurs dotations » — the
activity indicators that modulate the main allocation: « la file active globale, la file
active par modalité d'accueil sur une semaine de référence, le taux d'occupation annuel et
le taux de rotation annuel », against the capacity of the FINESS authorisation.

One row per (indicator, scope, modality); the same rows in JSON (`indicators`) and CSV.

| field | meaning |
|---|---|
| `format` | `relais-serafin-dataset/1` (a new field or indicator changes the number) |
| `finess` | FINESS of the authorisation (capacity lines), else the platform's |
| `year` | calendar year covered (1 January – 31 December) |
| `indicator` | `file_active` (persons), `occupancy_rate`, `turnover_rate` (ratios), `authorised_places` (mean places over the year) |
| `scope` | `year`, or `reference_week` (file active only) |
| `modality` | a Relais modality code, or `*` for all modalities together |
| `modality_label` | its French label |
| `value` | the indicator (persons, or a ratio: 0.85 = 85 %), empty when undefined (no capacity) |
| `numerator`, `denominator` | for rates: days delivered / capacity days (occupancy), persons / places (turnover) |
| `unit` | `persons`, `ratio`, `places` |
| `reference_week_start`, `reference_week_end` | the reference week (Monday–Sunday) |

The JSON form adds `generated_at`, `platform`, `period`, `reference_week`, the capacity lines
and `definitions` (one line per indicator).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from gateway.activity.indicators import (
    ActivityData,
    Window,
    file_active,
    file_active_reference_week,
    load,
    mean_places,
    occupancy,
    reference_week_for,
    turnover,
)
from gateway.activity.model import MODALITIES, MODALITY_FR
from gateway.storage import Store, Tenant

FORMAT = "relais-serafin-dataset/1"
ALL = "*"
COLUMNS = ("format", "finess", "year", "indicator", "scope", "modality", "modality_label", "value",
           "numerator", "denominator", "unit", "reference_week_start", "reference_week_end")
DEFINITIONS = {
    "file_active": "personnes ayant reçu au moins une prestation directe (SERAFIN-PH 2.x) réalisée, "
                   "présentes, sur l'année ou sur la semaine de référence",
    "occupancy_rate": "journées réalisées (jours avec au moins une prestation directe dans la modalité) / "
                      "journées permises par les places autorisées (places × jours d'ouverture annuels)",
    "turnover_rate": "personnes accompagnées dans la modalité sur l'année / places autorisées "
                     "(moyenne pondérée sur l'année) ; toutes modalités : sommes sur les modalités autorisées",
    "authorised_places": "places autorisées (autorisation FINESS), moyenne pondérée sur l'année",
}


def _label(modality: str) -> str:
    return "toutes modalités" if modality == ALL else MODALITY_FR[modality]


def rows(data: ActivityData, finess: str | None) -> list[dict]:
    year = data.window.start.year
    week = data.reference_week
    base = {"format": FORMAT, "finess": finess or "", "year": year,
            "reference_week_start": week.start.isoformat(), "reference_week_end": week.end.isoformat()}
    out: list[dict] = []

    def add(indicator: str, scope: str, modality: str, value, unit: str, numerator=None, denominator=None):
        out.append({**base, "indicator": indicator, "scope": scope, "modality": modality,
                    "modality_label": _label(modality),
                    "value": None if value is None else (round(value, 4) if isinstance(value, float) else value),
                    "numerator": None if numerator is None else round(numerator, 4),
                    "denominator": None if denominator is None else round(denominator, 4), "unit": unit})

    year_fa, week_fa = file_active(data), file_active_reference_week(data)
    add("file_active", "year", ALL, year_fa.all, "persons")
    for m in MODALITIES:
        add("file_active", "year", m, year_fa.by_modality[m], "persons")
    add("file_active", "reference_week", ALL, week_fa.all, "persons")
    for m in MODALITIES:
        add("file_active", "reference_week", m, week_fa.by_modality[m], "persons")
    for name, (overall, by_modality) in (("occupancy_rate", occupancy(data)), ("turnover_rate", turnover(data))):
        add(name, "year", ALL, overall.value, "ratio", overall.numerator, overall.denominator)
        for m in MODALITIES:
            rate = by_modality[m]
            add(name, "year", m, rate.value, "ratio", rate.numerator, rate.denominator)
    for m in MODALITIES:
        add("authorised_places", "year", m, round(mean_places(data.capacities, m, data.window), 4), "places")
    return out


def annual_dataset(store: Store, tenant: Tenant, year: int, *, now: dt.datetime | None = None,
                   reference_week: tuple[dt.date, dt.date] | None = None) -> dict:
    """The data set of `year` as a JSON-ready dict (see the module docstring)."""
    window = Window(dt.date(year, 1, 1), dt.date(year, 12, 31))
    week = reference_week_for(window, reference_week)
    with store.reading() as conn:
        data = load(conn, tenant.id, window, week)
    finess = next((c.finess for c in reversed(data.capacities)), None) or tenant.finess
    return {
        "format": FORMAT,
        "generated_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "platform": {"name": tenant.name, "finess": finess},
        "year": year,
        "period": {"from": window.start.isoformat(), "to": window.end.isoformat(), "days": window.days},
        "reference_week": {"from": week.start.isoformat(), "to": week.end.isoformat(),
                           "iso_week": "{}-W{:02d}".format(*week.start.isocalendar()[:2])},
        "capacity": [{"modality": c.modality, "valid_from": c.valid_from.isoformat(), "places": c.places,
                      "opening_days": c.opening_days, "finess": c.finess} for c in data.capacities],
        "definitions": DEFINITIONS,
        "indicators": rows(data, finess),
    }


def to_csv(dataset: dict) -> str:
    """The `indicators` rows as CSV (RFC 4180, comma, `.` decimal point, UTF-8, header line)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in dataset["indicators"]:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return buffer.getvalue()
