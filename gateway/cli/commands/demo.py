"""`relais demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.cli.common import USAGE, add_database_option, err
from gateway.settings import settings

DEMO_DB = Path("var/demo.db")


def register(sub) -> None:
    parser = sub.add_parser("demo", help="démonstration : plateforme synthétique, échanges, résumé")
    parser.add_argument("--fixtures", type=Path, help="dossier des données synthétiques (défaut : fixtures/)")
    parser.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ",
                        help="date de référence des contrôles (défaut : celle des données synthétiques, 2026-11-26)")
    add_database_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from gateway import demo, logs

    from gateway.storage.engine import normalise_url

    config = settings()
    if args.database:
        try:
            normalise_url(args.database)
        except ValueError as exc:  # unreadable or unsupported URL (French reason, no password)
            err(str(exc))
            return USAGE
        config = config.model_copy(update={"database_url": args.database})
    else:
        # The demo tells one story from the start: it gets a fresh SQLite base of its own.
        DEMO_DB.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
        config = config.model_copy(update={"database_url": f"sqlite:///./{DEMO_DB}"})
    logs.configure("WARNING")  # the demo narrates; logs would only interleave
    code = demo.run(config, fixtures=args.fixtures or demo.FIXTURES, today=args.today)
    if not args.database:
        print(f"Pour explorer : relais serve --database sqlite:///./{DEMO_DB}")
    return code
