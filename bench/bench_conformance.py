"""Conformance runner benchmark (`relais conformance validate`):

1. FHIR: ms per resource validated against its profiles (TDDUI reference Bundle, 48 resources),
   in process, catalog loaded; cold start of the command on one FHIR file (packages cached);
2. CDA: ms per document with the schema and the CI-SIS schematron sets (compiled once);
3. a folder of N mixed artefacts made from the fixtures in a temporary directory (FHIR Bundles
   JSON/XML and single resources, CDA, XDS metadata, XDM, ITI-41 inline and MTOM, one in ten a
   broken copy): files/s with the process pool, every broken copy flagged, no valid file;
4. pyfhircheck 0.2.0 (PyPI) on the same FHIR files, same packages: speed; false errors on the
   valid originals; for each broken copy, whether each tool raises an error it does not raise
   on the valid original (a new code+location, and stricter a new code) — what each catches.

Each part records the 1-minute load average before and after it. Results:
bench/results/conformance.json. `--files N` (default 1000) sizes the folder; `--only PART…`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REFERENCE = ROOT.parent / "shared" / "reference"
PACKAGES = REFERENCE / "fhir-packages"
TDDUI_PACKAGES = ["ans.fhir.fr.tddui#2.2.0.tgz", "hl7.fhir.fr.core#2.1.0.tgz", "ihe.iti.mhd#4.2.3.tgz",
                  "ans.fr.terminologies-subset#0.0.0-from-pdsm-combined.tgz"]


def median_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_fhir(cache: str) -> dict:
    import orjson

    from gateway.conformance.fhir import examples as ex
    from gateway.conformance.runner.catalog import Catalog
    from gateway.conformance.runner.fhir import validate_fhir

    bundle = ex.bundle(extra_tasks=40)
    raw = orjson.dumps(bundle)
    n = len(bundle["entry"])
    catalog = Catalog([str(PACKAGES / p) for p in TDDUI_PACKAGES] if PACKAGES.is_dir() else [], cache_dir=cache,
                      use_fhir_cache=False)
    validate_fhir(orjson.loads(raw), catalog)  # compile / load once
    whole = median_time(lambda: validate_fhir(orjson.loads(raw), catalog), 15)
    baseline = median_time(lambda: orjson.dumps(orjson.loads(raw)), 50)
    return {"resources": n, "ms_per_resource": round(whole / n * 1000, 3),
            "baseline_ms_per_resource": round(baseline / n * 1000, 4), "x_baseline": round(whole / baseline, 1)}


def cold_start(cache: str, path: Path) -> float:
    """Wall time of `relais conformance validate FILE` in a fresh process (packages cached)."""
    cmd = [sys.executable, "-m", "gateway.cli.main", "conformance", "validate", str(path), "--cache", cache, "-q"]
    if PACKAGES.is_dir():
        for p in TDDUI_PACKAGES:
            cmd += ["--package", str(PACKAGES / p)]
    subprocess.run(cmd, cwd=ROOT, capture_output=True)  # fills the disk cache
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - t)
    return round(min(times), 3)


def bench_cda(cache: str) -> dict:
    from gateway.conformance.runner import samples as S
    from gateway.conformance.runner.validate import Context, Options, validate_bytes

    ctx = Context(Options(cache_dir=cache))
    docs = [S.relais_artefacts()["cda.xml"]]
    examples = REFERENCE / "official" / "cda" / "TestContenuCDA-3-0" / "ExemplesCDA"
    docs += [p.read_bytes() for p in sorted(examples.glob("LDL*.xml"))] if examples.is_dir() else []
    t = time.perf_counter()
    validate_bytes(docs[0], "warm", ctx)
    warm = time.perf_counter() - t
    per = [median_time(lambda d=d: validate_bytes(d, "x", ctx), 5) for d in docs]
    return {"documents": len(docs), "first_document_s_incl_schematron_load": round(warm, 2),
            "ms_per_document": round(statistics.mean(per) * 1000, 1),
            "kB_mean": round(statistics.mean(len(d) for d in docs) / 1024, 1)}


# The folder's mix, one slot of ten each: what an integrator's export holds.
MIX = {0: "FHIR Bundle JSON (TDDUI, from a fixture plan)", 1: "FHIR Bundle JSON (TDDUI, from a fixture plan)",
       2: "FHIR resource JSON (one entry of those Bundles, its own profile)", 3: "FHIR Bundle XML",
       4: "CDA R2 (Relais's, schema + CI-SIS schematrons)", 5: "CDA R2 (Relais's, schema + CI-SIS schematrons)",
       6: "XDS SubmitObjectsRequest (DMP)", 7: "IHE_XDM.zip (MSSanté, CDA inside)",
       8: "ITI-41 SOAP 1.2, inline or MTOM (CDA inside)", 9: "broken copy (one mutation, see samples.BROKEN)"}


def make_folder(folder: Path, count: int) -> dict:
    """`count` files of the mix above, made from the fixtures (synthetic data, test INS OID)."""
    import orjson

    from gateway.conformance.runner import samples as S

    bases = S.bases(REFERENCE if REFERENCE.is_dir() else None)
    plans = [S.relais_artefacts(S.fixture_plan(i)) for i in range(6)]
    resources = [orjson.dumps(e["resource"]) for made in plans for e in orjson.loads(made["bundle.json"])["entry"]]
    broken = [b for b in S.BROKEN if b.base in bases]
    kinds: dict[str, int] = {}
    for i in range(count):
        slot = i % 10
        made = plans[i % len(plans)]
        if slot in (0, 1):
            name, data = f"{i:04d}.json", made["bundle.json"]
        elif slot == 2:
            name, data = f"{i:04d}.resource.json", resources[(i // 10) % len(resources)]
        elif slot == 3:
            name, data = f"{i:04d}.xml", made["bundle.xml"]
        elif slot in (4, 5):
            name, data = f"{i:04d}.cda.xml", made["cda.xml"]
        elif slot == 6:
            name, data = f"{i:04d}.xds.xml", made["metadata.xml"]
        elif slot == 7:
            name, data = f"{i:04d}.zip", made["IHE_XDM.zip"]
        elif slot == 8:
            name, data = (f"{i:04d}.iti41.xml", made["iti41.xml"]) if i % 20 < 10 else (f"{i:04d}.iti41.mime",
                                                                                        made["iti41.mime"])
        else:
            b = broken[(i // 10) % len(broken)]
            name, data = f"{i:04d}-KO-{b.id}{Path(b.base).suffix}", b.mutate(bases[b.base])
        (folder / name).write_bytes(data)
        kinds[MIX[slot]] = kinds.get(MIX[slot], 0) + 1
    return kinds


def bench_folder(cache: str, count: int) -> dict:
    """files/s of `relais conformance validate FOLDER` (process pool), in a temporary folder;
    every broken copy must be flagged and no valid file."""
    from gateway.conformance.runner.validate import Options, run_validate

    with tempfile.TemporaryDirectory(prefix="relais-bench-folder-") as tmp:
        folder = Path(tmp)
        kinds = make_folder(folder, count)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        run = run_validate([str(folder)], Options(cache_dir=cache, use_fhir_cache=False))
        seconds = time.perf_counter() - t
    files = [a for a in run.artefacts if "!" not in a.path]
    invalid = {Path(a.path).name for a in run.artefacts if not a.valid}
    broken = {Path(a.path).name for a in files if "-KO-" in a.path}
    invalid_files = {n.split("!")[0] for n in invalid}
    return {"files": count, "mix": kinds, "artefacts_incl_inner_documents": len(run.artefacts),
            "seconds": round(seconds, 1), "files_per_s": round(count / seconds, 1), "workers": os.cpu_count(),
            "load_at_start": round(load, 2), "load_at_end": round(os.getloadavg()[0], 2),
            "broken_flagged": f"{len(broken & invalid_files)}/{len(broken)}",
            "valid_files_flagged": len(invalid_files - broken)}


def _relais_errors(resource, catalog) -> set[tuple[str, str]]:
    from gateway.conformance.runner.fhir import validate_fhir

    return {(i.rule, i.location) for i in validate_fhir(resource, catalog)[0] if i.severity == "error"}


def bench_pyfhircheck(cache: str) -> dict:
    """pyfhircheck on the same FHIR files: time per resource, false errors on valid files, and
    for each broken copy whether each tool raises an error it does not raise on the valid
    original — a new (code, location), and stricter a code absent from the original's report."""
    try:
        from pyfhircheck.config import ValidatorConfig
        from pyfhircheck.core.engine import Validator as PyValidator
    except ImportError:
        return {"skipped": "pyfhircheck not installed (pip install pyfhircheck==0.2.0)"}
    import logging

    import orjson

    from gateway.conformance.fhir import examples as ex
    from gateway.conformance.runner import samples as S
    from gateway.conformance.runner.catalog import Catalog

    logging.getLogger("pyfhircheck").setLevel(logging.ERROR)
    paths = [str(PACKAGES / p) for p in TDDUI_PACKAGES] if PACKAGES.is_dir() else []
    t = time.perf_counter()
    theirs = PyValidator(ValidatorConfig(local_package_paths=paths, package_cache_dir=str(Path(cache) / "pyfhircheck")))
    their_init = time.perf_counter() - t
    ours = Catalog(paths, cache_dir=cache, use_fhir_cache=False)

    def their_errors(resource) -> set[tuple[str, str]]:
        with contextlib.redirect_stdout(io.StringIO()):  # fhirpathpy prints the invariants' trace()
            report = theirs.validate_resource(resource)
        return {(i.code, f"{i.resource_type or ''}/{i.resource_id or ''}:{i.path or ''}") for i in report.issues
                if str(getattr(i.severity, "value", i.severity)).lower() in ("error", "fatal")}

    def our_errors(resource) -> set[tuple[str, str]]:
        return _relais_errors(resource, ours)

    # speed: the 48-resource reference Bundle, then the folder's FHIR files (6 plan Bundles, their resources)
    bundle = ex.bundle(extra_tasks=40)
    n = len(bundle["entry"])
    their_errors(bundle)
    their_ms = median_time(lambda: their_errors(orjson.loads(orjson.dumps(bundle))), 5) / n * 1000
    our_ms = median_time(lambda: our_errors(orjson.loads(orjson.dumps(bundle))), 15) / n * 1000
    plan_bundles = [orjson.loads(S.relais_artefacts(S.fixture_plan(i))["bundle.json"]) for i in range(6)]
    files = plan_bundles + [e["resource"] for b in plan_bundles for e in b["entry"]]
    counted = sum(len(f.get("entry", [])) or 1 for f in files)
    timing, flagged = {}, {}
    for tool, fn in (("relais", our_errors), ("pyfhircheck", their_errors)):
        t = time.perf_counter()
        flagged[tool] = sum(1 for f in files if fn(f))
        timing[tool] = round((time.perf_counter() - t) / counted * 1000, 3)
    # what each catches
    bases = S.bases(REFERENCE if REFERENCE.is_dir() else None)
    originals = {k: orjson.loads(v) for k, v in bases.items() if k.endswith(".json")}
    before = {k: {"relais": our_errors(v), "pyfhircheck": their_errors(v)} for k, v in originals.items()}
    per_copy = {}
    for b in S.BROKEN:
        if b.base not in originals:
            continue
        resource = orjson.loads(b.mutate(bases[b.base]))
        row = {"base": b.base, "expected_rule": b.rule}
        for tool, fn in (("relais", our_errors), ("pyfhircheck", their_errors)):
            after, old = fn(resource), before[b.base][tool]
            new = after - old
            new_codes = {code for code, _ in after} - {code for code, _ in old}
            row[tool] = {"new_errors": len(new), "new_codes": sorted(new_codes)[:6], "errors": len(after)}
            if tool == "relais":
                row[tool]["expected_rule_among_new"] = any(code == b.rule for code, _ in new)
        per_copy[b.id] = row

    def count(tool, key):
        return sum(1 for r in per_copy.values() if r[tool][key])

    return {"version": "0.2.0", "packages": TDDUI_PACKAGES if paths else "none (shipped rule sets only)",
            "init_s": round(their_init, 2),
            "ms_per_resource_48_resource_bundle": {"relais": round(our_ms, 3), "pyfhircheck": round(their_ms, 3)},
            "folder_fhir_files": {"files": len(files), "resources": counted, "ms_per_resource": timing,
                                  "files_with_errors": flagged},
            "false_errors_on_valid": {k: {t: len(v) for t, v in d.items()} for k, d in before.items()},
            "broken": {"total": len(per_copy),
                       "with_a_new_error": {t: count(t, "new_errors") for t in ("relais", "pyfhircheck")},
                       "with_a_new_code": {t: count(t, "new_codes") for t in ("relais", "pyfhircheck")},
                       "relais_expected_rule": sum(r["relais"]["expected_rule_among_new"] for r in per_copy.values())},
            "per_copy": per_copy}


def main() -> int:
    import shutil

    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--only", nargs="*", choices=["fhir", "cold", "pyfhircheck", "cda", "folder"],
                        help="run these parts only")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="relais-bench-conformance-")
    results = {"python": platform.python_version(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
               "load_before": round(os.getloadavg()[0], 2)}

    def part(name, fn):
        if args.only and name not in args.only:
            return
        load = os.getloadavg()[0]
        results[name] = fn()
        if isinstance(results[name], dict):
            results[name]["load_1min"] = f"{load:.2f} → {os.getloadavg()[0]:.2f}"
        shown = {k: v for k, v in results[name].items() if k != "per_copy"} if isinstance(results[name], dict) \
            else results[name]
        print(name, json.dumps(shown, ensure_ascii=False), flush=True)

    def cold():
        import orjson

        from gateway.conformance.fhir import examples as ex

        one = Path(cache) / "one.json"
        one.write_bytes(orjson.dumps(ex.bundle()))
        return {"wall_s": cold_start(cache, one)}

    try:
        part("fhir", lambda: bench_fhir(cache))
        part("cold", cold)
        part("pyfhircheck", lambda: bench_pyfhircheck(cache))
        part("cda", lambda: bench_cda(cache))
        part("folder", lambda: bench_folder(cache, args.files))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    results["load_after"] = round(os.getloadavg()[0], 2)
    for copy_id, row in (results.get("pyfhircheck") or {}).get("per_copy", {}).items():
        ours, theirs = row["relais"], row["pyfhircheck"]
        print(f"  {copy_id:32} relais new={ours['new_errors']:3} expected={ours['expected_rule_among_new']!s:5} "
              f"pyfhircheck new={theirs['new_errors']:3} new codes={theirs['new_codes']}")
    out = HERE / "results" / "conformance.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
