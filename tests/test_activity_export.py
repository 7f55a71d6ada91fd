"""The annual data set (relais-serafin-dataset/1, CSV and JSON), its MeasureReports (valid
FHIR R4 per fhir.resources R4B) and the SVG charts the console embeds."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.measurereport import MeasureReport

from gateway.activity.charts import bar_chart, file_active_chart, line_chart, modality_bar_chart, nice_ceiling, number_fr
from gateway.activity.dataset import COLUMNS, FORMAT, annual_dataset, to_csv
from gateway.activity.indicators import Window, report
from gateway.activity.measure_report import bundle, measure_reports
from gateway.activity.model import MODALITIES
from tests.test_activity_support import FINESS, NOW, WEEK, hand_case, shared_store, unique  # noqa: F401

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def case(shared_store):
    tenant = hand_case(shared_store, unique("export"))
    return shared_store, tenant


@pytest.fixture(scope="module")
def dataset(case):
    store, tenant = case
    return annual_dataset(store, tenant, 2026, now=NOW, reference_week=WEEK)


def row(data: dict, indicator: str, scope: str, modality: str) -> dict:
    return next(r for r in data["indicators"]
                if (r["indicator"], r["scope"], r["modality"]) == (indicator, scope, modality))


def test_the_dataset_carries_the_indicators_of_the_serafin_model(dataset):
    assert dataset["format"] == FORMAT == "relais-serafin-dataset/1"
    assert dataset["platform"]["finess"] == FINESS and dataset["year"] == 2026
    assert row(dataset, "file_active", "year", "*")["value"] == 3  # A, B and C (January)
    assert row(dataset, "file_active", "reference_week", "*")["value"] == 2
    assert row(dataset, "file_active", "reference_week", "day_care")["value"] == 2
    occupancy = row(dataset, "occupancy_rate", "year", "day_care")
    assert (occupancy["numerator"], occupancy["denominator"]) == (4, 365.0)  # 3 in February + C's day
    assert occupancy["value"] == round(4 / 365, 4)
    assert row(dataset, "turnover_rate", "year", "day_care")["value"] == 3.0  # A, B, C on 1 place
    assert row(dataset, "turnover_rate", "year", "night_care")["value"] is None
    assert row(dataset, "authorised_places", "year", "ordinary_environment")["value"] == 2.0
    assert {(r["indicator"], r["scope"]) for r in dataset["indicators"]} == {
        ("file_active", "year"), ("file_active", "reference_week"), ("occupancy_rate", "year"),
        ("turnover_rate", "year"), ("authorised_places", "year")}
    assert set(dataset["definitions"]) == {"file_active", "occupancy_rate", "turnover_rate", "authorised_places"}


def test_the_csv_has_the_documented_columns_and_the_same_rows(dataset):
    text = to_csv(dataset)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(dataset["indicators"]) == 2 * 7 + 2 * 7 + 6
    night = next(r for r in rows if r["indicator"] == "turnover_rate" and r["modality"] == "night_care")
    assert night["value"] == "" and night["modality_label"] == "accueil de nuit"
    assert {r["reference_week_start"] for r in rows} == {"2026-02-02"}


def test_the_default_reference_week_of_the_dataset_is_in_october(case):
    store, tenant = case
    data = annual_dataset(store, tenant, 2026, now=NOW)
    assert data["reference_week"] == {"from": "2026-10-12", "to": "2026-10-18", "iso_week": "2026-W42"}


def test_each_indicator_is_a_valid_fhir_measure_report(dataset):
    reports = measure_reports(dataset)
    assert [r["id"] for r in reports] == ["file-active-2026", "file-active-semaine-reference-2026",
                                          "taux-occupation-2026", "taux-rotation-2026"]
    for resource in reports:
        MeasureReport.model_validate(resource)
        assert resource["reporter"]["identifier"]["value"] == f"1{FINESS}"
        strata = resource["group"][0]["stratifier"][0]["stratum"]
        assert [s["value"]["coding"][0]["code"] for s in strata] == list(MODALITIES)
    Bundle.model_validate(bundle(dataset))
    occupancy = reports[2]["group"][0]
    assert [p["count"] for p in occupancy["population"]] == [2 + 4, 2 * 210 + 365]
    week = reports[1]
    assert week["period"] == {"start": "2026-02-02", "end": "2026-02-08"}
    assert week["group"][0]["measureScore"]["value"] == 2
    night = next(s for s in reports[3]["group"][0]["stratifier"][0]["stratum"]
                 if s["value"]["coding"][0]["code"] == "night_care")
    assert "measureScore" not in night  # no capacity: no score


# ------------------------------------------------------------------ charts


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def assert_accessible(root: ET.Element) -> None:
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    ids = root.get("aria-labelledby").split()
    found = {el.get("id"): el for el in root.iter() if el.get("id")}
    assert [found[i].tag for i in ids] == [f"{SVG}title", f"{SVG}desc"]
    assert found[ids[1]].text


def test_a_line_chart_is_self_contained_accessible_svg():
    svg = line_chart("File active <mensuelle> & co", ["janv. 2026", "févr. 2026", "mars 2026"],
                     {"toutes modalités": [10, None, 14], "milieu ordinaire": [5, 6, 7]}, unit="personnes", digits=0)
    root = parse(svg)
    assert_accessible(root)
    assert root.find(f"{SVG}title").text == "File active <mensuelle> & co"
    for forbidden in ("<script", "href", "http://", "https://", "url(", "@import"):
        assert forbidden not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    series = root.findall(f".//{SVG}g[@class='serie']")
    assert [g.get("data-serie") for g in series] == ["toutes modalités", "milieu ordinaire"]
    assert len(series[0].findall(f"{SVG}circle")) == 2  # the None month is a gap
    assert len(series[0].findall(f"{SVG}polyline")) == 0  # two isolated points, no line across the gap
    assert len(series[1].findall(f"{SVG}polyline")) == 1
    assert series[1].find(f"{SVG}circle/{SVG}title").text == "milieu ordinaire, janv. 2026 : 5 personnes"
    assert "toutes modalités : janv. 2026 10 personnes, févr. 2026 sans donnée" in root.find(f"{SVG}desc").text
    assert svg == line_chart("File active <mensuelle> & co", ["janv. 2026", "févr. 2026", "mars 2026"],
                             {"toutes modalités": [10, None, 14], "milieu ordinaire": [5, 6, 7]},
                             unit="personnes", digits=0)


def test_points_sit_at_their_value_on_a_nice_axis():
    root = parse(line_chart("t", ["a", "b"], {"s": [0, 8]}, height=340))
    circles = root.findall(f".//{SVG}circle")
    ys = [float(c.get("cy")) for c in circles]
    grid = sorted(float(line.get("y1")) for line in root.findall(f".//{SVG}line") if line.get("stroke") == "#dddddd")
    assert ys[0] == grid[-1]  # 0 on the axis base
    assert ys[1] == pytest.approx(grid[-1] - (grid[-1] - grid[0]) * 8 / 10)  # axis up to 10


def test_a_bar_chart_draws_one_bar_per_value_proportional_to_it():
    svg = bar_chart("Taux d'occupation", [("milieu ordinaire", 50.0), ("accueil de jour", None),
                                          ("hébergement", 100.0)], unit="%")
    root = parse(svg)
    assert_accessible(root)
    bars = root.findall(f"{SVG}rect")[1:]  # the first rect is the background
    assert len(bars) == 2
    assert float(bars[1].get("width")) == pytest.approx(2 * float(bars[0].get("width")))
    assert bars[0].find(f"{SVG}title").text == "milieu ordinaire : 50 %"
    assert "accueil de jour : sans donnée" in root.find(f"{SVG}desc").text


def test_empty_charts_say_so():
    for svg in (line_chart("vide", [], {}), bar_chart("vide", [])):
        root = parse(svg)
        assert_accessible(root)
        assert "aucune donnée" in svg


def test_charts_from_a_report(case):
    store, tenant = case
    result = report(store, tenant, Window(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), reference_week=WEEK)
    line = parse(file_active_chart(result))
    assert [g.get("data-serie") for g in line.findall(f".//{SVG}g[@class='serie']")] == [
        "toutes modalités", "milieu ordinaire", "accueil de jour"]
    for indicator in ("file_active", "file_active_reference_week", "occupancy", "turnover", "intensity", "transport"):
        assert_accessible(parse(modality_bar_chart(result, indicator)))
    occupancy = parse(modality_bar_chart(result, "occupancy"))
    assert [r.find(f"{SVG}title").text.split(" : ")[0] for r in occupancy.findall(f"{SVG}rect")[1:]] == [
        "milieu ordinaire", "accueil de jour"]


@pytest.mark.parametrize(("value", "digits", "text"), [(12345.6, 1, "12\u202f345,6"), (0.5, 2, "0,5"),
                                                       (3.0, 1, "3"), (1234, 0, "1\u202f234")])
def test_numbers_are_written_the_french_way(value, digits, text):
    assert number_fr(value, digits) == text


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (0.7, 1), (8, 10), (11, 20), (24, 25), (260, 500), (1000, 1000)])
def test_axis_maxima_are_round_numbers(value, ceiling):
    assert nice_ceiling(value) == ceiling
