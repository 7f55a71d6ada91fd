"""How the long-lived processes run once built: `relais serve` (the API, its embedded worker,
the audit checkpoints), `relais worker`, and a sandbox peer run as a process of its own. The
benchmarks start their processes through these functions too, so that they measure what
production runs."""

from __future__ import annotations

import gc


# A young-generation collection every 10,000 net allocations instead of 700: a submission
# allocates ~1,500 containers (two copies of a ~700-container Bundle, the gate's work), a peer
# request more, so with 700 each request ran 2+ young collections and, every ~70 requests, a
# full one over what was built after the freeze (lazily compiled rules and statements, a peer's
# stored resources): 17-42 ms each. Measured in the delivery bench (gc callbacks, 300 plans, two
# pairs): the API process's collector ~0.7 -> ~0.15 ms a plan, the sandbox peer's ~0.8 -> ~0.4.
YOUNG_THRESHOLD = 10_000


def started() -> None:
    """The end of a long-lived process's start-up: what exists now (modules, the app, compiled
    rules and statements) lives as long as the process, so it is moved out of the garbage
    collector's generations (`gc.freeze()`, the pattern the CPython documentation gives):
    later full collections no longer walk it. Objects made afterwards are collected as usual,
    the young generation every YOUNG_THRESHOLD allocations (the older ones' thresholds kept)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def serve_api(app, config, host: str, port: int, *, worker=None, idle: float = 0.2) -> None:
    """`relais serve`: the API on uvicorn, with the embedded delivery worker (when given) and
    the audit checkpoints signed in the background, until uvicorn stops."""
    import uvicorn

    from gateway.audit import Checkpointer

    if worker is not None:
        worker.start(idle=idle)
    try:
        with Checkpointer(app.state.store.engine, config):  # signs audit checkpoints (≤ 1 s)
            started()
            uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        if worker is not None:
            worker.stop()


def serve_worker(worker, idle: float = 0.2) -> None:
    """`relais worker`: the delivery loop in this thread, until `worker.stop()` or Ctrl-C."""
    started()
    worker.serve(idle=idle)
