"""Storage benchmark: plans per second for "strict validation from raw bytes + put_plan".

    .venv/bin/python bench/bench_storage.py [--n 2000] [--backends sqlite,postgres] [--no-fsync]

Each plan is a variant of the test sample plan with its own person.local_id, so every write
creates a person and its version 1 (one transaction each). Measured in the same run:
- baseline: `json.loads` + `orjson.dumps` of the same payloads (the floor of any JSON service);
- validate: `gateway.plans.validate_plan_json` only;
- validate+store on SQLite (file in a temporary directory, WAL, synchronous=FULL default);
- validate+store on PostgreSQL (throwaway server from tests/support/postgres.py, fsync on
  unless --no-fsync; or the server named by RELAIS_TEST_POSTGRES_URL).
Prints a table and writes bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from gateway.plans import validate_plan_json  # noqa: E402
from gateway.storage import Store  # noqa: E402
from tests.conftest import SAMPLE_PLAN  # noqa: E402
from tests.support.postgres import PostgresServer, PostgresUnavailable  # noqa: E402

TODAY = dt.date(2026, 11, 26)
RESULTS = ROOT / "bench" / "results" / "storage.json"


def payloads(n: int, prefix: str) -> list[bytes]:
    out = []
    for i in range(n):
        data = copy.deepcopy(SAMPLE_PLAN)
        data["person"]["local_id"] = f"{prefix}{i:06d}"
        out.append(orjson.dumps(data))
    return out


def timed(fn: Callable[[list[bytes]], None], items: list[bytes]) -> float:
    start = time.perf_counter()
    fn(items)
    return time.perf_counter() - start


def baseline(items: list[bytes]) -> None:
    for raw in items:
        orjson.dumps(json.loads(raw))


def validate_only(items: list[bytes]) -> None:
    for raw in items:
        plan, problems = validate_plan_json(raw, TODAY)
        if plan is None:
            raise SystemExit(f"sample plan invalid: {[p.line() for p in problems]}")


def validate_and_store(store: Store, slug: str) -> Callable[[list[bytes]], None]:
    tenant = store.create_tenant(slug, f"Banc d'essai {slug}")

    def run(items: list[bytes]) -> None:
        for raw in items:
            plan, problems = validate_plan_json(raw, TODAY)
            if plan is None:
                raise SystemExit(f"sample plan invalid: {[p.line() for p in problems]}")
            store.put_plan(tenant, plan, if_match=None, actor="bench")

    return run


def measure_store(url: str, items: list[bytes], warmup: list[bytes]) -> tuple[float, int]:
    store = Store(url)
    try:
        store.migrate()
        validate_and_store(store, "warmup")(warmup)
        seconds = timed(validate_and_store(store, "bench"), items)
        count = store.count_persons(store.get_tenant("bench"))
    finally:
        store.close()
    return seconds, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct persons (default 2000)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync=off")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    items = payloads(args.n, "B")
    warmup = payloads(min(100, args.n), "W")
    rows: list[dict] = []

    def record(name: str, seconds: float, note: str = "") -> None:
        rows.append({"name": name, "seconds": round(seconds, 4),
                     "plans_per_s": round(args.n / seconds, 1), "note": note})

    baseline(warmup)
    record("baseline json.loads+orjson.dumps", min(timed(baseline, items) for _ in range(3)),
           "best of 3")
    validate_only(warmup)
    record("validate_plan_json", timed(validate_only, items))

    meta: dict = {"sqlite_version": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
        if "sqlite" in backends:
            seconds, count = measure_store(f"sqlite:///{tmp}/bench.db", items, warmup)
            assert count == args.n, count
            record("validate+put_plan sqlite", seconds, "WAL, synchronous=FULL")
        if "postgres" in backends:
            server = PostgresServer(durable=not args.no_fsync)
            try:
                server.start()
            except PostgresUnavailable as exc:
                print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
            else:
                try:
                    url = server.create_database("relais_bench")
                    import psycopg

                    with psycopg.connect(server.conninfo(url)) as conn:
                        meta["postgres_version"] = conn.execute("SHOW server_version").fetchone()[0]
                        meta["postgres_fsync"] = conn.execute("SHOW fsync").fetchone()[0]
                    seconds, count = measure_store(url, items, warmup)
                    assert count == args.n, count
                    record("validate+put_plan postgres", seconds,
                           f"fsync={meta['postgres_fsync']}, localhost TCP")
                finally:
                    server.stop()

    base = rows[0]["plans_per_s"]
    for row in rows:
        row["ratio_vs_baseline"] = round(row["plans_per_s"] / base, 4)

    width = max(len(r["name"]) for r in rows)
    print(f"N = {args.n} plans ({len(items[0])} bytes each), Python {platform.python_version()}")
    print(f"{'measure':<{width}}  {'plans/s':>10}  {'× baseline':>10}  note")
    for row in rows:
        print(f"{row['name']:<{width}}  {row['plans_per_s']:>10,.0f}  "
              f"{row['ratio_vs_baseline']:>10.4f}  {row['note']}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "n": args.n,
        "payload_bytes": len(items[0]),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **meta,
        "results": rows,
    }, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"→ {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
