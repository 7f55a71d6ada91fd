"""`relais plan validate|import|export`."""

from __future__ import annotations

import datetime as dt
import sys

from gateway.cli.common import INVALID, add_database_option, err, handles_storage_errors, open_store, read_input
from gateway.model import Problem, Severity
from gateway.plans import validate_plan_json
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("plan", help="valider, importer ou exporter des projets personnalisés")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="valider des fichiers de projet (sans base de données)")
    validate.add_argument("files", nargs="+", metavar="FICHIER")
    validate.add_argument("--today", type=dt.date.fromisoformat, metavar="AAAA-MM-JJ",
                          help="date de référence des contrôles (âge, dates futures) ; défaut : aujourd'hui")
    validate.set_defaults(func=run_validate)

    imp = actions.add_parser("import", help="valider puis enregistrer des projets (nouvelle version)")
    imp.add_argument("files", nargs="+", metavar="FICHIER")
    imp.add_argument("--tenant", required=True, help="plateforme (identifiant court du locataire)")
    guard = imp.add_mutually_exclusive_group()
    guard.add_argument("--if-match", metavar="ETAG", help="ETag de la version remplacée (un seul fichier)")
    guard.add_argument("--force", action="store_true", help="remplacer la version courante quelle qu'elle soit")
    add_database_option(imp)
    imp.set_defaults(func=run_import)

    export = actions.add_parser("export", help="afficher le projet enregistré d'une personne (JSON)")
    export.add_argument("person", metavar="PERSONNE", help="identifiant local de la personne")
    export.add_argument("--tenant", required=True)
    export.add_argument("--version", type=_version, help="numéro de version (défaut : la courante)")
    add_database_option(export)
    export.set_defaults(func=run_export)


def _version(text: str) -> int:
    """A version number the database can hold (1 to 2^31 - 1): a larger one is a usage error,
    not an integer overflow in the driver."""
    value = int(text)
    if not 1 <= value < 2**31:
        raise ValueError(text)
    return value


def _check(path: str, today: dt.date) -> tuple[object, list[Problem]]:
    try:
        raw = read_input(path, settings().max_body_bytes)
    except OSError as exc:
        return None, [Problem(location="$", rule="file-unreadable",
                              message=f"fichier illisible ({exc.strerror or type(exc).__name__})",
                              message_en=str(exc.strerror), source="relais-cli")]
    limit = settings().max_body_bytes
    return validate_plan_json(raw, today, max_bytes=limit)


def _today(args) -> dt.date:
    return getattr(args, "today", None) or dt.date.today()


def run_validate(args) -> int:
    """Contract: exit 0 when every file is a valid plan, 1 otherwise; one line per problem."""
    status = 0
    for path in args.files:
        plan, problems = _check(path, _today(args))
        for problem in problems:
            print(problem.line(path))
        if plan is None:
            status = INVALID
        else:
            warn = sum(1 for p in problems if p.severity is Severity.warning)
            print(f"{path}: valide" + (f" ({warn} avertissement(s))" if warn else ""))
    return status


@handles_storage_errors
def run_import(args) -> int:
    if args.if_match and len(args.files) > 1:
        err("--if-match ne vaut que pour un seul fichier")
        return 2
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    status = 0
    for path in args.files:
        plan, problems = _check(path, _today(args))
        if plan is None:
            for problem in problems:
                print(problem.line(path))
            status = INVALID
            continue
        if_match = "*" if args.force else args.if_match
        result = store.put_plan(tenant, plan, if_match=if_match, actor="cli")
        v = result.version
        state = "inchangé" if result.unchanged else ("créé" if result.created else "nouvelle version")
        print(f"{path}: {state} — personne {plan.person.local_id}, version {v.version}, ETag {v.etag}")
    return status


@handles_storage_errors
def run_export(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    version = store.get_plan(tenant, args.person, args.version)
    sys.stdout.write(version.content.decode("utf-8") + "\n")
    return 0
