"""The SERAFIN-PH nomenclature (ANS terminology `terminologie-SERAFINPH`).

The data file lists (code, label) pairs in NOS numbering (JDV_J283/J284/J285, specs §9);
parent and family follow from the code itself: the parent is the code minus its last
segment, the family is its first segment (1 needs, 2 direct services, 3 indirect services).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

FHIR_SYSTEM = "https://smt.esante.gouv.fr/terminologie-SERAFINPH"

# Family of each root, as named in the command contract (`relais nomenclature export`).
FAMILIES = {"1": "besoin", "2": "prestation_directe", "3": "prestation_indirecte"}
FAMILY_LABELS_FR = {
    "besoin": "besoin",
    "prestation_directe": "prestation directe",
    "prestation_indirecte": "prestation indirecte",
}


@dataclass(frozen=True, slots=True)
class Concept:
    code: str
    label: str
    parent: str | None
    family: str
    level: int
    is_leaf: bool


def _fold(text: str) -> str:
    """Lower-case, accent-free form used for search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("’", "'")


def _sort_key(code: str) -> tuple[int, ...]:
    return tuple(int(part) for part in code.split("."))


class Nomenclature:
    """Read-only view of the 107 SERAFIN-PH codes with hierarchy walk and search."""

    def __init__(self, data: dict):
        self.fhir_system: str = data["fhir_system"]
        self.code_system_oid: str = data["code_system_oid"]
        self.code_system_version: str = data["code_system_version"]
        self.value_set_version: str = data["value_set_version"]
        self.value_sets: dict = data["value_sets"]
        pairs = data["concepts"]
        codes = {code for code, _ in pairs}
        parents = {code.rpartition(".")[0] for code in codes if "." in code}
        concepts = {}
        for code, label in pairs:
            parent = code.rpartition(".")[0] or None
            if parent is not None and parent not in codes:
                raise ValueError(f"SERAFIN-PH data: parent {parent} of {code} is missing")
            concepts[code] = Concept(
                code=code,
                label=label,
                parent=parent,
                family=FAMILIES[code.split(".")[0]],
                level=code.count(".") + 1,
                is_leaf=code not in parents,
            )
        self._concepts = dict(sorted(concepts.items(), key=lambda kv: _sort_key(kv[0])))
        self._children: dict[str, list[str]] = {code: [] for code in self._concepts}
        for concept in self._concepts.values():
            if concept.parent:
                self._children[concept.parent].append(concept.code)
        self._folded = {code: _fold(c.label) for code, c in self._concepts.items()}

    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self):
        return iter(self._concepts.values())

    def __contains__(self, code: object) -> bool:
        return code in self._concepts

    def get(self, code: str) -> Concept | None:
        return self._concepts.get(code)

    def children(self, code: str) -> list[Concept]:
        return [self._concepts[c] for c in self._children.get(code, [])]

    def ancestors(self, code: str) -> list[Concept]:
        """From the family root down to the parent of `code`."""
        chain = []
        concept = self._concepts.get(code)
        while concept is not None and concept.parent:
            concept = self._concepts[concept.parent]
            chain.append(concept)
        return list(reversed(chain))

    def descendants(self, code: str) -> list[Concept]:
        out = []
        for child in self.children(code):
            out.append(child)
            out.extend(self.descendants(child.code))
        return out

    def family(self, family: str) -> list[Concept]:
        return [c for c in self._concepts.values() if c.family == family]

    def search(self, text: str, family: str | None = None, limit: int = 50) -> list[Concept]:
        """Codes whose label contains every word of `text` (accents and case ignored),
        or whose code starts with `text`; best (shallowest, then code order) first."""
        query = _fold(text).strip()
        if not query:
            return []
        words = query.split()
        hits = []
        for code, concept in self._concepts.items():
            if family and concept.family != family:
                continue
            folded = self._folded[code]
            if code == query or code.startswith(query + ".") or all(w in folded for w in words):
                hits.append(concept)
        hits.sort(key=lambda c: (c.code != query, c.level, _sort_key(c.code)))
        return hits[:limit]


@cache
def nomenclature() -> Nomenclature:
    raw = resources.files("mappings.serafin").joinpath("serafin_ph.json").read_text("utf-8")
    return Nomenclature(json.loads(raw))
