"""The demo's month of synthetic activity for the fixtures, and its French summary lines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.activity.indicators import Window, report
from gateway.activity.model import ActivityInput
from gateway.activity.summary import indicators_summary_lines
from gateway.activity.synthetic import month_after, record_synthetic_month, synthetic_activities
from gateway.model.plan import IntensityUnit
from gateway.plans import validate_plan_json
from gateway.storage import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
PARIS = ZoneInfo("Europe/Paris")
NOVEMBER = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def plans():
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        plan, _ = validate_plan_json(path.read_bytes(), dt.date(2026, 11, 26))
        out.append(plan)
    return out


@pytest.fixture(scope="module")
def recorded(plans, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'relais.db'}")
    store.migrate()
    tenant = store.create_tenant("demo", "Plateforme de démonstration", plans[0].platform.finess)
    for plan in plans:
        store.put_plan(tenant, plan, if_match=None, actor="test")
    first = record_synthetic_month(store, tenant, plans, NOVEMBER, seed=7)
    second = record_synthetic_month(store, tenant, plans, NOVEMBER, seed=7)
    yield store, tenant, first, second
    store.close()


def test_a_month_of_activity_is_recorded_once(recorded):
    _, _, first, second = recorded
    assert (first.start, first.end) == (NOVEMBER, dt.date(2026, 11, 30))
    assert first.persons > 30 and first.created == first.activities > 1000
    assert first.capacity_recorded and not second.capacity_recorded
    assert (second.created, second.replaced, second.unchanged) == (0, 0, first.activities)


def test_synthetic_activity_is_deterministic_and_valid(plans):
    one = [synthetic_activities(p, NOVEMBER, 7, PARIS) for p in plans]
    assert one == [synthetic_activities(p, NOVEMBER, 7, PARIS) for p in plans]
    assert one != [synthetic_activities(p, NOVEMBER, 8, PARIS) for p in plans]
    for batch in one:
        for item in batch:
            ActivityInput.model_validate(item)


def test_synthetic_activity_follows_the_planned_intensity(plans):
    """Over a month, hours delivered (with cancellations) stay close to hours a week × weeks."""
    for plan in plans:
        items = {i["id"]: i for i in synthetic_activities(plan, NOVEMBER, 7, PARIS)}
        for service in plan.services:
            if service.intensity is None or service.intensity.unit is not IntensityUnit.hours_per_week:
                continue
            mine = [i for i in items.values() if i["service_id"] == service.id]
            if not mine:
                continue
            start, end = service.period.start or NOVEMBER, service.period.end or dt.date(2026, 11, 30)
            assert all(start.isoformat() <= i["start"][:10] <= end.isoformat() for i in mine)
            minutes = sum((dt.datetime.fromisoformat(i["end"]) - dt.datetime.fromisoformat(i["start"])).seconds
                          for i in mine) / 60
            weeks = (min(end, dt.date(2026, 11, 30)) - max(start, NOVEMBER)).days / 7 + 1 / 7
            planned = float(service.intensity.value) * weeks
            assert 0.6 * planned - 1.5 <= minutes / 60 <= 1.6 * planned + 1.5, (plan.person.local_id, service.id)


def test_closed_and_draft_plans_get_no_activity(plans):
    for plan in plans:
        if plan.status.value in ("draft", "closed", "suspended"):
            assert synthetic_activities(plan, NOVEMBER, 7, PARIS) == []


def test_the_summary_lines_speak_french(recorded):
    store, tenant, first, _ = recorded
    lines = indicators_summary_lines(store, tenant, first.start, first.end)
    assert lines[0].startswith("Activité réalisée du 01/11/2026 au 30/11/2026, en unités SERAFIN-PH")
    assert lines[1].startswith(f"  file active : {first.persons} personnes (milieu ordinaire")
    assert lines[2].startswith("  semaine de référence du 23/11/2026 au 29/11/2026 (2026-W48)")
    labels = [line.split(" : ")[0].strip() for line in lines[3:]]
    assert labels == ["taux d'occupation", "taux de rotation", "intensité", "modularité", "transports"]
    result = report(store, tenant, Window(first.start, first.end), series=False)
    assert result["file_active"]["all"] == first.persons


def test_without_capacity_the_summary_says_how_to_record_it(tmp_path, plans):
    with Store(f"sqlite:///{tmp_path / 'relais.db'}") as store:
        store.migrate()
        tenant = store.create_tenant("sans-finess", "Plateforme sans FINESS")
        lines = indicators_summary_lines(store, tenant, NOVEMBER, dt.date(2026, 11, 30))
    assert "  file active : 0 personne" in lines
    assert any("non calculés, aucune capacité autorisée enregistrée (relais activity capacity)" in line for line in lines)


@pytest.mark.parametrize(("start", "end"), [(dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
                                            (dt.date(2026, 1, 31), dt.date(2026, 2, 27)),
                                            (dt.date(2026, 12, 15), dt.date(2027, 1, 14))])
def test_a_month_runs_to_the_day_before_the_same_date(start, end):
    assert month_after(start) == end
