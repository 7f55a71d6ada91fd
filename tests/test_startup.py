"""`relais serve`, `relais worker` (and the benchmarks' processes) start through
gateway/cli/startup.py: the worker and the audit checkpoints around uvicorn, and the start-up's
objects frozen out of the garbage collector's generations once everything is built."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import uvicorn

from gateway.api.app import create_app
from gateway.cli import startup
from gateway.settings import Settings


def test_started_moves_what_exists_out_of_the_collectors_generations():
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        startup.started()
        assert gc.get_freeze_count() > 1000  # modules, classes, compiled statements…
        assert gc.get_threshold() == (startup.YOUNG_THRESHOLD, *thresholds[1:])
        cycle = Recorder([])
        cycle.calls.append(cycle)  # garbage made afterwards, only a collection frees (a cycle)
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # later collections still run on what is made afterwards
        cycle = Recorder([])
        cycle.calls.append(cycle)
        gone = weakref.ref(cycle)
        del cycle
        held = [[] for _ in range(3 * startup.YOUNG_THRESHOLD)]  # allocations alone trigger one
        assert gone() is None
        del held
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class Recorder:
    def __init__(self, calls):
        self.calls = calls

    def start(self, idle):
        self.calls.append(("worker.start", idle))

    def stop(self):
        self.calls.append("worker.stop")

    def serve(self, idle):
        self.calls.append(("worker.serve", idle))


def test_relais_worker_freezes_then_serves(monkeypatch):
    calls: list = []
    monkeypatch.setattr(startup, "started", lambda: calls.append("started"))
    startup.serve_worker(Recorder(calls))
    assert calls == ["started", ("worker.serve", 0.2)]


def test_relais_serve_starts_the_worker_signs_checkpoints_freezes_then_serves(monkeypatch, tmp_path, sqlite_store):
    calls: list = []
    url, store = f"sqlite:///{tmp_path / 'relais.db'}", sqlite_store
    config = Settings(database_url=url, audit_key_dir=Path(tmp_path / "keys"))
    app = create_app(store, config)
    checkpoints = []

    class Checkpointer:
        def __init__(self, engine, settings):
            checkpoints.append((engine, settings))

        def __enter__(self):
            calls.append("checkpointer")

        def __exit__(self, *exc):
            calls.append("checkpointer.stop")

    monkeypatch.setattr("gateway.audit.Checkpointer", Checkpointer)
    monkeypatch.setattr(startup, "started", lambda: calls.append("started"))
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: calls.append(("uvicorn", app_ is app, kw["host"], kw["port"])))
    startup.serve_api(app, config, "127.0.0.1", 8123, worker=Recorder(calls))
    assert calls == [("worker.start", 0.2), "checkpointer", "started", ("uvicorn", True, "127.0.0.1", 8123),
                     "checkpointer.stop", "worker.stop"]
    assert checkpoints == [(store.engine, config)]
