"""`relais schema plan`: the JSON Schema of the single support plan."""

from __future__ import annotations

import json

from gateway.model import Plan


def register(sub) -> None:
    parser = sub.add_parser("schema", help="afficher un schéma JSON publié")
    parser.add_argument("name", choices=["plan"], help="schéma à afficher")
    parser.set_defaults(func=run)


def run(args) -> int:
    print(json.dumps(Plan.model_json_schema(), ensure_ascii=False, indent=2))
    return 0
