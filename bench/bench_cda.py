"""CDA benchmark: documents/s for plan -> CDA, + XDS metadata, + validation (schema and CI-SIS
schematrons), and the schematron time per document and per MB with the compiled XSLT reused.

Baseline measured in the same run on the same documents: lxml parse + serialise of the CDA bytes.
Results: bench/results/cda.json. Needs the reference set (RELAIS_CDA_SCHEMAS or
../shared/reference/official/cda/TestContenuCDA-3-0) for the validation figures.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lxml import etree  # noqa: E402

from gateway.conformance.cda.gate import CdaGate, cda_gate  # noqa: E402
from gateway.conformance.cda.saxon import parse  # noqa: E402
from gateway.model import Plan  # noqa: E402
from mappings.cda import document_ids, plan_to_cda  # noqa: E402
from mappings.cda.xmlsafe import parse_xml  # noqa: E402
from mappings.xds import Destination, submit_objects_request  # noqa: E402

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
ROUNDS = 3


def timed(func, items) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for item in items:
            func(item)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    plans = [Plan.model_validate(json.loads(p.read_text(encoding="utf-8")))
             for p in sorted((HERE.parent / "fixtures" / "plans").glob("*.json"))]
    docs = [plan_to_cda(p, now=NOW) for p in plans]
    megabytes = sum(map(len, docs)) / 1e6
    n = len(plans)

    def export(plan):
        return plan_to_cda(plan, now=NOW)

    def export_meta(plan):
        ids = document_ids(plan)
        xml = plan_to_cda(plan, now=NOW, ids=ids)
        submit_objects_request(plan, xml, ids, now=NOW, destination=Destination(require_ins=False))
        return xml

    baseline = timed(lambda d: etree.tostring(etree.fromstring(d)), docs)
    t_export = timed(export, plans)
    t_meta = timed(export_meta, plans)
    results = {
        "machine": f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}",
        "documents": n, "total_mb": round(megabytes, 3),
        "mean_document_kb": round(megabytes * 1000 / n, 1),
        "baseline_lxml_parse_serialise_docs_per_s": round(n / baseline, 1),
        "plan_to_cda_docs_per_s": round(n / t_export, 1),
        "plan_to_cda_plus_metadata_docs_per_s": round(n / t_meta, 1),
    }
    gate = cda_gate()
    if gate.available:
        cold = time.perf_counter()
        reports = CdaGate(gate.directory, gate.cache_dir).warm_up()  # disk-cached XSLT, Saxon compile
        results["schematron_compile_s_from_disk_cache"] = round(time.perf_counter() - cold, 2)
        results["schematron_sets"] = [f"{r.name} {r.version} sha256:{r.sha256[:12]}" for r in reports]
        gate.warm_up()
        errors = sum(1 for d in docs for p in gate.validate(d) if p.severity.value == "error")
        t_full = timed(lambda plan: gate.validate(export_meta(plan)), plans)
        sets = gate._sets.applicable({"1.2.250.1.213.1.1.1.1"})
        nodes = [parse(d) for d in docs]
        t_sch = timed(lambda node: [s.run(node=node) for s in sets], nodes)
        t_schema = timed(lambda d: gate.schema().validate(parse_xml(d)), docs)
        results.update({
            "errors_on_relais_output": errors,
            "full_plan_to_cda_metadata_validation_docs_per_s": round(n / t_full, 2),
            "schema_ms_per_doc": round(1000 * t_schema / n, 2),
            "schematron_ms_per_doc": round(1000 * t_sch / n, 1),
            "schematron_ms_per_mb": round(1000 * t_sch / megabytes, 1),
            "schematron_target_ms_per_mb": 250,
            # machine-independent: schematron time over the lxml parse+serialise of the same bytes
            "schematron_time_x_baseline_time": round(t_sch / baseline, 2),
        })
    for key in ("plan_to_cda_docs_per_s", "plan_to_cda_plus_metadata_docs_per_s",
                "full_plan_to_cda_metadata_validation_docs_per_s"):
        if key in results:
            results[key.replace("docs_per_s", "x_baseline")] = round(
                results[key] / results["baseline_lxml_parse_serialise_docs_per_s"], 4)
    out = HERE / "results" / "cda.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
