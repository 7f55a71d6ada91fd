"""Scale-out on one PostgreSQL: delivery throughput with 1 then 4 `relais worker` processes, and
POST /exchanges with 1 then 2 `relais serve` processes; nothing sent twice, per-person order.

    .venv/bin/python bench/bench_scaleout.py [--items 400] [--persons 100] [--latency 0,0.05]
                                             [--workers 1,4] [--apis 1,2] [--requests 200]

- PostgreSQL: a throwaway server (tests/support/postgres.py) with fsync and synchronous_commit
  on, as in production.
- Workers: real `relais worker` processes (claim with FOR UPDATE SKIP LOCKED, consent decided
  again at claim, audit entries, lease), started before the backlog is released so that
  start-up is not measured. The backlog: `--items` TDDUI Bundles over `--persons` persons, a
  few per person, queued at once (so that per-person order is exercised), then released.
- The peer: a minimal FHIR transaction endpoint in this process (OAuth2 token, dedup on
  Bundle.identifier, a transaction-response), answering after `--latency` seconds (asyncio
  sleep: the remote tool's response time). Not the strict sandbox: its profile validation
  (10-60 ms of CPU per Bundle) on the same two cores would be what is measured. It records
  what arrives, to check that nothing was posted twice and each person's order.
- APIs: real `relais serve` processes; `--requests` POST /exchanges from 8 client threads
  spread round-robin over them, with the 4 workers running (the API and the workers share the
  database and the two cores).

Writes bench/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from connectors.sandbox.server import ThreadedServer, free_port  # noqa: E402
from gateway.delivery.tables import exchanges  # noqa: E402
from gateway.storage import Store  # noqa: E402
from tests.faults.harness import local_id, new_version, platform as make_platform, queue_direct  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

X = exchanges.c
FAR = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------- the peer


class Peer:
    """What a regional tool's FHIR endpoint does with a transaction, minus the validation."""

    def __init__(self, latency: float):
        self.latency = latency
        self.lock = threading.Lock()
        self.posts: collections.Counter[str] = collections.Counter()
        self.applied: list[tuple[str, str]] = []  # (Bundle identifier, CarePlan title)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/oauth/token":
            return await _answer(send, 200, {"access_token": "bench", "token_type": "Bearer", "expires_in": 3600})
        if self.latency:
            await asyncio.sleep(self.latency)
        bundle = orjson.loads(body)
        ident = bundle.get("identifier") or {}
        key = f"{ident.get('system')}|{ident.get('value')}"
        title = next((e["resource"].get("title", "") for e in bundle.get("entry", [])
                      if e["resource"].get("resourceType") == "CarePlan"), "")
        with self.lock:
            self.posts[key] += 1
            if self.posts[key] == 1:
                self.applied.append((key, title))
            n = len(self.applied)
        return await _answer(send, 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201 Created", "location": f"CarePlan/{n}/_history/1"}}]})

    def order_ok(self) -> bool:
        seen: dict[str, list[int]] = collections.defaultdict(list)
        for _, title in self.applied:
            person, _, version = title.rpartition(" v")
            seen[person].append(int(version))
        return all(v == sorted(v) and len(set(v)) == len(v) for v in seen.values())


async def _answer(send, status: int, body: dict) -> None:
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# ---------------------------------------------------------------------------- processes


def relais(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli.main", *args], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.send_signal(signal.SIGINT)
    for p in processes:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------ phases


def backlog(store: Store, tenant, persons: int, items: int, first_version: int) -> list[str]:
    """`items` Bundles, round-robin over the persons (versions first_version, +1…), queued but
    held (due in 2100) until released. Returns their ids."""
    ids = []
    with ThreadPoolExecutor(2) as pool:  # the TDDUI mapping + JSON dominate: two cores
        futures = [pool.submit(queue_direct, store, tenant, n % persons, first_version + n // persons, at=FAR)
                   for n in range(items)]
        ids = [f.result() for f in futures]
    with store.transaction() as conn:  # created_at in 2100 would make the retry policy give up
        conn.execute(sa.update(exchanges).where(X.id.in_(ids)).values(created_at=dt.datetime.now(dt.UTC)))
    return ids


def release(store: Store, ids: list[str]) -> float:
    with store.transaction() as conn:
        conn.execute(sa.update(exchanges).where(X.id.in_(ids)).values(next_attempt_at=dt.datetime.now(dt.UTC)))
    return time.perf_counter()


def sent_count(store: Store, ids: list[str]) -> int:
    with store.reading() as conn:
        return conn.execute(sa.select(sa.func.count()).where(X.id.in_(ids), X.status == "sent")).scalar_one()


def worker_phase(store, tenant, env, workers: int, persons: int, items: int, version: int, logs: Path) -> dict:
    processes = [relais(["worker"], env, logs / f"worker-{workers}-{k}.log") for k in range(workers)]
    try:
        wait(lambda: all(b"d\xc3\xa9marr\xc3\xa9" in (logs / f"worker-{workers}-{k}.log").read_bytes()
                         for k in range(workers)), 120, "workers started")
        ids = backlog(store, tenant, persons, items, version)
        start = release(store, ids)
        peak = 0
        while sent_count(store, ids) < items:
            peak = max(peak, max(rss_kb(p.pid) for p in processes))
            if time.perf_counter() - start > 900:
                raise RuntimeError("backlog not drained in 15 minutes")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        stop(processes)
    with store.reading() as conn:
        owners = collections.Counter(conn.execute(sa.text(
            "SELECT split_part(e.detail, ':', 2) FROM exchange_events e JOIN exchanges x ON x.seq = e.exchange_seq "
            "WHERE e.status = 'sending' AND x.id = ANY(:ids)"), {"ids": ids}).scalars())
    return {"workers": workers, "items": items, "seconds": round(elapsed, 2), "per_s": round(items / elapsed, 1),
            "claims_per_worker": sorted(owners.values(), reverse=True), "max_worker_rss_mb": round(peak / 1024, 1)}


def api_phase(store, tenant, env, apis: int, requests: int, persons: range, token: str, logs: Path) -> dict:
    ports = [free_port() for _ in range(apis)]
    processes = [relais(["serve", "--port", str(port)], env, logs / f"api-{apis}-{port}.log") for port in ports]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for port in ports]
    try:
        def up() -> bool:
            try:
                return all(c.get("/persons").status_code == 401 for c in clients)
            except httpx.TransportError:
                return False

        wait(up, 120, "APIs started")
        chosen = list(itertools.islice(itertools.cycle(persons), requests))
        for i in set(chosen):
            new_version(store, tenant, i)
        api = itertools.cycle(clients)
        lock = threading.Lock()
        answers: collections.Counter[int] = collections.Counter()

        def post(i: int) -> None:
            with lock:
                client = next(api)
            answer = client.post("/exchanges", headers={"Authorization": f"Bearer {token}"}, json={
                "person": local_id(i), "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
                "recipient": {"kind": "system", "identifier": "eparcours"}})
            with lock:
                answers[answer.status_code] += 1

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, chosen))
        elapsed = time.perf_counter() - start
        rss = max(rss_kb(p.pid) for p in processes)
    finally:
        for c in clients:
            c.close()
        stop(processes)
    return {"apis": apis, "requests": requests, "seconds": round(elapsed, 2), "per_s": round(requests / elapsed, 1),
            "answers": dict(answers), "max_api_rss_mb": round(rss / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--persons", type=int, default=100)
    parser.add_argument("--latency", default="0,0.05", help="peer response times to measure (seconds)")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--apis", default="1,2")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    latencies = [float(x) for x in args.latency.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    api_counts = [int(x) for x in args.apis.split(",")]
    results: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "items": args.items,
                     "persons": args.persons, "workers": [], "apis": []}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(durable=True) as pg:
        logs = Path(tmp)
        url = pg.create_database("relais_scaleout")
        store = Store(url)
        store.migrate()
        persons = args.persons + args.requests  # the API phase uses persons of its own
        tenant = make_platform(store, persons, slug="plateforme-bench")
        _, token = store.create_api_key(tenant.slug, "bench")
        version = 1
        peers = []
        for latency in latencies:
            peer = Peer(latency)
            peers.append(peer)
            with ThreadedServer(peer) as server:
                env = {**os.environ, "RELAIS_DATABASE_URL": url, "RELAIS_LOG_LEVEL": "WARNING",
                       "RELAIS_AUDIT_KEY_DIR": str(logs / "keys"),
                       "RELAIS_CONNECTORS__EPARCOURS__BASE_URL": server.url,
                       "RELAIS_CONNECTORS__EPARCOURS__TOKEN_URL": f"{server.url}/oauth/token",
                       "RELAIS_CONNECTORS__EPARCOURS__CLIENT_ID": "relais",
                       "RELAIS_CONNECTORS__EPARCOURS__CLIENT_SECRET": "bench"}
                for workers in worker_counts:
                    figures = worker_phase(store, tenant, env, workers, args.persons, args.items, version, logs)
                    version += -(-args.items // args.persons)
                    results["workers"].append({"peer_latency_s": latency, **figures})
                    print(f"latency {latency * 1000:>4.0f} ms  {workers} worker(s): {figures['per_s']:>6.1f} items/s "
                          f"({figures['items']} in {figures['seconds']} s; claims {figures['claims_per_worker']}; "
                          f"RSS ≤ {figures['max_worker_rss_mb']} MB)", flush=True)
                if latency == latencies[-1]:
                    background = [relais(["worker"], env, logs / f"bg-{k}.log") for k in range(max(worker_counts))]
                    try:
                        api_persons = range(args.persons, args.persons + args.requests)
                        for apis in api_counts:
                            figures = api_phase(store, tenant, env, apis, args.requests, api_persons, token, logs)
                            results["apis"].append({"peer_latency_s": latency, **figures})
                            print(f"{apis} API process(es): {figures['per_s']:>6.1f} POST /exchanges/s "
                                  f"({figures['answers']}; RSS ≤ {figures['max_api_rss_mb']} MB)", flush=True)
                        with store.reading() as conn:
                            queued = [r[0] for r in conn.execute(sa.select(X.id).where(X.status.in_(["queued", "sending"])))]
                        wait(lambda: sent_count(store, queued) == len(queued), 600, "API exchanges delivered")
                    finally:
                        stop(background)
        with store.reading() as conn:
            statuses = dict(conn.execute(sa.select(X.status, sa.func.count()).group_by(X.status)).all())
        store.close()
    posted_twice = sum(1 for p in peers for n in p.posts.values() if n > 1)
    results["statuses"] = statuses
    results["bundles_posted_twice"] = posted_twice
    results["per_person_order_kept"] = all(p.order_ok() for p in peers)
    print(f"statuses {statuses}; Bundles posted twice: {posted_twice}; per-person order kept: "
          f"{results['per_person_order_kept']}")
    out = ROOT / "bench/results/scaleout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"→ {out.relative_to(ROOT)}")
    ok = posted_twice == 0 and results["per_person_order_kept"] and set(statuses) <= {"sent", "superseded"}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
