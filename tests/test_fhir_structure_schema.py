"""The compiled base structure (mappings/fhir/profiles/r4-structure.json): generated from the
installed fhir.resources R4B models, byte for byte; FHIR R4 where the R4B models are not (checked
against the R4 snapshots of the French profiles when shared/reference is there); refused when its
primitive formats are not the ones structure.py implements."""

from __future__ import annotations

import copy
import tarfile

import orjson
import pytest

from gateway.conformance.fhir import structure as S
from gateway.conformance.fhir.structure_schema import compile_structure, default_path, dump
from tests.test_fhir_structure_support import PACKAGES


@pytest.fixture(scope="module")
def data() -> dict:
    return orjson.loads(default_path().read_bytes())


def test_the_shipped_structure_is_what_the_installed_fhir_resources_models_give_byte_for_byte():
    # a new fhir.resources / fhir_core is a data change: regenerate with
    # `python -m gateway.conformance.fhir.structure_schema` and review the diff
    assert dump(compile_structure()) == default_path().read_bytes()


def test_every_concrete_resource_is_declared_and_abstract_ones_are_not(data):
    resources = set(data["resources"])
    assert {"Patient", "CarePlan", "Task", "Goal", "Consent", "Encounter", "Bundle", "Binary",
            "Parameters", "QuestionnaireResponse", "DocumentReference"} <= resources
    assert not {"Resource", "DomainResource", "Coding", "PatientContact"} & resources
    assert len(resources) == 141


def test_choice_elements_are_expanded_and_grouped(data):
    patient = data["types"]["Patient"]
    assert patient["deceasedBoolean"] == ["boolean", 0, 1, 1]
    assert patient["deceasedDateTime"] == ["dateTime", 0, 1, 1]
    assert ["deceased", 0, ["deceasedBoolean", "deceasedDateTime"]] in data["choices"]["Patient"]
    assert "deceased[x]" not in patient


def test_an_element_says_type_cardinality_and_primitive_extension(data):
    careplan = data["types"]["CarePlan"]
    assert careplan["subject"] == ["Reference", 1, 1, 0]
    assert careplan["status"] == ["code", 1, 1, 1]
    assert careplan["activity"] == ["CarePlanActivity", 0, "*", 0]
    assert careplan["contained"] == ["Resource", 0, "*", 0]
    assert data["types"]["HumanName"]["given"] == ["string", 0, "*", 1]
    assert data["types"]["BundleEntry"]["resource"] == ["Resource", 0, 1, 0]


def test_the_file_lists_its_r4_corrections(data):
    changes = {(c["type"], c["element"], c["change"]) for c in data["corrections"]}
    assert ("Extension", "valueMeta", "added") in changes
    assert ("Extension", "valueCodeableReference", "removed") in changes
    assert ("ElementDefinition", "fixedRatioRange", "removed") in changes
    assert ("Extension", "_valueString", "added") in changes
    assert data["types"]["Extension"]["valueString"][3] == 1
    assert "valueMeta" in data["types"]["Extension"]
    assert all(c["why"] for c in data["corrections"])


def test_primitive_formats_are_fhir_core_s_own(data):
    from fhir_core import types as t

    assert data["primitives"]["date"]["pattern"] == t.Date.pattern.pattern
    assert data["primitives"]["code"]["pattern"] == "^[^\\s]+(\\s[^\\s]+)*$"
    assert data["primitives"]["integer"] == {"check": "int", "max": 2147483647, "min": -2147483648}


def test_a_file_with_formats_structure_py_does_not_implement_is_refused(data):
    changed = copy.deepcopy(data)
    changed["primitives"]["code"]["pattern"] = "[^\\s]+"
    with pytest.raises(S.StructureSchemaError, match="code"):
        S.Structure(changed)
    with pytest.raises(S.StructureSchemaError, match="format"):
        S.Structure({**data, "format": "relais-fhir-structure/0"})


def test_without_the_compiled_file_the_models_check_the_structure(monkeypatch):
    monkeypatch.setattr(S, "compiled", lambda: None)
    problems = S.check_structure({"resourceType": "Patient", "birthDate": "2026-02-30"})
    assert [p.location for p in problems] == ["Patient.birthDate"]
    assert "fhir.resources" in problems[0].source and "compiled" not in problems[0].source


def test_the_models_engine_can_be_asked_for():
    problems = S.check_structure({"resourceType": "Patient", "titre": "x"}, engine="models")
    assert [p.location for p in problems] == ["Patient.titre"]
    assert "R4B models)" in problems[0].source


# --- the models against FHIR R4: the snapshots of the French profiles ---------------------------
def _r4_snapshot_elements() -> dict[str, tuple[set, set]]:
    """path → (base cardinalities, type codes) over every R4 StructureDefinition snapshot of the packages."""
    out: dict[str, tuple[set, set]] = {}
    for tgz in sorted(PACKAGES.glob("*.tgz")):
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                if member.name.count("/") != 1 or not member.name.endswith(".json"):
                    continue
                try:
                    sd = orjson.loads(tar.extractfile(member).read())
                except orjson.JSONDecodeError:
                    continue
                if sd.get("resourceType") != "StructureDefinition" or "snapshot" not in sd:
                    continue
                if not str(sd.get("fhirVersion", "4.0.1")).startswith("4.0"):
                    continue
                for e in sd["snapshot"]["element"]:
                    base = e.get("base") or {}
                    cards, codes = out.setdefault(e["path"], (set(), set()))
                    cards.add((base.get("min"), base.get("max")))
                    codes.update(t["code"] for t in e.get("type", ()))
    return out


@pytest.mark.skipif(not PACKAGES.is_dir(), reason=f"FHIR packages absent from {PACKAGES}")
def test_the_compiled_structure_is_r4_for_every_element_the_french_profiles_describe(data):
    r4 = _r4_snapshot_elements()
    types, choices = data["types"], data["choices"]
    resolved = {p: p for p in r4 if "." not in p and p in types}
    compared = 0
    differences = []
    for path in sorted(r4, key=lambda p: p.count(".")):
        parent, _, name = path.rpartition(".")
        if parent not in resolved:
            continue
        tname = resolved[parent]
        elements = types[tname]
        cards, codes = r4[path]
        (mn, mx), *_ = sorted(cards, key=str)
        compared += 1
        if name.endswith("[x]"):
            prefix = name[:-3]
            mine = {k for k in elements if k.startswith(prefix) and k[len(prefix):len(prefix) + 1].isupper()}
            want = {prefix + c[0].upper() + c[1:] for c in codes}
            if want - mine:  # profiles may restrict the types, never add any
                differences.append((path, "types missing", sorted(want - mine)))
            group = [g for g in choices.get(tname, ()) if g[0] == prefix]
            if group and group[0][1] != (1 if mn else 0):
                differences.append((path, "choice min", mn))
            continue
        if name not in elements:
            differences.append((path, "absent"))
            continue
        leaf, emin, emax, _ = elements[name]
        if (emin, str(emax)) != ((1 if mn else 0), "*" if mx == "*" else "1"):
            differences.append((path, "cardinality", (mn, mx), (emin, emax)))
        if leaf not in data["primitives"] and leaf != "Resource":
            resolved[path] = leaf
    for path, tname in resolved.items():
        kids = {p.rpartition(".")[2] for p in r4 if p.rpartition(".")[0] == path}
        prefixes = [k[:-3] for k in kids if k.endswith("[x]")]
        for name in types[tname]:
            if kids and name not in kids and not any(name.startswith(x) for x in prefixes):
                differences.append((f"{path}.{name}", "not in R4"))
    assert compared > 1000
    assert differences == []
