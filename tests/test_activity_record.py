"""Recording delivered activity: validation with JSON paths / FHIRPath, idempotency on the DUI
event id, replacement, all-or-nothing, TDDUI evenement Encounters, planned vs delivered."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gateway.activity.indicators import Window, report
from gateway.activity.planned import planned_vs_delivered
from gateway.activity.record import ActivityRejected, record_activities
from gateway.activity.tables import activity_days, activity_months, activity_records
from gateway.activity.tddui import persons_in_bundle, record_bundle
from gateway.storage import NotFound
from mappings.fhir.tddui import plan_to_bundle
from tests.conftest import make_plan
from tests.test_activity_support import (  # noqa: F401 (shared_store is a fixture)
    FEBRUARY,
    FINESS,
    NOW,
    act,
    hand_case,
    plan_dict,
    plan_for,
    shared_store,
    unique,
)


@pytest.fixture
def store(shared_store):
    return shared_store


@pytest.fixture
def tenant(store):
    tenant = store.create_tenant(unique("plateforme-a"), "Plateforme A", FINESS)
    store.put_plan(tenant, plan_for("A", ["neurodevelopmental"]), if_match=None, actor="test")
    return tenant


def count(store, table, tenant) -> int:
    with store.reading() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)
                            .where(table.c.tenant_id == tenant.id)).scalar()


def record(store, tenant, *items, person="A"):
    return record_activities(store, tenant, person, {"activities": list(items)}, actor="test", now=NOW)


def rules(exc: ActivityRejected) -> list[tuple[str, str]]:
    return [(p.location, p.rule) for p in exc.problems if p.severity.value == "error"]


def test_activities_are_stored_and_sending_them_again_changes_nothing(store, tenant):
    items = [act("a1", "2026-02-02", "09:00", "10:00"), act("a2", "2026-02-03", "09:00", "10:00")]
    first = record(store, tenant, *items)
    again = record(store, tenant, *items)
    assert (first.created, first.unchanged) == (2, 0)
    assert (again.created, again.replaced, again.unchanged) == (0, 0, 2)
    assert count(store, activity_records, tenant) == 2


def test_the_same_event_id_with_new_content_replaces_the_activity_and_its_counts(store, tenant):
    record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"))
    result = record(store, tenant, act("a1", "2026-03-10", "14:00", "16:00"))
    assert result.replaced == 1
    with store.reading() as conn:
        days = conn.execute(sa.select(activity_days.c.day, activity_days.c.direct_minutes)
                            .where(activity_days.c.tenant_id == tenant.id)).all()
        months = conn.execute(sa.select(activity_months.c.month).where(
            activity_months.c.modality == "*", activity_months.c.tenant_id == tenant.id)).all()
    assert days == [(dt.date(2026, 3, 10), 120)]  # the February day is gone
    assert [m.month for m in months] == [202603]


def test_cancelling_an_activity_removes_it_from_the_indicators(store, tenant):
    record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"))
    record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00", status="cancelled"))
    result = report(store, tenant, Window(*FEBRUARY), series=False)
    assert result["file_active"]["all"] == 0


def test_date_and_duration_are_accepted_with_a_part_of_day(store, tenant):
    record(store, tenant,
           {"id": "d1", "code": "2.2.1", "service_id": "S2", "date": "2026-02-02", "duration_minutes": 180,
            "part_of_day": "afternoon"},
           {"id": "d2", "code": "2.2.1", "service_id": "S2", "date": "2026-02-03", "duration_minutes": 360})
    with store.reading() as conn:
        rows = conn.execute(sa.select(activity_records.c.source_id, activity_records.c.start_at,
                                      activity_records.c.morning, activity_records.c.afternoon)
                            .where(activity_records.c.tenant_id == tenant.id)
                            .order_by(activity_records.c.source_id)).all()
    assert [tuple(r) for r in rows] == [("d1", None, False, True), ("d2", None, True, True)]


def test_modality_place_and_provider_come_from_the_planned_service(store, tenant):
    record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"))
    with store.reading() as conn:
        row = conn.execute(sa.select(activity_records).where(activity_records.c.tenant_id == tenant.id)).one()
    assert (row.modality, row.place, row.provider_kind, row.provider_name) == (
        "ordinary_environment", "school", "platform_team", "Équipe")


@pytest.mark.parametrize(("item", "location", "rule"), [
    ({"code": "1.3.3.1"}, "$.activities[0].code", "serafin-wrong-family"),
    ({"code": "2.3.3"}, "$.activities[0].code", "serafin-not-leaf"),
    ({"code": "9.9"}, "$.activities[0].code", "format"),
    ({"service_id": "S9"}, "$.activities[0].service_id", "activity-unknown-service"),
    ({"service_id": None, "code": "2.4.1"}, "$.activities[0].modality", "activity-modality-required"),
    ({"start": "2026-02-02T09:00:00"}, "$.activities[0].start", "activity-timezone"),
    ({"end": "2026-02-02T08:00:00+01:00"}, "$.activities[0]", "period-order"),
    ({"end": "2026-02-04T10:00:00+01:00"}, "$.activities[0]", "activity-duration"),
    ({"date": "2026-02-02"}, "$.activities[0]", "activity-timing"),
    ({"start": "2027-06-01T09:00:00+02:00", "end": "2027-06-01T10:00:00+02:00"},
     "$.activities[0].start", "activity-finished-in-future"),
    ({"transport_km": -3}, "$.activities[0].transport_km", "out-of-range"),
    ({"person": "B"}, "$.activities[0].person", "activity-person-mismatch"),
    ({"colour": "blue"}, "$.activities[0].colour", "unknown-field"),
])
def test_bad_input_is_refused_with_its_json_path_and_rule(store, tenant, item, location, rule):
    base = act("a1", "2026-02-02", "09:00", "10:00")
    base.update(item)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(ActivityRejected) as caught:
        record(store, tenant, base)
    assert (location, rule) in rules(caught.value), rules(caught.value)


def test_one_bad_activity_refuses_the_whole_request(store, tenant):
    with pytest.raises(ActivityRejected) as caught:
        record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"), act("a2", "2026-02-02", "09:00", "10:00",
                                                                             code="1.1.1"))
    assert rules(caught.value) == [("$.activities[1].code", "serafin-wrong-family")]
    assert count(store, activity_records, tenant) == 0


def test_a_repeated_id_in_one_request_is_refused(store, tenant):
    with pytest.raises(ActivityRejected) as caught:
        record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"), act("a1", "2026-02-03", "09:00", "10:00"))
    assert ("$.activities[1].id", "activity-duplicate-id") in rules(caught.value)


def test_a_code_differing_from_the_planned_service_is_a_warning(store, tenant):
    result = record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00", code="2.3.3.2"))
    assert [(w.location, w.rule) for w in result.warnings] == [
        ("$.activities[0].code", "activity-code-differs-from-service")]


def test_a_person_without_a_plan_is_not_found(store, tenant):
    with pytest.raises(NotFound):
        record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"), person="INCONNU")


def test_another_tenant_never_sees_the_activity(store, tenant):
    record(store, tenant, act("a1", "2026-02-02", "09:00", "10:00"))
    other = store.create_tenant(unique("plateforme-b"), "Plateforme B", FINESS)
    store.put_plan(other, plan_for("A"), if_match=None, actor="test")
    assert report(store, other, Window(*FEBRUARY), series=False)["file_active"]["all"] == 0
    assert planned_vs_delivered(store, other, "A", Window(*FEBRUARY))["activities"] == []


def test_planned_versus_delivered_per_service(store):
    tenant = hand_case(store, unique("main"))
    result = planned_vs_delivered(store, tenant, "A", Window(*FEBRUARY))
    services = {s["service_id"]: s for s in result["services"]}
    assert services["S1"]["planned"] == {"unit": "hours", "value": 12.0}  # 3 h × 4 weeks
    assert services["S1"]["delivered"] == {"sessions": 2, "hours": 2.5, "half_days": 2, "absent": 1,
                                           "cancelled": 1, "transport_km": 18.0}
    assert services["S1"]["achieved"] == round(2.5 / 12, 4)
    assert services["S2"]["planned"] == {"unit": "half_days", "value": 16.0}  # 4 half-days × 4 weeks
    assert services["S2"]["delivered"]["half_days"] == 2
    assert services["S3"]["planned"] is None  # no intensity
    assert result["activities_total"] == 6 and result["outside_plan"]["sessions"] == 0


# ------------------------------------------------------------------ TDDUI


def _plan_with_events():
    data = plan_dict("A", ["neurodevelopmental"])
    data["professionals"].append({"id": "PRO", "family_name": "EDUC", "role": "éducatrice"})
    data["events"] = [
        {"id": "EV1", "code": "2.3.3.1", "status": "finished", "service_id": "S1",
         "period": {"start": "2026-02-02T09:00:00+01:00", "end": "2026-02-02T10:00:00+01:00"},
         "transport_km": 7.5, "transport_minutes": 12},
        {"id": "EV2", "code": "2.2.1", "status": "finished", "modality": "day_care",
         "period": {"start": "2026-02-03T14:00:00+01:00", "end": "2026-02-03T17:00:00+01:00"}},
        {"id": "EV3", "code": "2.3.3.1", "status": "cancelled", "service_id": "S1",
         "period": {"start": "2026-02-04T09:00:00+01:00", "end": "2026-02-04T10:00:00+01:00"}},
    ]
    return make_plan(data)


def test_tddui_evenement_encounters_are_recorded_as_activity(store, tenant):
    plan = _plan_with_events()
    bundle = plan_to_bundle(plan, NOW)
    assert persons_in_bundle(bundle) == {"A"}
    result = record_bundle(store, tenant, "A", bundle, actor="test", now=NOW)
    assert (result.created, result.unchanged) == (3, 0)
    assert {w.rule for w in result.warnings} == {"activity-resource-ignored"}
    with store.reading() as conn:
        rows = {r.source_id: r for r in conn.execute(
            sa.select(activity_records).where(activity_records.c.tenant_id == tenant.id))}
    assert rows["EV1"].service_id == "S1" and rows["EV1"].transport_m == 7500 and rows["EV1"].source == "tddui"
    assert rows["EV2"].modality == "day_care" and rows["EV2"].afternoon and not rows["EV2"].morning
    assert rows["EV3"].status == "cancelled"
    assert record_bundle(store, tenant, "A", bundle, actor="test", now=NOW).unchanged == 3


def test_tddui_problems_are_located_by_fhirpath(store, tenant):
    bundle = plan_to_bundle(_plan_with_events(), NOW)
    events = [i for i, e in enumerate(bundle["entry"]) if "evenement" in e["resource"]["meta"]["profile"][0]]
    bundle["entry"][events[0]]["resource"]["type"][0]["coding"][0]["code"] = "1.1.1"
    bundle["entry"][events[1]]["resource"]["period"]["start"] = "hier"
    with pytest.raises(ActivityRejected) as caught:
        record_bundle(store, tenant, "A", bundle, actor="test", now=NOW)
    assert rules(caught.value) == [
        (f"Bundle.entry[{events[0]}].resource.type", "serafin-wrong-family"),
        (f"Bundle.entry[{events[1]}].resource.period.start", "invalid-datetime")]


def test_a_tddui_event_of_another_person_is_refused(store, tenant):
    store.put_plan(tenant, plan_for("B"), if_match=None, actor="test")
    bundle = plan_to_bundle(_plan_with_events(), NOW)
    with pytest.raises(ActivityRejected) as caught:
        record_bundle(store, tenant, "B", bundle, actor="test", now=NOW)
    assert {rule for _, rule in rules(caught.value)} == {"activity-person-mismatch"}
