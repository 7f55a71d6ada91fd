"""`relais xds metadata --plan PLAN.json`: the ebRIM SubmitObjectsRequest (XDS.b metadata) of
the plan's CDA document, as the DMP and the MSSanté XDM package use it."""

from __future__ import annotations

import sys

from gateway.cli.commands.cda import add_plan_options, now_of, read_plan
from gateway.cli.common import INVALID, err


def register(sub) -> None:
    parser = sub.add_parser("xds", help="métadonnées XDS (DMP, XDM MSSanté) du document CDA d'un projet")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    meta = actions.add_parser("metadata", help="afficher le SubmitObjectsRequest ebRIM du document")
    add_plan_options(meta)
    meta.add_argument("--visibility", action="append", default=[], metavar="CODE",
                      choices=["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "MASQUE_PS"],
                      help="masquage DMP (répétable)")
    meta.add_argument("--uri", metavar="DOC0001.XML", help="nom du document dans un paquet XDM")
    meta.add_argument("--sans-ins", dest="without_ins", action="store_true",
                      help="accepter une identité non qualifiée (identifiant local à la place de l'INS ; XDM seulement)")
    meta.set_defaults(func=run_metadata)


def run_metadata(args) -> int:
    from mappings.cda import document_ids, plan_to_cda
    from mappings.xds import Destination, MetadataError, submit_objects_request

    plan = read_plan(args)
    if plan is None:
        return INVALID
    try:
        ids = document_ids(plan, args.version)
    except ValueError as exc:
        err(str(exc))
        return 2
    now = now_of(args)
    document = plan_to_cda(plan, now=now, ids=ids, confidentiality=args.confidentiality)
    destination = Destination(visibility=tuple(args.visibility), uri=args.uri,
                              require_ins=not args.without_ins)
    try:
        xml = submit_objects_request(plan, document, ids, now=now, confidentiality=args.confidentiality,
                                     destination=destination)
    except MetadataError as exc:
        err(f"{args.plan} : {exc}")
        return INVALID
    sys.stdout.buffer.write(xml)
    sys.stdout.flush()
    return 0
