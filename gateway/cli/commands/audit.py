"""`relais audit export|verify|checkpoint|rotate-key|keygen|cosign|fhir`: the audit trail."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from gateway.cli.common import add_database_option, err, handles_storage_errors, open_store


def register(sub) -> None:
    parser = sub.add_parser("audit", help="journal d'audit signé : export, vérification, clés")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    export = actions.add_parser("export", help="exporter entrées, points de contrôle signés, clés et tuiles")
    export.add_argument("directory", metavar="DOSSIER", help="dossier à créer (vide)")
    export.add_argument("--no-checkpoint", action="store_true",
                        help="ne pas signer de point de contrôle avant l'export (l'export s'arrête au dernier)")
    add_database_option(export)
    export.set_defaults(func=run_export)

    from gateway.audit import verify

    check = actions.add_parser("verify", help="vérifier hors ligne un export (0 : vérifié, 1 : anomalie)")
    verify.add_arguments(check)
    check.set_defaults(func=verify.run)

    sign = actions.add_parser("checkpoint", help="signer maintenant un point de contrôle")
    add_database_option(sign)
    sign.set_defaults(func=run_checkpoint)

    rotate = actions.add_parser("rotate-key", help="nouvelle clé de signature (l'ancienne signe encore pendant le recouvrement)")
    add_database_option(rotate)
    rotate.set_defaults(func=run_rotate)

    keygen = actions.add_parser("keygen", help="créer la clé de cosignature du DPO (fichier privé 0600)")
    keygen.add_argument("name", metavar="NOM", help="nom de la clé, ex. dpo.ma-plateforme.fr/temoin")
    keygen.add_argument("--out", required=True, metavar="FICHIER", help="fichier de clé privée à créer")
    keygen.set_defaults(func=run_keygen)

    cosign = actions.add_parser("cosign", help="cosigner le dernier point de contrôle avec la clé du DPO")
    cosign.add_argument("--key", required=True, metavar="FICHIER", help="clé privée de cosignature du DPO")
    add_database_option(cosign)
    cosign.set_defaults(func=run_cosign)

    fhir = actions.add_parser("fhir", help="entrées en AuditEvent FHIR (IHE BALP), Bundle JSON sur la sortie")
    fhir.add_argument("--tenant", metavar="SLUG", help="une seule plateforme")
    fhir.add_argument("--since", metavar="AAAA-MM-JJ", help="entrées à partir de cette date (UTC)")
    add_database_option(fhir)
    fhir.set_defaults(func=run_fhir)


def _audit_errors(func):
    """Audit refusals (French, no personal data) -> exit 1."""

    @handles_storage_errors
    def wrapper(args):
        from gateway.audit.log import AuditError
        from gateway.audit.note import NoteError

        try:
            return func(args)
        except (AuditError, NoteError) as exc:
            err(str(exc))
            return 1

    wrapper.__name__ = func.__name__
    return wrapper


@_audit_errors
def run_export(args) -> int:
    from gateway.audit.export import export

    store = open_store(args)
    summary = export(store.engine, Path(args.directory), sign=not args.no_checkpoint)
    print(f"export écrit dans {args.directory} : {summary.entries} entrée(s), "
          f"{summary.checkpoints} point(s) de contrôle, {len(summary.keys)} clé(s) publique(s)")
    return 0


@_audit_errors
def run_checkpoint(args) -> int:
    from gateway.audit.checkpoint import sign_checkpoint

    store = open_store(args)
    signed = sign_checkpoint(store.engine, actor="cli")
    if signed is None:
        print("rien de nouveau à signer")
    else:
        print(signed.note, end="")
    return 0


@_audit_errors
def run_rotate(args) -> int:
    from gateway.audit.checkpoint import rotate_key

    store = open_store(args)
    key, signed = rotate_key(store.engine, actor="cli")
    print(f"nouvelle clé de signature : {key.vkey}")
    if signed is not None:
        print(f"point de contrôle {signed.size} signé par l'ancienne et la nouvelle clé")
    return 0


@_audit_errors
def run_keygen(args) -> int:
    from gateway.audit import note
    from gateway.audit.keys import write_private_key

    signer = note.Signer.generate(args.name, note.COSIGNATURE_V1)
    try:
        write_private_key(Path(args.out), signer)
    except FileExistsError:
        err(f"{args.out} existe déjà : aucune clé écrasée")
        return 4
    err(f"clé privée écrite dans {args.out} (lisible par vous seul) ; clé publique à diffuser :")
    print(signer.verifier.vkey)
    return 0


@_audit_errors
def run_cosign(args) -> int:
    from gateway.audit import note
    from gateway.audit.checkpoint import cosign

    try:
        signer = note.parse_skey(Path(args.key).read_text())
    except (OSError, UnicodeDecodeError):
        err(f"clé illisible : {args.key}")
        return 1
    store = open_store(args)
    size, _ = cosign(store.engine, signer)
    print(f"point de contrôle {size} cosigné par {signer.name}")
    return 0


@_audit_errors
def run_fhir(args) -> int:
    from gateway.audit.fhir import events_from_store, write_bundle

    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since).replace(tzinfo=dt.UTC)
        except ValueError:
            err("date invalide (attendu AAAA-MM-JJ)")
            return 2
    store = open_store(args)
    tenant_id = store.get_tenant(args.tenant).id if args.tenant else None
    sys.stdout.flush()  # streamed: memory does not grow with the number of entries
    write_bundle(sys.stdout.buffer, events_from_store(store.engine, tenant_id=tenant_id, since=since),
                 dt.datetime.now(dt.UTC))
    sys.stdout.buffer.flush()
    return 0
