"""`relais activity import|indicators|dataset|capacity|person` — delivered activity and the
SERAFIN-PH indicators (README « Activity indicators »).

`import` reads JSON activity files (`{"person": …, "activities": [...]}`, or activities each
naming their `person`) or TDDUI Bundles (evenement Encounters; the person is read from their
identifiers, or given with --person); one line per problem (`file: location: [rule] reason`),
exit 1 when a file is refused (nothing of it is stored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import defaultdict
from pathlib import Path

import orjson

from gateway.activity import capacity as capacities
from gateway.activity import dataset as datasets
from gateway.activity import measure_report
from gateway.activity.charts import number_fr
from gateway.activity.indicators import Window, report
from gateway.activity.model import MODALITIES, MODALITY_FR, SPECIALISATION_FR, parse_week
from gateway.activity.planned import planned_vs_delivered
from gateway.activity.record import ActivityRejected, record_activities
from gateway.activity.summary import report_lines
from gateway.activity.tddui import persons_in_bundle, record_bundle
from gateway.cli.common import (
    INVALID,
    USAGE,
    add_database_option,
    err,
    handles_storage_errors,
    open_store,
    read_input,
)
from gateway.plans import JsonInputError, loads_strict
from gateway.settings import settings


def _date(text: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date invalide : {text!r} (AAAA-MM-JJ)") from None
    if not 1900 <= day.year <= 2100:  # the weeks around it must exist (year 1, year 9999 overflow)
        raise argparse.ArgumentTypeError(f"date hors limites : {text!r} (années 1900 à 2100)")
    return day


def register(sub) -> None:
    parser = sub.add_parser("activity", help="activité réalisée, indicateurs SERAFIN-PH, jeu de données annuel")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    imp = actions.add_parser("import", help="enregistrer l'activité réalisée (JSON ou Bundle TDDUI)")
    imp.add_argument("files", nargs="+", metavar="FICHIER")
    imp.add_argument("--tenant", required=True, help="plateforme (identifiant court du locataire)")
    imp.add_argument("--person", metavar="PERSONNE", help="personne concernée, si le fichier ne le dit pas")
    add_database_option(imp)
    imp.set_defaults(func=run_import)

    ind = actions.add_parser("indicators", help="indicateurs d'activité de la plateforme")
    ind.add_argument("--tenant", required=True)
    ind.add_argument("--from", dest="start", type=_date, metavar="AAAA-MM-JJ", help="défaut : 1er janvier")
    ind.add_argument("--to", dest="end", type=_date, metavar="AAAA-MM-JJ", help="défaut : aujourd'hui")
    ind.add_argument("--reference-week", metavar="SEMAINE", help="2026-W42 ou une date de la semaine")
    ind.add_argument("--by", choices=["modality", "specialisation"], default="modality")
    ind.add_argument("--json", action="store_true", help="tout le détail en JSON")
    add_database_option(ind)
    ind.set_defaults(func=run_indicators)

    ds = actions.add_parser("dataset", help="jeu de données annuel SERAFIN-PH (relais-serafin-dataset/1)")
    ds.add_argument("--tenant", required=True)
    ds.add_argument("--year", required=True, type=int, metavar="AAAA")
    ds.add_argument("--format", choices=["csv", "json", "fhir"], default="csv",
                    help="csv, json, ou fhir (Bundle de MeasureReport)")
    ds.add_argument("--reference-week", metavar="SEMAINE")
    ds.add_argument("--output", metavar="FICHIER", help="écrire dans ce fichier (défaut : sortie standard)")
    add_database_option(ds)
    ds.set_defaults(func=run_dataset)

    cap = actions.add_parser("capacity", help="capacité autorisée par modalité (sans --places : la liste)")
    cap.add_argument("--tenant", required=True)
    cap.add_argument("--modality", choices=MODALITIES, metavar="MODALITÉ", help=", ".join(MODALITIES))
    cap.add_argument("--places", type=int, metavar="N")
    cap.add_argument("--opening-days", type=int, metavar="JOURS", help="jours d'ouverture par an")
    cap.add_argument("--from", dest="valid_from", type=_date, metavar="AAAA-MM-JJ",
                     help="date d'effet (défaut : 1er janvier de l'année en cours)")
    cap.add_argument("--finess", help="FINESS de l'autorisation (défaut : celui de la plateforme)")
    add_database_option(cap)
    cap.set_defaults(func=run_capacity)

    per = actions.add_parser("person", help="prévu et réalisé par prestation pour une personne")
    per.add_argument("person", metavar="PERSONNE")
    per.add_argument("--tenant", required=True)
    per.add_argument("--from", dest="start", type=_date, metavar="AAAA-MM-JJ")
    per.add_argument("--to", dest="end", type=_date, metavar="AAAA-MM-JJ")
    add_database_option(per)
    per.set_defaults(func=run_person)


def _window(args) -> Window:
    end = args.end or dt.datetime.now(dt.UTC).date()
    return Window(args.start or dt.date(end.year, 1, 1), end)


def _batches(document: object, person: str | None) -> tuple[dict[str, object], str | None]:
    """person -> payload, or an error message."""
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        found = {person} if person else persons_in_bundle(document)
        if len(found) != 1:
            return {}, "Bundle.entry: [activity-person] indiquer --person (personne introuvable ou multiple)"
        return {found.pop(): document}, None
    if isinstance(document, dict) and "activities" in document and (document.get("person") or person):
        return {document.get("person") or person: document}, None
    items = document.get("activities") if isinstance(document, dict) else document
    if not isinstance(items, list):
        items = [document]
    grouped: dict[str, list] = defaultdict(list)
    for i, item in enumerate(items):
        who = (item.get("person") if isinstance(item, dict) else None) or person
        if who is None:
            return {}, f"$.activities[{i}].person: [activity-person] personne non indiquée (champ person ou --person)"
        if not isinstance(who, str):
            return {}, f"$.activities[{i}].person: [activity-person] l'identifiant de la personne doit être un texte"
        grouped[who].append(item)
    return {who: {"activities": batch} for who, batch in grouped.items()}, None


@handles_storage_errors
def run_import(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    status = 0
    for path in args.files:
        try:
            document = loads_strict(read_input(path, settings().max_body_bytes), max_bytes=settings().max_body_bytes)
        except (OSError, JsonInputError) as exc:
            print(f"{path}: $: [file-unreadable] fichier illisible ({getattr(exc, 'strerror', None) or exc})")
            status = INVALID
            continue
        batches, problem = _batches(document, args.person)
        if problem:
            print(f"{path}: {problem}")
            status = INVALID
            continue
        for person, payload in batches.items():
            bundle = isinstance(payload, dict) and payload.get("resourceType") == "Bundle"
            try:
                result = (record_bundle if bundle else record_activities)(store, tenant, person, payload,
                                                                          actor="cli")
            except ActivityRejected as exc:
                for p in exc.problems:
                    print(p.line(path))
                print(f"{path}: refusé pour la personne {person} : rien n'a été enregistré")
                status = INVALID
                continue
            for p in result.warnings:
                print(p.line(path))
            print(f"{path}: personne {person} — {result.created} activité(s) enregistrée(s), "
                  f"{result.replaced} remplacée(s), {result.unchanged} inchangée(s)")
    return status


@handles_storage_errors
def run_indicators(args) -> int:
    try:
        week = parse_week(args.reference_week) if args.reference_week else None
        window = _window(args)
    except ValueError as exc:
        err(str(exc))
        return USAGE
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    result = report(store, tenant, window, reference_week=week, by=args.by, series=args.json)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    for line in report_lines(result):
        print(line)
    for family, part in result.get("by_specialisation", {}).items():
        intensity = part["intensity"]["all"]
        per_week = "—" if intensity["per_week"] is None else f"{number_fr(intensity['per_week'], 1)} h/semaine"
        print(f"  {SPECIALISATION_FR.get(family, family)} : file active {part['file_active']['all']}, "
              f"semaine de référence {part['file_active_reference_week']['all']}, intensité {per_week}")
    return 0


@handles_storage_errors
def run_dataset(args) -> int:
    try:
        week = parse_week(args.reference_week) if args.reference_week else None
    except ValueError as exc:
        err(str(exc))
        return USAGE
    if not 2000 <= args.year <= 2100:
        err("année hors limites (2000 à 2100)")
        return USAGE
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    data = datasets.annual_dataset(store, tenant, args.year, reference_week=week)
    if args.format == "csv":
        text = datasets.to_csv(data)
    elif args.format == "json":
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = orjson.dumps(measure_report.bundle(data), option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            err(f"{args.output} : fichier impossible à écrire ({exc.strerror or type(exc).__name__})")
            return INVALID
        print(f"jeu de données {args.year} ({data['format']}, {args.format}) écrit dans {args.output}")
    else:
        sys.stdout.write(text)
    return 0


@handles_storage_errors
def run_capacity(args) -> int:
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    if (args.modality is None) != (args.places is None):
        err("--modality et --places vont ensemble (sans les deux : afficher les capacités)")
        return USAGE
    if args.modality is not None:
        valid_from = args.valid_from or dt.date(dt.datetime.now(dt.UTC).year, 1, 1)
        try:
            cap = capacities.set_capacity(store, tenant, args.modality, places=args.places,
                                          opening_days=args.opening_days, valid_from=valid_from,
                                          finess=args.finess, actor="cli")
        except capacities.CapacityError as exc:
            err(str(exc))
            return INVALID
        print(f"capacité enregistrée : {MODALITY_FR[cap.modality]}, {cap.places} place(s), "
              f"{cap.opening_days} jours d'ouverture par an, FINESS {cap.finess}, à partir du "
              f"{cap.valid_from:%d/%m/%Y}")
        return 0
    lines = capacities.list_capacities(store, tenant)
    if not lines:
        print("aucune capacité autorisée enregistrée")
    for cap in lines:
        print(f"{cap.valid_from.isoformat()}  {cap.modality:<22} {cap.places:>6} place(s)  "
              f"{cap.opening_days:>3} j/an  FINESS {cap.finess}")
    return 0


@handles_storage_errors
def run_person(args) -> int:
    try:
        window = _window(args)
    except ValueError as exc:
        err(str(exc))
        return USAGE
    store = open_store(args)
    tenant = store.get_tenant(args.tenant)
    result = planned_vs_delivered(store, tenant, args.person, window)
    print(f"personne {result['person']} (projet v{result['plan_version']}), du {result['period']['from']} "
          f"au {result['period']['to']}")
    for s in result["services"]:
        planned = s["planned"]
        done = s["delivered"]
        wanted = "—" if planned is None else (f"{number_fr(planned['value'], 1)} "
                                              f"{'h' if planned['unit'] == 'hours' else 'demi-j.'}")
        got = f"{number_fr(done['hours'], 1)} h, {done['half_days']} demi-j., {done['sessions']} séance(s)"
        print(f"  {s['service_id']:<8} {s['code']:<9} {MODALITY_FR[s['modality']]:<20} prévu {wanted:<12} "
              f"réalisé {got}" + (f" ({done['absent']} absence(s), {done['cancelled']} annulée(s))"
                                   if done["absent"] or done["cancelled"] else ""))
    outside = result["outside_plan"]
    if outside["sessions"]:
        print(f"  hors projet : {number_fr(outside['hours'], 1)} h, {outside['sessions']} séance(s)")
    return 0
