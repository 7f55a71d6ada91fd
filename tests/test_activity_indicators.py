"""Each indicator pinned on the hand-computed case (tests/test_activity_support.py), on both
backends, plus the conventions the seeds leave open (half-days, reference week, capacity)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.activity.indicators import (
    Window,
    capacity_days,
    file_active,
    file_active_reference_week,
    intensity,
    load,
    mean_places,
    modularity,
    occupancy,
    report,
    transport,
    turnover,
)
from gateway.activity.model import Capacity, anchored_week, default_reference_week, half_days, parse_week
from tests.test_activity_support import FEBRUARY, WEEK, hand_case, shared_store, unique  # noqa: F401

PARIS = ZoneInfo("Europe/Paris")
OE, DC = "ordinary_environment", "day_care"
OE_CAPACITY_DAYS = 2 * 210 * 28 / 365  # 32.2191…


@pytest.fixture(scope="module")
def case(shared_store):
    store = shared_store
    tenant = hand_case(store, unique("main"))
    with store.reading() as conn:
        data = load(conn, tenant.id, Window(*FEBRUARY), Window(*WEEK))
    return store, tenant, data


def test_file_active_counts_persons_with_a_delivered_direct_service(case):
    _, _, data = case
    fa = file_active(data)
    assert fa.all == 2  # A and B; C's only activity is in January
    assert fa.by_modality[OE] == 2 and fa.by_modality[DC] == 2
    assert sum(fa.by_modality.values()) == 4 >= fa.all


def test_file_active_of_the_reference_week(case):
    _, _, data = case
    fa = file_active_reference_week(data)
    assert fa.all == 2
    assert fa.by_modality[OE] == 1  # A on 02/02; B's ordinary environment is on 16/02
    assert fa.by_modality[DC] == 2


def test_occupancy_is_days_delivered_over_capacity_days(case):
    _, _, data = case
    overall, by_modality = occupancy(data)
    # ordinary env.: A 02/02 (two sessions, one day) + B 16/02; cancelled / absent / indirect not counted
    assert by_modality[OE].numerator == 2
    assert by_modality[OE].denominator == pytest.approx(OE_CAPACITY_DAYS)
    assert by_modality[OE].value == pytest.approx(2 / OE_CAPACITY_DAYS)
    assert (by_modality[DC].numerator, by_modality[DC].denominator) == (3, pytest.approx(28))
    assert by_modality[DC].value == pytest.approx(3 / 28)
    assert overall.value == pytest.approx(5 / (OE_CAPACITY_DAYS + 28))
    assert by_modality["night_care"].value is None  # no authorised places


def test_turnover_is_persons_over_places(case):
    _, _, data = case
    overall, by_modality = turnover(data)
    assert by_modality[OE].value == pytest.approx(2 / 2)
    assert by_modality[DC].value == pytest.approx(2 / 1)
    assert overall.value == pytest.approx(4 / 3)
    assert by_modality["sequential"].value is None


def test_intensity_per_day_week_month_and_half_days(case):
    _, _, data = case
    overall, by_modality = intensity(data)
    # hours: A 1.5 + 1 + 7, B 3 + 3 + 1 = 16.5; days: A 2, B 3; half-days: A 4, B 3; 2 persons × 4 weeks
    assert (overall.persons, overall.days, overall.half_days, overall.hours) == (2, 5, 7, 16.5)
    assert overall.per_day == pytest.approx(16.5 / 5)
    assert overall.per_week == pytest.approx(16.5 / 8)
    assert overall.per_month == pytest.approx(16.5 / (2 * 28 / (365.2425 / 12)))
    assert overall.half_days_per_week == pytest.approx(7 / 8)
    oe = by_modality[OE]
    assert (oe.days, oe.half_days, oe.hours) == (2, 3, 3.5)
    assert oe.per_day == pytest.approx(1.75) and oe.per_week == pytest.approx(3.5 / 8)
    dc = by_modality[DC]
    assert (dc.days, dc.half_days, dc.hours) == (3, 4, 13)
    assert by_modality["night_care"].per_day is None


def test_modularity_counts_persons_combining_modalities(case):
    _, _, data = case
    result = modularity(data)
    assert result["persons"] == 2
    assert result["combining_several"] == {"persons": 2, "share": 1.0}
    assert result["by_number_of_modalities"] == {"2": 2}
    assert result["by_modality"][OE] == {"persons": 2, "share": 1.0}
    assert result["mean_modalities"] == 2.0


def test_transport_counts_finished_activities_even_without_the_person(case):
    _, _, data = case
    result = transport(data)
    assert result["km"] == 30.0  # 10 + 8 (absent) + 12 (transport service); the cancelled 5 km is not
    assert result["hours"] == pytest.approx(65 / 60, abs=1e-4)
    assert result["by_modality"][OE]["km"] == 30.0 and result["by_modality"][DC]["km"] == 0.0


def test_the_report_groups_by_specialisation_family(case):
    store, tenant, _ = case
    result = report(store, tenant, Window(*FEBRUARY), reference_week=WEEK, by="specialisation")
    families = result["by_specialisation"]
    assert families["neurodevelopmental"]["file_active"]["all"] == 1
    assert families["psychiatric"]["file_active"]["all"] == 1
    assert families["sensory"]["file_active"]["all"] == 0  # C: nothing in February
    assert families["neurodevelopmental"]["intensity"]["all"]["hours"] == 9.5
    assert "occupancy" not in families["psychiatric"]  # capacity is not per family
    assert result["platform"]["finess"] == "750000001"


def test_a_window_with_partial_months_reads_the_daily_rollup(case):
    store, tenant, _ = case
    whole = report(store, tenant, Window(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), reference_week=WEEK)
    ragged = report(store, tenant, Window(dt.date(2026, 1, 30), dt.date(2026, 2, 16)), reference_week=WEEK)
    assert whole["file_active"]["all"] == ragged["file_active"]["all"] == 3  # with C in January
    for key in ("days", "half_days", "hours"):
        assert whole["intensity"]["all"][key] == ragged["intensity"]["all"][key]
    assert [m["month"] for m in ragged["series"]] == ["2026-01", "2026-02"]
    assert ragged["series"][0]["file_active"]["all"] == 1


def test_monthly_series_splits_the_window_by_month(case):
    store, tenant, _ = case
    result = report(store, tenant, Window(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), reference_week=WEEK)
    by_month = {m["month"]: m for m in result["series"]}
    assert by_month["2026-01"]["file_active"]["all"] == 1
    assert by_month["2026-02"]["file_active"]["all"] == 2
    assert by_month["2026-03"]["file_active"]["all"] == 0
    assert by_month["2026-02"]["hours"] == 16.5


# ------------------------------------------------------------------ conventions


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("09:00", "10:30", (True, False)),
    ("12:30", "13:30", (True, True)),
    ("13:00", "14:00", (False, True)),
    ("09:00", "16:00", (True, True)),
    ("20:00", "23:59", (False, True)),
    ("11:00", "11:00", (True, False)),
])
def test_half_days_split_at_one_pm(start, end, expected):
    day = dt.date(2026, 3, 4)
    at = lambda hhmm: dt.datetime.combine(day, dt.time.fromisoformat(hhmm), PARIS)  # noqa: E731
    assert half_days(at(start), at(end)) == expected


def test_a_night_activity_counts_on_its_start_day_afternoon_only():
    start = dt.datetime(2026, 3, 4, 20, tzinfo=PARIS)
    assert half_days(start, start + dt.timedelta(hours=12)) == (False, True)


@pytest.mark.parametrize(("year", "monday"), [(2026, dt.date(2026, 10, 12)), (2024, dt.date(2024, 10, 14)),
                                             (2029, dt.date(2029, 10, 8))])
def test_the_default_reference_week_is_the_second_full_week_of_october(year, monday):
    start, end = anchored_week(year)
    assert start == monday and start.weekday() == 0 and end - start == dt.timedelta(days=6)
    october_mondays = [d for d in (dt.date(year, 10, 1) + dt.timedelta(days=i) for i in range(31)) if d.weekday() == 0]
    assert start == october_mondays[1]


def test_reference_week_of_a_period_without_october_is_its_last_full_week():
    assert default_reference_week(dt.date(2026, 11, 1), dt.date(2026, 11, 30)) == (
        dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    assert default_reference_week(dt.date(2026, 1, 1), dt.date(2026, 12, 31)) == anchored_week(2026)
    assert default_reference_week(dt.date(2026, 11, 4), dt.date(2026, 11, 6)) == (
        dt.date(2026, 11, 2), dt.date(2026, 11, 8))


@pytest.mark.parametrize("text", ["2026-W42", "2026-10-14", "2026-10-12"])
def test_reference_week_can_be_given_as_iso_week_or_date(text):
    assert parse_week(text) == (dt.date(2026, 10, 12), dt.date(2026, 10, 18))


def test_an_unreadable_week_is_refused_in_french():
    with pytest.raises(ValueError, match="semaine de référence illisible"):
        parse_week("semaine 42")


def test_capacity_days_follow_authorisation_changes_and_leap_years():
    caps = [Capacity("day_care", dt.date(2024, 1, 1), 10, 366, "750000001"),
            Capacity("day_care", dt.date(2024, 7, 1), 20, 366, "750000001")]
    window = Window(dt.date(2024, 6, 1), dt.date(2024, 7, 31))  # 2024 is a leap year
    assert capacity_days(caps, "day_care", window) == pytest.approx(10 * 30 + 20 * 31)
    assert mean_places(caps, "day_care", window) == pytest.approx((10 * 30 + 20 * 31) / 61)
    closed = caps + [Capacity("day_care", dt.date(2024, 7, 16), 0, 366, "750000001")]
    assert capacity_days(closed, "day_care", window) == pytest.approx(10 * 30 + 20 * 15)
    assert capacity_days(caps, "night_care", window) == 0
