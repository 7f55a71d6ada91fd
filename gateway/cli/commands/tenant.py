"""`relais tenant create|key|revoke|list`: platforms and their API keys."""

from __future__ import annotations

from gateway.cli.common import add_database_option, err, handles_storage_errors, open_store


def register(sub) -> None:
    parser = sub.add_parser("tenant", help="gérer les plateformes (locataires) et leurs clés d'API")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="créer une plateforme")
    create.add_argument("slug", help="identifiant court (minuscules, chiffres, tirets)")
    create.add_argument("--name", required=True, help="nom de la plateforme")
    create.add_argument("--finess", help="FINESS de la plateforme (les projets devront le porter)")
    add_database_option(create)
    create.set_defaults(func=run_create)
    key = actions.add_parser("key", help="créer une clé d'API (affichée une seule fois)")
    key.add_argument("slug")
    key.add_argument("--label", default="clé", help="libellé de la clé (usage, logiciel…)")
    add_database_option(key)
    key.set_defaults(func=run_key)
    revoke = actions.add_parser("revoke", help="révoquer une clé d'API (effet immédiat)")
    revoke.add_argument("key_id", metavar="ID_CLE")
    add_database_option(revoke)
    revoke.set_defaults(func=run_revoke)
    listing = actions.add_parser("list", help="lister les plateformes et leurs clés")
    add_database_option(listing)
    listing.set_defaults(func=run_list)


@handles_storage_errors
def run_create(args) -> int:
    store = open_store(args)
    try:
        tenant = store.create_tenant(args.slug, args.name, args.finess)
    except ValueError as exc:
        err(str(exc))
        return 1
    print(f"plateforme créée : {tenant.slug} ({tenant.name})")
    return 0


@handles_storage_errors
def run_key(args) -> int:
    store = open_store(args)
    try:
        key, token = store.create_api_key(args.slug, args.label)
    except ValueError as exc:
        err(str(exc))
        return 1
    err(f"clé {key.key_id} créée pour {args.slug} ; conservez-la, elle ne sera plus affichée :")
    print(token)
    return 0


@handles_storage_errors
def run_revoke(args) -> int:
    store = open_store(args)
    store.revoke_api_key(args.key_id)
    print(f"clé {args.key_id} révoquée")
    return 0


@handles_storage_errors
def run_list(args) -> int:
    store = open_store(args)
    for tenant in store.list_tenants():
        print(f"{tenant.slug}\t{tenant.name}\tFINESS {tenant.finess or '-'}\t{store.count_persons(tenant)} personne(s)")
        for key in store.list_api_keys(tenant.slug):
            state = f"révoquée le {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            print(f"  clé {key.key_id}\t{key.label}\t{state}")
    return 0
