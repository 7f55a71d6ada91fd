"""`relais dmp query|retrieve|deprecate|visibility`: what the DMP holds for a person, through the
configured DMP connector (RELAIS_CONNECTORS__DMP__BASE_URL, …__SEAL_CERT, …__CLIENT_CERT…), or
through a sandbox DMP started for the occasion (`--bac-a-sable`, for integrators).

Contract: `query PERSONNE --tenant T` prints one line per document (uniqueId, status, date,
type, visibility, title), exit 3 when there is none; `retrieve PERSONNE UNIQUE_ID --tenant T
--out FICHIER` writes the document; `deprecate` and `visibility` change a document's status or
masking flags (ITI-57). A DMP refusal prints its code and the DMP's words (exit 1); the DMP
unreachable exits 5."""

from __future__ import annotations

from pathlib import Path

from gateway.cli.common import INVALID, NOT_FOUND, OK, UNAVAILABLE, add_database_option, err, handles_storage_errors, open_store


def register(sub) -> None:
    parser = sub.add_parser("dmp", help="DMP (Mon espace santé) : documents d'une personne, récupération, mise à jour")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p):
        p.add_argument("person", metavar="PERSONNE", help="identifiant local de la personne")
        p.add_argument("--tenant", required=True, metavar="PLATEFORME")
        add_database_option(p)

    query = actions.add_parser("query", help="lister les documents de la personne dans le DMP (ITI-18)")
    common(query)
    query.add_argument("--tous", dest="all", action="store_true", help="inclure les documents remplacés (Deprecated)")
    query.set_defaults(func=run_query)

    retrieve = actions.add_parser("retrieve", help="récupérer un document (ITI-43)")
    common(retrieve)
    retrieve.add_argument("unique_id", metavar="UNIQUE_ID")
    retrieve.add_argument("--out", required=True, metavar="FICHIER")
    retrieve.set_defaults(func=run_retrieve)

    deprecate = actions.add_parser("deprecate", help="retirer un document (statut Deprecated, ITI-57)")
    common(deprecate)
    deprecate.add_argument("unique_id", metavar="UNIQUE_ID")
    deprecate.set_defaults(func=run_deprecate)

    visibility = actions.add_parser("visibility", help="fixer les indicateurs de visibilité d'un document (ITI-57)")
    common(visibility)
    visibility.add_argument("unique_id", metavar="UNIQUE_ID")
    visibility.add_argument("--code", dest="codes", action="append", default=[],
                            choices=["MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"],
                            help="code TRE_A07 (répétable ; aucun = visible de tous)")
    visibility.set_defaults(func=run_visibility)


def _patient(args) -> str | None:
    from gateway.model import Plan
    from mappings.xds import MetadataError, patient_cx

    store = open_store(args)
    try:
        tenant = store.get_tenant(args.tenant)
        plan = Plan.model_validate_json(store.get_plan(tenant, args.person).content)
    finally:
        store.close()
    try:
        return patient_cx(plan)
    except MetadataError as exc:
        err(f"{args.person} : {exc}")
        return None


def _connector():
    from connectors.dmp import build
    from gateway.settings import settings

    config = settings().connectors.get("dmp") or {}
    if not config.get("base_url"):
        err("connecteur DMP non configuré (RELAIS_CONNECTORS__DMP__BASE_URL, …__SEAL_CERT, …__SEAL_KEY, "
            "…__CLIENT_CERT, …__CLIENT_KEY, …__CA_FILE, …__FINESS)")
        return None
    return build(config)


def _dmp_call(args, action) -> int:
    from connectors.base import PermanentError, TransientError

    patient = _patient(args)
    if patient is None:
        return INVALID
    connector = _connector()
    if connector is None:
        return INVALID
    try:
        return action(connector, patient)
    except PermanentError as exc:
        err(f"refusé par le DMP : {exc.reason}")
        return INVALID
    except TransientError as exc:
        err(f"DMP indisponible : {exc.reason}")
        return UNAVAILABLE
    finally:
        connector.close()


@handles_storage_errors
def run_query(args) -> int:
    from connectors.dmp import iti18

    def action(connector, patient):
        statuses = (iti18.APPROVED, iti18.DEPRECATED) if args.all else (iti18.APPROVED,)
        entries = connector.find_documents(patient, statuses=statuses)
        for e in entries:
            flags = ",".join(c for c in e.confidentiality if c not in ("N", "R", "V")) or "-"
            print(f"{e.unique_id}\t{e.status.rsplit(':', 1)[-1]}\t{e.creation_time}\t{e.type_code}\t{flags}\t{e.title}")
        if not entries:
            err("aucun document dans le DMP de cette personne")
            return NOT_FOUND
        return OK

    return _dmp_call(args, action)


@handles_storage_errors
def run_retrieve(args) -> int:
    def action(connector, patient):
        entries = connector.get_documents(patient, unique_ids=(args.unique_id,))
        if not entries:
            err(f"document {args.unique_id} introuvable dans le DMP")
            return NOT_FOUND
        document = connector.retrieve(patient, entries[0].repository_unique_id, args.unique_id)
        try:
            Path(args.out).write_bytes(document.content)
        except OSError as exc:
            err(f"{args.out} : fichier impossible à écrire ({exc.strerror or type(exc).__name__})")
            return INVALID
        print(f"{args.out} : {len(document.content)} octets ({document.mime_type})")
        return OK

    return _dmp_call(args, action)


@handles_storage_errors
def run_deprecate(args) -> int:
    def action(connector, patient):
        connector.set_status(patient, args.unique_id, "deprecated")
        print(f"{args.unique_id} : retiré (Deprecated)")
        return OK

    return _dmp_call(args, action)


@handles_storage_errors
def run_visibility(args) -> int:
    def action(connector, patient):
        connector.set_visibility(patient, args.unique_id, tuple(args.codes))
        print(f"{args.unique_id} : visibilité {', '.join(args.codes) or 'normale (visible de tous)'}")
        return OK

    return _dmp_call(args, action)
