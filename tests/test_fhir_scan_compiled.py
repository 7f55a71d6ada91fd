"""The base-structure scan compiled per type (structure.py: `Structure._scanner`, `_entry`, the valid
strings remembered by `_remembered`) answers exactly what the scan it replaced answered: None (invalid)
or the same list of references and ele-1 / ext-1 marks, in the same order.

The reference is structure.py as it was at REFERENCE, read from git into a private module; the test
is skipped only where git history is missing."""

from __future__ import annotations

import copy
import importlib.util
import random
import subprocess
from importlib import resources
from pathlib import Path

import orjson
import pytest

from gateway.conformance.fhir import structure as S
from tests.test_fhir_profile_speed import _mutate, _places
from tests.test_fhir_structure_support import broken_copies, fixture_bundles

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "52319fe"  # structure.py before the scan was compiled per type


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """A Structure of structure.py at REFERENCE."""
    try:
        text = subprocess.run(["git", "show", f"{REFERENCE}:gateway/conformance/fhir/structure.py"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with {REFERENCE} not available")
    path = tmp_path_factory.mktemp("reference") / "relais_structure_reference.py"
    path.write_text(text, "utf-8")
    spec = importlib.util.spec_from_file_location("relais_structure_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Structure(_data())


def _data() -> dict:
    return orjson.loads(resources.files("mappings.fhir.profiles").joinpath(S.DATA_FILE).read_bytes())


@pytest.fixture(scope="module")
def new():
    return S.Structure(_data())


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return list(fixture_bundles().values()) + list(broken_copies().values())


def _same(old, new, doc, seen: dict) -> None:
    expected = old.scan(doc)
    assert new.scan(doc) == expected
    assert new.scan(copy.deepcopy(doc)) == expected  # again: its strings now remembered
    seen["invalid" if expected is None else "marked" if None in expected else "clean"] += 1


def test_fixture_bundles_and_broken_copies(old, new, corpus):
    seen = {"invalid": 0, "marked": 0, "clean": 0}
    for doc in corpus:
        _same(old, new, doc, seen)
        for entry in doc.get("entry") or ():
            if isinstance(entry, dict) and "resource" in entry:
                _same(old, new, entry["resource"], seen)
    assert seen["invalid"] and seen["clean"]


# --- every 3rd place of each resource of 12 fixture Bundles, with one of these values ----------
_VALUES = [
    None, 3, 1.5, True, "", " ", "a  b", " lead", "x\u0085y", "2026-02-30", "https://x y", "urn:uuid:ABC",
    [], {}, {"id": "a"}, [None], ["x", None], {"extension": [{"url": "u", "valueString": "v"}]},
    {"unknown": 1}, "x" * 300, "ok-value",
]


def _edits(doc: dict, rnd: random.Random):
    count = len(list(_places(doc)))
    for n in range(0, count, 3):
        edited = copy.deepcopy(doc)
        container, key = next(p for i, p in enumerate(_places(edited)) if i == n)
        if isinstance(container, dict) and isinstance(key, str) and not key.startswith("_") and n % 2:
            container["_" + key] = copy.deepcopy(rnd.choice(_VALUES))  # a primitive's extensions, or not allowed
        else:
            container[key] = copy.deepcopy(rnd.choice(_VALUES))
        yield edited


def test_every_3rd_place_edited(old, new, corpus):
    rnd = random.Random(5)
    seen = {"invalid": 0, "marked": 0, "clean": 0}
    for doc in corpus[:12]:
        for entry in doc["entry"]:
            for edited in _edits(entry["resource"], rnd):
                _same(old, new, edited, seen)
    assert seen["invalid"] > 100 and seen["marked"] > 10 and seen["clean"] > 10, seen


@pytest.mark.parametrize("seed", range(4))
def test_random_mutations(old, new, corpus, seed):
    rnd = random.Random(seed)
    seen = {"invalid": 0, "marked": 0, "clean": 0}
    for _ in range(250):
        doc = rnd.choice(corpus)
        for _ in range(rnd.randint(1, 3)):
            doc = _mutate(doc, rnd)
        _same(old, new, doc, seen)
    assert seen["invalid"] and seen["clean"], seen


def _task() -> dict:
    bundle = next(iter(fixture_bundles().values()))
    return copy.deepcopy(next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"))


def test_required_elements_choices_and_primitive_extensions(old, new):
    """The bits the per-type scan keeps: required elements (a primitive's `_name` with extensions
    standing for it), one type per choice, a required choice."""
    ext = {"extension": [{"url": "https://example.org/x", "valueString": "v"}]}
    cases = []
    task = _task()
    del task["status"]
    cases.append((copy.deepcopy(task), None))  # required primitive missing
    task["_status"] = ext
    cases.append((copy.deepcopy(task), "valid"))  # given by its extensions
    task["_status"] = {"id": "a"}
    cases.append((copy.deepcopy(task), None))  # an id is not a value
    task = _task()
    task["_status"] = ext
    cases.append((task, "valid"))
    task = _task()
    task["extension"] = [{"url": "https://example.org/x", "valueString": "a", "valueCode": "b"}]
    cases.append((task, None))  # two types of one choice
    task = _task()
    task["extension"] = [{"url": "https://example.org/x"}]
    cases.append((task, "marked"))  # ext-1: neither value nor extensions
    task = _task()
    task["input"] = [{"type": {"text": "t"}}]
    cases.append((copy.deepcopy(task), None))  # Task.input.value[x] is required
    task["input"] = [{"type": {"text": "t"}, "valueString": "v", "_valueString": {"id": "i"}}]
    cases.append((task, "marked"))  # ele-1: an id alone
    for doc, expected in cases:
        got = new.scan(doc)
        assert got == old.scan(doc)
        if expected is None:
            assert got is None
        else:
            assert got is not None and (None in got) == (expected == "marked")


def test_the_remembered_checkers_answer_as_the_checkers():
    structure = S.Structure(_data())
    rnd = random.Random(3)
    samples = ["http://loinc.org", "a b", "", " ", "active", "act ive", "act  ive", "2026-02-28", "2026-02-30",
               "2026-11-26T12:00:00+00:00", "urn:uuid:0eaf082d-0158-51ed-849d-1fbe3a587d02", "x\u00a0y", "\u2003",
               "é", "x" * (S.KNOWN_LENGTH + 1), "1.2.250", "urn:oid:1.2.250", None, 3, 2.5, True, [], {}]
    for name, check in structure.checkers.items():
        remembered = structure._remembering.get(check)
        if remembered is None:
            continue
        for v in samples + [rnd.choice(samples) for _ in range(200)]:
            assert remembered(v) == check(v), (name, v)
    assert any(structure._remembering.values())


def test_choice_values_as_the_loop_over_keys_it_replaced(corpus):
    """fhirpath.choice_values (one set test, then the keys in the object's order) against the loop of
    52319fe: `k.startswith(prefix) and k[len(prefix):] in CHOICE_TYPES`."""
    from gateway.conformance.fhir.fhirpath import CHOICE_TYPES, choice_values

    def reference(obj, prefix):
        return [(k, v) for k, v in obj.items() if k.startswith(prefix) and k[len(prefix):] in CHOICE_TYPES]

    objects = []

    def collect(x):
        if isinstance(x, dict):
            objects.append(x)
            for v in x.values():
                collect(v)
        elif isinstance(x, list):
            for v in x:
                collect(v)

    for doc in corpus[:10]:
        collect(doc)
    objects += [{"valueString": "a", "valueCode": "b", "value": 1, "valuex": 2, "effectiveDateTime": "2026"},
                {"String": 1, "Code": 2, "": 3}]
    hits = 0
    for prefix in ("value", "effective", "start", "detail", "search", "", "valueString", "x"):
        for obj in objects:
            got = choice_values(obj, prefix)
            assert got == reference(obj, prefix), (prefix, obj)
            hits += bool(got)
    assert hits > 50
