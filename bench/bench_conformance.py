"""Conformance runner benchmark (`relais conformance validate`):

1. FHIR: ms per resource validated against its profiles (TDDUI reference Bundle, 48 resources),
   in process, catalog loaded; cold start of the command on one FHIR file (packages cached);
2. CDA: ms per document with the schema and the CI-SIS schematron sets (compiled once);
3. a folder of N mixed artefacts (FHIR JSON/XML, CDA, XDS metadata, XDM, ITI-41, valid and
   broken): files/s with the process pool;
4. pyfhircheck 0.2.0 (PyPI) on the same FHIR files, same packages: speed, and what each catches
   among the broken copies (and false errors on the valid ones).

Results: bench/results/conformance.json. `--files N` (default 1000) sizes the folder.
"""

from __future__ import annotations

import argparse
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


def make_folder(folder: Path, count: int) -> dict:
    from gateway.conformance.runner import samples as S

    bases = S.bases(REFERENCE if REFERENCE.is_dir() else None)
    plans = [S.relais_artefacts(S.fixture_plan(i)) for i in range(6)]
    kinds = {}
    broken = [b for b in S.BROKEN if b.base in bases]
    for i in range(count):
        slot = i % 10
        made = plans[i % len(plans)]
        if slot in (0, 1, 2):
            name, data = f"{i:04d}.json", made["bundle.json"]
        elif slot == 3:
            name, data = f"{i:04d}.xml", bases["tddui.xml"]
        elif slot in (4, 5):
            name, data = f"{i:04d}.cda.xml", made["cda.xml"]
        elif slot == 6:
            name, data = f"{i:04d}.xds.xml", made["metadata.xml"]
        elif slot == 7:
            name, data = f"{i:04d}.zip", made["IHE_XDM.zip"]
        elif slot == 8:
            name, data = f"{i:04d}.iti41.xml", made["iti41.xml"]
        else:
            b = broken[i % len(broken)]
            name, data = f"{i:04d}-{b.id}{Path(b.base).suffix}", b.mutate(bases[b.base])
        (folder / name).write_bytes(data)
        kinds[slot] = kinds.get(slot, 0) + 1
    return kinds


def bench_folder(cache: str, count: int) -> dict:
    from gateway.conformance.runner.validate import Options, run_validate

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_folder(folder, count)
        t = time.perf_counter()
        run = run_validate([str(folder)], Options(cache_dir=cache, use_fhir_cache=False))
        seconds = time.perf_counter() - t
    return {"files": count, "artefacts_incl_inner_documents": len(run.artefacts), "seconds": round(seconds, 1),
            "files_per_s": round(count / seconds, 1), "workers": os.cpu_count(),
            "invalid": sum(1 for a in run.artefacts if not a.valid)}


def bench_pyfhircheck(cache: str) -> dict:
    """pyfhircheck on the same FHIR files: time per resource and which broken copies it catches."""
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
    from gateway.conformance.runner.fhir import validate_fhir

    logging.getLogger("pyfhircheck").setLevel(logging.ERROR)
    paths = [str(PACKAGES / p) for p in TDDUI_PACKAGES] if PACKAGES.is_dir() else []
    t = time.perf_counter()
    theirs = PyValidator(ValidatorConfig(local_package_paths=paths, package_cache_dir=str(Path(cache) / "pyfhircheck")))
    their_init = time.perf_counter() - t
    ours = Catalog(paths, cache_dir=cache, use_fhir_cache=False)

    def their_errors(resource):
        report = theirs.validate_resource(resource)
        return [i for i in report.issues if str(getattr(i.severity, "value", i.severity)).lower() in ("error", "fatal")]

    def our_errors(resource):
        return [i for i in validate_fhir(resource, ours)[0] if i.severity == "error"]

    bundle = ex.bundle(extra_tasks=40)
    n = len(bundle["entry"])
    their_errors(bundle)
    their_ms = median_time(lambda: their_errors(orjson.loads(orjson.dumps(bundle))), 5) / n * 1000
    our_ms = median_time(lambda: our_errors(orjson.loads(orjson.dumps(bundle))), 15) / n * 1000
    bases = S.bases(REFERENCE if REFERENCE.is_dir() else None)
    valid = {"tddui-reference-bundle": orjson.loads(bases["tddui.json"])}
    if "qr.json" in bases:
        valid["official-serafin-qr"] = orjson.loads(bases["qr.json"])
    false_errors = {k: {"relais": len(our_errors(v)), "pyfhircheck": len(their_errors(v))} for k, v in valid.items()}
    caught = {}
    for b in S.BROKEN:
        if not b.base.endswith(".json") or b.base not in bases:
            continue
        resource = orjson.loads(b.mutate(bases[b.base]))
        caught[b.id] = {"rule": b.rule, "relais": bool(our_errors(resource)), "pyfhircheck": bool(their_errors(resource)),
                        "pyfhircheck_codes": sorted({i.code for i in their_errors(resource)})[:4]}
    return {"version": "0.2.0", "init_s": round(their_init, 2), "ms_per_resource": round(their_ms, 3),
            "relais_ms_per_resource": round(our_ms, 3), "false_errors_on_valid": false_errors,
            "broken_caught": {"total": len(caught), "relais": sum(c["relais"] for c in caught.values()),
                              "pyfhircheck": sum(c["pyfhircheck"] for c in caught.values())},
            "per_copy": caught}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="relais-bench-conformance-")
    results = {"python": platform.python_version(), "cores": os.cpu_count(),
               "load_before": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d")}
    results["fhir"] = bench_fhir(cache)
    print("FHIR", results["fhir"], flush=True)
    from gateway.conformance.fhir import examples as ex
    import orjson

    one = Path(cache) / "one.json"
    one.write_bytes(orjson.dumps(ex.bundle()))
    results["cold_start_s"] = cold_start(cache, one)
    print("cold start", results["cold_start_s"], flush=True)
    results["pyfhircheck"] = bench_pyfhircheck(cache)
    print("pyfhircheck", {k: v for k, v in results["pyfhircheck"].items() if k != "per_copy"}, flush=True)
    results["cda"] = bench_cda(cache)
    print("CDA", results["cda"], flush=True)
    results["folder"] = bench_folder(cache, args.files)
    print("folder", results["folder"], flush=True)
    results["load_after"] = os.getloadavg()[0]
    out = HERE / "results" / "conformance.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
