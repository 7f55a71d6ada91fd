"""`relais mss pack|unpack|lookup`: the IHE_XDM.zip of a plan, the safe reading of a received
one, and the MSSanté mailbox directory (Annuaire Santé, "API Messagerie Sécurisée de Santé").

Contract: `pack --plan PLAN.json --out FILE.zip` writes the XDM zip; `unpack FILE.zip --out DIR`
checks it and extracts it, or exits 1 with the reason (nothing is written then);
`lookup NOM` prints one line per mailbox found (exit 3 when none)."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.cli.commands.cda import add_plan_options, now_of, read_plan
from gateway.cli.common import INVALID, NOT_FOUND, UNAVAILABLE, err, read_input
from gateway.settings import settings


def register(sub) -> None:
    parser = sub.add_parser("mss", help="MSSanté : paquet IHE XDM, lecture sûre, annuaire des BAL")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    pack = actions.add_parser("pack", help="écrire l'IHE_XDM.zip du document CDA d'un projet")
    add_plan_options(pack)
    pack.add_argument("--out", required=True, metavar="FICHIER.zip")
    pack.add_argument("--ins-obligatoire", dest="require_ins", action="store_true",
                      help="refuser une identité non qualifiée (pas d'INS dans patientId)")
    pack.set_defaults(func=run_pack)

    unpack = actions.add_parser("unpack", help="vérifier un IHE_XDM.zip reçu et l'extraire")
    unpack.add_argument("file", metavar="FICHIER.zip")
    unpack.add_argument("--out", required=True, metavar="RÉPERTOIRE")
    unpack.set_defaults(func=run_unpack)

    lookup = actions.add_parser("lookup", help="chercher l'adresse MSSanté d'un professionnel ou d'une structure")
    lookup.add_argument("name", metavar="NOM", help="nom, RPPS (8…/11 chiffres) ou FINESS (9 chiffres)")
    lookup.add_argument("--type", dest="mailbox_type", choices=["PER", "ORG", "APP", "CAB"],
                        help="type de BAL (TRE_R257)")
    lookup.set_defaults(func=run_lookup)


def run_pack(args) -> int:
    from connectors.mss import xdm
    from mappings.cda import document_ids
    from mappings.xds import MetadataError

    plan = read_plan(args)
    if plan is None:
        return INVALID
    try:
        ids = document_ids(plan, args.version)
        packed = xdm.pack_plan(plan, now=now_of(args), ids=ids, confidentiality=args.confidentiality,
                               require_ins=args.require_ins)
    except MetadataError as exc:
        err(f"{args.plan} : {exc}")
        return INVALID
    except ValueError as exc:
        err(str(exc))
        return 2
    try:
        Path(args.out).write_bytes(packed.archive)
    except OSError as exc:
        err(f"{args.out} : fichier impossible à écrire ({exc.strerror or type(exc).__name__})")
        return INVALID
    print(f"{args.out} : paquet IHE XDM écrit ({len(packed.archive)} octets, document {packed.document_id})")
    return 0


def run_unpack(args) -> int:
    from connectors.mss import xdm, zipsafe
    from gateway.model import Severity

    try:
        data = read_input(args.file, zipsafe.MAX_ARCHIVE_BYTES)
    except OSError as exc:
        err(f"{args.file} : fichier illisible ({exc.strerror or type(exc).__name__})")
        return INVALID
    try:
        package = xdm.read(data)
    except xdm.XdmRefused as exc:
        err(f"{args.file} : archive refusée [{exc.rule}] {exc.reason} ; rien n'a été extrait")
        return INVALID
    problems = xdm.check(package)
    for problem in problems:
        err(problem.line(args.file))
    if any(p.severity is Severity.error for p in problems):
        err(f"{args.file} : paquet XDM non conforme ; rien n'a été extrait")
        return INVALID
    try:
        written = xdm.extract(package, args.out)
    except (FileExistsError, OSError, xdm.XdmRefused) as exc:
        err(f"{args.out} : extraction impossible ({exc})")
        return INVALID
    print(f"{args.file} : {len(package.entries)} document(s) vérifié(s), {len(written)} fichier(s) "
          f"extrait(s) dans {args.out}")
    for entry in package.entries:
        print(f"  {xdm.ROOT}/{entry.subset}/{entry.uri} : {entry.title} [{entry.type_code}]"
              + (f" action={entry.action}" if entry.action else ""))
    return 0


def run_lookup(args) -> int:
    from connectors.base import DeliveryError
    from connectors.mss.directory import directory_from_settings

    config = settings().connectors.get("mss", {})
    directory = directory_from_settings(config)
    if directory is None:
        err("annuaire non configuré : RELAIS_CONNECTORS__MSS__DIRECTORY_URL (et DIRECTORY_API_KEY)")
        return 2
    try:
        found = directory.lookup(args.name, mailbox_type=args.mailbox_type)
    except DeliveryError as exc:
        err(f"annuaire indisponible : {exc.reason}")
        return UNAVAILABLE
    finally:
        directory.close()
    if not found:
        err(f"aucune BAL MSSanté trouvée pour « {args.name} »")
        return NOT_FOUND
    for mailbox in found:
        sys.stdout.write(mailbox.line() + "\n")
    return 0
