"""The `relais` command. Messages in French; exit codes:
0 success · 1 invalid or refused input · 2 usage error · 3 not found · 4 conflict
(stale or missing If-Match, existing tenant) · 5 storage unavailable."""

from __future__ import annotations

import os
import sys

import importlib

from gateway.cli import french

# Subcommand → its module (gateway.cli.commands.<module>), in the order `relais --help` lists them.
COMMANDS = {
    "serve": "serve", "demo": "demo", "plan": "plan", "nomenclature": "nomenclature", "schema": "schema",
    "tenant": "tenant", "consent": "consent", "fhir": "fhir", "audit": "audit", "cda": "cda", "xds": "xds",
    "sync": "delivery", "worker": "delivery", "exchanges": "delivery", "mss": "mss", "dmp": "dmp",
    "activity": "activity", "console": "console", "conformance": "conformance",
}


def _modules(names):
    return [importlib.import_module(f"gateway.cli.commands.{name}") for name in dict.fromkeys(names)]


def build_parser(argv: list[str] | None = None) -> french.Parser:
    """The parser; when `argv` names a command, only that command's module is imported (each
    pulls in its own dependencies — SQLAlchemy, the FHIR models, saxonche… — so a command starts
    without loading all the others')."""
    parser = french.Parser(
        prog="relais",
        description="Relais : passerelle d'interopérabilité des plateformes de services coordonnés.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE", parser_class=french.Parser)
    sub.required = True
    first = next((a for a in argv or () if not a.startswith("-")), None)
    wanted = [COMMANDS[first]] if first in COMMANDS else COMMANDS.values()
    for module in _modules(wanted):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `relais … | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
