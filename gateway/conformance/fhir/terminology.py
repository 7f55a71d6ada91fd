"""Offline ValueSet expansion from `compose` (FHIR R4 ValueSet, "Value Set Expansion" rules).

- `include.system` alone: every concept of that CodeSystem, read from the loaded packages (content
  `complete`) or from the project's SERAFIN-PH nomenclature (`mappings/serafin`);
- `include.concept`: exactly the listed codes (no CodeSystem needed);
- `include.filter`: `is-a` / `descendent-of` / `=` on `concept`, on a local CodeSystem hierarchy;
- `include.valueSet`: the **intersection** of the listed value sets (and of `system` when given) —
  FHIR says so, and this module applies it faithfully; the project's deliberate departures
  (e.g. `tddui-serafin` as a union, specs §11.1) live in `defects.py`, applied on top;
- includes are united, then excludes removed.

An expansion that cannot be done offline (missing CodeSystem or ValueSet, unsupported filter) is
`not-expandable` with the reason: the binding check then says "non vérifiable hors ligne", it
neither passes silently nor fails wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.conformance.fhir.packages import PackageSet
from mappings.serafin import FHIR_SYSTEM as SERAFIN_SYSTEM
from mappings.serafin import nomenclature

_NOS = "https://mos.esante.gouv.fr/NOS"
# The SERAFIN-PH value sets (NOS JDV, specs §9), expanded from the project's nomenclature data.
SERAFIN_VALUE_SETS = {
    f"{_NOS}/JDV_J285-Besoins_SERAFIN/FHIR/JDV-J285-Besoins-SERAFIN": ("1", "JDV_J285"),
    f"{_NOS}/JDV_J284-PrestationsDirects_SERAFIN/FHIR/JDV-J284-PrestationsDirects-SERAFIN": ("2", "JDV_J284"),
    f"{_NOS}/JDV_J283-PrestationsIndirects_SERAFIN/FHIR/JDV-J283-PrestationsIndirects-SERAFIN": ("3", "JDV_J283"),
    f"{_NOS}/JDV_J282-TransportsLiesAuProjetIndividuel_SERAFIN/FHIR/JDV-J282-TransportsLiesAuProjetIndividuel-SERAFIN": (
        "3.2.4",
        "JDV_J282",
    ),
}


# Base FHIR R4 code lists (required bindings of the base resources) that no loaded package carries
# and that the fhir.resources models abbreviate ("draft | … | +"): written by the project from the
# FHIR R4 (4.0.1) specification. The other base code lists come from the R4B models (compile.py).
BASE_R4_CODES = {
    "http://hl7.org/fhir/ValueSet/task-status": (
        "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
        "in-progress", "on-hold", "failed", "completed", "entered-in-error",
    ),
    "http://hl7.org/fhir/ValueSet/encounter-status": (
        "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
        "entered-in-error", "unknown",
    ),
}


@dataclass
class Expansion:
    url: str
    version: str = ""
    status: str = "complete"  # complete | partial (some includes unavailable) | not-expandable
    reason: str = ""  # why not expandable (English, for the report)
    codes: dict[str, set[str]] = field(default_factory=dict)  # system -> codes
    source: list[str] = field(default_factory=list)  # where the codes came from
    notes: list[str] = field(default_factory=list)  # defect decisions applied (defects.py ids)

    @property
    def expandable(self) -> bool:
        """Complete: a code outside it is surely not in the value set."""
        return self.status == "complete"

    @property
    def usable(self) -> bool:
        """Complete or partial (a union missing some parts): a code inside it is surely in."""
        return self.status in ("complete", "partial")

    def pairs(self) -> set[tuple[str, str]]:
        return {(s, c) for s, codes in self.codes.items() for c in codes}

    def contains(self, system: str | None, code: str) -> bool:
        if system is None:  # a bare `code` element: the system is implied by the binding
            return any(code in codes for codes in self.codes.values())
        return code in self.codes.get(system, ())

    def to_json(self) -> dict:
        out = {"url": self.url, "version": self.version, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        out["codes"] = {s: sorted(c) for s, c in sorted(self.codes.items())}
        out["source"] = sorted(set(self.source))
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Expansion:
        return cls(
            url=data["url"],
            version=data.get("version", ""),
            status=data["status"],
            reason=data.get("reason", ""),
            codes={s: set(c) for s, c in data.get("codes", {}).items()},
            source=list(data.get("source", [])),
            notes=list(data.get("notes", [])),
        )


class _NotExpandable(Exception):
    pass


def _serafin_codes(root: str) -> set[str]:
    return {c.code for c in nomenclature() if c.code == root or c.code.startswith(root + ".")}


class Terminology:
    """Expands value sets from a PackageSet plus the project's own SERAFIN-PH data."""

    def __init__(self, packages: PackageSet, override=None):
        """`override(url, faithful, terminology) -> Expansion`: the project's documented departures
        from the published value sets (defects.py), applied to nested value sets too."""
        self.packages = packages
        self.override = override
        self._cache: dict[str, Expansion] = {}

    # --- code systems -------------------------------------------------------------------------
    def _code_system(self, system: str) -> tuple[dict[str, str | None], str]:
        """code -> parent code (None at the top), and where it came from."""
        if system == SERAFIN_SYSTEM:
            return {c.code: c.parent for c in nomenclature()}, "relais:mappings/serafin"
        found = self.packages.resolve(system, "CodeSystem")
        if found is None:
            raise _NotExpandable(f"CodeSystem {system} is not in the loaded packages")
        cs, package = found
        if cs.get("content") != "complete":
            raise _NotExpandable(f"CodeSystem {system} has content '{cs.get('content')}' in {package.label}")
        out: dict[str, str | None] = {}

        def walk(concepts, parent):
            for concept in concepts or ():
                out[concept["code"]] = parent
                walk(concept.get("concept"), concept["code"])

        walk(cs.get("concept"), None)
        for concept in _flat(cs.get("concept")):  # `parent` property (flat CodeSystems)
            for prop in concept.get("property", ()):
                if prop.get("code") == "parent" and "valueCode" in prop:
                    out[concept["code"]] = prop["valueCode"]
        return out, package.label

    # --- value sets ---------------------------------------------------------------------------
    def expand(self, canonical: str) -> Expansion:
        url, _, version = canonical.partition("|")
        key = canonical
        if key not in self._cache:
            try:
                self._cache[key] = self._expand(url, version, ())
            except _NotExpandable as exc:
                self._cache[key] = Expansion(url=url, version=version, status="not-expandable", reason=str(exc))
        return self._cache[key]

    def _expand(self, url: str, version: str, stack: tuple[str, ...]) -> Expansion:
        result = self._faithful(url, version, stack)
        return self.override(url, result, self) if self.override else result

    def _faithful(self, url: str, version: str, stack: tuple[str, ...]) -> Expansion:
        if url in stack:
            raise _NotExpandable(f"ValueSet {url} includes itself")
        if url in SERAFIN_VALUE_SETS:
            root, jdv = SERAFIN_VALUE_SETS[url]
            return Expansion(
                url=url,
                version=nomenclature().value_set_version,
                codes={SERAFIN_SYSTEM: _serafin_codes(root)},
                source=[f"relais:mappings/serafin ({jdv} {nomenclature().value_set_version})"],
            )
        found = self.packages.resolve(f"{url}|{version}" if version else url, "ValueSet")
        if found is None and version:
            found = self.packages.resolve(url, "ValueSet")
        if found is None:
            raise _NotExpandable(f"ValueSet {url} is not in the loaded packages")
        vs, package = found
        compose = vs.get("compose")
        if not compose:
            raise _NotExpandable(f"ValueSet {url} has no compose in {package.label}")
        result = Expansion(url=url, version=vs.get("version", ""), source=[package.label])
        included: set[tuple[str, str]] = set()
        missing: list[str] = []
        for inc in compose.get("include", ()):
            try:
                included |= self._include(inc, result, stack + (url,))
            except _NotExpandable as exc:
                missing.append(str(exc))  # the other includes still give codes that are surely in
        if missing and not included:
            raise _NotExpandable("; ".join(missing))
        for exc in compose.get("exclude", ()):
            included -= self._include(exc, result, stack + (url,))  # an unknown exclude: nothing is sure
        for system, code in included:
            result.codes.setdefault(system, set()).add(code)
        if missing:
            result.status = "partial"
            result.reason = "; ".join(missing)
        return result

    def _include(self, inc: dict, result: Expansion, stack: tuple[str, ...]) -> set[tuple[str, str]]:
        selected: set[tuple[str, str]] | None = None
        system = inc.get("system")
        if system:
            if inc.get("concept"):
                selected = {(system, c["code"]) for c in inc["concept"]}
            else:
                concepts, source = self._code_system(system)
                result.source.append(source)
                codes = set(concepts)
                for flt in inc.get("filter", ()):
                    codes &= _filter(concepts, flt, system)
                selected = {(system, c) for c in codes}
        for vs_url in inc.get("valueSet", ()):
            vs_url, _, vs_version = vs_url.partition("|")
            inner = self._expand(vs_url, vs_version, stack)
            result.source.extend(inner.source)
            result.notes.extend(n for n in inner.notes if n not in result.notes)
            if not inner.expandable:  # only a known part: what it holds is surely in
                result.status, result.reason = "partial", inner.reason
            pairs = inner.pairs()
            # FHIR R4: several value sets in one include are INTERSECTED (and with `system`).
            selected = pairs if selected is None else selected & pairs
        return selected or set()


def _flat(concepts):
    for concept in concepts or ():
        yield concept
        yield from _flat(concept.get("concept"))


def _filter(concepts: dict[str, str | None], flt: dict, system: str) -> set[str]:
    prop, op, value = flt.get("property"), flt.get("op"), flt.get("value")
    if prop != "concept" and not (op == "=" and prop == "code"):
        raise _NotExpandable(f"filter {prop} {op} {value} on {system} is not supported offline")
    if op == "=":
        return {value} & set(concepts)
    if op not in ("is-a", "descendent-of"):
        raise _NotExpandable(f"filter {prop} {op} {value} on {system} is not supported offline")
    children: dict[str, list[str]] = {}
    for code, parent in concepts.items():
        if parent is not None:
            children.setdefault(parent, []).append(code)
    out, todo = set(), [value] if value in concepts else []
    while todo:
        code = todo.pop()
        out.add(code)
        todo.extend(children.get(code, ()))
    if op == "descendent-of":
        out.discard(value)
    return out
