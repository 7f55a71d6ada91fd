"""Consent engine benchmark: PDP decision latency, in process, warm.

    .venv/bin/python bench/bench_consent.py [--n 20000] [--durable 500]

Measured in the same run, per call, with time.perf_counter_ns:
- baseline: `json.loads` of the request as the API receives it (the floor of any JSON
  service), and a dict lookup;
- decide(): the pure PDP on a loaded policy state, for a person with 5 and with 50 Consents
  (care team of 12, 3 information records), over a mix of requests (team exchange, team
  sharing, outside the team with and without consent, DMP feeding, opposition, break-glass);
- load_state() on a cache hit (the one indexed query that validates the cache), SQLite;
- decide_and_record() + commit on SQLite (WAL, synchronous=FULL): decision log row and
  audit entry made durable before the answer — the path data takes before leaving.
Each measure runs `--rounds` times; the round with the lowest p99 is reported (all rounds'
p99 are kept in the JSON). Prints a table and writes bench/results/consent.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.consent.model import Effect  # noqa: E402
from gateway.consent.pdp import decide  # noqa: E402
from gateway.consent.vocab import ConsentKind, InformationTopic as T, Profession, System  # noqa: E402
from tests.test_consent_support import (  # noqa: E402
    DR_HEALTH,
    EDUC,
    NOW,
    STRANGER,
    consent,
    info,
    member,
    node,
    request,
    state,
)

RESULTS = ROOT / "bench" / "results" / "consent.json"


def consents(n: int) -> list[dict]:
    out = [consent("deny", kind=ConsentKind.opposition.value, actors=[("rpps", "10000000077")]),
           consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])]
    i = 0
    while len(out) < n:
        rpps = f"1000000{i % 90 + 10:02d}{i % 10:02d}"[:11]
        out.append(consent(kind=ConsentKind.outside_team.value, actors=[("rpps", rpps)],
                           purposes=["TREAT"], classes=["plan", "needs"],
                           nested=[node("deny", classes=["health"])]))
        if len(out) < n and i % 5 == 0:
            out.append(consent("deny", kind=ConsentKind.opposition.value, actors=[("system", "viatrajectoire")],
                               purposes=["HOPERAT"]))
        i += 1
    return out[:n]


def world(n_consents: int):
    team = [member(DR_HEALTH, Profession.health), member(EDUC, Profession.social)]
    team += [member(f"100000001{i:02d}", Profession.social) for i in range(10)]
    return state(consents=consents(n_consents), team=team,
                 information=[info(T.care_team_sharing), info(T.cross_category_exchange), info(T.dmp)])


REQUESTS = [
    request(),  # exchange with a team member
    request(System.eparcours, kind="system"),  # team sharing
    request(to=STRANGER),  # outside the team, consent on file
    request(to="10000000066"),  # outside the team, no consent
    request(to="10000000077"),  # opposition
    request(System.dmp, kind="system"),  # DMP feeding
    request(System.dmp, to=DR_HEALTH, purpose="BTG", urgency=True, justification="urgence vitale"),
    request(data=("plan", "health"), requester=Profession.social),
]
REQUEST_JSON = [json.dumps({"person": r.person_local_id, "system": r.system.value, "purpose": r.purpose,
                            "recipient": {"kind": r.recipient.kind.value,
                                          "rpps": dict(r.recipient.identifiers).get("rpps"),
                                          "profession": r.recipient.profession.value
                                          if r.recipient.profession else None},
                            "data_categories": sorted(r.data_categories)}) for r in REQUESTS]


def percentiles(samples_ns: list[int]) -> dict:
    s = sorted(samples_ns)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] / 1000, 2)

    return {"calls": len(s), "p50_us": q(0.50), "p99_us": q(0.99), "p999_us": q(0.999),
            "max_us": round(s[-1] / 1000, 2), "mean_us": round(statistics.fmean(s) / 1000, 2)}


def best_of(rounds: int, fn, n: int) -> dict:
    """Wall-clock percentiles of the round with the lowest p99, plus the same call's CPU time
    (CLOCK_THREAD_CPUTIME_ID). The shared 2-CPU machine is noisy: other processes' time
    slices show up as 1-8 ms steps in the wall-clock tail, not in the CPU time; every
    round's p99 is kept."""
    runs = [per_call(fn, n) for _ in range(rounds)]
    stats = [(percentiles(wall), percentiles(cpu)) for wall, cpu in runs]
    wall, cpu = min(stats, key=lambda pair: pair[0]["p99_us"])
    return {**wall, "cpu_p50_us": cpu["p50_us"], "cpu_p99_us": cpu["p99_us"],
            "rounds_p99_us": [w["p99_us"] for w, _ in stats]}


def per_call(fn, n: int) -> tuple[list[int], list[int]]:
    wall, cpu = [], []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i in range(n):
        start, start_cpu = clock(), cpu_clock()
        fn(i)
        cpu.append(cpu_clock() - start_cpu)
        wall.append(clock() - start)
    return wall, cpu


def durable(n: int, rounds: int) -> dict:
    """decide_and_record + commit on SQLite, and the cache-hit load_state."""
    from gateway.consent import ConsentRegistry
    from gateway.consent.record import decide_and_record
    from gateway.consent.registry import load_state
    from gateway.storage import Store
    from gateway.storage.engine import WRITE
    from tests.conftest import make_plan, sample_plan_dict

    out = {}
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
        store = Store(f"sqlite:///{tmp}/relais.db")
        try:
            store.migrate()
            tenant = store.create_tenant("bench", "Banc d'essai")
            store.put_plan(tenant, make_plan(sample_plan_dict()), if_match=None, actor="bench")
            registry = ConsentRegistry(store)
            for resource in consents(5):
                resource["performer"] = [{"reference": "RelatedPerson/R1"}]  # the sample person is a minor
                registry.record_consent(tenant, "U000001", resource, actor="bench")
            reqs = [r.__class__(**{**r.__dict__, "tenant_id": tenant.id}) for r in REQUESTS]
            with store.engine.connect() as conn:
                load_state(conn, tenant.id, "U000001")
                out["load_state_cache_hit_sqlite"] = best_of(
                    rounds, lambda i: load_state(conn, tenant.id, "U000001"), n * 4)

            def recorded(i: int) -> None:
                with store.engine.connect() as conn:
                    conn.execution_options(**{WRITE: True})
                    with conn.begin():
                        decide_and_record(conn, reqs[i % len(reqs)], now=NOW)

            for i in range(50):
                recorded(i)
            out["decide_and_record_commit_sqlite"] = best_of(rounds, recorded, n)
        finally:
            store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="calls per in-memory measure")
    parser.add_argument("--durable", type=int, default=500, help="durable decisions on SQLite (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measure (best p99 kept)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rows: dict[str, dict] = {}
    table = {r: i for i, r in enumerate(REQUEST_JSON)}
    per_call(lambda i: json.loads(REQUEST_JSON[i % len(REQUEST_JSON)]), 2000)
    rows["baseline json.loads(request)"] = best_of(
        args.rounds, lambda i: json.loads(REQUEST_JSON[i % len(REQUEST_JSON)]), args.n)
    rows["baseline dict lookup"] = best_of(
        args.rounds, lambda i: table[REQUEST_JSON[i % len(REQUEST_JSON)]], args.n)
    effects = {}
    for n_consents in (5, 50):
        s = world(n_consents)
        effects[n_consents] = [decide(s, r, now=NOW).effect.value for r in REQUESTS]
        per_call(lambda i: decide(s, REQUESTS[i % len(REQUESTS)], now=NOW), 2000)  # warm
        rows[f"decide() {n_consents} consents"] = best_of(
            args.rounds, lambda i: decide(s, REQUESTS[i % len(REQUESTS)], now=NOW), args.n)
    if effects[5].count(Effect.permit.value) == 0:
        raise SystemExit("benchmark world permits nothing: check the fixtures")
    if args.durable:
        rows.update(durable(args.durable, args.rounds))

    base = rows["baseline json.loads(request)"]["p50_us"]
    print(f"{'measure':34} {'p50 µs':>8} {'p99 µs':>9} {'p99.9 µs':>9} {'cpu p99':>8} {'× json p50':>10}")
    for name, r in rows.items():
        print(f"{name:34} {r['p50_us']:8.2f} {r['p99_us']:9.2f} {r['p999_us']:9.2f} "
              f"{r['cpu_p99_us']:8.2f} {r['p50_us'] / base:10.1f}")
    result = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "effects_per_request": effects,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"→ {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
