"""TDDUI 2.2.0 mapping throughput (issue 4): plans/s for plan → Bundle, Bundle → plan and the
validation gate, each as a ratio against plain `orjson` parse + dump of the same Bundle bytes,
measured in the same run on the 60 fixture plans. Writes bench/results/fhir.json."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.plans import validate_plan  # noqa: E402
from mappings.fhir.tddui import bundle_to_plan, plan_to_bundle  # noqa: E402

TODAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
ROUNDS = 5


def rate(func, items) -> float:
    """Median plans/s over ROUNDS passes over `items`."""
    runs = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for item in items:
            func(item)
        runs.append(len(items) / (time.perf_counter() - start))
    return statistics.median(runs)


def main() -> int:
    plans = [validate_plan(json.loads(p.read_text("utf-8")), TODAY)[0]
             for p in sorted((ROOT / "fixtures" / "plans").glob("*.json"))]
    bundles = [plan_to_bundle(plan, NOW) for plan in plans]
    raw = [orjson.dumps(b) for b in bundles]
    parsed = [orjson.loads(r) for r in raw]
    figures = {
        "baseline orjson loads+dumps": rate(lambda r: orjson.dumps(orjson.loads(r)), raw),
        "plan -> Bundle (plan_to_bundle)": rate(lambda p: plan_to_bundle(p, NOW), plans),
        "Bundle -> plan (bundle_to_plan, incl. validate_plan)": rate(lambda b: bundle_to_plan(b, TODAY), parsed),
    }
    try:
        from gateway.conformance.fhir.gate import tddui_gate
        gate = tddui_gate()
        figures["validation gate (tddui_gate().validate)"] = rate(gate.validate, parsed)
    except ImportError:
        pass
    base = figures["baseline orjson loads+dumps"]
    size = statistics.mean(len(r) for r in raw)
    entries = statistics.mean(len(b["entry"]) for b in bundles)
    print(f"{len(plans)} plans, Bundle mean {size / 1024:.1f} kB, {entries:.0f} entries")
    print(f"{'measure':58} {'plans/s':>10} {'x baseline':>11}")
    for name, value in figures.items():
        print(f"{name:58} {value:10,.0f} {value / base:11.3f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fhir.json").write_text(json.dumps(
        {"plans": len(plans), "bundle_kb": size / 1024, "entries": entries,
         "figures": {k: {"per_s": v, "ratio": v / base} for k, v in figures.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
