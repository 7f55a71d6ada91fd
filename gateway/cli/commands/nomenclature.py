"""`relais nomenclature search|show|export`: SERAFIN-PH look-ups."""

from __future__ import annotations

import csv
import json
import sys

from gateway.cli.common import NOT_FOUND, err
from mappings.serafin import nomenclature

FAMILIES = ["besoin", "prestation_directe", "prestation_indirecte"]


def register(sub) -> None:
    parser = sub.add_parser("nomenclature", help="consulter la nomenclature SERAFIN-PH")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    search = actions.add_parser("search", help="chercher par libellé (sans accents ni casse) ou préfixe de code")
    search.add_argument("text", nargs="+")
    search.add_argument("--family", choices=FAMILIES)
    search.set_defaults(func=run_search)
    show = actions.add_parser("show", help="afficher un code, ses ancêtres et ses enfants")
    show.add_argument("code")
    show.set_defaults(func=run_show)
    export = actions.add_parser("export", help="exporter toute la nomenclature")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.set_defaults(func=run_export)


def run_search(args) -> int:
    hits = nomenclature().search(" ".join(args.text), family=args.family)
    if not hits:
        err("aucun code ne correspond")
        return NOT_FOUND
    for c in hits:
        print(f"{c.code}\t{c.label}{'' if c.is_leaf else '  (regroupement)'}")
    return 0


def run_show(args) -> int:
    terms = nomenclature()
    concept = terms.get(args.code)
    if concept is None:
        err(f"code SERAFIN-PH inconnu : {args.code}")
        return NOT_FOUND
    for ancestor in terms.ancestors(concept.code):
        print(f"  {ancestor.code}\t{ancestor.label}")
    kind = "code final (feuille)" if concept.is_leaf else "regroupement"
    print(f"→ {concept.code}\t{concept.label}\t[{concept.family}, niveau {concept.level}, {kind}]")
    for child in terms.children(concept.code):
        print(f"    {child.code}\t{child.label}")
    return 0


def run_export(args) -> int:
    terms = nomenclature()
    if args.format == "json":
        rows = [
            {"code": c.code, "label": c.label, "parent": c.parent, "family": c.family, "level": c.level}
            for c in terms
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    # Command contract: code,label,parent,family for every code.
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["code", "label", "parent", "family"])
    for c in terms:
        writer.writerow([c.code, c.label, c.parent or "", c.family])
    return 0
