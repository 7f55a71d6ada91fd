"""DMP benchmark on loopback: documents/s built (plan → CDA → XDS metadata → submission), fed
with ITI-41 (SOAP 1.2 / MTOM, VIHF signed per request, mutual TLS to the sandbox DMP which
verifies the VIHF, the metadata, hash/size and the CDA header — and the CDA schema when the
reference set is present), queried (ITI-18 FindDocuments) and retrieved (ITI-43).

Baseline measured in the same run: signing one VIHF alone (RSA-2048, exc-c14n) and a plain
`lxml` parse of the same CDA documents. Results: bench/results/dmp.json.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lxml import etree  # noqa: E402

from connectors.dmp import vihf  # noqa: E402
from connectors.sandbox.dmp_peer import DmpPeer  # noqa: E402
from gateway.delivery.payload_dmp import build_submission  # noqa: E402
from gateway.model import IdentityStatus, Plan  # noqa: E402

DOCUMENTS = 60


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def run(schema_check: bool) -> dict:
    plans = [Plan.model_validate_json(p.read_bytes()) for p in sorted((HERE.parent / "fixtures" / "plans").glob("*.json"))]
    plans = [p for p in plans if p.person.ins and p.person.identity_status is IdentityStatus.QUAL]
    now = dt.datetime.now(dt.UTC)
    versions = [(p, 1 + n // len(plans)) for n, p in enumerate((plans * (DOCUMENTS // len(plans) + 1))[:DOCUMENTS])]
    start = time.perf_counter()
    subs = [build_submission(p, version=v, now=now) for p, v in versions]
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    for s in subs:
        etree.fromstring(s.content)
    parse_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp, DmpPeer(tmp, finess=plans[0].platform.finess, schema_check=schema_check,
                                                       patients={s.patient for s in subs}) as peer:
        connector = peer.connector()
        claims = connector._claims(subs[0].patient)
        start = time.perf_counter()
        for _ in range(DOCUMENTS):
            vihf.build(claims, connector.seal, now=now)
        sign_s = time.perf_counter() - start
        connector.provide(subs[0])  # warm: TLS session, CDA schema loaded
        start = time.perf_counter()
        for s in subs[1:]:
            connector.provide(s)
        feed_s = time.perf_counter() - start
        patients = sorted({s.patient for s in subs})
        start = time.perf_counter()
        entries = [e for p in patients for e in connector.find_documents(p)]
        query_s = time.perf_counter() - start
        start = time.perf_counter()
        for e in entries:
            connector.retrieve(e.patient_id, e.repository_unique_id, e.unique_id)
        retrieve_s = time.perf_counter() - start
        connector.close()
    return {
        "documents": DOCUMENTS, "mean_cda_kb": round(sum(len(s.content) for s in subs) / len(subs) / 1024, 1),
        "schema_check": schema_check,
        "baseline_lxml_parse_per_s": rate(DOCUMENTS, parse_s),
        "vihf_signatures_per_s": rate(DOCUMENTS, sign_s),
        "build_per_s": rate(DOCUMENTS, build_s),
        "iti41_documents_per_s": rate(DOCUMENTS - 1, feed_s),
        "iti18_queries_per_s": rate(len(patients), query_s),
        "iti43_documents_per_s": rate(len(entries), retrieve_s),
    }


def main() -> dict:
    results = {"python": platform.python_version(), "runs": [run(False), run(True)]}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "dmp.json").write_text(json.dumps(results, indent=2))
    print(f"{'measure':<42} {'header only':>12} {'+ CDA schema':>13}")
    for key in ("baseline_lxml_parse_per_s", "vihf_signatures_per_s", "build_per_s", "iti41_documents_per_s",
                "iti18_queries_per_s", "iti43_documents_per_s"):
        print(f"{key:<42} {results['runs'][0][key]:>12} {results['runs'][1][key]:>13}")
    return results


if __name__ == "__main__":
    main()
