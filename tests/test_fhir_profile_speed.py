"""The profile walk's fast paths (validator.FAST_FIELDS, prepared once per rule set; the structure
scan standing for the ele-1 / ext-1 / references pass; walks of whole resources replayed) give the same problems as the walk without
them: on the fixtures' TDDUI Bundles, the conformance runner's broken
copies, the gate's reference Bundle, and random mutations of all of these (values dropped,
duplicated, swapped for other values of the same document, lists reordered)."""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from gateway.conformance.fhir import Validator, tddui_gate
from gateway.conformance.fhir import examples as ex
from gateway.conformance.fhir import validator as V
from gateway.conformance.fhir.rules import RuleSet
from gateway.model.problem import errors
from tests.test_fhir_structure_support import broken_copies, fixture_bundles

SD_PATIENT = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-patient|2.2.0"

POLICIES = [
    {"structure": False, "closed_references": True, "require_profiles": True, "best_practice": False},
    {"closed_references": True, "require_profiles": True, "best_practice": False},
    {},
]


def _strip(node: dict) -> None:
    for name in V.FAST_FIELDS:
        node[name] = None
        for constraint in node.get("constraints", ()):
            constraint[name] = None
    for child in (*node.get("children", ()), *(node.get("slices") or ())):
        _strip(child)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[Validator, Validator]]:
    """(fast, reference) validators per policy, each on its own copy of the shipped rule set."""
    data = tddui_gate().rules.data
    out = []
    for policy in POLICIES:
        fast = Validator(RuleSet(copy.deepcopy(data)), **policy)
        reference = Validator(RuleSet(copy.deepcopy(data)), **policy)
        for profile in reference.rules.profiles.values():
            _strip(profile["root"])
        reference.scan_shortcut = False
        reference.remember_walks = False
        out.append((fast, reference))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    docs = list(fixture_bundles().values()) + list(broken_copies().values())
    return docs + [orjson.loads(orjson.dumps(ex.bundle(extra_tasks=3)))]


def _answer(validator: Validator, doc) -> list:
    try:
        return [p.model_dump(mode="json") for p in validator.validate(copy.deepcopy(doc))]
    except Exception as exc:  # the same failure is the same answer
        return [type(exc).__name__]


def _same(pairs, doc) -> None:
    for fast, reference in pairs:
        assert _answer(fast, doc) == _answer(reference, doc)


def _places(doc):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield doc, k
            yield from _places(v)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield doc, i
            yield from _places(v)


def _strings(doc, out: list) -> list:
    if isinstance(doc, dict):
        for v in doc.values():
            _strings(v, out)
    elif isinstance(doc, list):
        for v in doc:
            _strings(v, out)
    elif isinstance(doc, str):
        out.append(doc)
    return out


def _mutate(doc: dict, rnd: random.Random) -> dict:
    doc = copy.deepcopy(doc)
    container, key = rnd.choice(list(_places(doc)))
    value = container[key]
    kind = rnd.choice(["drop", "duplicate", "edit", "swap", "swap", "empty", "number", "reverse", "wrap"])
    if kind == "drop":
        del container[key]
    elif kind == "duplicate" and isinstance(container, list):
        container.append(copy.deepcopy(value))
    elif kind == "edit" and isinstance(value, str):
        container[key] = value + "x"
    elif kind == "swap":  # another value of the document: codes, systems, urls, references
        container[key] = rnd.choice(_strings(doc, []) or [""])
    elif kind == "empty":
        container[key] = {} if isinstance(value, dict) else []
    elif kind == "number":
        container[key] = 3
    elif kind == "reverse" and isinstance(value, list):
        value.reverse()
    elif kind == "wrap":
        container[key] = [value]
    return doc


def test_the_fast_fields_are_prepared_on_the_shipped_rule_set(pairs):
    found = set()

    def walk(node):
        found.update(k for k in V.FAST_FIELDS if node.get(k))
        found.update(k for c in node.get("constraints", ()) for k in V.FAST_FIELDS if c.get(k))
        for child in (*node.get("children", ()), *(node.get("slices") or ())):
            walk(child)

    for profile in pairs[0][0].rules.profiles.values():
        walk(profile["root"])
    assert found == set(V.FAST_FIELDS)


def test_fixtures_broken_copies_and_the_reference_bundle_get_the_same_answer(pairs, corpus):
    for doc in corpus:
        _same(pairs, doc)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_bundles_get_the_same_answer(pairs, corpus, seed):
    rnd = random.Random(seed)
    for _ in range(60):
        doc = rnd.choice(corpus)
        for _ in range(rnd.choice((1, 1, 2, 4))):
            doc = _mutate(doc, rnd)
        _same(pairs, doc)


def test_task_input_slices_with_codings_moved_changed_or_added(pairs):
    base = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=2)))
    tasks = [i for i, e in enumerate(base["entry"]) if e["resource"]["resourceType"] == "Task"]
    assert tasks
    variants = []
    for i in tasks:
        for j, item in enumerate(base["entry"][i]["resource"].get("input", ())):
            for edit in range(5):
                doc = copy.deepcopy(base)
                codings = doc["entry"][i]["resource"]["input"][j]["type"]["coding"]
                if edit == 0:
                    codings.insert(0, {"system": "urn:other", "code": "x"})
                elif edit == 1:
                    codings[0]["system"] += "x"
                elif edit == 2:
                    codings.append(dict(codings[0], display="again"))
                elif edit == 3:
                    codings[0].pop("system")
                else:
                    doc["entry"][i]["resource"]["input"].reverse()
                variants.append(doc)
    for doc in variants:
        _same(pairs, doc)


def test_a_remembered_answer_is_not_reused_where_the_context_differs(pairs):
    """The same reference in another Bundle may designate another type: not a value-only answer
    (Encounter.participant.individual: Practitioner, PractitionerRole or RelatedPerson)."""
    base = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=2)))
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in base["entry"]}
    for entry in base["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["participant"] = [{"individual": {"reference": urls["Organization"]}}]
    allowed = copy.deepcopy(base)
    for entry in allowed["entry"]:
        if entry["fullUrl"] == urls["Organization"]:
            entry["resource"]["resourceType"] = "Practitioner"
            del entry["resource"]["meta"]  # no declared profile: the participant is then clean
    for doc in (allowed, base, allowed, base):
        _same(pairs, doc)
    rules = {p.rule for p in pairs[0][1].validate(copy.deepcopy(base)) if "participant" in p.location}
    assert "reference-target-type" in rules
    assert not [p for p in pairs[0][1].validate(copy.deepcopy(allowed)) if "participant" in p.location]


def test_invariants_on_contained_resources(pairs):
    """dom-2 … dom-5 hold without contained resources (answered without FHIRPath), not with them."""
    base = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=1)))
    inner = {"resourceType": "Patient", "id": "c1"}
    variants = [
        [dict(inner)],
        [dict(inner, contained=[{"resourceType": "Patient", "id": "c2"}])],
        [dict(inner, meta={"versionId": "2"})],
        [dict(inner, meta={"security": [{"code": "R"}]})],
        {"resourceType": "Patient"},
        "c1",
    ]
    for contained in variants:
        doc = copy.deepcopy(base)
        for entry in doc["entry"]:
            entry["resource"]["contained"] = copy.deepcopy(contained)
        _same(pairs, doc)
    doc = copy.deepcopy(base)
    doc["entry"][-1]["resource"]["contained"] = variants[1]
    rules = {p.rule for p in pairs[0][1].validate(doc)}
    assert "invariant:dom-2" in rules


def test_large_values_are_not_remembered(pairs):
    doc = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=1)))
    task = doc["entry"][-1]["resource"]
    task["input"][0]["valueString"] = "x" * (V.CLEAN_BYTES + 1)
    task["input"].append(copy.deepcopy(task["input"][1]))
    task["input"][-1]["valueCodeableConcept"]["text"] = "y" * V.CLEAN_BYTES
    _same(pairs, doc)
    fast = pairs[0][0]
    assert fast._clean and all(len(memo[-1]) <= V.CLEAN_BYTES for memo in fast._clean)


def _resources(doc: dict) -> list[dict]:
    return [e["resource"] for e in doc["entry"]]


def _variants_for_the_native_pass(base: dict) -> list[dict]:
    """Bundles where the native pass (ele-1, ext-1, references) has something to say, or nearly."""
    edits = []

    def edit(fn):
        edits.append(fn)
        return fn

    @edit
    def empty_element(doc):
        _resources(doc)[1]["identifier"][0]["type"] = {}

    @edit
    def element_with_only_an_id(doc):
        _resources(doc)[1]["identifier"][0]["type"] = {"id": "t1"}

    @edit
    def element_with_an_id_and_more(doc):
        _resources(doc)[1]["identifier"][0]["type"]["id"] = "t1"

    @edit
    def empty_entry(doc):
        doc["entry"].append({})

    @edit
    def entry_with_only_an_id(doc):
        doc["entry"].append({"id": "e1"})

    @edit
    def primitive_extension_object_with_only_an_id(doc):
        _resources(doc)[0]["_id"] = {"id": "x"}

    @edit
    def extension_with_value_and_extensions(doc):
        _resources(doc)[-1]["extension"] = [{"url": "urn:x", "valueString": "a", "extension": [{"url": "b", "valueString": "c"}]}]

    @edit
    def extension_with_neither(doc):
        _resources(doc)[-1]["modifierExtension"] = [{"url": "urn:x"}]

    @edit
    def nested_extension_with_neither(doc):
        _resources(doc)[-1]["extension"] = [{"url": "urn:x", "extension": [{"url": "b"}]}]

    @edit
    def extension_of_a_primitive_with_neither(doc):
        _resources(doc)[-1]["_status"] = {"extension": [{"url": "urn:x"}]}

    @edit
    def extension_of_a_primitive_with_a_value(doc):
        _resources(doc)[-1]["_status"] = {"extension": [{"url": "urn:x", "valueCode": "a"}]}

    @edit
    def unresolved_internal_reference(doc):
        _resources(doc)[-1]["for"] = {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}

    @edit
    def relative_reference_resolved_by_type_and_id(doc):
        target = _resources(doc)[0]
        target["id"] = "t-1"
        _resources(doc)[-1]["owner"] = {"reference": f"{target['resourceType']}/t-1"}

    @edit
    def relative_reference_resolved_against_the_entry_base_only(doc):
        target = _resources(doc)[0]
        target["id"] = "other"
        doc["entry"][0]["fullUrl"] = f"https://example.org/fhir/{target['resourceType']}/o1"
        doc["entry"][-1]["fullUrl"] = "https://example.org/fhir/Task/t1"
        _resources(doc)[-1]["owner"] = {"reference": f"{target['resourceType']}/o1"}

    @edit
    def relative_reference_unresolved(doc):
        _resources(doc)[-1]["owner"] = {"reference": "Organization/nowhere"}

    @edit
    def absolute_and_contained_and_conditional_references(doc):
        task = _resources(doc)[-1]
        task["owner"] = {"reference": "https://elsewhere.example/fhir/Organization/1"}
        task["requester"] = {"reference": "#c1"}
        task["focus"] = {"reference": "Patient?identifier=x|1"}

    @edit
    def reference_not_a_string(doc):
        _resources(doc)[-1]["owner"] = {"reference": 3}

    @edit
    def reference_as_an_empty_string(doc):
        _resources(doc)[-1]["owner"] = {"reference": ""}

    @edit
    def reference_in_the_bundle_outside_entries(doc):
        doc["signature"] = {"type": [{"system": "urn:x", "code": "1"}], "when": "2026-01-01T00:00:00Z",
                            "who": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"}}

    @edit
    def primitive_named_reference(doc):  # a uri element named reference (not a Reference)
        doc["entry"].append({"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000002",
                             "resource": {"resourceType": "ImplementationGuide", "url": "urn:x", "name": "X",
                                          "status": "draft", "packageId": "x", "fhirVersion": ["4.0.1"],
                                          "definition": {"resource": [{"reference": {"reference": "urn:nope"}}],
                                                         "page": {"nameUrl": "x", "title": "t", "generation": "html"}}},
                             "request": {"method": "POST", "url": "ImplementationGuide"}})

    out = []
    for fn in edits:
        doc = copy.deepcopy(base)
        fn(doc)
        out.append(doc)
    return out


def test_the_structure_scan_stands_for_the_native_pass_only_where_it_would_find_nothing(pairs):
    base = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=1)))
    variants = _variants_for_the_native_pass(base)
    for doc in [base, *variants]:
        _same(pairs, doc)
    for doc in [base, *variants]:  # each resource alone (no Bundle: no references resolved)
        for entry in doc["entry"]:
            _same(pairs, entry.get("resource"))
    fast = pairs[1][0]
    assert not errors(fast.validate(copy.deepcopy(base)))
    native = {"invariant:ele-1", "invariant:ext-1", "reference-unresolved"}
    said = [{p.rule for p in fast.validate(copy.deepcopy(doc))} & native for doc in variants]
    assert sum(1 for rules in said if rules) >= 10  # most edits are seen by the native pass


def test_a_structure_scan_with_a_finding_lets_the_native_pass_locate_it(pairs):
    doc = orjson.loads(orjson.dumps(ex.bundle(extra_tasks=1)))
    doc["entry"][-1]["resource"]["extension"] = [{"url": "urn:x"}]
    doc["entry"][-1]["resource"]["owner"] = {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}
    found = {(p.location, p.rule) for p in pairs[1][0].validate(doc)}
    last = len(doc["entry"]) - 1
    assert (f"Bundle.entry[{last}].resource.extension[0]", "invariant:ext-1") in found
    assert (f"Bundle.entry[{last}].resource.owner.reference", "reference-unresolved") in found


def _entry_of(doc: dict, rtype: str) -> int:
    return next(i for i, e in enumerate(doc["entry"]) if e["resource"]["resourceType"] == rtype)


@pytest.fixture(scope="module")
def plan_bundle() -> dict:
    doc = next(iter(fixture_bundles().values()))
    assert {"Practitioner", "PractitionerRole", "Organization"} <= {e["resource"]["resourceType"] for e in doc["entry"]}
    return doc


def test_a_resource_walked_before_is_replayed_with_the_same_answer(pairs, plan_bundle, monkeypatch):
    fast = Validator(tddui_gate().rules, closed_references=True, require_profiles=True, best_practice=False)
    calls = []
    walk = V.Validator._root  # the walk of a resource (or an extension) against a profile
    monkeypatch.setattr(V.Validator, "_root", lambda self, *a: calls.append(1) or walk(self, *a))
    fast.validate(copy.deepcopy(plan_bundle))
    first = len(calls)
    again = [p.model_dump() for p in fast.validate(copy.deepcopy(plan_bundle))]
    assert len(calls) - first < first / 4  # nearly every resource replayed
    monkeypatch.undo()
    assert again == [p.model_dump() for p in pairs[1][1].validate(copy.deepcopy(plan_bundle))]


def test_a_walk_is_not_replayed_where_a_reference_target_changed(pairs, plan_bundle):
    role = _entry_of(plan_bundle, "PractitionerRole")
    target = plan_bundle["entry"][role]["resource"]["practitioner"]["reference"]
    other_type = copy.deepcopy(plan_bundle)
    other_profile = copy.deepcopy(plan_bundle)
    for doc, edit in ((other_type, "type"), (other_profile, "profile")):
        for entry in doc["entry"]:
            if entry["fullUrl"] == target:
                if edit == "type":
                    entry["resource"]["resourceType"] = "RelatedPerson"
                    entry["request"]["url"] = "RelatedPerson"
                else:
                    entry["resource"]["meta"]["profile"] = [SD_PATIENT]
    for doc in (plan_bundle, other_type, plan_bundle, other_profile, plan_bundle):
        _same(pairs, doc)
    fast = pairs[1][0]
    assert "reference-target-type" in {p.rule for p in fast.validate(copy.deepcopy(other_type))}
    assert "reference-target-profile" in {p.rule for p in fast.validate(copy.deepcopy(other_profile))}


def test_a_walk_relying_on_a_note_given_earlier_is_not_replayed_where_it_is_not(pairs, plan_bundle):
    backwards = copy.deepcopy(plan_bundle)
    backwards["entry"].reverse()
    alone = {"resourceType": "Bundle", "meta": plan_bundle["meta"], "type": "transaction",
             "entry": [e for e in copy.deepcopy(plan_bundle["entry"])
                       if e["resource"]["resourceType"] in ("Task", "Goal", "ServiceRequest")]}
    for doc in (plan_bundle, backwards, alone, plan_bundle, alone, backwards):
        _same(pairs, doc)
    for entry in alone["entry"]:
        _same(pairs, entry["resource"])  # alone: no Bundle, no reference checked


def test_problems_of_a_replayed_walk_are_moved_to_where_the_resource_is(pairs, plan_bundle):
    bad = copy.deepcopy(plan_bundle)
    practitioner = bad["entry"][_entry_of(bad, "Practitioner")]["resource"]
    practitioner["identifier"][0]["type"]["coding"][0]["code"] = "XX"
    practitioner["name"] = [{"family": "X", "given": ["Y"], "use": "nickname"}]
    moved = copy.deepcopy(bad)
    moved["entry"].insert(0, moved["entry"].pop(_entry_of(moved, "Practitioner")))
    for doc in (bad, moved, bad, moved):
        _same(pairs, doc)
    where = {p.location.split(".resource")[0] for p in pairs[1][0].validate(copy.deepcopy(moved))
             if p.source.split("|")[0].endswith("tddui-practitioner")}
    assert where == {"Bundle.entry[0]"}


def test_a_relative_reference_is_resolved_against_each_entry_base_again(pairs, plan_bundle):
    docs = []
    for base in ("https://a.example/fhir", "https://b.example/fhir"):
        doc = copy.deepcopy(plan_bundle)
        role = doc["entry"][_entry_of(doc, "PractitionerRole")]
        practitioner = doc["entry"][_entry_of(doc, "Practitioner")]
        practitioner["fullUrl"] = "https://a.example/fhir/Practitioner/p1"
        practitioner["resource"].pop("id", None)
        role["fullUrl"] = f"{base}/PractitionerRole/r1"
        role["resource"]["practitioner"] = {"reference": "Practitioner/p1"}
        if base.startswith("https://b."):  # there, the same reference designates an Organization
            doc["entry"][_entry_of(doc, "Organization")]["fullUrl"] = f"{base}/Practitioner/p1"
        docs.append(doc)
    for doc in (*docs, *docs, docs[1], docs[0]):
        _same(pairs, doc)
    said = [{p.rule for p in pairs[1][0].validate(copy.deepcopy(doc)) if ".practitioner" in p.location} for doc in docs]
    assert "reference-target-type" not in said[0] and "reference-target-type" in said[1]
