"""`relais sync`, `relais worker`, `relais exchanges list|show|replay`."""

from __future__ import annotations

import datetime as dt

from connectors.base import Recipient
from gateway.cli.common import INVALID, NOT_FOUND, add_database_option, err, handles_storage_errors, open_store
from gateway.consent.vocab import System
from gateway.delivery import outbox, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import UnknownPayloadKind
from gateway.settings import settings

STATUS_FR = {
    "refused": "refusé", "invalid": "invalide", "queued": "en file", "sending": "en cours d'envoi",
    "sent": "envoyé", "acknowledged": "acquitté", "dead": "lettre morte", "superseded": "remplacé",
    "cancelled": "annulé",
}


def register(sub) -> None:
    sync = sub.add_parser("sync", help="demander l'envoi du projet d'une personne vers un système")
    sync.add_argument("person", metavar="PERSONNE")
    sync.add_argument("--tenant", required=True)
    sync.add_argument("--to", dest="system", required=True, choices=[s.value for s in System], metavar="SYSTEM",
                      help="eparcours, viatrajectoire…")
    sync.add_argument("--purpose", default="COC", help="finalité (défaut : COC, coordination)")
    sync.add_argument("--kind", default="tddui-bundle", help="contenu (défaut : tddui-bundle)")
    sync.add_argument("--recipient", help="destinataire (RPPS, FINESS, adresse MSSanté ; défaut : le système)")
    sync.add_argument("--recipient-kind", default=None,
                      choices=["professional", "organisation", "person", "system"])
    sync.add_argument("--label", action="append", default=[], choices=["minor-secret"],
                      help="étiquette de sécurité (minor-secret : secret demandé par le mineur, L.1111-5)")
    add_database_option(sync)
    sync.set_defaults(func=run_sync)

    worker = sub.add_parser("worker", help="traiter la file d'envoi (processus de travail)")
    worker.add_argument("--once", action="store_true", help="un seul passage puis quitter")
    add_database_option(worker)
    worker.set_defaults(func=run_worker)

    exchanges = sub.add_parser("exchanges", help="suivre les échanges")
    actions = exchanges.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="lister les échanges")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--status", choices=sorted(STATUS_FR))
    listing.add_argument("--system")
    listing.add_argument("--person")
    add_database_option(listing)
    listing.set_defaults(func=run_list)
    show = actions.add_parser("show", help="un échange et son historique")
    show.add_argument("exchange_id", metavar="ID")
    show.add_argument("--tenant", required=True)
    add_database_option(show)
    show.set_defaults(func=run_show)
    replay = actions.add_parser("replay", help="rejouer une lettre morte")
    replay.add_argument("exchange_id", metavar="ID")
    replay.add_argument("--tenant", required=True)
    add_database_option(replay)
    replay.set_defaults(func=run_replay)


@handles_storage_errors
def run_sync(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    kind = args.recipient_kind or ("system" if not args.recipient else "professional")
    request = ExchangeRequest(
        person_local_id=args.person, system=args.system,
        recipient=Recipient(kind=kind, identifier=args.recipient or args.system),
        purpose=args.purpose, payload_kind=args.kind, labels=tuple(args.label))
    try:
        submitted = pipeline.submit(store, tenant, request, actor="cli", decider=consent_decider)
    except UnknownPayloadKind as exc:
        err(str(exc.args[0]))
        return INVALID
    exchange = submitted.exchange
    print(f"échange {exchange.id} : {STATUS_FR[exchange.status.value]}"
          + ("" if submitted.created else " (demande déjà reçue)"))
    for reason in exchange.decision_reasons:
        print(f"  - {reason}")
    for problem in exchange.problems:
        if problem.get("severity") == "error":
            print(f"  - {problem['location']}: [{problem['rule']}] {problem['message']}")
    return 0 if exchange.status in (Status.queued, Status.sending, Status.sent) else INVALID


def worker_from_settings(store, config=None):
    """A delivery worker over the configured connectors (RELAIS_CONNECTORS__<SYSTÈME>__…), with
    the configured batch and lease; None when no connector is configured."""
    from connectors.registry import factory
    from gateway.delivery.worker import Worker

    config = config or settings()
    connectors = {system: factory(system)(endpoint) for system, endpoint in config.connectors.items()}
    if not connectors:
        return None
    return Worker(store, connectors, batch=config.worker_batch,
                  lease=dt.timedelta(seconds=config.worker_lease_seconds))


@handles_storage_errors
def run_worker(args) -> int:
    store = open_store(args)
    worker = worker_from_settings(store)
    if worker is None:
        err("aucun connecteur configuré (RELAIS_CONNECTORS__<SYSTÈME>__BASE_URL…)")
        return INVALID
    connectors = worker.connectors
    if args.once:
        print(f"{worker.run_once()} échange(s) traité(s)")
        return 0
    print(f"travailleur {worker.owner} démarré ({', '.join(sorted(connectors))}) ; Ctrl-C pour arrêter", flush=True)
    from gateway.cli.startup import serve_worker

    try:
        serve_worker(worker)  # a pass that fails (database restarting) is logged and tried again
    except KeyboardInterrupt:
        return 0
    return 0


@handles_storage_errors
def run_list(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    with store.reading() as conn:
        rows = outbox.listing(conn, tenant.id, status=args.status, system=args.system,
                              person=args.person, limit=200)
    for e in rows:
        print(f"{e.id}\t{e.created_at:%Y-%m-%d %H:%M}\t{e.person_local_id}\t{e.system}\t"
              f"{STATUS_FR[e.status.value]}\t{e.attempts} essai(s)")
    return 0


@handles_storage_errors
def run_show(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    with store.reading() as conn:
        exchange = outbox.get(conn, tenant.id, args.exchange_id)
    if exchange is None:
        err(f"échange {args.exchange_id} introuvable")
        return NOT_FOUND
    print(f"échange {exchange.id} — {exchange.system} — {STATUS_FR[exchange.status.value]}")
    print(f"  personne {exchange.person_local_id}, version {exchange.plan_version}, finalité {exchange.purpose}")
    for reason in exchange.decision_reasons:
        print(f"  décision : {reason}")
    if exchange.last_error:
        print(f"  dernière erreur : {exchange.last_error}")
    for event in exchange.history:
        print(f"  {event.at:%Y-%m-%d %H:%M:%S}  {STATUS_FR.get(event.status, event.status)}"
              + (f" (essai {event.attempt})" if event.attempt else "") + (f" — {event.detail}" if event.detail else ""))
    return 0


@handles_storage_errors
def run_replay(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    exchange = pipeline.replay(store, tenant, args.exchange_id, actor="cli")
    print(f"rejeu : nouvel échange {exchange.id} (de {args.exchange_id}), {STATUS_FR[exchange.status.value]}")
    return 0
