"""The main indicators of a period as a few French lines (`make demo`, `relais activity indicators`)."""

from __future__ import annotations

import datetime as dt

from gateway.activity.charts import number_fr
from gateway.activity.indicators import Window, report
from gateway.activity.model import MODALITIES, MODALITY_FR
from gateway.storage import Store, Tenant


def _date(text: str) -> str:
    return dt.date.fromisoformat(text).strftime("%d/%m/%Y")


def _per_modality(values: dict, fmt) -> str:
    parts = [f"{MODALITY_FR[m]} {fmt(values[m])}" for m in MODALITIES if values.get(m) not in (None, 0)]
    return f" ({', '.join(parts)})" if parts else ""


def _percent(rate: dict) -> str:
    return f"{number_fr(rate['value'] * 100, 1)} %"


def _persons(n: int) -> str:
    return f"{n} personne{'s' if n > 1 else ''}"


def report_lines(result: dict) -> list[str]:
    """French lines for a `gateway.activity.indicators.report` result."""
    period, week = result["period"], result["reference_week"]
    platform = result["platform"]
    fa, fa_week = result["file_active"], result["file_active_reference_week"]
    lines = [f"Activité réalisée du {_date(period['from'])} au {_date(period['to'])}, en unités SERAFIN-PH "
             f"(« {platform['name']} »{', FINESS ' + platform['finess'] if platform['finess'] else ''})",
             f"  file active : {_persons(fa['all'])}{_per_modality(fa['by_modality'], str)}",
             f"  semaine de référence du {_date(week['from'])} au {_date(week['to'])} ({week['iso_week']}) : "
             f"{_persons(fa_week['all'])}{_per_modality(fa_week['by_modality'], str)}"]
    occupancy, turnover = result["occupancy"], result["turnover"]
    if occupancy["all"]["value"] is None:
        lines.append("  taux d'occupation et de rotation : non calculés, aucune capacité autorisée enregistrée "
                     "(relais activity capacity)")
    else:
        rated = {m: r for m, r in occupancy["by_modality"].items() if r["value"] is not None}
        lines.append(f"  taux d'occupation : {_percent(occupancy['all'])} des journées permises par les places "
                     f"autorisées{_per_modality(rated, _percent)}")
        rotated = {m: r for m, r in turnover["by_modality"].items() if r["value"] is not None}
        lines.append(f"  taux de rotation : {number_fr(turnover['all']['value'], 2)} personne(s) par place"
                     f"{_per_modality(rotated, lambda r: number_fr(r['value'], 2))}")
    intensity = result["intensity"]["all"]
    if intensity["persons"]:
        lines.append(f"  intensité : {number_fr(intensity['per_day'], 1)} h de prestations directes par jour "
                     f"d'accompagnement ; par personne et par semaine, {number_fr(intensity['per_week'], 1)} h "
                     f"et {number_fr(intensity['half_days_per_week'], 1)} demi-journée(s)")
    modularity = result["modularity"]
    if modularity["persons"]:
        several = modularity["combining_several"]
        lines.append(f"  modularité : {several['persons']} personne(s) sur {modularity['persons']} "
                     f"({number_fr(several['share'] * 100, 0)} %) combinent plusieurs modalités ; "
                     f"{number_fr(modularity['mean_modalities'], 2)} modalité(s) par personne en moyenne")
    transport = result["transport"]
    lines.append(f"  transports : {number_fr(transport['km'], 0)} km, {number_fr(transport['hours'], 0)} h")
    return lines


def indicators_summary_lines(store: Store, tenant: Tenant, start: dt.date, end: dt.date, *,
                             reference_week: tuple[dt.date, dt.date] | None = None) -> list[str]:
    """The main indicators of the platform from `start` to `end` (inclusive), in French."""
    return report_lines(report(store, tenant, Window(start, end), reference_week=reference_week,
                               series=False))
