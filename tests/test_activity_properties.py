"""Property tests: the indicators read from the rollups equal a naive count over the raw
activities, for any activity and any window; and the invariants hold (rates non-negative,
per-modality file active sums at least the global one, half-days at most 14 a week…).
SQLite only (the rollup code is the same on PostgreSQL, covered by the hand case)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.activity.capacity import set_capacities
from gateway.activity.indicators import Window, report
from gateway.activity.model import MODALITIES
from gateway.activity.record import record_activities
from gateway.storage import Store
from tests.test_activity_support import NOW, plan_for

PARIS = ZoneInfo("Europe/Paris")
JAN1 = dt.date(2026, 1, 1)
SERVICE_OF = {"2.3.3.1": ("S1", "ordinary_environment"), "2.2.1": ("S2", "day_care"),
              "3.2.4.1": ("S3", "ordinary_environment"), "2.4.1": (None, None)}
PERSONS = {"P1": ["neurodevelopmental"], "P2": ["psychiatric"], "P3": ["psychiatric", "sensory"]}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('activite') / 'relais.db'}")
    store.migrate()
    yield store
    store.close()


activity = st.fixed_dictionaries({
    "person": st.sampled_from(sorted(PERSONS)),
    "day": st.integers(0, 89),
    "start": st.integers(0, 95).map(lambda q: q * 15),
    "minutes": st.sampled_from([0, 15, 30, 60, 90, 180, 240, 420, 720]),
    "code": st.sampled_from(sorted(SERVICE_OF)),
    "modality": st.one_of(st.none(), st.sampled_from(MODALITIES)),
    "status": st.sampled_from(["finished"] * 5 + ["cancelled", "planned"]),
    "present": st.sampled_from([True] * 8 + [False]),
    "km": st.one_of(st.none(), st.integers(0, 80)),
})
windows = st.tuples(st.integers(0, 89), st.integers(0, 89)).map(
    lambda t: Window(JAN1 + dt.timedelta(days=min(t)), JAN1 + dt.timedelta(days=max(t))))


def _input(n: int, a: dict) -> dict:
    start = dt.datetime.combine(JAN1 + dt.timedelta(days=a["day"]), dt.time(), dt.timezone(dt.timedelta(hours=1)))
    start += dt.timedelta(minutes=a["start"])
    service, default_modality = SERVICE_OF[a["code"]]
    item = {"id": f"E{n}", "code": a["code"], "start": start.isoformat(),
            "end": (start + dt.timedelta(minutes=a["minutes"])).isoformat(), "status": a["status"],
            "person_present": a["present"]}
    if service:
        item["service_id"] = service
    modality = a["modality"] or (None if service else "sequential")
    if modality:
        item["modality"] = modality
    if a["km"] is not None:
        item["transport_km"] = a["km"]
    return item


def _naive(items: dict[str, list[dict]], window: Window, week: Window) -> dict:
    """The oracle: count straight from the inputs (no rollup)."""
    days = defaultdict(set)  # (person, modality or *) -> days
    halves = defaultdict(set)
    minutes = defaultdict(int)
    km = 0.0
    week_persons = defaultdict(set)
    for person, batch in items.items():
        for item in batch:
            start = dt.datetime.fromisoformat(item["start"]).astimezone(PARIS)
            end = dt.datetime.fromisoformat(item["end"]).astimezone(PARIS)
            day = start.date()
            if item["status"] != "finished" or not window.start <= day <= window.end and not week.start <= day <= week.end:
                continue
            modality = item.get("modality") or SERVICE_OF[item["code"]][1]
            direct = item["person_present"] and item["code"].startswith("2.")
            if week.start <= day <= week.end and direct:
                week_persons[modality].add(person)
                week_persons["*"].add(person)
            if not window.start <= day <= window.end:
                continue
            km += item.get("transport_km", 0)
            if not direct:
                continue
            split = dt.datetime.combine(day, dt.time(13), PARIS)
            midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), PARIS)
            touched = ([0] if start < split else []) + ([1] if (min(end, midnight) > split or
                                                                 (end == start and start >= split)) else [])
            for key in ((person, modality), (person, "*")):
                days[key].add(day)
                halves[key].update((day, h) for h in touched)
                minutes[key] += round((end - start).total_seconds() / 60)
    return {"days": days, "halves": halves, "minutes": minutes, "km": km, "week": week_persons}


def _record_all(store: Store, tenant, items: dict[str, list[dict]], chunks: int = 1) -> None:
    for person, batch in items.items():
        size = max(1, -(-len(batch) // chunks))
        for i in range(0, len(batch), size):
            record_activities(store, tenant, person, {"activities": batch[i:i + size]}, actor="test", now=NOW)


def _new_tenant(store: Store):
    tenant = store.create_tenant(f"p-{uuid.uuid4().hex[:12]}", "Plateforme propriété", "750000001")
    for person, families in PERSONS.items():
        store.put_plan(tenant, plan_for(person, families), if_match=None, actor="test")
    return tenant


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(activities=st.lists(activity, max_size=25), window=windows, week_start=st.integers(0, 12),
       places=st.lists(st.integers(0, 5), min_size=len(MODALITIES), max_size=len(MODALITIES)))
def test_indicators_equal_a_naive_count_and_keep_their_invariants(shared, activities, window, week_start, places):
    tenant = _new_tenant(shared)
    items: dict[str, list[dict]] = defaultdict(list)
    for n, a in enumerate(activities):
        items[a["person"]].append(_input(n, a))
    _record_all(shared, tenant, items)
    set_capacities(shared, tenant, [(m, p, None) for m, p in zip(MODALITIES, places)],
                   valid_from=dt.date(2025, 12, 1), actor="test")
    monday = dt.date(2025, 12, 29) + dt.timedelta(weeks=week_start)
    week = Window(monday, monday + dt.timedelta(days=6))
    result = report(shared, tenant, window, reference_week=(week.start, week.end), by="specialisation")
    oracle = _naive(items, window, week)

    persons = {p for (p, m), d in oracle["days"].items() if m == "*" and d}
    assert result["file_active"]["all"] == len(persons)
    for m in MODALITIES:
        assert result["file_active"]["by_modality"][m] == sum(1 for (p, k), d in oracle["days"].items() if k == m and d)
        assert result["intensity"]["by_modality"][m]["days"] == sum(
            len(d) for (p, k), d in oracle["days"].items() if k == m)
        assert result["file_active_reference_week"]["by_modality"][m] == len(oracle["week"][m])
    overall = result["intensity"]["all"]
    assert overall["days"] == sum(len(d) for (p, k), d in oracle["days"].items() if k == "*")
    assert overall["half_days"] == sum(len(h) for (p, k), h in oracle["halves"].items() if k == "*")
    assert overall["hours"] == pytest.approx(sum(v for (p, k), v in oracle["minutes"].items() if k == "*") / 60)
    assert result["transport"]["km"] == pytest.approx(oracle["km"])
    assert result["file_active_reference_week"]["all"] == len(oracle["week"]["*"])

    for month in result["series"]:
        in_month = {p for (p, k), d in oracle["days"].items()
                    if k == "*" and any(day.strftime("%Y-%m") == month["month"] for day in d)}
        assert month["file_active"]["all"] == len(in_month)
    assert sum(m["hours"] for m in result["series"]) == pytest.approx(overall["hours"], abs=1e-3)

    # invariants
    fa = result["file_active"]
    assert sum(fa["by_modality"].values()) >= fa["all"] >= max(fa["by_modality"].values())
    if window.start <= week.start and week.end <= window.end:
        assert result["file_active_reference_week"]["all"] <= fa["all"]
    for name in ("occupancy", "turnover"):
        for rate in [result[name]["all"], *result[name]["by_modality"].values()]:
            assert rate["value"] is None or rate["value"] >= 0
    for m, occ in result["occupancy"]["by_modality"].items():
        used = result["intensity"]["by_modality"][m]
        assert used["days"] <= used["persons"] * window.days
        turn = result["turnover"]["by_modality"][m]
        if occ["value"] is not None:  # days ≤ persons × D, so occupancy ≤ turnover × places × D / capacity days
            bound = turn["value"] * turn["denominator"] * window.days / occ["denominator"]
            assert occ["value"] <= bound * (1 + 1e-6) + 1e-9
    for part in [overall, *result["intensity"]["by_modality"].values()]:
        assert part["half_days"] <= 2 * part["days"]
        assert part["half_days_per_week"] is None or 0 <= part["half_days_per_week"] <= 14
    mod = result["modularity"]
    assert 0 <= mod["combining_several"]["persons"] <= mod["persons"] == fa["all"]
    for family, part in result["by_specialisation"].items():
        assert part["file_active"]["all"] <= fa["all"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(activities=st.lists(activity, min_size=1, max_size=20), seed=st.integers(0, 2**16), chunks=st.integers(1, 4))
def test_order_batches_and_repeats_do_not_change_the_indicators(shared, activities, seed, chunks):
    items: dict[str, list[dict]] = defaultdict(list)
    for n, a in enumerate(activities):
        items[a["person"]].append(_input(n, a))
    window = Window(JAN1, dt.date(2026, 3, 31))
    first = _new_tenant(shared)
    _record_all(shared, first, items)
    shuffled = {p: random.Random(seed).sample(batch, len(batch)) for p, batch in items.items()}
    second = _new_tenant(shared)
    _record_all(shared, second, shuffled, chunks=chunks)
    _record_all(shared, second, items)  # again: unchanged
    strip = lambda r: {k: v for k, v in r.items() if k != "platform"}  # noqa: E731
    assert strip(report(shared, first, window)) == strip(report(shared, second, window))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(activity, min_size=1, max_size=12), after=st.lists(activity, min_size=1, max_size=12))
def test_replacing_activities_leaves_the_rollups_as_if_sent_once(shared, before, after):
    """Send a set, then the same ids with other content: same indicators as sending the second only."""
    def batch(acts):
        items: dict[str, list[dict]] = defaultdict(list)
        for n, a in enumerate(acts):
            items["P1"].append(_input(n, a))
        return items

    window = Window(JAN1, dt.date(2026, 3, 31))
    replaced = _new_tenant(shared)
    _record_all(shared, replaced, batch(before))
    _record_all(shared, replaced, batch(after))
    direct = _new_tenant(shared)
    _record_all(shared, direct, batch(after))
    ids_after = {f"E{n}" for n in range(len(after))}
    leftovers = {f"E{n}": a for n, a in enumerate(before) if f"E{n}" not in ids_after}
    _record_all(shared, direct, {"P1": [_input(int(i[1:]), a) for i, a in leftovers.items()]} if leftovers else {})
    strip = lambda r: {k: v for k, v in r.items() if k != "platform"}  # noqa: E731
    assert strip(report(shared, replaced, window)) == strip(report(shared, direct, window))
