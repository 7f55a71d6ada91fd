"""`relais fhir export|import|validate` — TDDUI 2.2.0 Bundles, without a database.

Contract (kept stable):
  relais fhir export --plan PLAN.json   prints the TDDUI Bundle (JSON) of a plan file; exit 1 if the plan is invalid
  relais fhir import BUNDLE.json        prints the plan (JSON); notes on stderr; exit 1 with the problems
  relais fhir validate FILE...          exit 0 or 1, one line per problem (`file: location: [rule] message`)
"""

from __future__ import annotations

import datetime as dt
import sys

import orjson

from gateway.cli.common import INVALID, OK, read_input
from gateway.model import Problem, Severity
from gateway.plans import JsonInputError, loads_object, validate_plan_json
from gateway.settings import settings
from mappings.fhir.tddui import TDDUI_VERSION, plan_to_bundle


def register(sub) -> None:
    parser = sub.add_parser("fhir", help=f"Bundles FHIR TDDUI {TDDUI_VERSION} : exporter, importer, valider")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    today_help = "date de référence des contrôles (défaut : aujourd'hui)"

    export = actions.add_parser("export", help="afficher le Bundle TDDUI d'un fichier de projet")
    export.add_argument("--plan", required=True, metavar="PROJET.json")
    export.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ", help=today_help)
    export.set_defaults(func=run_export)

    imp = actions.add_parser("import", help="lire un Bundle TDDUI et afficher le projet (JSON)")
    imp.add_argument("bundle", metavar="BUNDLE.json")
    imp.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ", help=today_help)
    imp.set_defaults(func=run_import)

    val = actions.add_parser("validate", help=f"valider des Bundles contre TDDUI {TDDUI_VERSION}")
    val.add_argument("files", nargs="+", metavar="FICHIER")
    val.set_defaults(func=run_validate)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _read_json(path: str) -> tuple[dict | None, list[Problem]]:
    try:
        raw = read_input(path, settings().max_body_bytes)
    except OSError as exc:
        return None, [Problem(location="$", rule="file-unreadable", source="relais-cli",
                              message=f"fichier illisible ({exc.strerror or type(exc).__name__})")]
    try:
        return loads_object(raw, max_bytes=settings().max_body_bytes), []
    except JsonInputError as exc:
        return None, [exc.problem]


def run_export(args) -> int:
    try:
        raw = read_input(args.plan, settings().max_body_bytes)
    except OSError as exc:
        print(f"{args.plan}: fichier illisible ({exc.strerror})")
        return INVALID
    plan, problems = validate_plan_json(raw, args.today or dt.date.today(), max_bytes=settings().max_body_bytes)
    if plan is None:
        for p in problems:
            print(p.line(args.plan))
        return INVALID
    sys.stdout.write(orjson.dumps(plan_to_bundle(plan, _now()), option=orjson.OPT_INDENT_2).decode() + "\n")
    return OK


def run_import(args) -> int:
    bundle, problems = _read_json(args.bundle)
    plan = None
    if bundle is not None:
        from gateway.conformance.fhir.structure import read_tddui_bundle

        plan, problems = read_tddui_bundle(bundle, args.today or dt.date.today())
    if plan is None:
        for p in problems:
            print(p.line(args.bundle))
        return INVALID
    for p in problems:
        print(p.line(args.bundle), file=sys.stderr)
    sys.stdout.write(orjson.dumps(plan.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")
    return OK


def fhir_problems(resource: dict) -> list[Problem]:
    """The single place that chooses the validator: the TDDUI gate (gateway.conformance.fhir),
    or, without it, the structure of FHIR R4(B) resources (fhir.resources)."""
    try:
        from gateway.conformance.fhir.gate import tddui_gate
    except ImportError:
        return _structure(resource)
    return tddui_gate().validate(resource)


def _structure(resource: dict) -> list[Problem]:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(str(resource.get("resourceType"))).model_validate(resource)
    except ValueError as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc)}]
        return [Problem(location=".".join(str(x) for x in (resource.get("resourceType"), *e["loc"])),
                        rule="fhir-structure", message=e["msg"], source="fhir.resources 8.3.0 (R4B)")
                for e in errors]
    return []


def run_validate(args) -> int:
    status = OK
    for path in args.files:
        resource, problems = _read_json(path)
        if resource is not None:
            problems = fhir_problems(resource)
        for p in problems:
            print(p.line(path))
        if resource is None or any(p.severity is Severity.error for p in problems):
            status = INVALID
        else:
            print(f"{path}: conforme à TDDUI {TDDUI_VERSION}")
    return status
