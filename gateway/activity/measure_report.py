"""The annual data set as FHIR R4 `MeasureReport`s: one per indicator, stratified by modality.

Pure: `measure_reports(dataset)` reads the dict of `gateway.activity.dataset.annual_dataset`.
Each report is `status` complete, `type` summary, `measure` the Relais canonical of the
indicator, `reporter` the platform by its national structure identifier (idNatSt `1`+FINESS,
FR Core), `period` the year (the reference week for the week's file active). The group's
`measureScore` is the indicator (persons, or a ratio with UCUM unit `1`); rates carry their
`numerator` and `denominator` populations (FHIR counts are integers: capacity days are rounded
there, the score is exact). One stratum per modality (Relais modality code system).
"""

from __future__ import annotations

import uuid

from gateway.activity.dataset import ALL, DEFINITIONS
from mappings.fhir.tddui import constants as c

MEASURE = f"{c.RELAIS}/Measure/serafin-ph-"
CS_INDICATOR = f"{c.RELAIS}/CodeSystem/activity-indicator"
CS_MODALITY = f"{c.RELAIS}/CodeSystem/modality"
CS_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.UUID("6f0f7a52-53f4-4d8e-9a55-0b8c7d3e2a10")
# (indicator, scope) -> (Measure tail, French title)
REPORTS = {
    ("file_active", "year"): ("file-active", "File active annuelle"),
    ("file_active", "reference_week"): ("file-active-semaine-reference", "File active sur la semaine de référence"),
    ("occupancy_rate", "year"): ("taux-occupation", "Taux d'occupation annuel"),
    ("turnover_rate", "year"): ("taux-rotation", "Taux de rotation annuel"),
}


def _score(row: dict) -> dict | None:
    if row["value"] is None:
        return None
    if row["unit"] == "persons":
        return {"value": row["value"], "unit": "personnes", "system": UCUM, "code": "{persons}"}
    return {"value": row["value"], "unit": "ratio", "system": UCUM, "code": "1"}


def _populations(row: dict) -> list[dict]:
    def population(code: str, count) -> dict:
        return {"code": {"coding": [{"system": CS_POPULATION, "code": code}]}, "count": int(round(count))}

    if row["unit"] == "persons":
        return [population("initial-population", row["value"])]
    if row["numerator"] is None:
        return []
    return [population("numerator", row["numerator"]), population("denominator", row["denominator"])]


def _part(row: dict) -> dict:
    out: dict = {}
    populations = _populations(row)
    if populations:
        out["population"] = populations
    score = _score(row)
    if score is not None:
        out["measureScore"] = score
    return out


def measure_report(dataset: dict, indicator: str, scope: str) -> dict:
    rows = [r for r in dataset["indicators"] if r["indicator"] == indicator and r["scope"] == scope]
    overall = next(r for r in rows if r["modality"] == ALL)
    tail, title = REPORTS[(indicator, scope)]
    period = dataset["reference_week"] if scope == "reference_week" else dataset["period"]
    finess = dataset["platform"]["finess"]
    report: dict = {
        "resourceType": "MeasureReport",
        "id": f"{tail}-{dataset['year']}",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE + tail,
        "date": dataset["generated_at"],
        "period": {"start": period["from"], "end": period["to"]},
        "group": [{
            "code": {"coding": [{"system": CS_INDICATOR, "code": indicator, "display": title}],
                     "text": f"{title} — {DEFINITIONS[indicator]}"},
            **_part(overall),
            "stratifier": [{
                "code": [{"coding": [{"system": CS_INDICATOR, "code": "modality"}], "text": "modalité d'accueil"}],
                "stratum": [{"value": {"coding": [{"system": CS_MODALITY, "code": r["modality"],
                                                   "display": r["modality_label"]}]}, **_part(r)}
                            for r in rows if r["modality"] != ALL],
            }],
        }],
    }
    reporter = {"display": dataset["platform"]["name"]}
    if finess:
        reporter["identifier"] = {"system": c.IDNAT_STRUCT, "value": f"1{finess}"}
    report["reporter"] = reporter
    return report


def measure_reports(dataset: dict) -> list[dict]:
    return [measure_report(dataset, indicator, scope) for indicator, scope in REPORTS]


def bundle(dataset: dict) -> dict:
    """The reports in a `collection` Bundle (deterministic fullUrls)."""
    reports = measure_reports(dataset)
    key = f"{dataset['platform']['finess']}|{dataset['year']}|{dataset['generated_at']}"
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": dataset["generated_at"],
        "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, key + '|' + r['id'])}", "resource": r}
                  for r in reports],
    }
