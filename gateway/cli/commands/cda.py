"""`relais cda export|import|validate|render`: the plan as a CDA R2 document and back.

Contract: `export --plan PLAN.json` prints the CDA; `import CDA.xml` prints the plan (JSON) or
exits 1 with one line per problem; `validate CDA.xml…` exits 0 when no error was found, 1 when
an error was found or when the schematron set is missing (said plainly, never a silent pass)."""

from __future__ import annotations

import datetime as dt
import json
import sys

from gateway.cli.common import INVALID, err, read_input
from gateway.model import Plan, Problem, Severity
from gateway.plans import validate_plan, validate_plan_json
from gateway.settings import settings


def add_plan_options(parser) -> None:
    parser.add_argument("--plan", required=True, metavar="PLAN.json", help="projet personnalisé (JSON)")
    parser.add_argument("--version", type=int, default=1, metavar="N",
                        help="numéro de version du document (N > 1 : remplace la version N-1, RPLC)")
    parser.add_argument("--now", type=dt.datetime.fromisoformat, metavar="AAAA-MM-JJTHH:MM:SS+HH:MM",
                        help="date de création du document (défaut : maintenant)")
    parser.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ",
                        help="date de référence de la validation du projet (défaut : aujourd'hui)")
    parser.add_argument("--confidentiality", choices=["N", "R", "V"], default="N",
                        help="confidentialité HL7 du document (défaut N)")


def register(sub) -> None:
    parser = sub.add_parser("cda", help="document CDA R2 du projet personnalisé (export, import, validation)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    export = actions.add_parser("export", help="afficher le document CDA R2 d'un projet")
    add_plan_options(export)
    export.add_argument("--html", action="store_true", help="afficher la version imprimable (HTML)")
    export.set_defaults(func=run_export)

    imp = actions.add_parser("import", help="lire un document CDA et afficher le projet (JSON)")
    imp.add_argument("file", metavar="CDA.xml")
    imp.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ")
    imp.set_defaults(func=run_import)

    validate = actions.add_parser("validate", help="valider des documents CDA (schéma + schématrons CI-SIS)")
    validate.add_argument("files", nargs="+", metavar="CDA.xml")
    validate.add_argument("--quiet", action="store_true", help="n'afficher que les erreurs")
    validate.set_defaults(func=run_validate)

    render = actions.add_parser("render", help="version imprimable (HTML) d'un document CDA")
    render.add_argument("file", metavar="CDA.xml")
    render.set_defaults(func=run_render)


def now_of(args) -> dt.datetime:
    moment = getattr(args, "now", None) or dt.datetime.now().astimezone()
    return moment if moment.tzinfo else moment.astimezone()


def read_plan(args) -> Plan | None:
    """The plan of `--plan`, strictly validated; problems printed on stderr."""
    try:
        raw = read_input(args.plan, settings().max_body_bytes)
    except OSError as exc:
        err(f"{args.plan} : fichier illisible ({exc.strerror or type(exc).__name__})")
        return None
    plan, problems = validate_plan_json(raw, getattr(args, "today", None) or dt.date.today(),
                                        max_bytes=settings().max_body_bytes)
    for problem in problems:
        if plan is None or problem.severity is not Severity.information:
            err(problem.line(args.plan))
    return plan


def _read(path: str) -> bytes | None:
    try:
        from mappings.cda.xmlsafe import MAX_BYTES

        return read_input(path, MAX_BYTES)
    except OSError as exc:
        err(f"{path} : fichier illisible ({exc.strerror or type(exc).__name__})")
        return None


def run_export(args) -> int:
    from mappings.cda import document_ids, plan_to_cda
    from mappings.cda.render import cda_to_html

    plan = read_plan(args)
    if plan is None:
        return INVALID
    try:
        ids = document_ids(plan, args.version)
    except ValueError as exc:
        err(str(exc))
        return 2
    xml = plan_to_cda(plan, now=now_of(args), ids=ids, confidentiality=args.confidentiality)
    if args.html:
        sys.stdout.write(cda_to_html(xml))
    else:
        sys.stdout.buffer.write(xml)
    sys.stdout.flush()
    return 0


def run_import(args) -> int:
    from mappings.cda.import_ import cda_to_plan

    data = _read(args.file)
    if data is None:
        return INVALID
    result = cda_to_plan(data)
    problems = list(result.problems)
    plan = result.plan
    if plan is not None:  # the nomenclature and cross-reference rules of the plan, too
        plan, more = validate_plan(plan.model_dump(mode="json"), args.today or dt.date.today())
        problems += more
    for problem in problems:
        err(problem.line(args.file))
    if plan is None:
        err(f"{args.file} : le document ne donne pas un projet personnalisé valide")
        return INVALID
    print(json.dumps(plan.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2))
    return 0


def run_validate(args) -> int:
    from gateway.conformance.cda.gate import cda_gate

    gate = cda_gate()
    status = 0
    for path in args.files:
        data = _read(path)
        if data is None:
            status = INVALID
            continue
        problems: list[Problem] = gate.validate(data)
        errors = [p for p in problems if p.severity is Severity.error]
        for problem in problems:
            if not args.quiet or problem.severity is Severity.error:
                print(problem.line(path))
        print(f"{path}: " + ("conforme" if not errors else f"{len(errors)} erreur(s)"))
        if errors:
            status = INVALID
    return status


def run_render(args) -> int:
    from mappings.cda.render import cda_to_html
    from mappings.cda.xmlsafe import UnsafeXml

    data = _read(args.file)
    if data is None:
        return INVALID
    try:
        sys.stdout.write(cda_to_html(data))
    except UnsafeXml as exc:
        err(exc.problem.line(args.file))
        return INVALID
    return 0
