"""The TDDUI gate on the compiled structure: what it no longer loads, what its fast paths answer
(the same as the slow ones), and that malformed input gives problems, never an exception."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.conformance.fhir import Validator, tddui_gate
from gateway.conformance.fhir import examples as ex
from gateway.conformance.fhir import fhirpath as F
from gateway.model.problem import Severity, errors
from tests.test_fhir_structure_support import ROOT, fixture_bundles, mutate, official_resources, structure


@pytest.fixture(scope="module")
def gate():
    return tddui_gate()


@pytest.fixture(scope="module")
def bundles() -> list[dict]:
    found = list(fixture_bundles().values())[:20]
    found += [d for d in official_resources().values() if d.get("resourceType") == "Bundle"]
    return found


def test_validating_a_bundle_loads_neither_fhir_resources_nor_the_fhirpath_engine():
    script = (
        "import sys, orjson\n"
        "from gateway.conformance.fhir import tddui_gate, examples\n"
        "from gateway.model.problem import errors\n"
        "assert not errors(tddui_gate().validate(orjson.loads(orjson.dumps(examples.bundle()))))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('fhir.', 'fhir_core', 'fhirpathpy'))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_structure_problems_name_the_compiled_source(gate):
    b = ex.bundle()
    b["entry"][3]["resource"]["period"]["start"] = "2026-02-30"
    (p,) = [p for p in errors(gate.validate(b)) if p.rule == "fhir-structure"]
    assert p.location == "Bundle.entry[3].resource.period.start"
    assert "compiled from fhir.resources 8.3.0 R4B models" in p.source
    assert "n'existe pas dans ce mois" in p.message and "no such day" in p.message_en
    assert "2026-02-30" not in p.message + p.message_en  # the place, not the value (personal data)


def test_the_models_can_still_judge_the_structure(gate):
    b = ex.bundle()
    b["entry"][3]["resource"]["titre"] = "x"
    with_models = Validator(gate.rules, structure="models", closed_references=True, require_profiles=True,
                            best_practice=False)
    compiled = [(p.location, p.rule) for p in errors(gate.validate(b))]
    models = [(p.location, p.rule) for p in errors(with_models.validate(b))]
    assert compiled == models == [("Bundle.entry[3].resource.titre", "fhir-structure")]


def test_profile_checks_stop_with_a_note_when_the_structure_is_broken(gate):
    b = ex.bundle()
    b["entry"][1]["resource"]["meta"]["profile"] = 5
    problems = gate.validate(b)
    assert ("Bundle.entry[1].resource.meta.profile", "fhir-structure") in [(p.location, p.rule) for p in problems]
    assert [p.severity for p in problems if p.rule == "profiles-not-completed"] == [Severity.information]


def test_a_null_in_meta_profile_keeps_a_place_and_is_not_a_profile(gate):
    b = ex.bundle()
    b["entry"][1]["resource"]["meta"]["profile"].append(None)
    b["entry"][1]["resource"]["meta"]["_profile"] = [None, {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}]
    assert not errors(gate.validate(b))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=3))
def test_the_gate_gives_problems_never_an_exception_on_mutated_bundles(gate, bundles, seed, times):
    rnd = random.Random(seed)
    bundle = rnd.choice(bundles)
    for _ in range(times):
        bundle = mutate(bundle, rnd, structure().data)
    problems = gate.validate(bundle)
    assert all(p.location and p.rule for p in problems)


# --- quick FHIRPath answers: the same as fhirpathpy where the gate asks them --------------------------
def test_the_invariants_of_the_shipped_rule_sets_need_the_engine_only_for_dom_3():
    import orjson

    expressions = set()

    def walk(node):
        expressions.update((c["key"], c["expression"]) for c in node.get("constraints", ()))
        for child in (*node.get("children", ()), *(node.get("slices") or ())):
            walk(child)

    for path in sorted((ROOT / "mappings" / "fhir" / "profiles").glob("*.rules.json")):
        for profile in orjson.loads(path.read_bytes())["profiles"].values():
            walk(profile["root"])
    engine_only = {k for k, e in expressions if F.compile_quick(e) is None and k not in F.NATIVE}
    assert engine_only == {"dom-3"}


def _constraints(node: dict):
    yield from node.get("constraints", ())
    for child in (*node.get("children", ()), *(node.get("slices") or ())):
        yield from _constraints(child)


def test_quick_answers_agree_with_the_engine_on_every_invariant_the_gate_checks(gate, bundles, monkeypatch):
    asked = []

    def recording(c):
        decide = c["_decide"]

        def record(focus, resource, engine):
            answer = decide(focus, resource, engine)
            asked.append((c["key"], c["expression"], focus, resource, answer))
            return answer

        return record

    for profile in gate.rules.profiles.values():
        for c in _constraints(profile["root"]):
            monkeypatch.setitem(c, "_decide", recording(c))
    rnd = random.Random(7)
    for bundle in bundles:
        gate.validate(bundle)
        for _ in range(3):
            gate.validate(mutate(bundle, rnd, structure().data))
    monkeypatch.undo()
    engine, compared, seen = F.FhirPath(), 0, set()
    for key, expression, focus, resource, answer in asked:
        if (expression, id(focus)) in seen:
            continue
        seen.add((expression, id(focus)))
        assert answer == engine.check(key, expression, focus, resource)  # the decider, made once, is check
        fast = F.quick(expression, focus)
        slow = engine.evaluate(expression, focus, resource) if fast is not None else None
        if slow is not None:
            assert fast == slow, (expression, focus)
            compared += 1
    assert compared > 2000


@pytest.mark.parametrize("expression, focus, expected", [
    ("(identifier.count() + name.count()) > 0", {"name": "x"}, True),
    ("(identifier.count() + name.count()) > 0", {}, False),
    ("identifier.where(system = 'urn:oid:1.2').exists()", {"identifier": [{"system": "urn:oid:1.2"}]}, True),
    ("identifier.where(system = 'urn:oid:1.2').exists()", {"identifier": [{"system": "urn:oid:1.3"}]}, False),
    ("(answer.exists() and item.exists()).not()", {"answer": [{}], "item": [{}]}, False),
    ("extension.where(url = 'u').value.code = 'VALI' implies name.exists()", {}, True),  # {} implies …
    ("extension.where(url = 'u').value.code = 'VALI' implies name.exists()",
     {"extension": [{"url": "u", "valueCoding": {"code": "VALI"}}]}, False),
    ("(Encounter.extension.exists())\n    implies(Encounter.status.exists())", {"resourceType": "Encounter"}, True),
])
def test_quick_answers(expression, focus, expected):
    assert F.quick(expression, focus) is expected
    assert F.FhirPath().evaluate(expression, focus, focus) is expected
