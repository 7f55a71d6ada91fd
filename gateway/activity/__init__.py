"""Delivered activity in SERAFIN-PH units: records, indicators, annual data set (issue 10).

Public API:
    record_activities(store, tenant, person, payload, actor=…)  # API / file JSON (record.py)
    record_bundle(store, tenant, person, bundle, actor=…)       # TDDUI evenement Encounters (tddui.py)
    report(store, tenant, Window(start, end), …) -> dict         # every indicator (indicators.py)
    planned_vs_delivered(store, tenant, person, window) -> dict  # per planned service (planned.py)
    annual_dataset(store, tenant, year) -> dict, to_csv(dataset) # relais-serafin-dataset/1 (dataset.py)
    measure_reports(dataset) -> list[dict]                       # FHIR R4 MeasureReport (measure_report.py)
    set_capacity / set_capacities / list_capacities              # FINESS authorisation (capacity.py)
    line_chart, bar_chart, file_active_chart, modality_bar_chart # SVG for the console (charts.py)
    record_synthetic_month(store, tenant, plans, start, seed)    # the demo's month (synthetic.py)
    indicators_summary_lines(store, tenant, start, end)          # French lines (summary.py)

Layout: model (input, conventions, reference week) · tables · rollup (daily / monthly) ·
record + tddui (writing) · indicators (definitions) · planned · capacity · dataset ·
measure_report · charts · synthetic · summary.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ActivityRejected": "gateway.activity.record",
    "record_activities": "gateway.activity.record",
    "record_bundle": "gateway.activity.tddui",
    "Window": "gateway.activity.indicators",
    "report": "gateway.activity.indicators",
    "planned_vs_delivered": "gateway.activity.planned",
    "annual_dataset": "gateway.activity.dataset",
    "to_csv": "gateway.activity.dataset",
    "measure_reports": "gateway.activity.measure_report",
    "set_capacity": "gateway.activity.capacity",
    "set_capacities": "gateway.activity.capacity",
    "list_capacities": "gateway.activity.capacity",
    "line_chart": "gateway.activity.charts",
    "bar_chart": "gateway.activity.charts",
    "file_active_chart": "gateway.activity.charts",
    "modality_bar_chart": "gateway.activity.charts",
    "record_synthetic_month": "gateway.activity.synthetic",
    "SyntheticSummary": "gateway.activity.synthetic",
    "indicators_summary_lines": "gateway.activity.summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.activity' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
