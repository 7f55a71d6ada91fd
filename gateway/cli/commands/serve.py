"""`relais serve`: the HTTP API (uvicorn)."""

from __future__ import annotations

from gateway.cli.common import add_database_option
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("serve", help="démarrer l'API HTTP (documentation sur /docs)")
    parser.add_argument("--host", help="adresse d'écoute (défaut : RELAIS_HOST ou 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (défaut : RELAIS_PORT ou 8080)")
    add_database_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import uvicorn

    from gateway import logs
    from gateway.api.app import create_app

    config = settings()
    if args.database:
        config = config.model_copy(update={"database_url": args.database})
    logs.configure(config.log_level, config.log_file)
    app = create_app(config=config)
    host, port = args.host or config.host, args.port or config.port
    print(f"Relais écoute sur http://{host}:{port} — documentation : http://{host}:{port}/docs")
    from gateway.audit import Checkpointer

    worker = _embedded_worker(app.state.store, config)
    try:
        with Checkpointer(app.state.store.engine, config):  # signs audit checkpoints (≤ 1 s)
            uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        if worker is not None:
            worker.stop()
    return 0


def _embedded_worker(store, config):
    """One delivery worker in this process (RELAIS_WORKER_IN_PROCESS, default on) when connectors
    are configured; with `relais worker` processes elsewhere, set it off on API-only nodes."""
    from gateway.cli.commands.delivery import worker_from_settings

    worker = worker_from_settings(store, config) if config.worker_in_process else None
    if worker is None:
        return None
    worker.start()
    print(f"travailleur d'envoi intégré : {', '.join(sorted(worker.connectors))}")
    return worker
