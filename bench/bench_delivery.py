"""End-to-end delivery: plans/s from `POST /exchanges` to the peer's receipt, on SQLite with one
worker (issue 5), against a baseline measured in the same run: POSTing the same TDDUI Bundles
straight to the same sandbox peer (what the peer alone costs, without Relais).

    .venv/bin/python bench/bench_delivery.py [--n 200] [--clients 1,4] [--postgres] [--no-split] [--idle 0.01]
                                             [--in-flight N] [--peer-delay 0.1]

Each plan is a fixture plan with a qualified identity under a new local id; every person was
informed (so the consent engine permits); the exchange goes through consent decision (audited),
TDDUI mapping, the TDDUI 2.2.0 gate, the outbox, the worker, HTTPS-free loopback HTTP to the
e-parcours sandbox (which validates the Bundle with the same gate), and the receipt.

Two arrangements:
- one process: the API, the worker and the peer share one interpreter (one GIL);
- split: the peer in its own process (as on another machine), the Relais API (uvicorn) and one
  worker thread in another (as `relais serve`), the client in this one; and the same with the
  worker in a process of its own (`relais serve` + one `relais worker`). Besides plans/s, the
  CPU seconds the processes used during the run (utime + stime from /proc, start-up excluded)
  per plan: Relais's (API + worker) is its cost per plan, independent of the peer's.

The client (this process) POSTs with a plain keep-alive `http.client` connection per request in
flight (`--client httpx`: one shared `httpx.Client`, as before 2026-11-27); its own CPU per plan
(process time of the measured part: the POSTs, then waiting for the last receipt) is reported
apart from Relais's and the peer's.

`--in-flight N` sets the sends the worker keeps in flight (the connector's `max_in_flight`;
default: the connector's own, 4 for e-parcours; 1 = one after the other); `--peer-delay S`
makes the peer wait S seconds before each answer, as a national or regional service far away.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import socket
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

from bench import common  # noqa: E402
from connectors.base import RetryPolicy  # noqa: E402
from connectors.eparcours import EparcoursConnector  # noqa: E402
from connectors.fhirhttp import FhirEndpoint  # noqa: E402
from connectors.sandbox.eparcours import eparcours_sandbox  # noqa: E402
from connectors.sandbox.fhir_app import Fault  # noqa: E402
from connectors.sandbox.server import ThreadedServer  # noqa: E402
from gateway.api.app import create_app  # noqa: E402
from gateway.cli.startup import serve_api, serve_worker, started  # noqa: E402
from gateway.consent import ConsentRegistry  # noqa: E402
from gateway.consent.model import InformationRecord  # noqa: E402
from gateway.consent.vocab import InformationMethod, InformationTopic  # noqa: E402
from gateway.delivery.worker import Worker  # noqa: E402
from gateway.model import Plan  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.storage import Store  # noqa: E402
from mappings.fhir.tddui import plan_to_bundle  # noqa: E402

PROCESS_TIMEOUT = 900  # seconds: a helper process left behind ends by itself
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


def prepare(url: str, key_dir: Path, items: list[Plan]) -> str:
    """A fresh database with the tenant, the plans and the persons' information; the API key."""
    store = Store(url)
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
    store.close()
    return token


def exchange_body(plan: Plan) -> dict:
    return {"person": plan.person.local_id, "system": "eparcours", "purpose": "COC",
            "payload_kind": "tddui-bundle", "recipient": {"kind": "system", "identifier": "eparcours"}}


def connector_to(peer_url: str, in_flight: int = 0) -> EparcoursConnector:
    connector = EparcoursConnector(FhirEndpoint(base_url=peer_url, token_url=f"{peer_url}/oauth/token",
                                                client_id="relais", client_secret="sandbox-secret"),
                                   RetryPolicy(base_delay=0.01, max_delay=0.05))
    if in_flight:
        connector.max_in_flight = in_flight
    return connector


def slow_peer(delay: float):
    """The e-parcours sandbox, answering each request `delay` seconds late."""
    peer = eparcours_sandbox()
    if delay:
        peer.faults.down_for(PROCESS_TIMEOUT, Fault(delay=delay))
    return peer


class Client:
    """The load generator's HTTP client: POST a JSON body, return (status, decoded answer).
    `kind` "stdlib": one keep-alive `http.client` connection per thread (its CPU per request is
    ~0.1-0.2 ms here, httpx's ~0.5-0.9); "httpx": one `httpx.Client` shared by the threads."""

    def __init__(self, base_url: str, kind: str = "stdlib", timeout: float = 60):
        self.kind = kind
        if kind == "httpx":
            self._httpx = httpx.Client(base_url=base_url, timeout=timeout)
            return
        host, port = base_url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []

    def post(self, path: str, headers: dict[str, str], body: dict) -> tuple[int, dict]:
        if self.kind == "httpx":
            response = self._httpx.post(path, headers=headers, json=body)
            return response.status_code, response.json()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(*self._address, timeout=self._timeout)
            self._connections.append(connection)
        connection.request("POST", path, body=orjson.dumps(body),
                           headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, orjson.loads(response.read())

    def close(self) -> None:
        if self.kind == "httpx":
            self._httpx.close()
            return
        for connection in self._connections:
            connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------- one process

def one_process(url: str, key_dir: Path, items: list[Plan], idle: float = 0.01, in_flight: int = 0,
                peer_delay: float = 0.0, client: str = "stdlib") -> dict:
    token = prepare(url, key_dir, items)
    config = Settings(database_url=url, audit_key_dir=key_dir)
    store = Store(url)
    peer = slow_peer(peer_delay)
    with ThreadedServer(peer.app) as server:
        # Baseline: the same Bundles posted directly (different identifiers so none dedupes).
        bundles = []
        for i, plan in enumerate(items):
            bundle = plan_to_bundle(plan, NOW)
            bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"}
            bundles.append(orjson.dumps(bundle))
        direct = baseline(server.url, bundles)

        connector = connector_to(server.url, in_flight)
        worker = Worker(store, {"eparcours": connector}, batch=10)
        received_before = peer.store.count("CarePlan")
        with ThreadedServer(create_app(store, config)) as api, Client(api.url, client) as http:
            worker.start(idle=idle)
            start = time.perf_counter()
            for plan in items:
                status, answer = http.post("/exchanges", {"Authorization": f"Bearer {token}"}, exchange_body(plan))
                assert status == 201 and answer["status"] == "queued", answer
            submitted = time.perf_counter() - start
            while peer.store.count("CarePlan") - received_before < len(items):
                if time.perf_counter() - start > 600:
                    break
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            worker.stop()
        connector.close()
    delivered = peer.store.count("CarePlan") - received_before
    store.close()
    return {"delivered": delivered, "bundle_kb": len(bundles[0]) // 1024,
            "baseline_direct_post_per_s": round(direct, 1),
            "submit_only_per_s": round(len(items) / submitted, 1),
            "end_to_end_per_s": round(delivered / elapsed, 1),
            "ratio_vs_direct": round(delivered / elapsed / direct, 3)}


# ------------------------------------------------------------------------------- split

def _exit_later() -> None:
    timer = threading.Timer(PROCESS_TIMEOUT, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


def run_peer(port: int, delay: float = 0.0) -> None:
    """Child process: the strict e-parcours sandbox (TDDUI gate on every Bundle)."""
    import logging

    logging.disable(logging.CRITICAL)
    _exit_later()
    with ThreadedServer(slow_peer(delay).app, port=port):
        started()
        time.sleep(PROCESS_TIMEOUT)


def run_gateway(url: str, key_dir: str, peer_url: str, port: int, worker: bool = True, idle: float = 0.01,
                in_flight: int = 0) -> None:
    """Child process: the Relais API (uvicorn) with one embedded worker thread, as `relais serve`
    (`worker=False`: the API alone), started as `relais serve` starts (audit checkpoints too)."""
    from gateway import logs

    logs.configure("ERROR")  # one "exchange_sent" line per plan would be measured too
    _exit_later()
    store = Store(url)
    config = Settings(database_url=url, audit_key_dir=Path(key_dir))
    embedded = Worker(store, {"eparcours": connector_to(peer_url, in_flight)}, batch=10) if worker else None
    serve_api(create_app(store, config), config, "127.0.0.1", port, worker=embedded, idle=idle)


def run_worker(url: str, peer_url: str, port: int, idle: float = 0.01, in_flight: int = 0) -> None:
    """Child process: one delivery worker, as `relais worker` (it listens on `port` only to say
    it is ready)."""
    from gateway import logs

    logs.configure("ERROR")
    _exit_later()
    worker = Worker(Store(url), {"eparcours": connector_to(peer_url, in_flight)}, batch=10)
    with socket.socket() as ready:
        ready.bind(("127.0.0.1", port))
        ready.listen()
        serve_worker(worker, idle=idle)


class Child(common.Child):
    """This script run again in a child process in one of the modes above."""

    def __init__(self, *args: str):
        super().__init__(__file__, *args)


def sent_count(store: Store) -> int:
    import sqlalchemy as sa

    from gateway.delivery.tables import exchanges

    with store.reading() as conn:
        return conn.execute(sa.select(sa.func.count()).where(exchanges.c.status == "sent")).scalar_one()


def split(url: str, key_dir: Path, items: list[Plan], warm: list[Plan], clients: int = 1,
          worker_process: bool = False, idle: float = 0.01, in_flight: int = 0, peer_delay: float = 0.0,
          client: str = "stdlib") -> dict:
    """`worker_process`: the worker in a process of its own (`relais serve` without its embedded
    worker + `relais worker`) instead of a thread of the API's process."""
    token = prepare(url, key_dir, warm + items)
    peer = Child("--peer", "--peer-delay", str(peer_delay))
    gateway = Child("--gateway", url, str(key_dir), peer.url, "--idle", str(idle), "--in-flight", str(in_flight),
                    *(["--api-only"] if worker_process else []))
    worker = Child("--worker", url, peer.url, "--idle", str(idle), "--in-flight", str(in_flight)) \
        if worker_process else None
    store = Store(url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with Client(gateway.url, client) as http:
            # Warm-up (imports, compiled rules, OAuth2 token, connections): not measured.
            with ThreadPoolExecutor(clients) as pool:  # each client thread opens its connection
                for status, _ in pool.map(lambda plan: http.post("/exchanges", headers, exchange_body(plan)), warm):
                    assert status == 201
            while sent_count(store) < len(warm):
                time.sleep(0.02)
            relais = [gateway] + ([worker] if worker else [])
            cpu_gateway, cpu_peer = sum(c.cpu_seconds() for c in relais), peer.cpu_seconds()
            cpu_client = time.process_time()
            def post(plan: Plan) -> None:
                status, answer = http.post("/exchanges", headers, exchange_body(plan))
                assert status == 201 and answer["status"] == "queued", answer

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:  # `clients` requests in flight at most
                list(pool.map(post, items))
            submitted = time.perf_counter() - start
            while (sent := sent_count(store) - len(warm)) < len(items):
                if time.perf_counter() - start > 600:
                    break
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            cpu_client = time.process_time() - cpu_client
            cpu_gateway = sum(c.cpu_seconds() for c in relais) - cpu_gateway
            cpu_peer = peer.cpu_seconds() - cpu_peer
    finally:
        for child in (worker, gateway, peer):
            if child is not None:
                child.stop()
        store.close()
    n = len(items)
    return {"clients": clients, "worker": "process" if worker_process else "thread of the API", "delivered": sent, "submit_only_per_s": round(n / submitted, 1),
            "end_to_end_per_s": round(sent / elapsed, 1),
            "gateway_cpu_ms_per_plan": round(1000 * cpu_gateway / n, 2),
            "gateway_plans_per_cpu_s": round(n / cpu_gateway, 1) if cpu_gateway else None,
            "peer_cpu_ms_per_plan": round(1000 * cpu_peer / n, 2),
            "client_cpu_ms_per_plan": round(1000 * cpu_client / n, 2), "client": client,
            "elapsed_s": round(elapsed, 2)}


# -------------------------------------------------------------------------------- main

def http_stack() -> str:
    """What uvicorn runs on here ("auto" picks httptools and uvloop when installed)."""
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{parser} + {loop}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--no-split", action="store_true", help="only the one-process measure")
    parser.add_argument("--postgres", action="store_true", help="the split measure on PostgreSQL too")
    parser.add_argument("--clients", default="1,4", help="split measure: requests in flight (one measure each)")
    parser.add_argument("--idle", type=float, default=0.01,
                        help="seconds between a worker's polls of an empty queue (`relais serve`: 0.2)")
    parser.add_argument("--in-flight", type=int, default=0,
                        help="sends the worker keeps in flight (0: the connector's own; 1: one after the other)")
    parser.add_argument("--peer-delay", type=float, default=0.0, help="seconds the peer waits before each answer")
    parser.add_argument("--client", choices=("stdlib", "httpx"), default="stdlib",
                        help="the load generator's HTTP client (httpx: as before 2026-11-27)")
    parser.add_argument("--only", choices=("process", "thread"),
                        help="split measure: only the worker in its own process, or only as a thread of the API")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gateway", nargs=3, metavar=("URL", "KEYDIR", "PEER"), help=argparse.SUPPRESS)
    parser.add_argument("--api-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "PEER"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        run_peer(args.port, args.peer_delay)
        return 0
    if args.gateway:
        run_gateway(*args.gateway, args.port, worker=not args.api_only, idle=args.idle, in_flight=args.in_flight)
        return 0
    if args.worker:
        run_worker(*args.worker, args.port, idle=args.idle, in_flight=args.in_flight)
        return 0

    from gateway import logs

    logs.configure("ERROR")
    items = plans(args.n + 10)
    warm, items = items[args.n:], items[:args.n]
    results: dict = {"n": args.n, "python": platform.python_version(), "cpus": os.cpu_count(),
                     "date": dt.date.today().isoformat(), "load_average_at_start": os.getloadavg()[0],
                     "worker_idle_s": args.idle, "in_flight": args.in_flight or "connector's",
                     "peer_delay_s": args.peer_delay,
                     "uvicorn_http": http_stack(), "client": args.client}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only:
            results["one_process"] = one_process(f"sqlite:///{tmp}/one.db", Path(tmp) / "keys1", items, args.idle,
                                                 args.in_flight, args.peer_delay, args.client)
        clients = [int(c) for c in args.clients.split(",")]
        common_args = dict(idle=args.idle, in_flight=args.in_flight, peer_delay=args.peer_delay, client=args.client)
        if not args.no_split:
            results["split_sqlite"] = [] if args.only == "process" else [
                split(f"sqlite:///{tmp}/split{c}.db", Path(tmp) / f"keys-s{c}", items, warm, c, **common_args)
                for c in clients]
            results["split_sqlite"] += [] if args.only == "thread" else [
                split(f"sqlite:///{tmp}/split{c}w.db", Path(tmp) / f"keys-w{c}", items, warm, c, worker_process=True,
                      **common_args) for c in clients]
            if args.postgres:
                from tests.support.postgres import PostgresServer

                pg = PostgresServer(durable=True).start()
                try:
                    results["split_postgres"] = [split(pg.create_database(f"bench_delivery_{c}"),
                                                       Path(tmp) / f"keys-p{c}", items, warm, c, **common_args)
                                                 for c in clients]
                finally:
                    pg.stop()
    results["load_average_at_end"] = os.getloadavg()[0]

    one = results.get("one_process")
    print(f"N = {args.n} plans (TDDUI Bundles of ~42 kB), 1 worker (idle poll every {args.idle} s, "
          f"{args.in_flight or 'the connector’s'} send(s) in flight, peer delay {args.peer_delay} s); "
          f"load average {results['load_average_at_start']:.2f} -> {results['load_average_at_end']:.2f}; "
          f"uvicorn on {results['uvicorn_http']}; client {args.client}")
    if one:
        direct = one["baseline_direct_post_per_s"]
        print("One process (API + worker + peer):")
        print(f"  {'measure':<46}{'plans/s':>10}{'× baseline':>12}")
        print(f"  {'baseline: POST the Bundle to the peer':<46}{direct:>10.1f}{1:>12.2f}")
        print(f"  {'POST /exchanges only (decide+map+gate+queue)':<46}{one['submit_only_per_s']:>10.1f}"
              f"{one['submit_only_per_s'] / direct:>12.2f}")
        print(f"  {'end to end: POST /exchanges → peer receipt':<46}{one['end_to_end_per_s']:>10.1f}"
              f"{one['end_to_end_per_s'] / direct:>12.2f}")
    for key, label in (("split_sqlite", "SQLite"), ("split_postgres", "PostgreSQL")):
        for r in results.get(key, []):
            arrangement = ("peer | API | 1 worker | client: four processes" if r["worker"] == "process"
                           else "peer | API + 1 worker thread | client: three processes")
            print(f"Split ({label}, {r['clients']} client(s); {arrangement}):")
            print(f"  end to end {r['end_to_end_per_s']:.1f} plans/s (POST /exchanges alone {r['submit_only_per_s']:.1f}/s); "
                  f"gateway CPU {r['gateway_cpu_ms_per_plan']:.1f} ms/plan ({r['gateway_plans_per_cpu_s']} plans per CPU second), "
                  f"peer CPU {r['peer_cpu_ms_per_plan']:.1f} ms/plan, client CPU {r['client_cpu_ms_per_plan']:.1f} ms/plan")
    out = ROOT / "bench/results/delivery.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"→ {out.relative_to(ROOT)}")
    ok = (one is None or one["delivered"] == args.n) and all(r["delivered"] == args.n for k in ("split_sqlite", "split_postgres")
                                             for r in results.get(k, []))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
