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

    with Checkpointer(app.state.store.engine, config):  # signs audit checkpoints (≤ 1 s)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0
