"""`relais console account create|unlock|password|disable|list`: DPO accounts of the console (/console)."""

from __future__ import annotations

import getpass
import sys

from gateway.cli.common import INVALID, OK, USAGE, add_database_option, err, handles_storage_errors, open_store
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("console", help="console du DPO (/console) : comptes")
    groups = parser.add_subparsers(dest="group", metavar="GROUPE", required=True)
    account = groups.add_parser("account", help="comptes DPO d'une plateforme")
    actions = account.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="créer un compte DPO (mot de passe demandé, ou --password-stdin)")
    _identify(create)
    create.add_argument("--password-stdin", action="store_true",
                        help="lire le mot de passe sur l'entrée standard (première ligne)")
    create.set_defaults(func=run_create)

    password = actions.add_parser("password", help="changer le mot de passe (ferme les sessions ouvertes)")
    _identify(password)
    password.add_argument("--password-stdin", action="store_true", help="lire le mot de passe sur l'entrée standard")
    password.set_defaults(func=run_password)

    unlock = actions.add_parser("unlock", help="débloquer un compte après des échecs de connexion")
    _identify(unlock)
    unlock.set_defaults(func=run_unlock)

    disable = actions.add_parser("disable", help="désactiver un compte (départ du DPO) ; ferme ses sessions")
    _identify(disable)
    disable.set_defaults(func=run_disable)

    listing = actions.add_parser("list", help="lister les comptes DPO d'une plateforme")
    listing.add_argument("--tenant", required=True, metavar="PLATEFORME")
    add_database_option(listing)
    listing.set_defaults(func=run_list)


def _identify(parser) -> None:
    parser.add_argument("--tenant", required=True, metavar="PLATEFORME", help="identifiant court de la plateforme")
    parser.add_argument("--login", required=True, metavar="IDENTIFIANT", help="identifiant du DPO (a-z, 0-9, . _ @ -)")
    add_database_option(parser)


def _password(args) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        err("pas de terminal pour saisir le mot de passe : utiliser --password-stdin")
        return None
    first = getpass.getpass("Mot de passe (12 caractères au moins) : ")
    if getpass.getpass("Confirmer le mot de passe : ") != first:
        err("les deux saisies diffèrent")
        return None
    return first


@handles_storage_errors
def run_create(args) -> int:
    from gateway.console import accounts

    password = _password(args)
    if password is None:
        return USAGE
    store = open_store(args)
    try:
        account = accounts.create_account(store, args.tenant, args.login, password, config=settings())
    except ValueError as exc:
        err(str(exc))
        return INVALID
    print(f"compte DPO créé : {account.login} pour {account.tenant_slug} — se connecter sur /console "
          "(par exemple http://127.0.0.1:8080/console/ après « relais serve »)")
    return OK


@handles_storage_errors
def run_password(args) -> int:
    from gateway.console import accounts

    password = _password(args)
    if password is None:
        return USAGE
    store = open_store(args)
    try:
        accounts.set_password(store, args.tenant, args.login, password, config=settings())
    except ValueError as exc:
        err(str(exc))
        return INVALID
    print(f"mot de passe changé pour {args.login} ({args.tenant}) ; ses sessions sont fermées")
    return OK


@handles_storage_errors
def run_unlock(args) -> int:
    from gateway.console import accounts

    store = open_store(args)
    cleared = accounts.unlock(store, args.tenant, args.login)
    print(f"compte {args.login} ({args.tenant}) débloqué" if cleared else
          f"compte {args.login} ({args.tenant}) : aucun échec en cours, rien à débloquer")
    return OK


@handles_storage_errors
def run_disable(args) -> int:
    from gateway.console import accounts

    store = open_store(args)
    accounts.disable(store, args.tenant, args.login)
    print(f"compte {args.login} ({args.tenant}) désactivé ; ses sessions sont fermées")
    return OK


@handles_storage_errors
def run_list(args) -> int:
    from gateway.console import accounts

    store = open_store(args)
    for account, locked_until in accounts.list_accounts(store, args.tenant):
        state = f"bloqué jusqu'à {locked_until:%Y-%m-%d %H:%M} UTC" if locked_until else "actif"
        if account.disabled_at:
            state = "désactivé"
        last = f"{account.last_login_at:%Y-%m-%d %H:%M} UTC" if account.last_login_at else "jamais"
        print(f"{account.login}\t{state}\tdernière connexion : {last}")
    return OK
