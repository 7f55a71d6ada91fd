"""The `relais` command. Messages in French; exit codes:
0 success · 1 invalid or refused input · 2 usage error · 3 not found · 4 conflict
(stale or missing If-Match, existing tenant) · 5 storage unavailable."""

from __future__ import annotations

import os
import sys

from gateway.cli import french
from gateway.cli.commands import demo, nomenclature, plan, schema, serve, tenant
from gateway.cli.commands import consent
from gateway.cli.commands import fhir
from gateway.cli.commands import audit
from gateway.cli.commands import cda, xds
from gateway.cli.commands import delivery
from gateway.cli.commands import mss
from gateway.cli.commands import dmp
from gateway.cli.commands import conformance
from gateway.cli.commands import activity
from gateway.cli.commands import console

MODULES = (serve, demo, plan, nomenclature, schema, tenant, consent, fhir, audit, cda, xds, delivery, mss, dmp,
           activity, console, conformance)


def build_parser() -> french.Parser:
    parser = french.Parser(
        prog="relais",
        description="Relais : passerelle d'interopérabilité des plateformes de services coordonnés.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE", parser_class=french.Parser)
    sub.required = True
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `relais … | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
