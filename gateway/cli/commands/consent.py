"""`relais consent import|export|withdraw|explain|care-team|inform`.

`explain` contract: `relais consent explain PERSONNE --to SYSTÈME --purpose CODE` prints
« AUTORISÉ » or « REFUSÉ » on its first line, then one line per reason with its rule id;
exit 0 when permitted, 1 when refused. Like every decision, it is recorded in the audit trail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys

import orjson

from gateway.cli.common import (
    INVALID,
    NOT_FOUND,
    USAGE,
    add_database_option,
    err,
    handles_storage_errors,
    open_store,
    read_input,
)
from gateway.consent.fhir_common import FhirInputError
from gateway.consent.fhir_consent import consent_full_url
from gateway.consent.inputs import InformationInput
from gateway.consent.model import DecisionRequest, Recipient, Requester
from gateway.consent.registry import ConsentRegistry, ConsentRejected
from gateway.consent.vocab import (
    PURPOSE_LABEL,
    DataCategory,
    Flow,
    InformationTopic,
    Profession,
    RecipientKind,
    System,
)
from gateway.plans import JsonInputError, loads_object
from gateway.settings import settings

PROFESSIONS = {"health": "health", "sante": "health", "santé": "health", "social": "social",
               "other": "other", "autre": "other"}
REGIMES = {"communication-personne": "envoi à la personne elle-même",
           "dmp-alimentation": "alimentation du DMP", "dmp-bris-de-glace": "accès d'urgence au DMP",
           "echange": "échange avec un professionnel de la prise en charge",
           "partage-equipe": "partage au sein de l'équipe de soins",
           "hors-equipe": "destinataire hors de l'équipe de soins"}
KINDS = {"professional": "professional", "professionnel": "professional",
         "organisation": "organisation", "structure": "organisation",
         "person": "person", "personne": "person", "system": "system", "systeme": "system"}


def register(sub) -> None:
    parser = sub.add_parser("consent", help="consentements, équipe de soins, décisions de partage")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    imp = actions.add_parser("import", help="enregistrer des consentements FHIR (Consent ou Bundle)")
    imp.add_argument("files", nargs="+", metavar="FICHIER")
    imp.add_argument("--tenant", required=True, help="plateforme (identifiant court du locataire)")
    imp.add_argument("--person", metavar="PERSONNE",
                     help="personne concernée (défaut : Consent.patient = Patient/<identifiant>)")
    add_database_option(imp)
    imp.set_defaults(func=run_import)

    exp = actions.add_parser("export", help="afficher les consentements d'une personne (Bundle FHIR)")
    exp.add_argument("person", metavar="PERSONNE")
    exp.add_argument("--tenant", required=True)
    add_database_option(exp)
    exp.set_defaults(func=run_export)

    wd = actions.add_parser("withdraw", help="retirer un consentement (effet immédiat)")
    wd.add_argument("person", metavar="PERSONNE")
    wd.add_argument("consent", metavar="ID_CONSENTEMENT")
    wd.add_argument("--tenant", required=True)
    add_database_option(wd)
    wd.set_defaults(func=run_withdraw)

    ex = actions.add_parser("explain", help="dire si un envoi est autorisé, et pourquoi")
    ex.add_argument("person", metavar="PERSONNE")
    ex.add_argument("--to", required=True, choices=[s.value for s in System], metavar="SYSTÈME",
                    help="dmp, mss, viatrajectoire, eparcours ou tddui")
    ex.add_argument("--purpose", required=True, metavar="CODE",
                    help="finalité v3 ActReason : TREAT, COC, HOPERAT, PATRQT, BTG…")
    ex.add_argument("--tenant", help="plateforme (facultatif s'il n'y en a qu'une)")
    ex.add_argument("--recipient", metavar="ID", help="RPPS, FINESS ou adresse MSSanté du destinataire")
    ex.add_argument("--recipient-kind", choices=sorted(KINDS), metavar="TYPE",
                    help="professionnel, structure, personne (sa messagerie) ou systeme")
    ex.add_argument("--profession", choices=sorted(PROFESSIONS), metavar="CATÉGORIE",
                    help="catégorie R.1110-2 du destinataire : sante, social ou autre")
    ex.add_argument("--organisation", metavar="FINESS", help="FINESS de la structure du destinataire")
    ex.add_argument("--data", default="plan", metavar="CATÉGORIES",
                    help=f"catégories de données, séparées par des virgules ({', '.join(DataCategory.__members__)})")
    ex.add_argument("--flow", choices=[f.value for f in Flow], help="echange ou partage (défaut : selon le canal)")
    ex.add_argument("--ins", action="store_true", help="le document porte l'INS")
    ex.add_argument("--urgency", action="store_true", help="urgence, personne hors d'état d'exprimer sa volonté")
    ex.add_argument("--justification", help="justification (bris de glace)")
    ex.add_argument("--minor-secret", action="store_true", help="document couvert par le secret d'un mineur")
    ex.add_argument("--requester-profession", choices=sorted(PROFESSIONS), default="social",
                    metavar="CATÉGORIE", help="catégorie R.1110-2 de l'émetteur (défaut : social)")
    add_database_option(ex)
    ex.set_defaults(func=run_explain)

    ct = actions.add_parser("care-team", help="afficher ou remplacer l'équipe de soins (FHIR CareTeam)")
    ct.add_argument("person", metavar="PERSONNE")
    ct.add_argument("--tenant", required=True)
    ct.add_argument("--import", dest="import_file", metavar="FICHIER", help="CareTeam FHIR à enregistrer")
    add_database_option(ct)
    ct.set_defaults(func=run_care_team)

    inf = actions.add_parser("inform", help="enregistrer que la personne a été informée")
    inf.add_argument("person", metavar="PERSONNE")
    inf.add_argument("--tenant", required=True)
    inf.add_argument("--topic", action="append", required=True, choices=[t.value for t in InformationTopic],
                     help="objet de l'information (répétable)")
    inf.add_argument("--method", required=True, choices=["oral", "written", "electronic"])
    inf.add_argument("--by", required=True, help="qui a informé (identifiant du professionnel)")
    inf.add_argument("--notice", required=True, help="version de la notice d'information")
    inf.add_argument("--at", help="date-heure ISO 8601 avec fuseau (défaut : maintenant)")
    add_database_option(inf)
    inf.set_defaults(func=run_inform)


@contextlib.contextmanager
def _outbox_hook(store):
    """While the command runs, consent changes cancel the pending exchanges they forbid
    (the API server wires the same hook for its lifetime)."""
    from gateway.delivery import hooks

    unsubscribe = hooks.subscribe(store)
    try:
        yield
    finally:
        unsubscribe()


def _read(path: str) -> dict:
    return loads_object(read_input(path, settings().max_body_bytes), max_bytes=settings().max_body_bytes)


def _consents_in(document: dict) -> list[dict]:
    if document.get("resourceType") == "Bundle":
        entries = document.get("entry", [])
        if not isinstance(entries, list):
            raise _BadEntry("Bundle.entry", "une liste d'entrées est attendue")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                raise _BadEntry(f"Bundle.entry[{i}]", "une entrée avec sa ressource (objet JSON) est attendue")
        return [e["resource"] for e in entries]
    return [document]


class _BadEntry(ValueError):
    def __init__(self, where: str, why: str):
        super().__init__(f"{where}: [consent-bundle-entry] {why}")


def _person_of(resource: object, override: str | None) -> str | None:
    if override:
        return override
    patient = resource.get("patient") if isinstance(resource, dict) else None
    ref = patient.get("reference") if isinstance(patient, dict) else None
    if isinstance(ref, str) and ref.startswith("Patient/"):
        return ref.split("/", 1)[1]
    return None


@handles_storage_errors
def run_import(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    with _outbox_hook(store):
        return _import(args, tenant, ConsentRegistry(store))


def _import(args, tenant, registry: ConsentRegistry) -> int:
    status = 0
    for path in args.files:
        try:
            resources = _consents_in(_read(path))
        except (OSError, JsonInputError) as exc:
            print(f"{path}: $: [file-unreadable] fichier illisible ({getattr(exc, 'strerror', None) or exc})")
            status = INVALID
            continue
        except _BadEntry as exc:
            print(f"{path}: {exc}")
            status = INVALID
            continue
        for i, resource in enumerate(resources):
            where = path if len(resources) == 1 else f"{path}#{i}"
            person = _person_of(resource, args.person)
            if person is None:
                print(f"{where}: Consent.patient: [consent-patient] personne introuvable : "
                      "indiquer Patient/<identifiant> ou --person")
                status = INVALID
                continue
            try:
                stored = registry.record_consent(tenant, person, resource, actor="cli")
            except FhirInputError as exc:
                for problem in exc.problems:
                    print(problem.line(where))
                status = INVALID
                continue
            except ConsentRejected as exc:
                for r in exc.refusals:
                    print(f"{where}: Consent.performer: [{r.rule_id}] refusé : {r.message}")
                status = INVALID
                continue
            for problem in stored.warnings:
                print(problem.line(where))
            print(f"{where}: consentement enregistré — personne {person}, id {stored.id}, "
                  f"version {stored.version}, {stored.kind}")
    return status


@handles_storage_errors
def run_export(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    items = ConsentRegistry(store).list_consents(tenant, args.person)
    bundle = {"resourceType": "Bundle", "type": "collection"}
    if items:  # FHIR arrays are never empty
        bundle["entry"] = [{"fullUrl": consent_full_url(c.id), "resource": c.resource} for c in items]
    sys.stdout.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


@handles_storage_errors
def run_withdraw(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    with _outbox_hook(store):
        stored = ConsentRegistry(store).withdraw(tenant, args.person, args.consent, actor="cli")
    print(f"consentement {stored.id} retiré (version {stored.version}, statut {stored.status}) : "
          "effet immédiat sur les décisions suivantes")
    return 0


def _tenant(store, slug: str | None):
    if slug:
        return store.get_tenant(slug)
    tenants = store.list_tenants()
    if len(tenants) != 1:
        err("plusieurs plateformes (ou aucune) : préciser --tenant")
        return None
    return tenants[0]


def _recipient(args, system: System) -> Recipient:
    profession = PROFESSIONS[args.profession] if args.profession else None
    if args.recipient_kind:
        kind = RecipientKind(KINDS[args.recipient_kind])
    elif args.recipient is None:
        kind = RecipientKind.system
    elif args.recipient.isdigit() and len(args.recipient) == 9:
        kind = RecipientKind.organisation
    else:
        kind = RecipientKind.professional
    if args.recipient is None or kind is RecipientKind.system:
        recipient = Recipient(kind, (), Profession(profession) if profession else None)
    else:
        recipient = Recipient.from_identifier(kind, args.recipient, profession)
    if args.organisation:
        recipient = Recipient(recipient.kind, recipient.identifiers, recipient.profession,
                              args.organisation)
    return recipient


@handles_storage_errors
def run_explain(args) -> int:
    store = open_store(args)
    tenant = _tenant(store, args.tenant)
    if tenant is None:
        return USAGE
    system = System(args.to)
    purpose = args.purpose.strip().upper()
    request = DecisionRequest(
        tenant_id=tenant.id, person_local_id=args.person, recipient=_recipient(args, system),
        system=system, purpose=purpose,
        data_categories=frozenset(c.strip() for c in args.data.split(",") if c.strip()),
        requester=Requester("cli", Profession(PROFESSIONS[args.requester_profession])),
        flow=Flow(args.flow) if args.flow else None, names_ins=True if args.ins else None,
        labels=frozenset({"minor-secret"}) if args.minor_secret else frozenset(),
        urgency=args.urgency, justification=args.justification)
    decision = ConsentRegistry(store).decide(request)
    verdict = "AUTORISÉ" if decision.permitted else "REFUSÉ"
    label = PURPOSE_LABEL.get(purpose, "finalité inconnue")
    print(f"{verdict} — personne {args.person} → {system.value}, finalité {purpose} ({label}), "
          f"régime : {REGIMES.get(decision.regime, decision.regime)}")
    marks = {"permit": "✓", "deny": "✗", "note": "·"}
    for reason in decision.reasons:
        refs = f" [consentements : {', '.join(c.id for c in reason.consents)}]" if reason.consents else ""
        print(f"  {marks[reason.effect]} [{reason.rule_id}] {reason.message}{refs}")
        print(f"      source : {reason.source}")
    if decision.obligations:
        print(f"  obligations : {', '.join(decision.obligations)}")
    print(f"décision {decision.id} enregistrée au journal d'audit")
    return 0 if decision.permitted else INVALID


@handles_storage_errors
def run_care_team(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    registry = ConsentRegistry(store)
    if args.import_file:
        try:
            resource = _read(args.import_file)
            with _outbox_hook(store):
                stored = registry.put_care_team(tenant, args.person, resource, actor="cli")
        except (OSError, JsonInputError) as exc:
            print(f"{args.import_file}: $: [file-unreadable] fichier illisible ({exc})")
            return INVALID
        except FhirInputError as exc:
            for problem in exc.problems:
                print(problem.line(args.import_file))
            return INVALID
        members = len(stored.resource.get("participant") or [])
        print(f"équipe de soins enregistrée — personne {args.person}, version {stored.version}, "
              f"{members} membre(s)")
        return 0
    stored = registry.get_care_team(tenant, args.person)
    if stored is None:
        err(f"introuvable : aucune équipe de soins pour l'usager {args.person}")
        return NOT_FOUND
    sys.stdout.write(orjson.dumps(stored.resource, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


# What `inform` says of a refused option (pydantic's own messages are English).
_OPTIONS = {"informed_at": "--at", "informed_by": "--by", "notice_version": "--notice"}
_REFUSED = {
    "timezone_aware": "fuseau horaire obligatoire (ex. 2026-01-15T09:00:00+01:00)",
    "string_too_short": "valeur vide",
    "string_too_long": "valeur trop longue (100 caractères au plus)",
    "string_pattern_mismatch": "caractères non admis (lettres, chiffres et . _ : @ / + -, sans espace)",
}


def _information(args) -> InformationInput:
    from pydantic import ValidationError

    try:
        informed_at = dt.datetime.fromisoformat(args.at) if args.at else dt.datetime.now(dt.UTC)
        if informed_at.tzinfo is not None:
            informed_at.astimezone(dt.UTC)  # stored in UTC: 0001-01-01T00:30+01:00 has no such instant
    except (ValueError, OverflowError):
        raise ValueError("--at : date-heure invalide (attendu ISO 8601 avec fuseau, "
                         "ex. 2026-01-15T09:00:00+01:00)") from None
    try:
        return InformationInput(informed_at=informed_at, method=args.method, informed_by=args.by,
                                notice_version=args.notice, topics=args.topic)
    except ValidationError as exc:
        raise ValueError(" ; ".join(
            f"{_OPTIONS.get(e['loc'][0] if e['loc'] else '', '$')} : {_REFUSED.get(e['type'], 'valeur refusée')}"
            for e in exc.errors(include_url=False))) from None


@handles_storage_errors
def run_inform(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    try:
        data = _information(args)
        record = ConsentRegistry(store).record_information(tenant, args.person, data.to_record(),
                                                          actor="cli")
    except ValueError as exc:
        err(f"information refusée : {exc}")
        return INVALID
    print(f"information enregistrée — personne {args.person}, {', '.join(sorted(t.value for t in record.topics))}, "
          f"{record.method.value}, le {record.informed_at.isoformat()}")
    return 0
