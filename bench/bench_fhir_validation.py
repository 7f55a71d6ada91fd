"""FHIR validation benchmark: time per resource of the TDDUI 2.2.0 gate, and cold start.

    .venv/bin/python bench/bench_fhir_validation.py [--tasks 40] [--rounds 30] [--runs 3] [--profile] [--no-cold]

The Bundle is the gate's reference instance (gateway/conformance/fhir/examples.py) with `--tasks`
extra Task prestations (8 + 40 = 48 resources by default). Measured in the same run, on the same
Bundle (median of `--rounds` calls; the best of `--runs` such medians, the machine being shared):
- baseline: `orjson.loads` + `orjson.dumps` of its bytes;
- structure: the compiled base-structure check alone (structure.py, r4-structure.json);
- structure, models: the same check with the fhir.resources R4B models (the reference, not used
  by the gate);
- profiles: the compiled-profile walk alone (structure off);
- gate: the whole gate (`tddui_gate().validate`), parse included; its replay of resources walked
  before (validator._walk_resource) is off there, the same Bundle being measured again and again;
- gate, fixture plans: the Bundles Relais emits for the 60 fixture plans, each validated once by a
  fresh gate (parse included; replay on, as in a running Relais or peer), ms per Bundle.
Targets (issues 4 and 8): ≤ 0.25 ms per resource — read as a ratio to the baseline of the same
run, ≤ 61 × (0.25 ms over the 0.0041 ms baseline of a quiet machine) —, and a cold start under 1 s
for one FHIR file: a fresh process validating the reference Bundle with the gate, and
`relais conformance validate ONE.json` with its packages cached (when shared/reference is there).
Prints a table and writes bench/results/fhir_validation.json; `--profile` prints the hottest
functions of the gate.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from gateway.conformance.fhir import Validator, tddui_gate  # noqa: E402
from gateway.conformance.fhir.gate import Gate  # noqa: E402
from gateway.conformance.fhir.examples import bundle  # noqa: E402
from gateway.conformance.fhir.structure import check_structure, compiled  # noqa: E402
from gateway.model.problem import errors  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fhir_validation.json"
TARGET_MS = 0.25
QUIET_BASELINE_MS = 0.0041  # orjson loads + dumps per resource, quiet machine (bench/README.md)
TARGET_RATIO = TARGET_MS / QUIET_BASELINE_MS
PACKAGES = ROOT.parent / "shared" / "reference" / "fhir-packages"
TDDUI_PACKAGES = ["ans.fhir.fr.tddui#2.2.0.tgz", "hl7.fhir.fr.core#2.1.0.tgz", "ihe.iti.mhd#4.2.3.tgz",
                  "ans.fr.terminologies-subset#0.0.0-from-pdsm-combined.tgz"]
GATE_COLD = (
    "import sys, orjson\n"
    "from gateway.conformance.fhir import tddui_gate\n"
    "from gateway.model.problem import errors\n"
    "sys.exit(1 if errors(tddui_gate().validate(orjson.loads(open(sys.argv[1], 'rb').read()))) else 0)\n"
)


def best_of(fn, rounds: int) -> float:
    """Median of `rounds` timings (seconds) of one call."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fixture_plan_bundles() -> list[bytes]:
    """The TDDUI Bundles Relais emits for the fixture plans (gateway/delivery's tddui-bundle build)."""
    import datetime as dt
    import uuid

    from gateway.model import Plan
    from mappings.fhir.tddui import plan_to_bundle

    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    out = []
    for path in sorted((ROOT / "fixtures" / "plans").glob("*.json")):
        built = plan_to_bundle(Plan.model_validate(json.loads(path.read_text("utf-8"))), now)
        built["identifier"] = {"system": "urn:ietf:rfc:3986",
                               "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, path.stem)}"}
        out.append(orjson.dumps(built))
    return out


def plans_once(rules, plans: list[bytes], rounds: int) -> float:
    """Median over `rounds` fresh gates of the CPU seconds per Bundle, each Bundle validated once."""
    times = []
    for _ in range(rounds):
        fresh = Gate(rules)  # (its rules prepared outside the measure)
        structure = compiled()
        if structure is not None:
            structure.forget()  # the valid strings the previous rounds' scans remembered
        start = time.process_time()
        for raw in plans:
            fresh.validate(orjson.loads(raw))
        times.append((time.process_time() - start) / len(plans))
    return statistics.median(times)


def cold_starts(path: Path, runs: int) -> dict:
    """Wall seconds (best of `runs`) of fresh processes validating one FHIR file."""
    commands = {"gate (python -c: import, tddui_gate, validate)": [sys.executable, "-c", GATE_COLD, str(path)]}
    if all((PACKAGES / p).is_file() for p in TDDUI_PACKAGES):
        cache = tempfile.mkdtemp(prefix="relais-bench-fhir-")
        cli = [sys.executable, "-m", "gateway.cli.main", "conformance", "validate", str(path), "--cache", cache, "-q"]
        for p in TDDUI_PACKAGES:
            cli += ["--package", str(PACKAGES / p)]
        subprocess.run(cli, cwd=ROOT, capture_output=True)  # compiles the packages into the disk cache
        commands["relais conformance validate ONE.json (packages cached)"] = cli
    out = {}
    for name, cmd in commands.items():
        walls, cpus = [], []
        for _ in range(runs):
            before = os.times()
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True)
            walls.append(time.perf_counter() - start)
            after = os.times()
            cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr.decode()[-2000:]}")
        out[name] = {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="medians measured; the best is kept")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start measures")
    args = parser.parse_args(argv)

    gate = Gate(tddui_gate().rules)
    gate.validator.remember_walks = False  # the same Bundle again and again: nothing would be walked
    raw = orjson.dumps(bundle(extra_tasks=args.tasks))
    n = len(orjson.loads(raw)["entry"])
    if errors(gate.validate(orjson.loads(raw))):
        print("the reference Bundle is not valid: fix examples.py first", file=sys.stderr)
        return 1
    profiles_only = Validator(gate.rules, structure=False, closed_references=True, require_profiles=True,
                              best_practice=False)
    profiles_only.remember_walks = False

    measures = {
        "baseline orjson loads+dumps": lambda: orjson.dumps(orjson.loads(raw)),
        "structure (compiled)": lambda: check_structure(orjson.loads(raw)),
        "profiles (compiled rules)": lambda: profiles_only.validate(orjson.loads(raw)),
        "gate (structure + profiles)": lambda: gate.validate(orjson.loads(raw)),
    }
    for fn in measures.values():  # warm-up: imports, caches, compiled FHIRPath
        fn()
    load = os.getloadavg()[0]
    runs = []
    for _ in range(args.runs):  # several runs: the machine is shared, the quietest one is kept
        runs.append({name: best_of(fn, args.rounds) for name, fn in measures.items()})
    best = min(runs, key=lambda r: r["gate (structure + profiles)"] / r["baseline orjson loads+dumps"])
    base = best["baseline orjson loads+dumps"]
    # the reference check with the fhir.resources models, measured last: importing them (≈ 700 classes
    # and their schemas) slows every later garbage collection of the process, the gate's included
    from gateway.conformance.fhir.structure_models import check_structure_with_models

    models = lambda: check_structure_with_models(orjson.loads(raw))  # noqa: E731
    models()
    reference_base = best_of(measures["baseline orjson loads+dumps"], args.rounds)
    best["structure (fhir.resources models)"] = best_of(models, args.rounds) * base / reference_base

    print(f"Bundle: {n} resources, {len(raw):,} bytes; median of {args.rounds} rounds, best of {args.runs} runs; "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':36} {'ms/bundle':>10} {'ms/resource':>12} {'× baseline':>11}")
    rows = []
    for name, s in best.items():
        per = s * 1000 / n
        rows.append({"measure": name, "ms_per_bundle": round(s * 1000, 3), "ms_per_resource": round(per, 4),
                     "ratio_to_baseline": round(s / base, 1)})
        print(f"{name:36} {s * 1000:10.2f} {per:12.4f} {s / base:11.1f}")
    gate_s = best["gate (structure + profiles)"]
    gate_per, ratio = gate_s * 1000 / n, gate_s / base
    print(f"target ≤ {TARGET_MS} ms/resource (≤ {TARGET_RATIO:.0f} × baseline): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'} ({gate_per:.3f} ms here, {ratio:.1f} ×, "
          f"≈ {ratio * QUIET_BASELINE_MS:.3f} ms on a quiet machine)")

    plans = fixture_plan_bundles()
    plans_s = plans_once(gate.rules, plans, max(3, args.runs))
    print(f"gate, the {len(plans)} fixture plans' Bundles, each once (fresh gate, CPU): {plans_s * 1000:.2f} ms/bundle")

    cold = {}
    if not args.no_cold:
        one = Path(tempfile.mkdtemp(prefix="relais-bench-fhir-")) / "one.json"
        one.write_bytes(orjson.dumps(bundle()))
        cold = cold_starts(one, max(3, args.runs))
        for name, figures in cold.items():
            print(f"cold start, {name}: {figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bundle_resources": n,
        "bundle_bytes": len(raw),
        "rounds": args.rounds,
        "runs": args.runs,
        "load_average": round(load, 1),
        "target_ms_per_resource": TARGET_MS,
        "target_ratio_to_baseline": round(TARGET_RATIO, 1),
        "gate_ms_per_resource": round(gate_per, 4),
        "gate_ratio_to_baseline": round(ratio, 1),
        "rows": rows,
        "fixture_plans_once_ms_per_bundle": round(plans_s * 1000, 3),
        "cold_start": cold,
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
