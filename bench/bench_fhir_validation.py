"""FHIR validation benchmark: time per resource of the TDDUI 2.2.0 gate.

    .venv/bin/python bench/bench_fhir_validation.py [--tasks 40] [--rounds 30] [--profile]

The Bundle is the gate's reference instance (gateway/conformance/fhir/examples.py) with `--tasks`
extra Task prestations (8 + 40 = 48 resources by default). Measured in the same run, on the same
Bundle:
- baseline: `orjson.loads` + `orjson.dumps` of its bytes;
- structure: the fhir.resources R4B model validation alone;
- profiles: the compiled-profile walk alone (structure off);
- gate: the whole gate (`tddui_gate().validate`), parse included.
Target (issue 4): ≤ 0.25 ms per resource. Prints a table and writes
bench/results/fhir_validation.json; `--profile` prints the hottest functions of the gate.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from gateway.conformance.fhir import Validator, tddui_gate  # noqa: E402
from gateway.conformance.fhir.examples import bundle  # noqa: E402
from gateway.conformance.fhir.structure import check_structure  # noqa: E402
from gateway.model.problem import errors  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fhir_validation.json"
TARGET_MS = 0.25


def best_of(fn, rounds: int) -> float:
    """Median of `rounds` timings (seconds) of one call."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    gate = tddui_gate()
    raw = orjson.dumps(bundle(extra_tasks=args.tasks))
    n = len(orjson.loads(raw)["entry"])
    if errors(gate.validate(orjson.loads(raw))):
        print("the reference Bundle is not valid: fix examples.py first", file=sys.stderr)
        return 1
    profiles_only = Validator(gate.rules, structure=False, closed_references=True, require_profiles=True,
                              best_practice=False)

    measures = {
        "baseline orjson loads+dumps": lambda: orjson.dumps(orjson.loads(raw)),
        "structure (fhir.resources R4B)": lambda: check_structure(orjson.loads(raw)),
        "profiles (compiled rules)": lambda: profiles_only.validate(orjson.loads(raw)),
        "gate (structure + profiles)": lambda: gate.validate(orjson.loads(raw)),
    }
    for fn in measures.values():  # warm-up: imports, caches, compiled FHIRPath
        fn()
    seconds = {name: best_of(fn, args.rounds) for name, fn in measures.items()}
    base = seconds["baseline orjson loads+dumps"]

    print(f"Bundle: {n} resources, {len(raw):,} bytes; median of {args.rounds} rounds")
    print(f"{'measure':34} {'ms/bundle':>10} {'ms/resource':>12} {'× baseline':>11}")
    rows = []
    for name, s in seconds.items():
        per = s * 1000 / n
        rows.append({"measure": name, "ms_per_bundle": round(s * 1000, 3), "ms_per_resource": round(per, 4),
                     "ratio_to_baseline": round(s / base, 1)})
        print(f"{name:34} {s * 1000:10.2f} {per:12.4f} {s / base:11.1f}")
    gate_per = seconds["gate (structure + profiles)"] * 1000 / n
    print(f"target ≤ {TARGET_MS} ms/resource: {'met' if gate_per <= TARGET_MS else 'NOT met'} ({gate_per:.3f})")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bundle_resources": n,
        "bundle_bytes": len(raw),
        "rounds": args.rounds,
        "target_ms_per_resource": TARGET_MS,
        "gate_ms_per_resource": round(gate_per, 4),
        "rows": rows,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "pinned": gate.pinned["main"],
    }, indent=2) + "\n")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.rounds):
            gate.validate(orjson.loads(raw))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
