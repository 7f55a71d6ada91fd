"""Load and performance (issue 9): end-to-end throughput, API latency at a steady rate, and the
cost of each stage of an exchange as a share of the whole.

    .venv/bin/python bench/bench_load.py [--n 120] [--rate 15] [--seconds 8] [--no-postgres]

1. **End to end** — plans/s from the first API call to the peer's receipt of the last plan, on
   SQLite and on PostgreSQL (durable: fsync on), with 1 and 4 delivery workers (threads of one
   process, as `relais serve` embeds them). Per plan, three API calls as a DUI makes them:
   `PUT /persons/{id}/plan`, `POST /persons/{id}/information`, `POST /exchanges` (consent
   decision → TDDUI mapping → TDDUI gate → outbox), then a worker claims it, re-decides
   consent, POSTs the Bundle to the e-parcours sandbox (OAuth2) and records the receipt.
   The API (uvicorn) and the peer each run in their own process, as they would in production;
   4 client threads keep the API busy.
2. **API latency** — p50/p99 of `PUT /persons/{id}/plan` (a new person each time) and
   `POST /decisions` at a steady, open-loop rate (requests are sent on schedule whether or not
   earlier ones have answered; bounded to 64 in flight), asyncio + httpx, against the API process.
3. **Stages** — validate, decide, map, validate output, queue, send, audit: each stage function
   timed on its own, on the same 20 fixture plans, then shown as a share of their sum so the
   slowest stage is visible. Before/after figures of the bottleneck removed are measured in the
   same run.

Everything runs on loopback and stops by itself (bounded counts and timeouts). Results go to
bench/results/load.json; figures are in bench/README.md and README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import signal
import statistics
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

FIXTURE = ROOT / "fixtures/plans/p001-enfant-tnd.json"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
PROCESS_TIMEOUT = 900  # seconds: helper processes stop by themselves after this
INFORMATION = {"informed_at": "2026-11-20T10:00:00+01:00", "method": "written", "informed_by": "PRO-1",
               "notice_version": "v1", "topics": ["care-team-sharing", "cross-category-exchange"]}


# --------------------------------------------------------------------- helper processes

def run_peer(port: int, lenient: bool = False) -> None:
    """The e-parcours sandbox (validates every Bundle with the TDDUI gate) in this process;
    `lenient`: the same FHIR server without the Bundle validation, to time Relais's side alone."""
    import logging

    logging.disable(logging.CRITICAL)
    from connectors.sandbox.eparcours import TDDUI_TYPES, eparcours_sandbox
    from connectors.sandbox.fhir_app import FhirSandbox, Personality
    from connectors.sandbox.server import ThreadedServer

    peer = (FhirSandbox(Personality(name="e-parcours (sans validation des profils)", resource_types=TDDUI_TYPES))
            if lenient else eparcours_sandbox())
    with ThreadedServer(peer.app, port=port):
        time.sleep(PROCESS_TIMEOUT)


def run_api(url: str, port: int, key_dir: str) -> None:
    """The Relais API (uvicorn, no embedded worker) in this process."""
    import logging

    import uvicorn

    logging.disable(logging.CRITICAL)
    from gateway.api.app import create_app
    from gateway.settings import Settings
    from gateway.storage import Store

    timer = threading.Timer(PROCESS_TIMEOUT, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    app = create_app(Store(url), Settings(database_url=url, audit_key_dir=Path(key_dir)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


class Helper(common.Child):
    """This script run again in a child process in one of the modes above."""

    def __init__(self, *args: str):
        super().__init__(__file__, *args)


# ------------------------------------------------------------------------------ data

def plan_for(source: dict, local_id: str) -> dict:
    data = json.loads(json.dumps(source))
    data["person"]["local_id"] = local_id
    return data


class Database:
    """A fresh database per measure: SQLite (WAL) in a temporary folder or PostgreSQL."""

    def __init__(self, kind: str, tmp: Path, pg):
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / f'load-{random.getrandbits(32):08x}.db'}"
        else:
            self.url = pg.create_database(f"load_{random.getrandbits(32):08x}")

    def store(self):
        from gateway.storage import Store

        store = Store(self.url)
        store.migrate()
        return store


# -------------------------------------------------------------------------- 1. end to end

def end_to_end(db: Database, peer: Helper, tmp: Path, n: int, workers: int) -> dict:
    from connectors.base import RetryPolicy
    from connectors.eparcours import EparcoursConnector
    from connectors.fhirhttp import FhirEndpoint
    from gateway.delivery.worker import Worker

    source = json.loads(FIXTURE.read_text("utf-8"))
    store = db.store()
    store.create_tenant("bench", "Plateforme", source["platform"]["finess"])
    _, token = store.create_api_key("bench", "bench")
    api = Helper("--api", db.url, str(tmp / "keys"))
    headers = {"Authorization": f"Bearer {token}"}
    plans = [plan_for(source, f"E2E{i:05d}") for i in range(n)]
    connectors = [EparcoursConnector(FhirEndpoint(base_url=peer.url, token_url=f"{peer.url}/oauth/token",
                                                  client_id="relais", client_secret="sandbox-secret"),
                                     RetryPolicy(base_delay=0.01, max_delay=0.05)) for _ in range(workers)]
    pool = [Worker(store, {"eparcours": c}, batch=10, owner=f"bench-{i}") for i, c in enumerate(connectors)]
    latencies: list[float] = []
    failures: list[str] = []

    def one(http: httpx.Client, data: dict) -> None:
        pid = data["person"]["local_id"]
        start = time.perf_counter()
        put = http.put(f"/persons/{pid}/plan", content=orjson.dumps(data),
                       headers={**headers, "Content-Type": "application/json"})
        info = http.post(f"/persons/{pid}/information", json=INFORMATION, headers=headers)
        exchange = http.post("/exchanges", headers=headers, json={
            "person": pid, "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
            "recipient": {"kind": "system", "identifier": "eparcours"}})
        if put.status_code != 201 or info.status_code != 201 or exchange.status_code != 201 \
                or exchange.json()["status"] != "queued":
            failures.append(f"{put.status_code}/{info.status_code}/{exchange.status_code} {exchange.text[:200]}")
        latencies.append(time.perf_counter() - start)

    try:
        with httpx.Client(base_url=api.url, timeout=60) as warm:  # first request loads the mappings
            one(warm, plan_for(source, "WARM00001"))
        for w in pool:
            w.start(idle=0.01)
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as executor:
            clients = [httpx.Client(base_url=api.url, timeout=60) for _ in range(4)]
            list(executor.map(lambda ix: one(clients[ix[0] % 4], ix[1]), enumerate(plans)))
            for c in clients:
                c.close()
        submitted = time.perf_counter() - start
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if _sent(store) >= n + 1:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        delivered = _sent(store) - 1
    finally:
        for w in pool:
            w.stop()
        for c in connectors:
            c.close()
        api.stop()
        store.close()
    return {"backend": db.kind, "workers": workers, "n": n, "delivered": delivered, "failures": failures[:3],
            "plans_per_s": round(delivered / elapsed, 2), "api_calls_per_s": round(3 * n / submitted, 1),
            "submit_phase_s": round(submitted, 2), "total_s": round(elapsed, 2),
            "three_calls_p50_ms": round(1000 * statistics.median(latencies), 1)}


def _sent(store) -> int:
    import sqlalchemy as sa

    with store.reading() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM exchanges WHERE status IN ('sent', 'acknowledged')")).scalar()


# ---------------------------------------------------------------------------- 2. latency

async def steady(url: str, headers: dict, make, rate: float, seconds: float) -> dict:
    """Open loop: one request every 1/rate s for `seconds`; latency of each, from its send."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limit = asyncio.Semaphore(64)

    async def fire(client: httpx.AsyncClient, i: int) -> None:
        async with limit:
            method, path, body = make(i)
            start = time.perf_counter()
            response = await client.request(method, path, content=body)
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers,
                                 limits=httpx.Limits(max_connections=64)) as client:
        tasks = []
        begin = time.perf_counter()
        count = int(rate * seconds)
        for i in range(count):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(client, i)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - begin
    ordered = sorted(latencies)
    return {"rate": rate, "requests": count, "achieved_per_s": round(count / wall, 1), "statuses": statuses,
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "max_ms": round(1000 * ordered[-1], 1)}


def latency(db: Database, tmp: Path, rate: float, seconds: float) -> dict:
    from gateway.consent import ConsentRegistry
    from gateway.consent.model import InformationRecord
    from gateway.consent.vocab import InformationMethod, InformationTopic
    from gateway.model import Plan

    source = json.loads(FIXTURE.read_text("utf-8"))
    store = db.store()
    tenant = store.create_tenant("bench", "Plateforme", source["platform"]["finess"])
    _, token = store.create_api_key("bench", "bench")
    store.put_plan(tenant, Plan.model_validate(plan_for(source, "DEC00001")), if_match=None, actor="bench")
    ConsentRegistry(store).record_information(tenant, "DEC00001", InformationRecord(
        id="i-dec", informed_at=NOW - dt.timedelta(days=3), method=InformationMethod.written, informed_by="PRO-1",
        notice_version="v1", topics=frozenset({InformationTopic.care_team_sharing})), actor="bench", now=NOW)
    store.close()
    api = Helper("--api", db.url, str(tmp / "keys"))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [orjson.dumps(plan_for(source, f"LAT{i:05d}")) for i in range(int(rate * seconds) + 10)]
    decision = orjson.dumps({"person": "DEC00001", "system": "eparcours", "purpose": "COC",
                             "data_categories": ["plan"],
                             "recipient": {"kind": "professional", "rpps": "10000000001", "profession": "health"}})
    try:
        with httpx.Client(base_url=api.url, timeout=30, headers=auth) as warm:
            warm.put("/persons/WARM00001/plan", content=orjson.dumps(plan_for(source, "WARM00001")))
            warm.post("/decisions", content=decision)

        def put(i):
            return "PUT", f"/persons/LAT{i:05d}/plan", bodies[i]

        def decide(i):
            return "POST", "/decisions", decision

        async def both():
            plan_writes = await steady(api.url, auth, put, rate, seconds)
            decisions = await steady(api.url, auth, decide, rate, seconds)
            return plan_writes, decisions

        plan_writes, decisions = asyncio.run(both())
    finally:
        api.stop()
    return {"backend": db.kind, "put_plan": plan_writes, "post_decisions": decisions}


# ----------------------------------------------------------------------------- 3. stages

def _best(fn, items, rounds: int = 3) -> float:
    """Best mean ms per item over `rounds` passes (the least disturbed by the shared machine)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) * 1000 / len(items))
    return best


def strict_gate(payload: bytes) -> list:
    """The output check as it was before: Relais's own Bundle bytes parsed again by the strict
    reader meant for untrusted input (duplicate-key hook, number checks, depth walk)."""
    from gateway.conformance.fhir.gate import tddui_gate
    from gateway.plans import loads_object

    return tddui_gate().validate(loads_object(payload, max_bytes=50 * 1024 * 1024))


def stages(tmp: Path, peer: Helper, lenient: Helper) -> dict:
    from connectors.base import Envelope, Recipient, RetryPolicy
    from connectors.eparcours import EparcoursConnector
    from connectors.fhirhttp import FhirEndpoint
    from gateway.consent.model import DecisionRequest, Recipient as ConsentRecipient, Requester
    from gateway.consent.pdp import decide
    from gateway.consent.registry import CACHE, ConsentRegistry, load_state
    from gateway.consent.model import InformationRecord
    from gateway.consent.vocab import InformationMethod, InformationTopic, System
    from gateway.delivery import outbox, trail
    from gateway.delivery.model import ExchangeRequest, Status
    from gateway.delivery.payloads import BuildContext, kind
    from gateway.delivery.scope import default_categories, restrict
    from gateway.plans import validate_plan_json
    from gateway.storage import Store

    fixtures = sorted((ROOT / "fixtures/plans").glob("*.json"))[:30]
    raws = [p.read_bytes() for p in fixtures]
    today = dt.date(2026, 11, 26)
    store = Store(f"sqlite:///{tmp / 'stages.db'}")
    store.migrate()
    first = json.loads(raws[0])
    tenant = store.create_tenant("bench", "Plateforme", first["platform"]["finess"])
    registry = ConsentRegistry(store)
    plans = []
    for raw in raws:
        plan, _ = validate_plan_json(raw, today)
        plan = plan.model_copy(update={"platform": plan.platform.model_copy(update={"finess": tenant.finess})})
        store.put_plan(tenant, plan, if_match=None, actor="bench")
        registry.record_information(tenant, plan.person.local_id, InformationRecord(
            id=f"i-{plan.person.local_id}", informed_at=NOW - dt.timedelta(days=3), method=InformationMethod.written,
            informed_by="PRO-1", notice_version="v1", topics=frozenset({InformationTopic.care_team_sharing})),
            actor="bench", now=NOW)
        plans.append(plan)
    k = kind("tddui-bundle")
    requests = {p.person.local_id: ExchangeRequest(
        person_local_id=p.person.local_id, system="eparcours", recipient=Recipient("system", "eparcours"),
        purpose="COC", payload_kind="tddui-bundle", data_categories=tuple(default_categories("eparcours", "tddui-bundle", p)))
        for p in plans}

    def build(plan):
        return k.build(restrict(plan, requests[plan.person.local_id].data_categories),
                       BuildContext("bench", tenant.finess, 1, NOW, f"key-{plan.person.local_id}"))

    payloads = [build(p) for p in plans]
    valid = [not any(x.severity.value == "error" for x in k.validate(b)) for b in payloads]  # sendable ones
    plans = [p for p, ok in zip(plans, valid) if ok]
    payloads = [b for b, ok in zip(payloads, valid) if ok]

    def decision_request(plan):
        return DecisionRequest(tenant_id=tenant.id, person_local_id=plan.person.local_id,
                               recipient=ConsentRecipient.of("system"), system=System.eparcours, purpose="COC",
                               data_categories=frozenset(requests[plan.person.local_id].data_categories),
                               requester=Requester("key:bench"), names_ins=True)

    def decide_one(plan):
        CACHE.clear()  # the state is read from the database each time, as after a change
        with store.reading() as conn:
            return decide(load_state(conn, tenant.id, plan.person.local_id), decision_request(plan), now=NOW)

    counter = iter(range(10**9))

    def queue_one(item):
        plan, payload = item
        with store.transaction() as conn:
            outbox.insert(conn, tenant_id=tenant.id, request=requests[plan.person.local_id], plan_version=1,
                          key=f"q-{next(counter)}", actor="bench", now=NOW, decision_id="d", decision_reasons=[],
                          status=Status.queued, payload=payload, content_type=k.content_type, problems=[])

    def queue_and_audit_one(item):
        """The queueing transaction with the exchange's three audit entries (decision, queued,
        sent): in the spine they ride on transactions that exist anyway, so the audit's cost is
        this minus the queueing alone (the Merkle frontier update, pseudonym, rows — no commit)."""
        plan, payload = item
        request = requests[plan.person.local_id]
        with store.transaction() as conn:
            outbox.insert(conn, tenant_id=tenant.id, request=request, plan_version=1,
                          key=f"q-{next(counter)}", actor="bench", now=NOW, decision_id="d", decision_reasons=[],
                          status=Status.queued, payload=payload, content_type=k.content_type, problems=[])
            for action in ("consent.decided", "exchange.queued", "exchange.sent"):
                trail.record(conn, tenant, "bench", action, "success", request, "x", decision_id="d")

    def connector_to(helper: Helper):
        return EparcoursConnector(FhirEndpoint(base_url=helper.url, token_url=f"{helper.url}/oauth/token",
                                               client_id="relais", client_secret="sandbox-secret"), RetryPolicy())

    connector = connector_to(lenient)
    strict_peer = connector_to(peer)

    def send_one(item, connector=connector):
        i, payload = item
        connector.send(Envelope(exchange_id=f"x{i}", idempotency_key=f"k{i}-{next(counter)}", system="eparcours",
                                payload_kind="tddui-bundle", content_type=k.content_type, payload=payload,
                                recipient=Recipient("system", "eparcours"), attempt=1))

    pairs = list(zip(plans, payloads))
    ms = {
        "validate": _best(lambda raw: validate_plan_json(raw, today), raws),
        "decide": _best(decide_one, plans),
        "map": _best(build, plans),
        "validate_output": _best(k.validate, payloads),
        "queue": _best(queue_one, pairs),
        "send": _best(send_one, list(enumerate(payloads)), rounds=2),
    }
    ms["audit"] = max(0.0, _best(queue_and_audit_one, pairs) - ms["queue"])
    peer_included = _best(lambda item: send_one(item, strict_peer), list(enumerate(payloads)), rounds=2)
    # Before/after of the bottleneck removed, interleaved so both see the same machine load.
    from gateway.plans import loads_object

    before = after = parse_before = parse_after = float("inf")
    for _ in range(6):
        before = min(before, _best(strict_gate, payloads, rounds=1))
        after = min(after, _best(k.validate, payloads, rounds=1))
        parse_before = min(parse_before, _best(lambda b: loads_object(b, max_bytes=50 * 1024 * 1024), payloads, 1))
        parse_after = min(parse_after, _best(orjson.loads, payloads, rounds=1))
    connector.close()
    strict_peer.close()
    store.close()
    total = sum(ms.values())
    return {"plans": len(plans), "ms_per_plan": {k_: round(v, 2) for k_, v in ms.items()},
            "share_of_whole": {k_: round(v / total, 3) for k_, v in ms.items()},
            "slowest": max(ms, key=ms.get), "whole_ms": round(total, 2),
            "bundle_bytes": round(statistics.mean(len(p) for p in payloads)),
            "send_with_peer_validation_ms": round(peer_included, 2),
            "bottleneck": {"stage": "validate_output",
                           "what": "Relais's own Bundle bytes re-read by the strict untrusted-input reader",
                           "before_ms": round(before, 2), "after_ms": round(after, 2),
                           "reading_before_ms": round(parse_before, 2), "reading_after_ms": round(parse_after, 2)}}


# ------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=120, help="plans per end-to-end measure")
    parser.add_argument("--rate", type=float, default=15, help="requests/s of the latency measure")
    parser.add_argument("--seconds", type=float, default=8, help="duration of each latency measure")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", choices=["stages", "latency", "e2e"])
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lenient", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api", nargs=2, metavar=("URL", "KEYDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        run_peer(args.port, args.lenient)
        return 0
    if args.api:
        run_api(args.api[0], args.port, args.api[1])
        return 0

    from gateway import logs

    logs.configure("ERROR")  # the workers' "exchange_sent" lines would drown the tables
    results: dict = {"python": platform.python_version(), "cpus": os.cpu_count(),
                     "load_average_at_start": os.getloadavg()[0], "n": args.n}
    pg = None
    backends = ["sqlite"]
    if not args.no_postgres:
        try:
            from tests.support.postgres import PostgresServer, PostgresUnavailable

            pg = PostgresServer(durable=True).start()
            backends.append("postgres")
        except (ImportError, PostgresUnavailable) as exc:
            print(f"PostgreSQL skipped: {exc}")
    peer = Helper("--peer")
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            if args.only in (None, "stages"):
                lenient = Helper("--peer", "--lenient")
                try:
                    results["stages"] = stages(tmp, peer, lenient)
                finally:
                    lenient.stop()
                _print_stages(results["stages"])
            if args.only in (None, "latency"):
                results["latency"] = [latency(Database(b, tmp, pg), tmp, args.rate, args.seconds) for b in backends]
                _print_latency(results["latency"])
            if args.only in (None, "e2e"):
                results["end_to_end"] = [end_to_end(Database(b, tmp, pg), peer, tmp, args.n, w)
                                         for b in backends for w in (1, 4)]
                _print_e2e(results["end_to_end"])
    finally:
        peer.stop()
        if pg is not None:
            pg.stop()
    results["load_average_at_end"] = os.getloadavg()[0]
    out = ROOT / "bench/results/load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"→ {out.relative_to(ROOT)}")
    return 0


def _print_stages(s: dict) -> None:
    print(f"\nStages, ms per plan (TDDUI Bundle ~{s['bundle_bytes'] // 1024} kB), share of the whole")
    for name, ms in s["ms_per_plan"].items():
        print(f"  {name:<16}{ms:>9.2f} ms{100 * s['share_of_whole'][name]:>8.1f} %")
    print(f"  (send = Relais's side, to a peer that validates nothing; with the sandbox peer's own TDDUI "
          f"validation: {s['send_with_peer_validation_ms']} ms)")
    b = s["bottleneck"]
    print(f"  slowest: {s['slowest']}; removed in validate_output: {b['what']}: reading {b['reading_before_ms']} → "
          f"{b['reading_after_ms']} ms, whole stage {b['before_ms']} → {b['after_ms']} ms (best of 6, interleaved)")


def _print_latency(rows: list[dict]) -> None:
    print("\nAPI latency at a steady rate (open loop)")
    for row in rows:
        for name in ("put_plan", "post_decisions"):
            r = row[name]
            print(f"  {row['backend']:<9}{name:<16}{r['rate']:>5.0f}/s  p50 {r['p50_ms']:>7.1f} ms  "
                  f"p99 {r['p99_ms']:>7.1f} ms  max {r['max_ms']:>7.1f} ms  {r['statuses']}")


def _print_e2e(rows: list[dict]) -> None:
    print("\nEnd to end: PUT plan + information + POST /exchanges → worker → peer receipt")
    for r in rows:
        print(f"  {r['backend']:<9}{r['workers']} worker(s)  {r['plans_per_s']:>7.2f} plans/s  "
              f"(API {r['api_calls_per_s']} calls/s, {r['delivered']}/{r['n']} delivered in {r['total_s']} s)")


if __name__ == "__main__":
    sys.exit(main())
