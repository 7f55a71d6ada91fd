"""Activity indicators benchmark: one year × 1,000 persons × 20 events a week, on SQLite.

    .venv/bin/python bench/bench_activity.py [--persons 1000] [--events-per-week 20] [--rounds 5]

Set-up (timed, not the target): a tenant with 1,000 persons (one stored plan each), then
52 weeks of delivered activity per person (1,040 events, 1.04 million in all) bulk-inserted:
records, then the daily and monthly rollups computed by the recording's own counting code
(`gateway.activity.rollup.day_totals` / `month_totals`) and inserted in bulk, and an authorised
capacity per modality. The real recording path (`gateway.activity.record.write`: per person,
existing ids, records, rollup refresh, one transaction) is timed on `--write-sample` persons of
the same kind, and the bulk load is checked against it (same indicators for those persons).

Measured, median of `--rounds`:
- baseline: `SELECT count(*)` over `activity_records` (the same 1.04 M rows, a plain scan);
- for comparison, one indicator straight from the events (file active and hours per modality
  over the year: `count(DISTINCT person)`, `sum(minutes)` grouped by modality);
- indicators of the year: `gateway.activity.indicators.report` for 2026-01-01..2026-12-31
  (file active overall / per modality / reference week, occupancy, turnover, intensity,
  modularity, transport, by specialisation, month by month) — target under 2 s;
- the same over a window with partial months (2026-01-15..2026-12-14), which reads the daily
  rollup for its two partial months.
Writes bench/results/activity.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway.activity import capacity as capacities  # noqa: E402
from gateway.activity.indicators import Window, report  # noqa: E402
from gateway.activity.model import MODALITIES, Activity  # noqa: E402
from gateway.activity.model import month_of  # noqa: E402
from gateway.activity.record import content_hash, write  # noqa: E402
from gateway.activity.rollup import DAY_FIELDS, MONTH_FIELDS, day_totals, month_totals, refresh  # noqa: E402
from gateway.activity.tables import (  # noqa: E402
    activity_days,
    activity_months,
    activity_persons,
    activity_records,
)
from gateway.storage import Store  # noqa: E402
from gateway.storage.schema import persons  # noqa: E402
from tests.conftest import SAMPLE_PLAN, make_plan  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "activity.json"
YEAR = 2026
FAMILIES = ("neurodevelopmental", "psychiatric", "motor_polyhandicap", "sensory")
CODES = ("2.1.1.1", "2.2.1.1", "2.3.3.1", "2.3.1.2", "2.2.2")
UTC = dt.UTC


def person_plan(i: int):
    data = copy.deepcopy(SAMPLE_PLAN)
    data["person"]["local_id"] = f"B{i:06d}"
    data["specialisations"] = [FAMILIES[i % 4]] + ([FAMILIES[(i + 1) % 4]] if i % 10 == 0 else [])
    return make_plan(data)


def activities_of(rng: random.Random, weeks: int, per_week: int) -> list[Activity]:
    modalities = rng.sample(MODALITIES, rng.choice((1, 1, 2, 3)))
    out = []
    first_monday = dt.date(YEAR, 1, 5)
    for week in range(weeks):
        for n in range(per_week):
            day = first_monday + dt.timedelta(days=week * 7 + rng.randrange(5))
            hour = rng.choice((9, 10, 11, 14, 15, 16))
            start = dt.datetime(day.year, day.month, day.day, hour - 1, tzinfo=UTC)
            minutes = rng.choice((30, 45, 60, 90, 120))
            finished = rng.random() > 0.03
            out.append(Activity(
                source_id=f"W{week:02d}-{n:02d}", code=rng.choice(CODES),
                status="finished" if finished else "cancelled", person_present=rng.random() > 0.02,
                start_at=start, end_at=start + dt.timedelta(minutes=minutes), day=day, minutes=minutes,
                morning=hour < 13, afternoon=hour >= 13 or hour * 60 + minutes > 13 * 60,
                modality=rng.choice(modalities), place="home", service_id="S1",
                transport_m=rng.choice((0, 0, 4200, 12500)), transport_minutes=rng.choice((0, 10, 25))))
    return out


def _bulk(store: Store, tenant_id: str, person_id: str, items: list[Activity], now: dt.datetime) -> tuple:
    records = [{"tenant_id": tenant_id, "person_id": person_id, **a.as_row(), "content_hash": content_hash(a),
                "received_at": now, "recorded_by": "bench"} for a in items]
    days = day_totals(a for a in items if a.counted)
    day_rows = [{"tenant_id": tenant_id, "person_id": person_id, "modality": m, "day": d, "month": month_of(d),
                 **{f: getattr(t, f) for f in DAY_FIELDS}} for (m, d), t in days.items()]
    months = month_totals(SimpleNamespace(modality=m, day=d, **t.__dict__) for (m, d), t in days.items())
    month_rows = [{"tenant_id": tenant_id, "person_id": person_id, "modality": m, "month": mo,
                   **{f: getattr(t, f) for f in MONTH_FIELDS}} for (m, mo), t in months.items()]
    return records, day_rows, month_rows


def check_bulk(store: Store, tenant_id: str, person_id: str) -> None:
    """The bulk rollups of a person equal what the recording path's refresh computes."""
    m = activity_months.c

    def months():
        with store.reading() as conn:
            return conn.execute(sa.select(activity_months).where(m.tenant_id == tenant_id, m.person_id == person_id)
                                .order_by(m.modality, m.month)).all()

    before = months()
    with store.transaction() as conn:
        refresh(conn, tenant_id, person_id, dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
    if months() != before:
        raise SystemExit("bulk rollups differ from the recording path's")


def setup(store: Store, n_persons: int, per_week: int, write_sample: int) -> dict:
    tenant = store.create_tenant("banc-activite", "Banc d'essai activité", "750000001")
    t0 = time.perf_counter()
    plans = [person_plan(i) for i in range(n_persons + write_sample)]
    for plan in plans:
        store.put_plan(tenant, plan, if_match=None, actor="bench")
    t1 = time.perf_counter()
    with store.reading() as conn:
        ids = dict(conn.execute(sa.select(persons.c.local_id, persons.c.id)
                                .where(persons.c.tenant_id == tenant.id)).all())
    rng = random.Random(20261126)
    now = dt.datetime(YEAR + 1, 1, 2, tzinfo=UTC)
    events = 0
    batch: tuple[list, list, list] = ([], [], [])
    for n, plan in enumerate(plans[:n_persons], 1):
        items = activities_of(rng, 52, per_week)
        events += len(items)
        for rows, more in zip(batch, _bulk(store, tenant.id, ids[plan.person.local_id], items, now)):
            rows.extend(more)
        if n % 100 == 0 or n == n_persons:
            with store.transaction() as conn:
                conn.execute(sa.insert(activity_persons), [
                    {"tenant_id": tenant.id, "person_id": ids[p.person.local_id], "local_id": p.person.local_id,
                     "specialisations": " ".join(sorted(s.value for s in p.specialisations)), "plan_version": 1,
                     "updated_at": now} for p in plans[n - (n % 100 or 100):n]])
                for table, rows in zip((activity_records, activity_days, activity_months), batch):
                    conn.execute(sa.insert(table), rows)
            batch = ([], [], [])
    t2 = time.perf_counter()
    sample_events = 0
    for plan in plans[n_persons:]:  # the real recording path, per person
        items = activities_of(rng, 52, per_week)
        sample_events += len(items)
        with store.transaction() as conn:
            write(conn, store.backend, tenant.id, ids[plan.person.local_id], plan.person.local_id, plan, 1,
                  items, actor="bench", now=now)
    t3 = time.perf_counter()
    check_bulk(store, tenant.id, ids[plans[0].person.local_id])
    for modality in MODALITIES:
        capacities.set_capacity(store, tenant, modality, places=max(1, n_persons // 8),
                                valid_from=dt.date(YEAR, 1, 1), actor="bench")
    return {"tenant": tenant, "events": events + sample_events, "plans_s": t1 - t0, "bulk_s": t2 - t1,
            "bulk_events": events, "write_s": t3 - t2, "write_events": sample_events}


def median_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--events-per-week", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-sample", type=int, default=20, help="persons recorded through the real path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store(f"sqlite:///{tmp}/relais.db") as store:
        store.migrate()
        print(f"set-up: {args.persons} persons × 52 weeks × {args.events_per_week} events…", flush=True)
        built = setup(store, args.persons, args.events_per_week, args.write_sample)
        tenant = built["tenant"]
        with store.reading() as conn:
            counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                      for t in (activity_records, activity_days, activity_months)}

        def baseline():
            with store.reading() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(activity_records)).scalar()

        r = activity_records.c
        naive_query = (sa.select(r.modality, sa.func.count(sa.distinct(r.person_id)), sa.func.sum(r.minutes))
                       .where(r.tenant_id == tenant.id, r.day >= dt.date(YEAR, 1, 1), r.day <= dt.date(YEAR, 12, 31),
                              r.status == "finished", r.person_present.is_(True), r.code.like("2.%"))
                       .group_by(r.modality))

        def naive():
            with store.reading() as conn:
                conn.execute(naive_query).all()

        year = Window(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
        ragged = Window(dt.date(YEAR, 1, 15), dt.date(YEAR, 12, 14))
        result = report(store, tenant, year, by="specialisation")
        figures = {
            "baseline_count_s": median_time(baseline, args.rounds),
            "naive_one_indicator_s": median_time(naive, args.rounds),
            "indicators_year_s": median_time(lambda: report(store, tenant, year, by="specialisation"), args.rounds),
            "indicators_partial_months_s": median_time(
                lambda: report(store, tenant, ragged, by="specialisation"), args.rounds),
        }
    rows = [
        ("baseline SELECT count(*) over activity_records", figures["baseline_count_s"]),
        ("file active + hours per modality straight from the events", figures["naive_one_indicator_s"]),
        ("indicators, year 2026 (by modality, specialisation, month)", figures["indicators_year_s"]),
        ("indicators, 2026-01-15..2026-12-14 (partial months)", figures["indicators_partial_months_s"]),
    ]
    print(f"\n{built['events']:,} events ({counts['activity_records']:,} records, "
          f"{counts['activity_days']:,} day rows, {counts['activity_months']:,} month rows); set-up "
          f"{built['plans_s']:.1f} s plans, bulk load {built['bulk_events'] / built['bulk_s']:,.0f} events/s, "
          f"recording path {built['write_events'] / built['write_s']:,.0f} events/s")
    print(f"{'measure':<62} {'seconds':>9} {'× baseline':>11}")
    for label, seconds in rows:
        print(f"{label:<62} {seconds:>9.3f} {seconds / figures['baseline_count_s']:>11.1f}")
    target = figures["indicators_year_s"] < 2.0
    print(f"\ntarget < 2 s for the year: {'met' if target else 'NOT met'}; "
          f"file active {result['file_active']['all']}, reference week {result['reference_week']['iso_week']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                    "processor": platform.processor() or platform.machine()},
        "persons": args.persons, "events_per_week": args.events_per_week, "events": built["events"],
        "rows": counts,
        "setup": {"plans_s": built["plans_s"], "bulk_s": built["bulk_s"], "bulk_events": built["bulk_events"],
                  "write_s": built["write_s"], "write_events": built["write_events"],
                  "write_events_per_s": built["write_events"] / built["write_s"]},
        "seconds": figures, "ratio_to_baseline": {k: v / figures["baseline_count_s"] for k, v in figures.items()},
        "target_met": target,
    }, indent=2), encoding="utf-8")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
