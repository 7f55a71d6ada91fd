"""Memory with a long queue: 100,000 plans queued, on SQLite and PostgreSQL; what the worker and
the listing endpoints hold (Python allocations with tracemalloc, and the process RSS), and how
long a claim and a page take, against the same with 1,000 queued.

    .venv/bin/python bench/bench_memory.py [--queued 100000] [--payload 2048] [--backends sqlite,postgres]

Each backend is measured in a fresh process (clean RSS). The queue is filled by bulk insert
(one person per item); the worker sends through a stub connector that accepts everything,
without re-deciding consent (the synthetic persons have no plan) — the network and the
consent engine are not what is measured. PostgreSQL: a throwaway server, fsync on.
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed_peak(action) -> tuple[float, float]:
    """(seconds, peak MB of Python allocations) of `action`: timed on a first call, traced on a
    second one (tracing slows Python down)."""
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        action()
        return seconds, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def one(url: str, queued: int, payload: int) -> dict:
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.delivery.worker import Worker
    from gateway.settings import settings
    from gateway.storage import Store
    from tests.faults.test_memory import AcceptingPeer, fill

    store = Store(url)
    store.migrate()
    tenant = store.create_tenant("plateforme-m", "Plateforme")
    _, token = store.create_api_key(tenant.slug, "bench")
    auth = {"Authorization": f"Bearer {token}"}
    out: dict = {}
    filled = 0
    for size in (1_000, queued):
        start = time.perf_counter()
        fill(store, tenant.id, size - filled, payload_size=payload, start=filled)
        fill_s = time.perf_counter() - start
        filled = size
        worker = Worker(store, {"eparcours": AcceptingPeer()}, recheck=None, batch=10)
        worker.run_once()
        rss_before = status_kb("VmRSS")
        claim_s, claim_mb = timed_peak(lambda: [worker.run_once() for _ in range(10)])
        with TestClient(create_app(store, settings())) as api:
            api.get("/exchanges", params={"limit": 200}, headers=auth)

            def pages():
                answer = api.get("/exchanges", params={"limit": 200}, headers=auth)
                for _ in range(4):
                    answer = api.get(answer.json()["next"], headers=auth)

            def queued_page():
                api.get("/exchanges", params={"status": "queued", "limit": 200}, headers=auth)

            def persons_page():
                api.get("/persons", params={"limit": 200}, headers=auth)

            pages_s, pages_mb = timed_peak(pages)
            status_s, status_mb = timed_peak(queued_page)
            persons_s, persons_mb = timed_peak(persons_page)
        out[str(size)] = {
            "fill_s": round(fill_s, 1),
            "worker_pass_ms": round(claim_s / 10 * 1000, 1), "worker_peak_mb": round(claim_mb, 2),
            "exchanges_page_ms": round(pages_s / 5 * 1000, 1), "exchanges_pages_peak_mb": round(pages_mb, 2),
            "queued_page_ms": round(status_s * 1000, 1), "queued_page_peak_mb": round(status_mb, 2),
            "persons_page_ms": round(persons_s * 1000, 1), "persons_page_peak_mb": round(persons_mb, 2),
            "rss_mb": round(status_kb("VmRSS") / 1024, 1), "rss_growth_mb": round((status_kb("VmRSS") - rss_before) / 1024, 1),
        }
    out["hwm_mb"] = round(status_kb("VmHWM") / 1024, 1)
    store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--payload", type=int, default=2048)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: the database URL
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.queued, args.payload)))
        return 0

    import tempfile

    from tests.support.postgres import PostgresServer

    results = {"python": platform.python_version(), "queued": args.queued, "payload_bytes": args.payload}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            server = PostgresServer(durable=True).start() if backend == "postgres" else None
            try:
                url = server.create_database("relais_memory") if server else f"sqlite:///{tmp}/relais.db"
                child = subprocess.run([sys.executable, __file__, "--one", url, "--queued", str(args.queued),
                                        "--payload", str(args.payload)], capture_output=True, text=True,
                                       env={**os.environ, "RELAIS_LOG_LEVEL": "WARNING"})
                if child.returncode:
                    print(child.stderr[-3000:])
                    return 1
                results[backend] = json.loads(child.stdout.strip().splitlines()[-1])
            finally:
                if server:
                    server.stop()
        small, large = results[backend]["1000"], results[backend][str(args.queued)]
        print(f"\n{backend}: queued 1,000 → {args.queued:,} (filled in {large['fill_s']} s)")
        for key in ("worker_pass_ms", "worker_peak_mb", "exchanges_page_ms", "exchanges_pages_peak_mb",
                    "queued_page_ms", "queued_page_peak_mb", "persons_page_ms", "persons_page_peak_mb", "rss_mb"):
            print(f"  {key:<26}{small[key]:>10}{large[key]:>10}")
        print(f"  {'process high-water RSS MB':<26}{results[backend]['hwm_mb']:>20}")
    out = ROOT / "bench/results/memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"→ {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
