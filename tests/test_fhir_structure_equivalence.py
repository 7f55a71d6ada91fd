"""The compiled structure check (structure.py) says what the fhir.resources R4B models say, where
they say it — except the documented places where fhir.resources is wrong for FHIR R4, each tested
here (see tests/test_fhir_structure_support.py for the agreement rule).

Corpus: the TDDUI Bundles of the 60 fixture plans; the official JSON examples and every JSON
resource of the FHIR packages of shared/reference (when present); the conformance runner's broken
FHIR copies; generated instances of every type and random mutations of all of these (hypothesis);
the primitive formats one by one against fhir_core's own types."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.conformance.fhir.structure import CALENDAR, FORMAT, R4, TYPE, check_structure
from gateway.conformance.fhir.structure_models import model_errors
from tests.test_fhir_structure_support import (
    BAD,
    GOOD,
    OFFICIAL,
    PACKAGES,
    Generator,
    broken_copies,
    compare,
    entries,
    fixture_bundles,
    mutate,
    official_resources,
    ours,
    structure,
    summary,
)


def agree(resource) -> None:
    verdict = compare(resource)
    assert not verdict.unexplained, verdict.unexplained


# --- the corpus ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixtures() -> dict[str, dict]:
    return fixture_bundles()


@pytest.fixture(scope="module")
def official() -> dict[str, dict]:
    found = official_resources()
    if not found:
        pytest.skip(f"no official example nor FHIR package in {OFFICIAL.parent} (shared/reference absent)")
    return found


def test_the_60_fixture_bundles_are_valid_for_both(fixtures):
    assert len(fixtures) == 60
    for name, bundle in fixtures.items():
        assert ours(bundle) == [], name
        assert model_errors(bundle) == [], name


def test_official_examples_and_package_resources_get_the_same_answer(official):
    # a Bundle is compared whole: its entries are checked inside it, located under it
    results = {name: compare(doc) for name, doc in official.items()}
    counts = summary(results)
    assert counts["UNEXPLAINED"] == 0, [(k, v.unexplained) for k, v in results.items() if v.unexplained]
    assert sum(len(entries(doc)) for doc in official.values()) > 1000
    # the only differences: IG Publisher validation reports whose resource ids exceed R4's 64 characters
    different = [k for k, v in results.items() if not v.same]
    assert all("validation-oo.json" in k for k in different), different


def test_the_runner_s_broken_copies_get_the_same_answer():
    copies = broken_copies()
    assert len(copies) >= 17
    for name, doc in copies.items():
        verdict = compare(doc)
        assert verdict.same, (name, verdict)
    assert [f.location for f in ours(copies["broken:date-impossible"])] == ["Bundle.entry[0].resource.birthDate"]
    assert [f.location for f in ours(copies["broken:element-inconnu"])] == ["Bundle.entry[5].resource.titre"]


# --- generated and mutated --------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(fixtures) -> list[dict]:
    out = [r for bundle in list(fixtures.values())[:3] for r in entries(bundle)]
    out += [r for doc in official_resources().values() for r in entries(doc)
            if r.get("resourceType") not in ("StructureDefinition", "CodeSystem", "ValueSet")][:200]
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=3))
def test_mutations_of_real_resources_get_the_same_answer(seeds, seed, times):
    rnd = random.Random(seed)
    resource = rnd.choice(seeds)
    for _ in range(times):
        resource = mutate(resource, rnd, structure().data)
    agree(resource)


@settings(max_examples=250, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=3))
def test_generated_instances_of_any_resource_type_and_their_mutations_get_the_same_answer(seed, times):
    rnd = random.Random(seed)
    data = structure().data
    resource = Generator(rnd, data).resource()
    if times == 0:
        assert ours(resource) == [], resource  # generated valid (fhir.resources may refuse R4's `_valueDate`)
    for _ in range(times):
        resource = mutate(resource, rnd, data)
    agree(resource)


def test_every_type_of_the_schema_is_exercised():
    data = structure().data
    met = set()
    for seed in range(400):
        rnd = random.Random(seed)
        generator = Generator(rnd, data)
        resource = generator.resource(data["resources"][seed % len(data["resources"])])
        met.add(resource["resourceType"])
        agree(resource)
    assert met == set(data["resources"])


# --- primitive formats, value by value ------------------------------------------------------------
def _fhir_core_accepts(ptype: str, value) -> bool:
    from pydantic import TypeAdapter, ValidationError
    from fhir_core import types as t

    annotations = {
        "base64Binary": t.Base64BinaryType, "boolean": t.BooleanType, "canonical": t.CanonicalType,
        "code": t.CodeType, "date": t.DateType, "dateTime": t.DateTimeType, "decimal": t.DecimalType,
        "id": t.IdType, "instant": t.InstantType, "integer": t.IntegerType, "markdown": t.MarkdownType,
        "oid": t.OidType, "positiveInt": t.PositiveIntType, "string": t.StringType, "time": t.TimeType,
        "unsignedInt": t.UnsignedIntType, "uri": t.UriType, "url": t.UrlType, "uuid": t.UuidType,
        "xhtml": t.XhtmlType,
    }
    adapter = _ADAPTERS.get(ptype) or _ADAPTERS.setdefault(ptype, TypeAdapter(annotations[ptype]))
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    except Exception:  # noqa: BLE001 — fhir_core's url validator raises AttributeError on non-strings
        return False
    return True


_ADAPTERS: dict = {}


def primitive_agrees(ptype: str, value) -> None:
    problem = structure().checkers[ptype](value)
    accepted = _fhir_core_accepts(ptype, value)
    if problem is None:
        # only documented R4 rules make us accept what fhir_core refuses: uuid of any version
        assert accepted or ptype == "uuid", (ptype, value)
    elif problem in (FORMAT, CALENDAR, "range"):
        assert not accepted, (ptype, value, problem)
    else:
        assert problem in (TYPE, R4), problem  # R4 stricter: JSON types, id length, uri spaces, uuid form


@pytest.mark.parametrize("ptype", sorted(GOOD))
def test_good_and_bad_values_of_each_primitive_get_the_same_answer(ptype):
    for value in GOOD[ptype] + BAD[ptype]:
        if value is not None:
            primitive_agrees(ptype, value)
    for value in GOOD[ptype]:
        assert structure().checkers[ptype](value) is None, (ptype, value)


_PATTERNS = {
    "date": r"\A[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?\Z",
    "dateTime": r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})\Z",
    "instant": r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?(Z|[+-]1[0-5]:[0-9]{2})\Z",
    "time": r"\A[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?\Z",
    "oid": r"\Aurn:oid:[0-9](\.[0-9]{1,3}){1,4}\Z",
    "id": r"\A[A-Za-z0-9._ -]{0,70}\Z",
    "code": r"\A[ a-z\t\n\u00a0\u2003\u001c]{0,8}\Z",
    "decimal": r"\A-?[0-9]{1,3}(\.[0-9]{0,3})?([eE][+-]?[0-9])?\Z",
}


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_near_valid_strings_of_each_format_get_the_same_answer(data):
    ptype = data.draw(st.sampled_from(sorted(_PATTERNS)))
    value = data.draw(st.from_regex(_PATTERNS[ptype]))
    primitive_agrees(ptype, value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GOOD)), st.text(max_size=12))
def test_any_text_gets_the_same_answer_in_every_format(ptype, value):
    primitive_agrees(ptype, value)


def test_whitespace_means_what_it_means_to_pydantic_for_every_bmp_character():
    # pydantic matches string / code / id patterns with the Rust regex engine: `\s` is Unicode
    # White_Space (U+001C–U+001F are not whitespace there, they are to Python)
    for code_point in range(0x10000):
        if 0xD800 <= code_point < 0xE000:
            continue
        c = chr(code_point)
        for ptype, value in (("string", c), ("code", f"a{c}b")):
            assert (structure().checkers[ptype](value) is None) == _fhir_core_accepts(ptype, value), (ptype, hex(code_point))


# --- the documented differences (fhir.resources is wrong for FHIR R4) ---------------------------------
def _differs(resource: dict, location: str) -> None:
    """fhir.resources accepts (or crashes); we refuse at `location`, as an R4 rule."""
    found = ours(resource)
    assert [f.location for f in found if f.r4] == [location], found
    assert not [e for e in model_errors(resource) if not e.kind.startswith("crash:")], model_errors(resource)


@pytest.mark.parametrize("element, value", [
    ("active", "true"), ("active", 1), ("birthDate", 0), ("multipleBirthInteger", "2"),
    ("multipleBirthInteger", 2.0), ("maritalStatus", '{"text": "marié"}'),
])
def test_json_types_are_not_coerced(element, value):
    _differs({"resourceType": "Patient", element: value}, f"Patient.{element}")


def test_decimals_are_json_numbers():
    _differs({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
              "valueQuantity": {"value": "1.50"}}, "Observation.valueQuantity.value")


@pytest.mark.parametrize("resource, location", [
    ({"resourceType": "Patient", "maritalStatus": None}, "Patient.maritalStatus"),
    ({"resourceType": "Patient", "active": None}, "Patient.active"),
    ({"resourceType": "Patient", "link": [{"type": "seealso", "other": None}]}, "Patient.link[0].other"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": None}]}, "Bundle.entry[0].resource"),
])
def test_null_is_refused_outside_lists_of_primitives(resource, location):
    _differs(resource, location)


def test_null_keeps_its_place_in_a_list_of_primitives():
    resource = {"resourceType": "Patient", "name": [{"given": [None, "Jean"], "_given": [{"id": "g"}, None]}]}
    assert ours(resource) == [] and model_errors(resource) == []


@pytest.mark.parametrize("key, value", [
    ("fhir_comments", "commentaire"), ("birthDate__ext", {"id": "x"}), ("resource_type", "Patient"),
])
def test_what_is_not_fhir_is_an_unknown_element(key, value):
    _differs({"resourceType": "Patient", key: value}, f"Patient.{key}")


def test_resource_type_belongs_to_a_resource_s_root_only():
    _differs({"resourceType": "Patient", "name": [{"text": "x", "resourceType": "HumanName"}]},
             "Patient.name[0].resourceType")


def test_python_names_of_the_models_are_unknown_elements():
    found = ours({"resourceType": "Encounter", "status": "planned", "class_fhir": {"code": "x"}})
    assert {f.location for f in found} == {"Encounter.class_fhir", "Encounter.class"}
    assert all(f.r4 for f in found)


@pytest.mark.parametrize("inner", [{"resourceType": "Coding"}, {"resourceType": "DomainResource"},
                                   {"resourceType": "Foo"}, {"id": "x"}, {"resourceType": 5}])
def test_a_bundle_entry_is_a_concrete_resource(inner):
    # fhir.resources accepts data types and abstract types there, and crashes on unknown ones
    resource = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    assert [f.location for f in ours(resource)] == ["Bundle.entry[0].resource"]
    assert check_structure(resource)[0].rule == "fhir-structure"


def test_a_resource_is_not_a_data_type():
    found = ours({"resourceType": "Coding", "code": "x"})
    assert [(f.location, f.r4) for f in found] == [("Coding.resourceType", True)]


def test_an_id_has_at_most_64_characters():
    _differs({"resourceType": "Patient", "id": "a" * 65}, "Patient.id")
    assert ours({"resourceType": "Patient", "id": "a" * 64}) == []


@pytest.mark.parametrize("element", ["implicitRules", "url"])
def test_uris_have_no_whitespace(element):
    resource = {"resourceType": "Patient", "implicitRules": "http://example.org/a b"}
    if element == "url":
        resource = {"resourceType": "Patient", "photo": [{"url": "http://example.org/a b"}]}
    _differs(resource, "Patient.implicitRules" if element == "implicitRules" else "Patient.photo[0].url")


def test_a_uuid_is_written_as_r4_writes_it_whatever_its_version():
    ext = "Patient.extension[0].valueUuid"
    v1 = {"resourceType": "Patient", "extension": [{"url": "u", "valueUuid": "urn:uuid:c757873d-ec9a-1326-a141-556f43239520"}]}
    assert ours(v1) == [] and [e.kind for e in model_errors(v1)] == ["uuid_version"]
    _differs({"resourceType": "Patient", "extension": [{"url": "u", "valueUuid": "c757873d-ec9a-4326-a141-556f43239520"}]},
             ext)


def test_r4_open_types_allow_meta_not_the_r4b_types():
    meta = {"resourceType": "Patient", "extension": [{"url": "u", "valueMeta": {"versionId": "1"}}]}
    assert ours(meta) == [] and [e.kind for e in model_errors(meta)] == ["extra_forbidden"]
    _differs({"resourceType": "Patient", "extension": [{"url": "u", "valueRatioRange": {}}]},
             "Patient.extension[0].valueRatioRange")


def test_the_value_of_an_extension_may_carry_its_own_extensions():
    resource = {"resourceType": "Patient", "extension": [
        {"url": "u", "valueString": "x", "_valueString": {"extension": [{"url": "v", "valueCode": "c"}]}}]}
    assert ours(resource) == [] and [e.kind for e in model_errors(resource)] == ["extra_forbidden"]


@pytest.mark.parametrize("resource, location", [
    ({"resourceType": "Patient", "photo": [{"url": 5}]}, "Patient.photo[0].url"),
    ({"resourceType": "Patient", "_active": '"abc"'}, "Patient._active"),
])
def test_where_fhir_resources_crashes_the_error_is_reported(resource, location):
    assert model_errors(resource)[0].kind.startswith("crash:")
    assert [f.location for f in ours(resource)] == [location]
