"""Audit trail benchmark: durable appends, signed checkpoints, offline verification, proof sizes.

    .venv/bin/python bench/bench_audit.py [--single 2000] [--group 100000] [--batch 1000]
                                           [--verify-n 1000000] [--backends sqlite,postgres]

Measured in the same run:
- baseline: RFC 8785 encoding + leaf hash of the same entries (no storage): the CPU floor;
- durable appends one at a time: one transaction and one fsync'd commit per entry (SQLite WAL,
  synchronous=FULL; PostgreSQL fsync and synchronous_commit on), with p50/p99 latency;
- group commit: `append_many` of --batch entries per transaction;
- time to a signed checkpoint: the background Checkpointer (1 s / 256 entries) running, time
  from a commit to the first signed checkpoint covering it; and the cost of one signature;
- offline verification of an export of --verify-n entries (written through append_many,
  checkpointed every 65,536 entries, exported with `relais audit export`'s code);
- proof sizes (RFC 9162) at the verified size, and checkpoint note sizes.
Prints a table and writes bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.audit import AuditEntry, append, append_many, merkle, note  # noqa: E402
from gateway.audit.checkpoint import Checkpointer, cosign, sign_checkpoint, write_transaction  # noqa: E402
from gateway.audit.entry import encode  # noqa: E402
from gateway.audit.export import export  # noqa: E402
from gateway.audit.tree import signed_size  # noqa: E402
from gateway.audit.verify import verify_export  # noqa: E402
from gateway.settings import settings  # noqa: E402
from gateway.storage import Store  # noqa: E402
from tests.support.postgres import PostgresServer, PostgresUnavailable  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "audit.json"
SUBJECT = "ps1-" + "0123456789abcdef" * 2


def entry(i: int) -> AuditEntry:
    """A typical entry: an exchange sent to the DMP, with ids and a payload digest (~430 B)."""
    return AuditEntry(tenant_id="9f86d081884c7d659a2feaa0c55ad015", actor="worker", action="exchange.sent",
                      outcome="success", subject=SUBJECT, system="dmp",
                      refs={"exchange": f"{i:032x}", "decision": f"{i + 7:032x}", "purpose": "TREAT",
                            "payload_sha256": f"{i:064x}", "payload_kind": "tddui-bundle"})


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def baseline(n: int) -> float:
    now = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    for i in range(n):
        merkle.leaf_hash(encode(entry(i), i, now))
    return n / (time.perf_counter() - start)


def one_at_a_time(store: Store, n: int) -> dict:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        with write_transaction(store.engine) as conn:
            append(conn, entry(i))
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    return {"entries_per_s": round(n / seconds), "p50_ms": round(pct(latencies, 0.5) * 1000, 3),
            "p99_ms": round(pct(latencies, 0.99) * 1000, 3), "n": n}


def group_commit(store: Store, n: int, batch: int) -> dict:
    latencies = []
    start = time.perf_counter()
    for offset in range(0, n, batch):
        t0 = time.perf_counter()
        with write_transaction(store.engine) as conn:
            append_many(conn, [entry(offset + i) for i in range(min(batch, n - offset))])
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    return {"entries_per_s": round(n / seconds), "batch": batch, "p99_batch_ms": round(pct(latencies, 0.99) * 1000, 2),
            "n": n}


def time_to_checkpoint(store: Store, config, samples: int) -> dict:
    """Commit an entry at a random moment, wait until a signed checkpoint covers it."""
    waits = []
    with Checkpointer(store.engine, config) as checkpointer:
        time.sleep(1.2)
        for _ in range(samples):
            time.sleep(random.uniform(0, 1.0))
            with write_transaction(store.engine) as conn:
                index = append(conn, entry(0))
            committed = time.perf_counter()
            while True:
                with store.engine.connect() as conn:
                    if signed_size(conn)[0] > index:
                        break
                time.sleep(0.005)
            waits.append(time.perf_counter() - committed)
        assert checkpointer.last_error is None, checkpointer.last_error
    with write_transaction(store.engine) as conn:
        append_many(conn, [entry(i) for i in range(256)])
    t0 = time.perf_counter()
    sign_checkpoint(store.engine, config)
    sign_ms = (time.perf_counter() - t0) * 1000
    return {"samples": samples, "p50_s": round(pct(waits, 0.5), 3), "max_s": round(max(waits), 3),
            "mean_s": round(statistics.mean(waits), 3), "sign_256_entries_ms": round(sign_ms, 2)}


def verification(tmp: Path, config, n: int) -> dict:
    store = Store(f"sqlite:///{tmp / 'verify.db'}")
    store.migrate()
    t0 = time.perf_counter()
    done = 0
    while done < n - 1:  # the first checkpoint adds the key's entry
        step = min(10000, n - 1 - done)
        with write_transaction(store.engine) as conn:
            append_many(conn, [entry(done + i) for i in range(step)])
        done += step
        if done % 65536 < step:
            sign_checkpoint(store.engine, config)
    sign_checkpoint(store.engine, config)
    write_s = time.perf_counter() - t0
    dpo = note.Signer.generate("dpo.bench.test/temoin", note.COSIGNATURE_V1)
    cosign(store.engine, dpo, config)
    t0 = time.perf_counter()
    summary = export(store.engine, tmp / "export", config, sign=False)
    export_s = time.perf_counter() - t0
    store.close()
    t0 = time.perf_counter()
    report = verify_export(tmp / "export")
    verify_s = time.perf_counter() - t0
    assert report.ok, [f.message for f in report.findings[:5]]
    size = summary.entries
    inclusion = len(merkle.inclusion_ranges(size // 3, size))
    consistency = max(len(merkle.consistency_ranges(old, size)) for old in
                      [random.randrange(1, size) for _ in range(2000)])
    latest = (tmp / "export" / "checkpoint").read_text()
    single = (tmp / "export" / "checkpoints" / str(size)).read_text().split("\u2014 dpo")[0]
    return {"entries": size, "checkpoints": summary.checkpoints, "write_and_checkpoint_s": round(write_s, 1),
            "export_s": round(export_s, 1), "verify_s": round(verify_s, 2),
            "inclusion_proof": {"hashes": inclusion, "bytes": 32 * inclusion},
            "consistency_proof_max_sampled": {"hashes": consistency, "bytes": 32 * consistency},
            "checkpoint_bytes": len(single.encode()), "checkpoint_with_cosignature_bytes": len(latest.encode()),
            "entry_bytes_mean": round((tmp / "export" / "entries.jsonl").stat().st_size / size - 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="one-at-a-time appends")
    parser.add_argument("--group", type=int, default=100000, help="entries appended with group commit")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--verify-n", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-samples", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results: dict = {"python": platform.python_version(), "machine": platform.machine(),
                     "sqlite_version": sqlite3.sqlite_version,
                     "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    results["baseline_encode_and_hash_per_s"] = round(baseline(20000))
    print(f"baseline (RFC 8785 + leaf hash, no storage): {results['baseline_encode_and_hash_per_s']:,} entries/s")

    with tempfile.TemporaryDirectory(prefix="relais-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        config = settings().model_copy(update={"audit_key_dir": tmp / "keys", "audit_origin": "relais.bench/audit"})
        stores = {}
        server = None
        if "sqlite" in backends:
            stores["sqlite"] = Store(f"sqlite:///{tmp / 'bench.db'}")
        if "postgres" in backends:
            server = PostgresServer(durable=True)
            try:
                server.start()
                stores["postgres"] = Store(server.create_database("relais_bench_audit"))
            except PostgresUnavailable as exc:
                print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
                server = None
        try:
            for name, store in stores.items():
                store.migrate()
                with write_transaction(store.engine) as conn:  # warm-up
                    append_many(conn, [entry(i) for i in range(200)])
                single = one_at_a_time(store, args.single)
                group = group_commit(store, args.group, args.batch)
                checkpoint = time_to_checkpoint(store, config, args.checkpoint_samples)
                results[name] = {"one_at_a_time": single, "group_commit": group, "time_to_checkpoint": checkpoint}
                print(f"{name}: one at a time {single['entries_per_s']:,}/s (p50 {single['p50_ms']} ms, "
                      f"p99 {single['p99_ms']} ms); group commit ×{args.batch} {group['entries_per_s']:,}/s; "
                      f"signed checkpoint after p50 {checkpoint['p50_s']} s, max {checkpoint['max_s']} s; "
                      f"signing 256 entries {checkpoint['sign_256_entries_ms']} ms")
                store.close()
        finally:
            if server is not None:
                server.stop()
        if args.verify_n:
            results["verification"] = verification(tmp, config, args.verify_n)
            v = results["verification"]
            print(f"verification of {v['entries']:,} entries ({v['checkpoints']} checkpoints): {v['verify_s']} s "
                  f"(written in {v['write_and_checkpoint_s']} s, exported in {v['export_s']} s); inclusion proof "
                  f"{v['inclusion_proof']['bytes']} B, consistency ≤ {v['consistency_proof_max_sampled']['bytes']} B; "
                  f"checkpoint {v['checkpoint_bytes']} B, with cosignature {v['checkpoint_with_cosignature_bytes']} B")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"→ {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
