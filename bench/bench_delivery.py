"""End-to-end delivery: plans/s from `POST /exchanges` to the peer's receipt, on SQLite with one
worker (issue 5), against a baseline measured in the same run: POSTing the same TDDUI Bundles
straight to the same sandbox peer (what the peer alone costs, without Relais).

    .venv/bin/python bench/bench_delivery.py [--n 200]

Each plan is a fixture plan with a qualified identity under a new local id; every person was
informed (so the consent engine permits); the exchange goes through consent decision (audited),
TDDUI mapping, the TDDUI 2.2.0 gate, the outbox, the worker, HTTPS-free loopback HTTP to the
e-parcours sandbox (which validates the Bundle with the same gate), and the receipt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402

from connectors.base import RetryPolicy  # noqa: E402
from connectors.eparcours import EparcoursConnector  # noqa: E402
from connectors.fhirhttp import FhirEndpoint  # noqa: E402
from connectors.sandbox.eparcours import eparcours_sandbox  # noqa: E402
from connectors.sandbox.server import ThreadedServer  # noqa: E402
from gateway.api.app import create_app  # noqa: E402
from gateway.consent import ConsentRegistry  # noqa: E402
from gateway.consent.model import InformationRecord  # noqa: E402
from gateway.consent.vocab import InformationMethod, InformationTopic  # noqa: E402
from gateway.delivery.worker import Worker  # noqa: E402
from gateway.model import Plan  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.storage import Store  # noqa: E402
from mappings.fhir.tddui import plan_to_bundle  # noqa: E402

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)


def plans(n: int) -> list[Plan]:
    source = json.loads((ROOT / "fixtures/plans/p001-enfant-tnd.json").read_text("utf-8"))
    out = []
    for i in range(n):
        data = json.loads(json.dumps(source))
        data["person"]["local_id"] = f"BENCH{i:05d}"
        out.append(Plan.model_validate(data))
    return out


def baseline(server_url: str, bundles: list[bytes]) -> float:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "relais",
                                                "client_secret": "sandbox-secret"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        start = time.perf_counter()
        for body in bundles:
            http.post("/", content=body, headers=headers).raise_for_status()
        return len(bundles) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    items = plans(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        config = Settings(database_url=f"sqlite:///{tmp}/bench.db", audit_key_dir=Path(tmp) / "keys")
        store = Store(config.database_url)
        store.migrate()
        tenant = store.create_tenant("bench", "Plateforme", "510000011")
        _, token = store.create_api_key("bench", "bench")
        registry = ConsentRegistry(store)
        for plan in items:
            store.put_plan(tenant, plan, if_match=None, actor="bench")
            registry.record_information(tenant, plan.person.local_id, InformationRecord(
                id=f"i-{plan.person.local_id}", informed_at=NOW - dt.timedelta(days=5),
                method=InformationMethod.written, informed_by="bench", notice_version="v1",
                topics=frozenset({InformationTopic.care_team_sharing})), actor="bench", now=NOW)

        peer = eparcours_sandbox()
        with ThreadedServer(peer.app) as server:
            # Baseline: the same Bundles posted directly (different identifiers so none dedupes).
            bundles = []
            for i, plan in enumerate(items):
                bundle = plan_to_bundle(plan, NOW)
                bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"}
                bundles.append(orjson.dumps(bundle))
            direct = baseline(server.url, bundles)

            connector = EparcoursConnector(FhirEndpoint(base_url=server.url, token_url=f"{server.url}/oauth/token",
                                                        client_id="relais", client_secret="sandbox-secret"),
                                           RetryPolicy(base_delay=0.01, max_delay=0.05))
            worker = Worker(store, {"eparcours": connector}, batch=10)
            received_before = peer.store.count("CarePlan")
            with ThreadedServer(create_app(store, config)) as api, httpx.Client(base_url=api.url, timeout=60) as http:
                done = threading.Event()
                worker.start(idle=0.01)
                start = time.perf_counter()
                for plan in items:
                    response = http.post("/exchanges", headers={"Authorization": f"Bearer {token}"}, json={
                        "person": plan.person.local_id, "system": "eparcours", "purpose": "COC",
                        "payload_kind": "tddui-bundle", "recipient": {"kind": "system", "identifier": "eparcours"}})
                    assert response.status_code == 201 and response.json()["status"] == "queued", response.text
                submitted = time.perf_counter() - start
                while peer.store.count("CarePlan") - received_before < len(items):
                    if time.perf_counter() - start > 600:
                        break
                    time.sleep(0.01)
                elapsed = time.perf_counter() - start
                done.set()
                worker.stop()
            connector.close()
        delivered = peer.store.count("CarePlan") - received_before
        store.close()

    end_to_end = delivered / elapsed
    results = {
        "n": args.n, "delivered": delivered, "python": platform.python_version(),
        "baseline_direct_post_per_s": round(direct, 1),
        "end_to_end_per_s": round(end_to_end, 1),
        "submit_only_per_s": round(args.n / submitted, 1),
        "ratio_vs_direct": round(end_to_end / direct, 3),
    }
    print(f"N = {args.n} plans (TDDUI Bundles of ~{len(bundles[0]) // 1024} kB), SQLite, 1 worker")
    print(f"{'measure':<42}{'plans/s':>10}{'× baseline':>12}")
    print(f"{'baseline: POST the Bundle to the peer':<42}{direct:>10.1f}{1:>12.2f}")
    print(f"{'POST /exchanges only (decide+map+gate+queue)':<42}{args.n / submitted:>10.1f}{args.n / submitted / direct:>12.2f}")
    print(f"{'end to end: POST /exchanges → peer receipt':<42}{end_to_end:>10.1f}{end_to_end / direct:>12.2f}")
    out = ROOT / "bench/results/delivery.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"→ {out.relative_to(ROOT)}")
    return 0 if delivered == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
