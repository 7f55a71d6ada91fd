"""`relais demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.cli.common import add_database_option
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("demo", help="démonstration : plateforme synthétique, API, résumé")
    parser.add_argument("--fixtures", type=Path, help="dossier des données synthétiques (défaut : fixtures/)")
    parser.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ",
                        help="date de référence des contrôles (défaut : celle des données synthétiques, 2026-11-26)")
    add_database_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from gateway import demo, logs

    config = settings()
    if args.database:
        config = config.model_copy(update={"database_url": args.database})
    logs.configure("WARNING")  # the demo narrates; logs would only interleave
    return demo.run(config, fixtures=args.fixtures or demo.FIXTURES, today=args.today)
