"""`relais serve`: the HTTP API (uvicorn)."""

from __future__ import annotations

from gateway.cli.common import USAGE, add_database_option, err
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("serve", help="démarrer l'API HTTP (documentation sur /docs)")
    parser.add_argument("--host", help="adresse d'écoute (défaut : RELAIS_HOST ou 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="port (défaut : RELAIS_PORT ou 8080)")
    add_database_option(parser)
    parser.set_defaults(func=run)


def _port(text: str) -> int:
    """A TCP port: uvicorn would otherwise listen on 99999 modulo 65536 while announcing 99999."""
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(text)
    return value


def run(args) -> int:
    from gateway import logs
    from gateway.api.app import create_app
    from gateway.cli.startup import serve_api
    from gateway.storage.engine import normalise_url

    config = settings()
    if args.database:
        config = config.model_copy(update={"database_url": args.database})
    try:
        normalise_url(config.database_url)
    except ValueError as exc:  # unreadable or unsupported URL (French reason, no password)
        err(str(exc))
        return USAGE
    logs.configure(config.log_level, config.log_file)
    app = create_app(config=config)
    host, port = args.host or config.host, args.port or config.port
    print(f"Relais écoute sur http://{host}:{port} — documentation : http://{host}:{port}/docs")
    serve_api(app, config, host, port, worker=_embedded_worker(app.state.store, config))
    return 0


def _embedded_worker(store, config):
    """One delivery worker in this process (RELAIS_WORKER_IN_PROCESS, default on) when connectors
    are configured; with `relais worker` processes elsewhere, set it off on API-only nodes."""
    from gateway.cli.commands.delivery import worker_from_settings

    worker = worker_from_settings(store, config) if config.worker_in_process else None
    if worker is None:
        return None
    print(f"travailleur d'envoi intégré : {', '.join(sorted(worker.connectors))}")
    return worker
