"""Validate a FHIR resource or Bundle: base R4 structure, then the declared (or given) profiles.

Order of the checks, for each resource:
1. base structure (structure.py: compiled from the fhir.resources R4B models, checked without them;
   `structure="models"` checks with the models themselves, `structure=False` not at all);
2. one native pass over the JSON: invariants ele-1 / ext-1 and the references it holds;
3. each profile of `meta.profile` (or the one given) from the compiled rule set (rules.py): per
   element cardinality, fixed / pattern values, choice types, required bindings (offline
   expansions), reference targets, slices (discriminators, slice cardinality, closed and ordered
   slicing), invariants (FHIRPath, compiled once); extensions are checked against their own
   definition when the rule set has it;
4. for a Bundle: every entry against its own `meta.profile`, references resolved inside the Bundle
   (`fullUrl`, `urn:uuid:`, `Type/id`), and each transaction / batch entry's `request`.

Locations are FHIRPath (`Bundle.entry[2].resource.identifier[0].system`); each problem is
reported once; its source is the profile canonical with its version (`…/tddui-careplan-projet-
personnalise|2.2.0`), the base FHIR version, or the pinned package.
"""

from __future__ import annotations

import orjson

from gateway.conformance.fhir import defects
from gateway.conformance.fhir.fhirpath import NATIVE, TRIVIAL_WITHOUT_CONTAINED, FhirPath, choice_values, decider
from gateway.conformance.fhir.rules import RuleSet
from gateway.conformance.fhir.structure import check_structure, compiled, described
from gateway.conformance.fhir.walk import CLEAN_BYTES, CLEAN_MAX, Plans  # noqa: F401 (CLEAN_*: tests)
from gateway.model.problem import Problem, Severity

ELEMENT_SOURCE = "http://hl7.org/fhir/StructureDefinition/Element|4.0.1"
EXTENSION_SOURCE = "http://hl7.org/fhir/StructureDefinition/Extension|4.0.1"
BUNDLE_SOURCE = "http://hl7.org/fhir/StructureDefinition/Bundle|4.0.1"
_EXT_KEYS = ("extension", "modifierExtension")
_E, _W, _I = Severity.error, Severity.warning, Severity.information
# Prepared fields that only save work: the walk gives the same problems without them (tested in
# tests/test_fhir_profile_speed.py by stripping them).
FAST_FIELDS = ("_coded", "_pure", "_direct", "_uncontained", "_inv", "_decide", "_slice_bounds")
# invariants that hold on any focus without contained resources (their published expressions)
_UNCONTAINED = {"dom-2", "dom-4", "dom-5"}
WALKS_MAX = 1024  # walks of whole resources remembered per validator (then forgotten all at once)
WALKS_BYTES = 8192  # of resources at most this long (JSON)
WALKS_RETRY = 32  # a profile whose resources are replayed less than once in 8 walks: tried once in 32


class _Run:
    """State of one validation: problems (deduplicated), references met, notes already given."""

    __slots__ = ("problems", "seen", "refs", "notes", "index", "entry_url", "applied", "tried", "rec")

    def __init__(self):
        self.problems: list[Problem] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.refs: list[tuple[str, str, str | None]] = []
        self.notes: set[str] = set()
        self.index: _BundleIndex | None = None
        self.entry_url: str | None = None
        self.applied: set[tuple[int, str]] = set()
        self.tried = 0  # problems raised, repeated ones included: unchanged over a walk means clean
        self.rec: _Recording | None = None  # what the walk of a resource reads besides the resource

    def add(self, location: str, rule: str, fr: str, en: str, severity: Severity, source: str) -> None:
        self.tried += 1
        if self.rec is not None:
            self.rec.calls.append((location, rule, fr, en, severity, source))
        key = (location, rule, fr)
        if key in self.seen:
            return
        self.seen.add(key)
        self.problems.append(
            Problem(location=location, rule=rule, message=fr, message_en=en, severity=severity, source=source)
        )

    def once(self, note: str) -> bool:
        if self.rec is not None:
            self.rec.notes.add(note)
        if note in self.notes:
            return False
        self.notes.add(note)
        return True


class _Recording:
    """During the walk of a resource against a profile: every problem raised (repeated ones included),
    the notes looked up, and each reference whose target was checked with what it found there."""

    __slots__ = ("calls", "notes", "targets")

    def __init__(self):
        self.calls: list[tuple] = []
        self.notes: set[str] = set()
        self.targets: list[tuple[str, object]] = []


EXTERNAL = object()
CONTAINED = object()


class _BundleIndex:
    def __init__(self, bundle: dict):
        self.by_url: dict[str, dict] = {}
        self.by_type_id: dict[tuple[str, str], dict] = {}
        for entry in bundle.get("entry") or ():
            if not isinstance(entry, dict):
                continue
            res = entry.get("resource")
            if not isinstance(res, dict):
                continue
            full = entry.get("fullUrl")
            if isinstance(full, str):
                self.by_url[full] = res
            if res.get("id") and res.get("resourceType"):
                self.by_type_id[(res["resourceType"], res["id"])] = res
        self._facts: dict[int, tuple] = {}  # id(resource) → facts(resource)

    def facts(self, target: dict) -> tuple:
        """What _target reads of a resource of the Bundle, once per run: its type and declared
        profiles (what a replayed walk compares: `found`), and those canonicals without version."""
        known = self._facts.get(id(target))
        if known is None:
            profiles = _profiles(target)
            known = self._facts[id(target)] = (
                (target.get("resourceType"), tuple(profiles)), frozenset(p.partition("|")[0] for p in profiles)
            )
        return known

    def found(self, target) -> object:
        """What _target reads where a reference leads: a resource's facts()[0], else the answer of
        resolve() itself (EXTERNAL, CONTAINED, None)."""
        return self.facts(target)[0] if isinstance(target, dict) else target

    def resolve(self, ref: str, base_url: str | None):
        """The resource `ref` designates in the Bundle, EXTERNAL, CONTAINED or None (unresolved)."""
        if ref.startswith("#"):
            return CONTAINED
        if ref.startswith("urn:"):
            return self.by_url.get(ref)
        if "://" in ref:
            return self.by_url.get(ref, EXTERNAL)
        if "?" in ref:
            return EXTERNAL  # conditional reference (`Patient?identifier=…`): the server resolves it
        parts = ref.split("/")
        if len(parts) >= 2:
            rtype, rid = parts[0], parts[1]
            if base_url and "://" in base_url:
                # FHIR "resolving references in Bundles": relative to the entry's RESTful base
                segments = base_url.split("/")
                if len(segments) >= 3:
                    found = self.by_url.get("/".join(segments[:-2] + [rtype, rid]))
                    if found is not None:
                        return found
            return self.by_type_id.get((rtype, rid))
        return None


def _prepare(node: dict) -> None:
    """Derived fields computed once per rule set: presence test, choice types, slice index."""
    name = node["name"]
    if name.endswith("[x]"):
        node["_prefix"] = name[:-3]
        if "types" in node:
            node["_types"] = {t.lower() for t in node["types"]}
    else:
        node["_prefix"] = None
        node["_under"] = "_" + name
    slices = node.get("slices") or ()
    node["_needed"] = bool(node.get("min")) or any(s.get("min") for s in slices)
    # what a value's walk has to do (walk.py), decided once: checks on the value itself, profiles to apply, children
    node["_checks"] = any(k in node for k in ("_types", "fixed", "pattern", "binding", "targetTypes", "constraints"))
    node["_profiles"] = bool(node.get("profiles")) and not node.get("resource") and name not in _EXT_KEYS
    node["_kids"] = () if node.get("resource") else tuple(node.get("children", ()))
    for child in node.get("children", ()):
        _prepare(child)
    for s in slices:
        _prepare(s)
    # children that can be skipped when absent, without a call: (name, _name or None when a choice or
    # needed, node, True when one value of it goes straight to its checks: see walk.py)
    node["_kidspecs"] = tuple(
        (c["name"], None if c["_prefix"] is not None or c["_needed"] else c["_under"], c,
         c["_prefix"] is None and c["_single"])
        for c in node["_kids"]
    )
    matches = [s.get("match") or [] for s in slices]
    if slices and all(len(m) == 1 for m in matches):
        first = matches[0][0]
        same = all(m[0]["type"] == first["type"] and m[0].get("steps") == first.get("steps") for m in matches)
        exact = first["type"] == "profile" or (
            first["type"] in ("value", "pattern") and all(
                m[0].get("mode") in ("fixed", "pattern") and isinstance(m[0].get("value"), str) for m in matches
            )
        )
        if same and exact and first.get("steps") is not None:
            table: dict[str, list] = {}
            for s, m in zip(slices, matches):
                values = m[0]["value"] if first["type"] == "profile" else [m[0]["value"]]
                for value in values:
                    table.setdefault(value, []).append(s)
            node["_index"] = (first["steps"], table)
            node["_direct"] = True  # a slice found in the table matches: its discriminator is that value
    if slices and "_index" not in node:
        # slices told apart by a coded pattern ({"coding": [{system, code}]}): a slice can only match
        # a value holding that coding, so the others are skipped without evaluating them
        keys, steps = [], None
        for m in matches:
            key, sure = None, False
            if len(m) == 1 and m[0]["type"] in ("pattern", "value") and m[0].get("mode") in ("pattern", "fixed"):
                value = m[0].get("value")
                coding = value.get("coding") if isinstance(value, dict) else None
                first_coding = coding[0] if isinstance(coding, list) and coding else None
                if (isinstance(first_coding, dict) and isinstance(first_coding.get("system"), str)
                        and isinstance(first_coding.get("code"), str) and m[0].get("steps") is not None
                        and (steps is None or m[0]["steps"] == steps)):
                    key, steps = (first_coding["system"], first_coding["code"]), m[0]["steps"]
                    # {"coding": [{system, code}]} as a pattern: holding that coding is matching it
                    sure = m[0].get("mode") == "pattern" and value == {"coding": [{"system": key[0], "code": key[1]}]}
            keys.append((key, sure))
        if steps is not None:
            node["_coded"] = (steps, tuple(keys))
    if "binding" in node:
        node["_vs"] = _short(node["binding"])
    node["_ext"] = name in _EXT_KEYS
    for c in node.get("constraints", ()):
        key = c["key"]
        published = key in _UNCONTAINED and NATIVE[key][0] == c["expression"]
        c["_uncontained"] = published or key in TRIVIAL_WITHOUT_CONTAINED
        c["_decide"] = decider(key, c["expression"])
    # the invariants to evaluate: (all of them, those not holding by themselves without contained
    # resources); a slice's value is walked right after the sliced element's, at the same place: an
    # invariant both declare alike gives the same problem, already reported (Bundle.entry's bdl-5…)
    node["_inv"] = _invariants(node.get("constraints", ()))
    declared = {_invariant_key(c) for c in node["_inv"][0]}
    for s in slices:
        s["_inv"] = _invariants([c for c in s["_inv"][0] if _invariant_key(c) not in declared])
    node["_slice_bounds"] = tuple(
        (id(s), s.get("min") or 0, s.get("max"), s) for s in slices if s.get("min") or s.get("max") is not None
    )
    mn, mx = node.get("min"), node.get("max")
    node["_bounds"] = (mn, mx, node.get("slices"))
    node["_single"] = not name.startswith("_") and not ((mn and 1 < mn) or (mx is not None and 1 > mx) or slices)


def _all_constraints(node: dict):
    yield from node.get("constraints", ())
    for child in (*node.get("children", ()), *(node.get("slices") or ())):
        yield from _all_constraints(child)


def _invariants(constraints) -> tuple[tuple, tuple]:
    return tuple(constraints), tuple(c for c in constraints if not c["_uncontained"])


def _invariant_key(c: dict) -> tuple:
    return c["key"], c["expression"], c.get("human"), c.get("severity"), bool(c.get("bestPractice"))


def _mark_pure(node: dict, rules: RuleSet) -> frozenset | None:
    """The value-set notes the walk of a value under `node` may give, when that walk depends on the
    value alone (no invariant, reference target, profile, extension definition), else None. `_pure`
    keeps them on the nodes worth remembering: a clean answer holds again once the run gave them."""
    notes, pure = set(), True
    for child in (*node["_kids"], *(node.get("slices") or ())):
        below = _mark_pure(child, rules)
        if below is None:
            pure = False
        else:
            notes |= below
    if node.get("constraints") or "targetTypes" in node or node["_profiles"] or node["_ext"]:
        pure = False
    if "binding" in node:
        expansion = rules.expansion(node["binding"])
        if expansion is None or not expansion.usable:
            pure = False
        else:
            notes.update(expansion.notes)
    worth = "binding" in node or "pattern" in node or "fixed" in node or node["_kids"] or node.get("slices")
    result = frozenset(notes) if pure else None
    node["_pure"] = result if worth else None
    return result


def _matches(instance, pattern) -> bool:
    if isinstance(pattern, dict):
        return isinstance(instance, dict) and all(_matches(instance.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(instance, list) and all(any(_matches(i, p) for i in instance) for p in pattern)
    return instance == pattern


_choice_values = choice_values


def _step(values: list, name: str) -> list:
    out = []
    for x in values:
        if not isinstance(x, dict):
            continue
        got = x.get(name)
        if got is None:
            pairs = _choice_values(x, name)
            got = [v for _, v in pairs] if pairs else None
        if isinstance(got, list):
            out.extend(got)
        elif got is not None:
            out.append(got)
    return out



def _held_codings(v, steps) -> set[tuple[str, str]]:
    """The (system, code) pairs of the codings found at `steps` from v (a slice's coded discriminator)."""
    held = set()
    for x in _evaluate_steps(v, steps):
        codings = x.get("coding") if isinstance(x, dict) else None
        if isinstance(codings, list):
            for c in codings:
                if isinstance(c, dict):
                    system, code = c.get("system"), c.get("code")
                    if isinstance(system, str) and isinstance(code, str):
                        held.add((system, code))
    return held


def _tally(assigned: list) -> dict[int, int]:
    """How many values each slice (by id) was given; None (no slice) not counted."""
    counts: dict[int, int] = {}
    for c in assigned:
        if c is not None:
            counts[id(c)] = counts.get(id(c), 0) + 1
    return counts


def _named_slice(table: dict, x) -> dict | None:
    """The slice an exact discriminating value names: a string's own, or a resource's first declared
    profile's; None when it names none."""
    if isinstance(x, str):
        hit = table.get(x)
        return hit[0] if hit else None
    for p in _profiles(x):
        hit = table.get(p.partition("|")[0])
        if hit:
            return hit[0]
    return None


def _evaluate_steps(value, steps: list) -> list:
    current = [value]
    for step in steps:
        if step[0] in ("this", "ofType"):
            continue
        if step[0] == "ext":
            current = [
                e
                for x in current
                if isinstance(x, dict)
                for e in (x.get("extension") or ())
                if isinstance(e, dict) and e.get("url") == step[1]
            ]
        else:
            current = _step(current, step[1])
    return current


def _codings(value) -> tuple[list[tuple[str | None, str]], bool]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Quantity; True for a CodeableConcept."""
    if isinstance(value, str):
        return [(None, value)], False
    if not isinstance(value, dict):
        return [], False
    if "coding" in value or ("text" in value and "code" not in value):
        pairs = [
            (c.get("system"), c["code"]) for c in value.get("coding") or () if isinstance(c, dict) and c.get("code")
        ]
        return pairs, True
    return ([(value.get("system"), value["code"])] if value.get("code") else []), False


def _show(pairs: list[tuple[str | None, str]]) -> str:
    return ", ".join(f"{s}|{c}" if s else c for s, c in pairs)


def _profiles(resource: dict) -> list[str]:
    """The canonicals of `meta.profile` (a null keeps the place of a `_profile` extension)."""
    return [p for p in (resource.get("meta") or {}).get("profile") or () if isinstance(p, str)]


def _short(canonical: str) -> str:
    return canonical.partition("|")[0].rsplit("/", 1)[-1]


class Validator:
    def __init__(
        self,
        rules: RuleSet,
        *,
        structure: bool | str = True,
        closed_references: bool = False,
        require_profiles: bool = False,
        best_practice: bool = True,
    ):
        self.rules = rules
        self.structure = structure
        self.closed_references = closed_references
        self.require_profiles = require_profiles
        self.best_practice = best_practice
        self.fhirpath = FhirPath()
        self.source = f"{rules.main['id']}|{rules.main['version']}"
        self._clean: set[tuple] = set()
        # the structure scan stands for the native pass where that pass would find nothing (a fast
        # path: tests/test_fhir_profile_speed.py compares with it off)
        self.scan_shortcut = True
        # walks of whole resources replayed (_walk_resource; tests compare with it off), unless an
        # invariant of the rule set reads the clock
        self._walks: dict[tuple, tuple] = {}
        self._tries: dict[str, list[int]] = {}
        self.remember_walks = not any(
            f"{fn}()" in c["expression"] for p in rules.profiles.values() for c in _all_constraints(p["root"])
            for fn in ("now", "today", "timeOfDay")
        )
        for profile in rules.profiles.values():
            _prepare(profile["root"])
            _mark_pure(profile["root"], rules)
        self._plans = Plans(self)  # the walk, compiled per element node on first use
        self._roots: dict[str, tuple] = {}  # profile url → (source, the walk of its root: Plans.value)

    # --- entry points -------------------------------------------------------------------------
    def validate(self, resource: dict, profile: str | None = None) -> list[Problem]:
        run = _Run()
        if not isinstance(resource, dict):
            run.add("$", "fhir-structure", "une ressource FHIR (objet JSON) est attendue",
                    "a FHIR resource (JSON object) is expected", _E, self.source)
            return run.problems
        rtype = resource.get("resourceType")
        root = rtype if isinstance(rtype, str) and rtype else "$"
        malformed = False
        tidy = None  # references met by the structure scan, when it saw nothing for ele-1 / ext-1
        if self.structure:
            engine = self.structure if isinstance(self.structure, str) else "compiled"
            structure = compiled() if engine == "compiled" else None
            found = structure.scan(resource) if structure is not None else None
            if found is None:
                for p in check_structure(resource, root, engine=engine):
                    run.add(p.location, p.rule, p.message, p.message_en, p.severity, p.source)
                    malformed = True
            elif None not in found and self.scan_shortcut:
                tidy = found
        try:
            if rtype == "Bundle":
                self._bundle(run, resource, profile, tidy)
            else:
                if tidy is None:  # (else the native pass would find nothing)
                    self._universal(run, resource, root)
                self._declared_profiles(run, resource, root, profile)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError):
            if not malformed:
                raise  # on a well-formed resource, a failure is a bug of the validator
            # the profile checks read what the base structure promises (a list here, a string there);
            # on a resource the structure check refuses, they stop where that promise is broken
            run.add(root, "profiles-not-completed",
                    "vérifications des profils interrompues : la structure de base est invalide (erreurs ci-dessus)",
                    "profile checks stopped: the base structure is invalid (errors above)", _I, self.source)
        return run.problems

    # --- resources and profiles ---------------------------------------------------------------
    def _declared_profiles(self, run: _Run, res: dict, loc: str, explicit: str | None) -> None:
        if explicit:
            canonicals = [(explicit, -1)]
        else:  # (canonical, its index in meta.profile): its location is built only for a problem
            declared = (res.get("meta") or {}).get("profile") or []
            canonicals = [(c, i) for i, c in enumerate(declared) if isinstance(c, str)]
        if not canonicals and self.require_profiles:
            run.add(f"{loc}.meta.profile", "profile-missing",
                    f"aucun profil déclaré ({res.get('resourceType')}) : chaque ressource émise doit déclarer "
                    f"son profil {self.rules.main['id']} {self.rules.main['version']}",
                    f"no profile declared ({res.get('resourceType')}): every emitted resource must declare its "
                    f"{self.rules.main['id']} {self.rules.main['version']} profile", _E, self.source)
        for canonical, i in canonicals:
            profile, why = self.rules.profile(canonical)
            if profile is not None and profile["type"] == res.get("resourceType"):
                self._apply(run, res, profile, loc, res)
                continue
            where = loc if i < 0 else f"{loc}.meta.profile[{i}]"
            if profile is None:
                pinned = f"{self.rules.main['id']} {self.rules.main['version']}"
                if why == "version":
                    fr = f"version de profil non disponible : {canonical} (profils épinglés : {pinned})"
                    en = f"profile version not available: {canonical} (pinned profiles: {pinned})"
                else:
                    fr = f"profil inconnu : {canonical} (absent de {pinned} et de ses dépendances)"
                    en = f"unknown profile: {canonical} (not in {pinned} or its dependencies)"
                run.add(where, "profile-unknown", fr, en, _E, self.source)
            else:
                run.add(where, "profile-mismatch",
                        f"le profil {profile['name']} s'applique à {profile['type']}, pas à {res.get('resourceType')}",
                        f"profile {profile['name']} applies to {profile['type']}, not {res.get('resourceType')}",
                        _E, f"{profile['url']}|{profile['version']}")

    def _apply(self, run: _Run, value: dict, profile: dict, loc: str, res: dict) -> None:
        url = profile["url"]
        key = (id(value), url)
        if key in run.applied:
            return
        run.applied.add(key)
        try:
            src, root = self._roots[url]
        except KeyError:
            src = f"{url}|{profile['version']}"
            root = self._plans.value(profile["root"], src)
            self._roots[url] = (src, root)
        if value is res and run.rec is None and self.remember_walks and res.get("resourceType") != "Bundle":
            self._walk_resource(run, value, profile, loc, src)
        elif root is not None:  # (what _root does)
            root(run, value, loc, res, None)

    def _walk_resource(self, run: _Run, res: dict, profile: dict, loc: str, src: str) -> None:
        """The walk of a resource against a profile, replayed when the same resource (the same JSON:
        a Practitioner, an Organization in every Bundle a platform sends) was walked before and what
        the walk read besides it is unchanged: the targets of its references, the notes it relied on
        having been given. A walk that gave a note is not remembered (it is not the same in a run that
        already gave it). Problems are replayed in order, moved to this resource's location.
        A profile whose resources are rarely met again (Tasks, Goals: one plan's own) is tried only
        every WALKS_RETRY walks: the JSON and the lookup are not paid for nothing."""
        tries = self._tries.get(profile["url"])
        if tries is None:
            tries = self._tries[profile["url"]] = [0, 0]  # walks, replays
        tries[0] += 1
        if tries[0] > WALKS_RETRY and tries[1] * 8 < tries[0] and tries[0] % WALKS_RETRY:
            self._root(run, res, profile, loc, src)
            return
        try:
            text = orjson.dumps(res)
        except TypeError:
            text = None
        if text is None or len(text) > WALKS_BYTES:
            self._root(run, res, profile, loc, src)
            return
        key = (profile["url"], run.index is None, text)
        known = self._walks.get(key)
        if known is not None:
            calls, notes, targets = known
            if notes <= run.notes and all(run.index.found(run.index.resolve(ref, run.entry_url)) == found
                                          for ref, found in targets):
                tries[1] += 1
                for where, rule, fr, en, severity, source in calls:
                    run.add(loc + where, rule, fr, en, severity, source)
                return
        given = len(run.notes)
        run.rec = rec = _Recording()
        try:
            self._root(run, res, profile, loc, src)
        finally:
            run.rec = None
        if len(run.notes) != given or not all(c[0].startswith(loc) for c in rec.calls):
            return
        if len(self._walks) >= WALKS_MAX:
            self._walks.clear()
        cut = len(loc)
        self._walks[key] = ([(c[0][cut:], *c[1:]) for c in rec.calls], frozenset(rec.notes), rec.targets)

    # --- element walk (compiled: walk.py) ------------------------------------------------------
    def _root(self, run: _Run, res: dict, profile: dict, loc: str, src: str) -> None:
        value = self._plans.value(profile["root"], src)
        if value is not None:
            value(run, res, loc, res, None)

    def _extension(self, run: _Run, v: dict, vloc: str, res: dict) -> None:
        profile = self.rules.profiles.get(v.get("url"))
        if profile is not None and profile["type"] == "Extension":
            self._apply(run, v, profile, vloc, res)

    def _compile_checks(self, node: dict, src: str):
        """The checks of a value under one node (type, fixed, pattern, binding, reference target,
        invariants, in that order), what applies there decided once."""
        types = node.get("_types")
        cut = len(node["name"]) - 3
        ident = node["id"]
        has_fixed, fixed = "fixed" in node, node.get("fixed")
        has_pattern, pattern = "pattern" in node, node.get("pattern")
        binding = self._binding if "binding" in node else None
        target = self._target if "targetTypes" in node else None
        inv = node["_inv"]
        if inv is None:
            every = some = tuple(node.get("constraints", ()))
        else:  # (_invariant skips the others without contained resources)
            every, some = inv
        if not self.best_practice:  # (_invariant would skip them)
            every = tuple(c for c in every if not c.get("bestPractice"))
            some = tuple(c for c in some if not c.get("bestPractice"))
        if inv is None:
            some = every
        invariant, pattern_problem = self._invariant, self._pattern_problem

        def check(run, v, vloc, res, key):
            if types is not None and key and key[cut:].lower() not in types:
                run.add(vloc, "type-not-allowed",
                        f"type non autorisé : {key} ({ident} accepte {', '.join(node['types'])})",
                        f"type not allowed: {key} ({ident} accepts {', '.join(node['types'])})", _E, src)
            if has_fixed and v != fixed:
                found = repr(_constrained(v, fixed))[:200]
                run.add(vloc, "fixed-value",
                        f"valeur imposée par le profil : {fixed!r} ({ident}), trouvé {found}",
                        f"value fixed by the profile: {fixed!r} ({ident}), found {found}", _E, src)
            if has_pattern and v != pattern and not _matches(v, pattern):
                pattern_problem(run, v, node, vloc, src)
            if binding is not None:
                binding(run, v, node, vloc, src)
            if target is not None and run.index is not None and isinstance(v, dict):
                target(run, v, node, vloc, src)
            if every:
                for constraint in (every if type(v) is dict and v.get("contained") else some):
                    invariant(run, constraint, v, vloc, res, src)

        return check

    def _pattern_problem(self, run: _Run, v, node: dict, vloc: str, src: str) -> None:
        renamed = [
            (c.get("system"), defects.renamed_system(c.get("system")))
            for c in (v.get("coding") or () if isinstance(v, dict) else ())
            if isinstance(c, dict) and defects.renamed_system(c.get("system"))
        ]
        found = repr(_constrained(v, node["pattern"]))[:200]
        fr = f"valeur non conforme au motif du profil ({node['id']}) : attendu {node['pattern']!r}, trouvé {found}"
        en = f"value does not match the profile's pattern ({node['id']}): expected {node['pattern']!r}, found {found}"
        if renamed:
            old, new = renamed[0]
            fr += f" — {old} a été renommé {new} en TDDUI 2.2.0 (défaut §11.3)"
            en += f" — {old} was renamed {new} in TDDUI 2.2.0 (defect §11.3)"
        run.add(vloc, "pattern-value", fr, en, _E, src)

    # --- slicing ------------------------------------------------------------------------------
    def _compile_assign(self, node: dict, src: str):
        """The slice of each value of one sliced node, then its slicing rules. Where one name tells the
        slices apart exactly (Bundle.entry by its resource's profile, extensions by url), a value
        holding a string or an object there is looked up at once (_choose's index lookup on it);
        any other value goes to _choose."""
        index, direct = node.get("_index"), node.get("_direct")
        steps = index[0] if index is not None else None
        name = steps[0][1] if direct and len(steps) == 1 and steps[0][0] == "name" else None
        table = index[1] if name is not None else None
        choose, rules = self._compile_choose(node), self._compile_slicing(node, src)

        def assign(run, values, loc, here):
            assigned = []
            for key, v in values:
                if name is not None and isinstance(v, dict):
                    x = v.get(name)
                    if type(x) is str:  # (_named_slice of a string)
                        hit = table.get(x)
                        assigned.append(hit[0] if hit else None)
                        continue
                    if isinstance(x, (str, dict)):
                        assigned.append(_named_slice(table, x))
                        continue
                assigned.append(choose(key, v))
            rules(run, values, assigned, loc, here)
            return assigned

        return assign

    def _compile_choose(self, node: dict):
        """choose(key, v): _choose for one node, its lists read once where no index applies."""
        if node.get("_index") is not None:
            choose = self._choose
            return lambda key, v: choose(node, key, v)
        coded = node.get("_coded")
        discriminates = self._discriminates
        if coded is not None:
            steps, keys = coded
            pairs = tuple((s, k, exact, tuple(s.get("match", ()))) for s, (k, exact) in zip(node["slices"], keys))
        else:
            pairs = tuple((s, None, False, tuple(s.get("match", ()))) for s in node["slices"])

        def choose(key, v):
            held = _held_codings(v, steps) if coded is not None else ()  # (as _choose)
            for s, k, exact, match in pairs:
                if k is not None and k not in held:
                    continue  # it cannot hold that coding
                if exact:
                    return s  # holding the coding is matching the pattern
                for d in match:
                    if not discriminates(v, key, d):
                        break
                else:
                    return s
            return None

        return choose

    def _choose(self, node: dict, key: str, v) -> dict | None:
        """The slice a value belongs to, or None."""
        index = node.get("_index")
        coded = node.get("_coded")
        direct = node.get("_direct")
        candidates = node["slices"]
        sure = ()
        if index is not None:  # one discriminator, exact values: look the slice up
            steps, table = index
            found = _evaluate_steps(v, steps)
            if direct and len(found) == 1 and isinstance(found[0], (str, dict)):
                return _named_slice(table, found[0])  # one value (a code, a resource): looked up at once
            if found and all(isinstance(x, str) for x in found):
                candidates = [s for x in found for s in table.get(x, ())]
                if direct:
                    return candidates[0] if candidates else None
            elif found and all(isinstance(x, dict) for x in found):
                declared = [p.partition("|")[0] for r in found for p in _profiles(r)]
                candidates = [s for x in declared for s in table.get(x, ())]
                if direct:
                    return candidates[0] if candidates else None
        elif coded is not None:
            steps, keys = coded
            held = _held_codings(v, steps)
            candidates = [s for s, (k, _) in zip(candidates, keys) if k is None or k in held]
            sure = {id(s) for s, (k, exact) in zip(node["slices"], keys) if exact and k in held}
        for s in candidates:
            if id(s) in sure or all(self._discriminates(v, key, d) for d in s.get("match", ())):
                return s
        return None

    def _compile_slicing(self, node: dict, src: str):
        """Slice cardinalities, closed and ordered slicing of one sliced node, once the values' slices
        are known: rules(run, values, assigned, loc, here). What applies is read from the node once."""
        bounds = node["_slice_bounds"]
        if bounds is None:
            bounds = [(id(s), s.get("min") or 0, s.get("max"), s) for s in node["slices"]]
        slice_counts = self._slice_counts
        slicing = node.get("slicing") or {}
        closed = slicing.get("rules") == "closed"
        order = {id(s): n for n, s in enumerate(node["slices"])} if slicing.get("ordered") else None
        many, ident = node["list"], node["id"]

        def rules(run, values, assigned, loc, here):
            if bounds:
                counts = _tally(assigned)
                for key, mn, mx, _ in bounds:
                    n = counts.get(key, 0)
                    if n < mn or (mx is not None and n > mx):  # (then _slice_counts says which)
                        slice_counts(run, node, assigned, here, src, bounds)
                        break
            if closed:
                for i, chosen in enumerate(assigned):
                    if chosen is None:
                        vloc = f"{loc}.{values[i][0]}[{i}]" if many else f"{loc}.{values[i][0]}"
                        run.add(vloc, "slice-closed",
                                f"élément hors des tranches autorisées (découpage fermé de {ident})",
                                f"element matches none of the allowed slices (closed slicing of {ident})", _E, src)
            if order is not None:
                ranks = [order[id(c)] for c in assigned if c is not None]
                if ranks != sorted(ranks):
                    run.add(here, "slice-order",
                            f"les tranches de {ident} ne sont pas dans l'ordre du profil",
                            f"the slices of {ident} are not in the profile's order", _E, src)

        return rules

    def _slice_counts(self, run: _Run, node: dict, assigned: list, here: str, src: str, bounds=None) -> None:
        if bounds is None:
            bounds = node["_slice_bounds"]
        if bounds is None:
            bounds = [(id(s), s.get("min") or 0, s.get("max"), s) for s in node["slices"]]
        counts = _tally(assigned)
        for key, mn, mx, s in bounds:
            n = counts.get(key, 0)
            if n < mn:
                run.add(here, "slice-cardinality",
                        f"tranche « {s['slice']} » de {node['id']} : {n} occurrence(s), minimum {s['min']}",
                        f"slice '{s['slice']}' of {node['id']}: {n} occurrence(s), minimum {s['min']}", _E, src)
            if mx is not None and n > mx:
                run.add(here, "slice-cardinality",
                        f"tranche « {s['slice']} » de {node['id']} : {n} occurrence(s), maximum {s['max']}",
                        f"slice '{s['slice']}' of {node['id']}: {n} occurrence(s), maximum {s['max']}", _E, src)

    def _discriminates(self, v, key: str, d: dict) -> bool:
        kind = d["type"]
        if kind == "unsupported":
            return True  # no value to discriminate on (compile warning): the slice accepts any element
        if kind == "type":
            if isinstance(v, dict) and "resourceType" in v:
                return v["resourceType"] in d["value"]
            name = key.lstrip("_")
            return any(name.lower().endswith(t.lower()) for t in d["value"])
        found = _evaluate_steps(v, d["steps"])
        if kind == "exists":
            return bool(found) == d["value"]
        if kind == "profile":
            declared = {
                p.partition("|")[0] for r in found if isinstance(r, dict) for p in _profiles(r)
            }
            return bool(declared & set(d["value"]))
        mode = d.get("mode")
        if mode == "binding":
            expansion = self.rules.expansion(d["value"])
            if expansion is None or not expansion.usable:
                return False
            return any(expansion.contains(s, c) for x in found for s, c in _codings(x)[0])
        if mode == "fixed":
            return any(x == d["value"] for x in found)
        value = d["value"]
        return any(x == value or _matches(x, value) for x in found)

    # --- terminology, references, invariants --------------------------------------------------
    def _binding(self, run: _Run, v, node: dict, vloc: str, src: str) -> None:
        expansion = self.rules.expansion(node["binding"])
        vs = node["_vs"]
        if expansion is None or not expansion.usable:
            reason = expansion.reason if expansion else "absent du jeu de règles"
            self._unverifiable(run, vs, reason, vloc, src)
            return
        for note in expansion.notes:
            if run.once(note):
                d = defects.decision(note)
                run.add(vloc, f"defect:{note}", f"{d['fr']} (défaut {d['specs']})", f"{d['en']} (defect {d['specs']})",
                        _I, src)
        pairs, concept = _codings(v)
        if not pairs:
            if concept:
                run.add(vloc, "binding-required",
                        f"aucun code : le jeu de valeurs {vs} est requis ({node['id']})",
                        f"no code: value set {vs} is required ({node['id']})", _E, src)
            return
        if any(expansion.contains(s, c) for s, c in pairs):
            return
        if not expansion.expandable:  # partial: a code outside the known part may still be valid
            self._unverifiable(run, vs, expansion.reason, vloc, src)
            return
        fr = f"code hors du jeu de valeurs requis {vs} : {_show(pairs)} ({node['id']})"
        en = f"code not in the required value set {vs}: {_show(pairs)} ({node['id']})"
        renamed = [(s, defects.renamed_system(s)) for s, _ in pairs if defects.renamed_system(s)]
        if renamed:
            fr += f" — {renamed[0][0]} a été renommé {renamed[0][1]} en TDDUI 2.2.0 (défaut §11.3)"
            en += f" — {renamed[0][0]} was renamed {renamed[0][1]} in TDDUI 2.2.0 (defect §11.3)"
        run.add(vloc, "binding-required", fr, en, _E, src)

    def _unverifiable(self, run: _Run, vs: str, reason: str, vloc: str, src: str) -> None:
        run.add(vloc, "binding-unverifiable",
                f"code non vérifiable hors ligne : le jeu de valeurs {vs} n'est pas disponible localement ({reason})",
                f"code not verifiable offline: value set {vs} is not available locally ({reason})", _I, src)

    def _target(self, run: _Run, v: dict, node: dict, vloc: str, src: str) -> None:
        ref = v.get("reference")
        if not isinstance(ref, str):
            return
        target = run.index.resolve(ref, run.entry_url)
        if not isinstance(target, dict):
            if run.rec is not None:
                run.rec.targets.append((ref, target))  # (found(): what is not a resource)
            return
        found, declared = run.index.facts(target)
        if run.rec is not None:
            run.rec.targets.append((ref, found))
        allowed = node["targetTypes"]
        rtype = found[0]
        if "Resource" not in allowed and rtype not in allowed:
            run.add(f"{vloc}.reference", "reference-target-type",
                    f"la référence {ref} désigne un(e) {rtype} ; {node['id']} attend {', '.join(allowed)}",
                    f"reference {ref} points to a {rtype}; {node['id']} expects {', '.join(allowed)}", _E, src)
            return
        targets = node.get("targets")
        if targets and declared and declared.isdisjoint(targets):
            run.add(f"{vloc}.reference", "reference-target-profile",
                    f"la ressource référencée ({ref}) ne déclare aucun des profils attendus par {node['id']}",
                    f"the referenced resource ({ref}) declares none of the profiles {node['id']} expects", _W, src)

    def _invariant(self, run: _Run, c: dict, v, vloc: str, res: dict, src: str) -> None:
        if c.get("bestPractice") and not self.best_practice:
            return
        if c["_uncontained"] and not (isinstance(v, dict) and v.get("contained")):
            return  # holds: nothing contained
        decide = c["_decide"]
        if decide is None:
            held = self.fhirpath.check(c["key"], c["expression"], v, res)
        else:
            held = decide(v, res, self.fhirpath)
        if held is None:
            if run.once(f"unevaluable:{c['key']}"):
                run.add(vloc, "invariant-unevaluable",
                        f"invariant {c['key']} non évaluable par le moteur FHIRPath : {c['expression']}",
                        f"invariant {c['key']} cannot be evaluated by the FHIRPath engine: {c['expression']}",
                        _I, src)
            return
        if not held:
            severity = _E if c.get("severity") == "error" else _W
            run.add(vloc, f"invariant:{c['key']}", f"invariant {c['key']} non respecté : {c['human']}",
                    f"invariant {c['key']} failed: {c['human']}", severity, src)

    # --- native pass: ele-1, ext-1, references ------------------------------------------------
    def _universal(self, run: _Run, node: dict, loc: str) -> None:
        refs, url = run.refs, run.entry_url
        # (object, parent location, key, index): a location is built only when something needs it
        stack = [(node, loc, None, None)]
        while stack:
            obj, parent, key, index = stack.pop()
            here = parent if key is None else None
            for k, v in obj.items():
                if type(v) is str:  # most values: only a reference matters
                    if k == "reference":
                        if here is None:
                            here = f"{parent}.{key}" if index is None else f"{parent}.{key}[{index}]"
                        refs.append((here, v, url))
                elif isinstance(v, dict):
                    if here is None:
                        here = f"{parent}.{key}" if index is None else f"{parent}.{key}[{index}]"
                    if not v or (len(v) == 1 and "id" in v):  # no key but id: ele-1
                        self._empty(run, f"{here}.{k}")
                    stack.append((v, here, k, None))
                elif isinstance(v, list):
                    ext = k in _EXT_KEYS
                    for i, x in enumerate(v):
                        if not isinstance(x, dict):
                            continue
                        if here is None:
                            here = f"{parent}.{key}" if index is None else f"{parent}.{key}[{index}]"
                        if not x or (len(x) == 1 and "id" in x):
                            self._empty(run, f"{here}.{k}[{i}]")
                        if ext and ("extension" in x) == any(y.startswith("value") for y in x):
                            run.add(f"{here}.{k}[{i}]", "invariant:ext-1",
                                    "invariant ext-1 non respecté : une extension porte soit des extensions soit une valeur, pas les deux (ni aucune)",
                                    "invariant ext-1 failed: must have either extensions or value[x], not both",
                                    _E, EXTENSION_SOURCE)
                        stack.append((x, here, k, i))
                elif k == "reference" and isinstance(v, str):
                    if here is None:
                        here = f"{parent}.{key}" if index is None else f"{parent}.{key}[{index}]"
                    refs.append((here, v, url))

    def _empty(self, run: _Run, where: str) -> None:
        run.add(where, "invariant:ele-1",
                "invariant ele-1 non respecté : un élément doit avoir une valeur ou des enfants (élément vide)",
                "invariant ele-1 failed: all FHIR elements must have a @value or children (empty element)",
                _E, ELEMENT_SOURCE)

    # --- Bundle -------------------------------------------------------------------------------
    def _bundle(self, run: _Run, bundle: dict, explicit: str | None, tidy: list | None = None) -> None:
        run.index = _BundleIndex(bundle)
        entries = bundle.get("entry") or []
        # the native pass, unless the structure scan saw nothing for ele-1 / ext-1 and every reference
        # resolves whatever the entry's base (then it would find nothing)
        if tidy is None or any(run.index.resolve(ref, None) is None for ref in tidy):
            self._universal(run, {k: v for k, v in bundle.items() if k != "entry"}, "Bundle")
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    run.entry_url = entry.get("fullUrl")
                    if not any(x != "id" for x in entry):
                        self._empty(run, f"Bundle.entry[{i}]")
                    self._universal(run, entry, f"Bundle.entry[{i}]")
            run.entry_url = None
        self._declared_profiles(run, bundle, "Bundle", explicit)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            run.entry_url = entry.get("fullUrl")
            res = entry.get("resource")
            if isinstance(res, dict):
                self._declared_profiles(run, res, f"Bundle.entry[{i}].resource", None)
            self._request(run, bundle.get("type"), entry, i)
        run.entry_url = None
        self._references(run)

    def _request(self, run: _Run, bundle_type, entry: dict, i: int) -> None:
        if bundle_type not in ("transaction", "batch"):
            return
        where = f"Bundle.entry[{i}].request"
        request = entry.get("request")
        res = entry.get("resource") if isinstance(entry.get("resource"), dict) else {}
        if not isinstance(request, dict):
            run.add(where, "bundle-request", f"entrée sans request dans un Bundle {bundle_type}",
                    f"entry without request in a {bundle_type} Bundle", _E, BUNDLE_SOURCE)
            return
        method, url = request.get("method"), request.get("url")
        rtype = res.get("resourceType")
        if not isinstance(url, str) or not rtype or method not in ("POST", "PUT", "PATCH", "DELETE"):
            return
        path = url.split("?")[0]
        parts = path.split("/")
        patch_body = method == "PATCH" and rtype in ("Parameters", "Binary")  # FHIRPath / JSON Patch
        ok = (patch_body or parts[0] == rtype) and (len(parts) == 1 if method == "POST" else len(parts) in (1, 2))
        if ok:
            return
        expected = rtype if method == "POST" else f"{rtype}/{res.get('id') or '[id]'}"
        fr = f"request.url {url!r} invalide pour {method} d'un(e) {rtype} : attendu {expected!r}"
        en = f"request.url {url!r} is not valid for {method} of a {rtype}: expected {expected!r}"
        if defects.profile_name_in_request_url(url, self.rules.profile_names):
            d = defects.decision("request-url-profile-name")
            fr += f" — c'est un nom de profil, erreur des exemples officiels TDDUI (défaut {d['specs']})"
            en += f" — this is a profile name, a mistake of the official TDDUI examples (defect {d['specs']})"
        run.add(f"{where}.url", "request-url", fr, en, _E, BUNDLE_SOURCE)

    def _references(self, run: _Run) -> None:
        for where, ref, base in run.refs:
            found = run.index.resolve(ref, base)
            if found is not None:
                continue
            internal = ref.startswith("urn:")
            severity = _E if internal or self.closed_references else _W
            if internal:
                fr = f"référence interne non résolue : {ref} ne correspond à aucun fullUrl du Bundle"
                en = f"unresolved internal reference: {ref} matches no fullUrl of the Bundle"
            else:
                fr = f"référence non résolue dans le Bundle : {ref} (aucune entrée {ref})"
                en = f"reference not resolved in the Bundle: {ref} (no entry {ref})"
            run.add(f"{where}.reference", "reference-unresolved", fr, en, severity, BUNDLE_SOURCE)


def _constrained(v, expected):
    """What of `v` a fixed value or pattern constrains (its codes, systems, profiles), never the
    rest: an Identifier's value may be an INS, a HumanName a name (personal data stays out of
    messages). Elements of another shape are described, not shown."""
    if isinstance(expected, dict):
        if not isinstance(v, dict):
            return _Shown(described(v)[0])
        return {k: _constrained(v[k], expected[k]) for k in expected if k in v}
    if isinstance(expected, list):
        if not isinstance(v, list):
            return _Shown(described(v)[0])
        return [_constrained(x, expected[0]) for x in v] if expected else _Shown(described(v)[0])
    return v if not isinstance(v, dict | list) else _Shown(described(v)[0])


class _Shown(str):
    """A description, written as it is (not quoted) by repr()."""

    def __repr__(self) -> str:
        return f"<{self}>"
