"""The compiled profile walk (gateway/conformance/fhir/walk.py and the closures of validator.py)
gives exactly the answer of the interpreted walk it replaced: every problem, its location, rule,
source, severity, both messages and their order, on valid and invalid input (the messages of the
rules in VALUE_FREE_MESSAGES excepted: they changed on purpose since).

The reference is the engine as it was at REFERENCE (the last commit with the interpreted walk),
read from git into a private package; the test is skipped only where git history is missing."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gateway.conformance.fhir import Validator, tddui_gate
from gateway.conformance.fhir import examples as ex
from gateway.conformance.fhir.rules import RuleSet
from tests.test_fhir_profile_speed import POLICIES, _mutate, _places
from tests.test_fhir_structure_support import broken_copies, fixture_bundles

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "0603192"  # gateway/conformance/fhir before the walk was compiled
PACKAGE = "relais_fhir_reference"


def _reference_package(tmp: Path):
    """gateway.conformance.fhir at REFERENCE, importable as PACKAGE (its own imports renamed)."""
    try:
        names = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{REFERENCE}:gateway/conformance/fhir"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with {REFERENCE} not available")
    folder = tmp / PACKAGE
    folder.mkdir()
    for name in names:
        if not name.endswith(".py"):
            continue
        text = subprocess.run(
            ["git", "show", f"{REFERENCE}:gateway/conformance/fhir/{name}"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
        (folder / name).write_text(text.replace("gateway.conformance.fhir", PACKAGE), "utf-8")
    sys.path.insert(0, str(tmp))
    try:
        import importlib

        return (importlib.import_module(f"{PACKAGE}.validator"), importlib.import_module(f"{PACKAGE}.rules"))
    finally:
        sys.path.remove(str(tmp))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[Validator, object]]:
    """(compiled, reference) validators per policy, each on its own copy of the shipped rule set."""
    old_validator, old_rules = _reference_package(tmp_path_factory.mktemp("reference"))
    data = tddui_gate().rules.data
    return [
        (Validator(RuleSet(copy.deepcopy(data)), **policy),
         old_validator.Validator(old_rules.RuleSet(copy.deepcopy(data)), **policy))
        for policy in POLICIES
    ]


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    docs = list(fixture_bundles().values()) + list(broken_copies().values())
    return docs + [orjson.loads(orjson.dumps(ex.bundle(extra_tasks=3)))]


# Rules whose messages changed on purpose since REFERENCE: they no longer quote the value found
# (personal data stays out of messages; tests/test_fhir_messages_no_personal_data.py). Their
# problems are still compared in full but for the two messages.
VALUE_FREE_MESSAGES = frozenset({"fhir-structure", "fixed-value", "pattern-value"})


def _answer(validator, doc) -> list:
    try:
        answer = [p.model_dump(mode="json") for p in validator.validate(copy.deepcopy(doc))]
    except Exception as exc:  # the same failure is the same answer
        return [type(exc).__name__]
    for problem in answer:
        if problem["rule"] in VALUE_FREE_MESSAGES:
            problem["message"] = problem["message_en"] = None
    return answer


def _same(pairs, doc) -> list:
    answers = []
    for compiled, reference in pairs:
        got = _answer(compiled, doc)
        assert got == _answer(reference, doc)
        answers.append(got)
    return answers


def test_fixture_bundles_broken_copies_and_the_reference_bundle(pairs, corpus):
    for doc in corpus:
        _same(pairs, doc)


def test_the_same_validators_again_remembered_answers_and_replays_included(pairs, corpus):
    for doc in corpus[:20] + corpus[:20]:
        _same(pairs, doc)


# --- mutations: every place of a Bundle, each with one of the edits below ------------------------
def _codes(doc, out: list) -> list:
    if isinstance(doc, dict):
        if isinstance(doc.get("code"), str):
            out.append(doc["code"])
        for v in doc.values():
            _codes(v, out)
    elif isinstance(doc, list):
        for v in doc:
            _codes(v, out)
    return out


def _edit(doc: dict, place: int, kind: str, rnd: random.Random) -> dict:
    doc = copy.deepcopy(doc)
    container, key = list(_places(doc))[place]
    value = container[key]
    if kind == "drop":  # missing required elements, slices emptied
        del container[key]
    elif kind == "duplicate":  # cardinality, slice counts, order
        if isinstance(container, list):
            container.insert(0, copy.deepcopy(value))
        else:
            container[key] = [value, copy.deepcopy(value)]
    elif kind == "code":  # codes outside value sets, fixed and pattern values, slices not found
        if isinstance(value, str):
            container[key] = rnd.choice(_codes(doc, []) + ["XXX", "urn:uuid:00000000-0000-0000-0000-000000000000"])
        elif isinstance(value, dict) and "coding" in value:
            value["coding"] = [{"system": "http://example.org/cs", "code": "x"}]
    elif kind == "extra":  # unknown elements, extensions of unknown or known urls
        target = value if isinstance(value, dict) else container if isinstance(container, dict) else None
        if target is not None:
            target["extension"] = [*(target.get("extension") or []),
                                   {"url": rnd.choice(["http://example.org/x", *_urls(doc)]), "valueString": "x"}]
            target["zzz"] = 1
    elif kind == "type":  # wrong JSON or choice types
        if isinstance(container, dict) and isinstance(key, str) and key.startswith("value"):
            container["valueInteger" if key != "valueInteger" else "valueString"] = container.pop(key)
        else:
            container[key] = 7 if isinstance(value, str) else "7" if not isinstance(value, list) else {}
    elif kind == "empty":  # ele-1, ext-1, empty lists
        container[key] = {} if isinstance(value, dict) else [] if isinstance(value, list) else {"id": "x"}
    elif kind == "reference":  # unresolved, wrong target type or profile
        refs = [r for r in _refs(doc) if isinstance(r, str)]
        container[key] = {"reference": rnd.choice(refs + ["urn:uuid:nope", "Patient/x"])}
    elif kind == "contained":  # invariants evaluated on contained resources (dom-2…dom-5)
        if isinstance(value, dict) and "resourceType" in value:
            value["contained"] = [{"resourceType": "Basic", "id": "c", "code": {"text": "x"}}]
            value["text"] = {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}
        else:
            container[key] = None
    return doc


def _urls(doc) -> list:
    out = []
    for container, key in _places(doc):
        if key == "url" and isinstance(container[key], str):
            out.append(container[key])
    return out


def _refs(doc) -> list:
    return [c[k] for c, k in _places(doc) if k == "reference"]


KINDS = ("drop", "duplicate", "code", "extra", "type", "empty", "reference", "contained")


STRIDE = 12  # every 4th place took 90 s of the suite; the random and scattered edits below cover more


@pytest.mark.parametrize("chunk", range(8))
def test_every_place_of_a_fixture_bundle_edited(pairs, chunk):
    """Every STRIDE-th place of one fixture Bundle (objects, lists, strings), each edited by a kind in turn."""
    bundles = fixture_bundles()
    doc = bundles[sorted(bundles)[chunk * 7 % len(bundles)]]
    rnd = random.Random(chunk)
    count = len(list(_places(doc)))
    invalid = 0
    for place in range(chunk * 5 % STRIDE, count, STRIDE):  # every STRIDE-th place, shifted per chunk
        kind = KINDS[(place // STRIDE + chunk) % len(KINDS)]
        answers = _same(pairs[1:2], _edit(doc, place, kind, rnd))
        invalid += any(p.get("severity") == "error" for p in answers[0] if isinstance(p, dict))
    assert invalid > count // (4 * STRIDE)  # the edits are mostly caught: the comparison covers invalid Bundles


@pytest.mark.parametrize("seed", range(6))
def test_randomly_mutated_bundles(pairs, corpus, seed):
    rnd = random.Random(1000 + seed)
    for _ in range(50):
        doc = rnd.choice(corpus)
        for _ in range(rnd.choice((1, 1, 2, 4))):
            doc = _mutate(doc, rnd)
        _same(pairs, doc)


def test_resources_against_an_explicit_profile(pairs, corpus):
    """A resource alone (no Bundle: no reference targets), against its profile and a wrong one."""
    compiled, reference = pairs[2]
    rnd = random.Random(7)
    for doc in corpus[:10]:
        for entry in doc.get("entry") or ():
            res = entry.get("resource")
            if not isinstance(res, dict):
                continue
            profiles = (res.get("meta") or {}).get("profile") or [None]
            for profile in (profiles[0], rnd.choice(list(compiled.rules.profiles))):
                assert _answer_with(compiled, res, profile) == _answer_with(reference, res, profile)


def _answer_with(validator, res, profile) -> list:
    try:
        return [p.model_dump(mode="json") for p in validator.validate(copy.deepcopy(res), profile)]
    except Exception as exc:
        return [type(exc).__name__]


def _scatter(doc: dict, rnd: random.Random, rate: float) -> dict:
    """A tenth of the strings changed (wrong codes, systems, pattern values, references), of the
    elements dropped, of the values doubled: many problems at once. (The rule set's fixed values are
    extension urls: a changed one is another extension, never a fixed-value problem.)"""
    doc = copy.deepcopy(doc)
    for container, key in list(_places(doc)):
        if rnd.random() >= rate:
            continue
        try:
            value = container[key]
        except (KeyError, IndexError):
            continue  # (dropped with its parent's element)
        roll = rnd.random()
        if isinstance(value, str):
            container[key] = rnd.choice(("XXX", value + "x", value.upper(), ""))
        elif roll < 0.4 and isinstance(container, dict):
            del container[key]
        elif roll < 0.7 and isinstance(container, dict) and not isinstance(value, list):
            container[key] = [value, copy.deepcopy(value)]
        elif roll < 0.85 and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[0]))  # (slice and profile maxima)
    return doc


@pytest.mark.parametrize("seed", range(3))
def test_every_fixture_bundle_with_scattered_edits(pairs, seed):
    rnd = random.Random(seed)
    rules = set()
    for doc in fixture_bundles().values():
        for answer in _same(pairs[1:2], _scatter(doc, rnd, 0.1)):
            rules.update(p["rule"] for p in answer if isinstance(p, dict))
    # the edits reach the checks of the walk
    assert {"pattern-value", "binding-required", "cardinality-min", "cardinality-max", "slice-cardinality",
            "reference-unresolved", "reference-target-type", "invariant:ext-1"} <= rules, rules
