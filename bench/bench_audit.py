"""Audit trail benchmark: durable appends, signed checkpoints, offline verification, proof sizes.

    .venv/bin/python bench/bench_audit.py [--single 2000] [--group 100000] [--batch 1000]
                                           [--callers 1,4,16,64] [--per-round 4000] [--rounds 3]
                                           [--verify-n 1000000] [--backends sqlite,postgres]
                                           [--same-process]

Each round of each measure below (one-at-a-time appends, group commit, time to a checkpoint)
runs in a fresh Python process, as pyperf runs its workers, started on the database this run
prepared: otherwise what one stage left behind (a large heap, promoted objects) taxes the next
through the garbage collector's full collections (on a quiet machine, 2026-11-26: group commit
39k/s after the other stages, 62-66k/s in a fresh process). `--same-process` runs them all in this
one process, as before.

Measured in the same run:
- baseline: RFC 8785 encoding + leaf hash of the same entries (no storage): the CPU floor;
- the disk's floor: raw write + fsync of 512 B per second in the same directory;
- the driver's floor: a bare INSERT of a leaf-sized row per durable commit (autocommit), one caller;
- durable appends one at a time: one transaction and one fsync'd commit per entry (SQLite WAL,
  synchronous=FULL; PostgreSQL fsync and synchronous_commit on), with p50/p99 latency: the
  sequential caller through SQLAlchemy (`write_transaction` + `append`), then the Appender
  (`append_durably`) with 1, 4, 16, 64 concurrent callers (threads), each appending one entry
  at a time and waiting until it is durable: entries/s, p50/p99 latency per append, mean batch;
  --rounds rounds, the measures interleaved (median and range reported); PostgreSQL, the
  throwaway server on this host: the driver's floor and the lone Appender again through the
  server's Unix socket (`?host=` its directory), as a gateway on the database's host connects;
  each of these also as a ratio to the driver's floor of the same round and connection (the
  median of the rounds' ratios): what the machine's disk and CPU of the moment leave out;
- group commit: `append_many` of --batch entries per transaction (PostgreSQL: COPY, and the
  previous executemany path interleaved with it), with the CPU per entry of the bench's process
  and of the PostgreSQL backend (medians over the rounds);
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
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.audit import AuditEntry, append, append_many, log, merkle, note  # noqa: E402
from gateway.audit.appender import Appender  # noqa: E402
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


def fsync_floor(directory: Path, seconds: float = 0.5) -> int:
    """write + fsync of 512 B per second in `directory`: what a durable commit cannot beat."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, b"x" * 512, 0)
            os.fsync(fd)
            count += 1
        return round(count / (time.perf_counter() - start))
    finally:
        os.close(fd)
        path.unlink()


def driver_floor(store: Store, n: int) -> dict:
    """One caller, one durable commit per row and nothing else: a bare INSERT of a leaf-sized row
    (430 B) in a scratch table, in autocommit (SQLite: sqlite3 without isolation level; PostgreSQL:
    psycopg, fsync and synchronous_commit on), i.e. one statement and its commit per row. What a
    lone sequential caller cannot beat on this machine."""
    raw = store.engine.raw_connection()
    raw.detach()  # autocommit below: never handed back to the pool
    dbapi = raw.dbapi_connection
    postgres = store.engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    try:
        if postgres:
            dbapi.autocommit = True  # sqlite3: the engine's connections have no isolation level already
        cursor = dbapi.cursor()
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        cursor.execute("CREATE TABLE bench_floor (seq BIGINT PRIMARY KEY, body BYTEA NOT NULL)" if postgres else
                       "CREATE TABLE bench_floor (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        insert, body, latencies = f"INSERT INTO bench_floor (seq, body) VALUES ({mark}, {mark})", b"x" * 430, []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            cursor.execute(insert, (i, body))
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
        cursor.execute("DROP TABLE bench_floor")
    finally:
        raw.close()
    return {"entries_per_s": round(n / seconds), "p50_ms": round(pct(latencies, 0.5) * 1000, 3),
            "p99_ms": round(pct(latencies, 0.99) * 1000, 3), "n": n}


def with_appender(store: Store, callers: int, n: int) -> dict:
    """`callers` threads, each appending one entry at a time through the Appender (n in all)."""
    appender = Appender(store.engine)
    appender.append(entry(0))  # its connection opened
    per_caller = max(1, n // callers)
    latencies: list[list[float]] = [[] for _ in range(callers)]
    ready = threading.Barrier(callers + 1)

    def caller(k: int) -> None:
        mine = latencies[k]
        ready.wait()
        for i in range(per_caller):
            t0 = time.perf_counter()
            appender.append(entry(k * per_caller + i))
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    batches = appender.batches
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    batches = appender.batches - batches
    appender.close()
    every = [x for mine in latencies for x in mine]
    return {"callers": callers, "entries_per_s": round(len(every) / seconds), "p50_ms": round(pct(every, 0.5) * 1000, 3),
            "p99_ms": round(pct(every, 0.99) * 1000, 3), "mean_batch": round(len(every) / batches, 1), "n": len(every)}


def median_round(rounds: list[dict]) -> dict:
    """The round with the median throughput, and the range over all rounds."""
    ordered = sorted(rounds, key=lambda r: r["entries_per_s"])
    out = dict(ordered[len(ordered) // 2])
    out["entries_per_s_range"] = [ordered[0]["entries_per_s"], ordered[-1]["entries_per_s"]]
    if "p99_ms" in out:
        out["p99_ms_range"] = [min(r["p99_ms"] for r in rounds), max(r["p99_ms"] for r in rounds)]
    for key in ("client_cpu_us", "server_cpu_us", "vs_driver_floor"):  # the median over the rounds that have it
        if all(key in r for r in rounds):
            out[key] = round(statistics.median(r[key] for r in rounds), 3 if key == "vs_driver_floor" else 2)
    out["rounds"] = len(rounds)
    return out


def durable_round(store: Store, directory: Path, args, over_socket: Store | None = None) -> dict:
    """One round: the floors, the sequential SQLAlchemy path and the Appender at each number of
    callers; with `over_socket` (PostgreSQL on this host, through its Unix socket) also the
    driver's floor and the lone Appender that way."""
    with write_transaction(store.engine) as conn:  # warm-up (connection, compiled statements)
        append(conn, entry(0))
    measured = {"fsync_floor": {"entries_per_s": fsync_floor(directory)},
                "driver_floor": driver_floor(store, args.single),
                "sequential": one_at_a_time(store, args.single)}
    for callers in args.callers:
        measured[f"appender_{callers}"] = with_appender(store, callers, args.per_round)
    if over_socket is not None:
        measured["driver_floor_unix_socket"] = driver_floor(over_socket, args.single)
        measured["appender_1_unix_socket"] = with_appender(over_socket, 1, args.per_round)
    for name, result in measured.items():  # against the bare INSERT of the same round and connection
        if name not in ("fsync_floor", "driver_floor", "driver_floor_unix_socket"):
            floor = measured["driver_floor_unix_socket" if name.endswith("_unix_socket") else "driver_floor"]
            result["vs_driver_floor"] = round(result["entries_per_s"] / floor["entries_per_s"], 3)
    return measured


def durable_one_at_a_time(url: str, directory: Path, args) -> dict:
    """The sequential SQLAlchemy path and the Appender at each number of callers, interleaved."""
    measured: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name, result in in_stage_process("durable", url, directory, args).items():
            measured.setdefault(name, []).append(result)
    return {name: median_round(rounds) for name, rounds in measured.items()}


def in_stage_process(stage: str, url: str, directory: Path, args) -> dict:
    """`run_stage(stage, …)` in a fresh Python process (its JSON result), or in this one with
    --same-process."""
    if args.same_process:
        return run_stage(stage, url, directory, args)
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--url", url, "--dir", str(directory),
               "--single", str(args.single), "--group", str(args.group), "--batch", str(args.batch),
               "--callers", ",".join(map(str, args.callers)), "--per-round", str(args.per_round),
               "--rounds", str(args.rounds), "--checkpoint-samples", str(args.checkpoint_samples)]
    if args.socket_url:
        command += ["--socket-url", args.socket_url]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def run_stage(stage: str, url: str, directory: Path, args) -> dict:
    store = Store(url)
    try:
        if stage == "durable":
            if not args.socket_url:
                return durable_round(store, directory, args)
            over_socket = Store(args.socket_url)
            try:
                return durable_round(store, directory, args, over_socket)
            finally:
                over_socket.close()
        if stage == "group":
            return group_round(store, args)
        if stage == "checkpoint":
            return time_to_checkpoint(store, bench_config(directory), args.checkpoint_samples)
        raise ValueError(f"unknown stage {stage}")
    finally:
        store.close()


def bench_config(directory: Path):
    return settings().model_copy(update={"audit_key_dir": directory / "keys", "audit_origin": "relais.bench/audit"})


def backend_cpu(store: Store) -> tuple[int, float] | None:
    """PostgreSQL on this machine: (pid, CPU seconds so far) of the server process behind the
    pool's connection (sequential use keeps to that one connection); else None."""
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    try:
        with open(f"/proc/{pid}/schedstat") as stat:  # ns on CPU
            return pid, int(stat.read().split()[0]) / 1e9
    except OSError:
        return None


def group_commit(store: Store, n: int, batch: int) -> dict:
    """`append_many` of `batch` entries per transaction, n entries: rate, p99 of a batch, and the
    CPU per entry of this process (building the entries included) and of the PostgreSQL backend
    (its commits' WAL flushes included): CPU figures hold when the machine's other jobs make the
    rate swing."""
    latencies = []
    server = backend_cpu(store)
    cpu = time.process_time()
    start = time.perf_counter()
    for offset in range(0, n, batch):
        t0 = time.perf_counter()
        with write_transaction(store.engine) as conn:
            append_many(conn, [entry(offset + i) for i in range(min(batch, n - offset))])
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    out = {"entries_per_s": round(n / seconds), "batch": batch, "p99_batch_ms": round(pct(latencies, 0.99) * 1000, 2),
           "n": n, "client_cpu_us": round(cpu / n * 1e6, 2)}
    after = backend_cpu(store) if server else None
    if after and after[0] == server[0]:
        out["server_cpu_us"] = round((after[1] - server[1]) / n * 1e6, 2)
    return out


def group_round(store: Store, args) -> dict:
    """One round of append_many; on PostgreSQL also the executemany path (no COPY)."""
    group_commit(store, args.batch, args.batch)  # warm-up: one batch, not counted
    measured = {"group_commit": group_commit(store, args.group // args.rounds, args.batch)}
    if store.engine.dialect.name == "postgresql":
        copy_from, log.COPY_FROM = log.COPY_FROM, 10**9
        try:
            measured["group_commit_executemany"] = group_commit(store, args.group // args.rounds, args.batch)
        finally:
            log.COPY_FROM = copy_from
    return measured


def group_commits(url: str, directory: Path, args) -> dict:
    """append_many; on PostgreSQL also the executemany path (no COPY), interleaved per round."""
    measured: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name, result in in_stage_process("group", url, directory, args).items():
            measured.setdefault(name, []).append(result)
    return {name: median_round(rounds) for name, rounds in measured.items()}


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
    parser.add_argument("--callers", default="1,4,16,64", help="concurrent callers of the Appender")
    parser.add_argument("--per-round", type=int, default=4000, help="entries per Appender measure")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the durable measures")
    parser.add_argument("--verify-n", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-samples", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--same-process", action="store_true",
                        help="run every measure in this process (default: each round in a fresh one)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: one round of one measure, JSON out
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--socket-url", help=argparse.SUPPRESS)  # internal: PostgreSQL's Unix socket
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.callers = [int(c) for c in args.callers.split(",") if c.strip()]
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.url, args.dir, args)))
        return 0
    results: dict = {"python": platform.python_version(), "machine": platform.machine(),
                     "sqlite_version": sqlite3.sqlite_version, "load_average_at_start": list(os.getloadavg()),
                     "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    results["baseline_encode_and_hash_per_s"] = round(baseline(20000))
    print(f"baseline (RFC 8785 + leaf hash, no storage): {results['baseline_encode_and_hash_per_s']:,} entries/s")

    with tempfile.TemporaryDirectory(prefix="relais-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        config = bench_config(tmp)
        print("each round of each measure in a fresh process" if not args.same_process else
              "every measure in this one process (--same-process)")
        results["stages"] = "same process" if args.same_process else "each round in a fresh process"
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
                url = store.engine.url.render_as_string(hide_password=False)
                # PostgreSQL on this host: the lone measures also through its Unix socket
                args.socket_url = server.socket_url(store.engine.url.database) if name == "postgres" else None
                durable = durable_one_at_a_time(url, tmp, args)
                groups = group_commits(url, tmp, args)
                checkpoint = in_stage_process("checkpoint", url, tmp, args)
                results[name] = {"one_at_a_time": durable, **groups, "time_to_checkpoint": checkpoint}
                print(f"{name}: disk floor (write + fsync) {durable['fsync_floor']['entries_per_s']:,}/s")
                for measure, r in durable.items():
                    if measure != "fsync_floor":  # the driver floor is printed as a measure
                        low, high = r["entries_per_s_range"]
                        print(f"  one at a time, {measure}: {r['entries_per_s']:,}/s ({low:,}–{high:,}), "
                              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
                              + (f", mean batch {r['mean_batch']}" if "mean_batch" in r else "")
                              + (f"; {r['vs_driver_floor']} × the bare INSERT (median of the rounds)"
                                 if "vs_driver_floor" in r else ""))
                for measure, r in groups.items():
                    low, high = r["entries_per_s_range"]
                    print(f"  {measure} ×{args.batch}: {r['entries_per_s']:,}/s ({low:,}–{high:,}); CPU per entry "
                          f"{r['client_cpu_us']} µs here" + (f", {r['server_cpu_us']} µs in the server"
                                                             if "server_cpu_us" in r else ""))
                print(f"  signed checkpoint after p50 {checkpoint['p50_s']} s, max {checkpoint['max_s']} s; "
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

    results["load_average_at_end"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"→ {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
