"""The FHIR validation gate (issue 4 item 4): base R4 structure, then the TDDUI 2.2.0 profiles
compiled from their StructureDefinitions, offline terminology, invariants, Bundle references.

The shipped rule set (mappings/fhir/profiles/) is used throughout; the tests that read the FHIR
packages or the official examples from ../shared/reference skip, saying so, when it is absent."""

from __future__ import annotations

import copy
import hashlib
import tarfile
from pathlib import Path

import pytest

from gateway.conformance.fhir import PackageError, PackageSet, load_package, tddui_gate
from gateway.conformance.fhir import examples as ex
from gateway.conformance.fhir.compile import compile_packages, dump
from gateway.conformance.fhir.fhirpath import NATIVE, FhirPath
from gateway.conformance.fhir.gate import TDDUI_MAIN, TDDUI_PACKAGES, shipped_rules_path
from gateway.conformance.fhir.rules import RuleSet
from gateway.conformance.fhir.terminology import Terminology
from gateway.conformance.fhir.validator import Validator
from gateway.model.problem import Severity, errors

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference"
PACKAGES = REFERENCE / "fhir-packages"
OFFICIAL_BUNDLE = REFERENCE / "official/tddui/Bundle-tddui-pp-ime-bundle-example.json"
needs_packages = pytest.mark.skipif(
    not all((PACKAGES / p).is_file() for p in TDDUI_PACKAGES),
    reason=f"FHIR packages {TDDUI_PACKAGES} absent from {PACKAGES} (shared/reference not checked out)",
)
needs_official = pytest.mark.skipif(
    not OFFICIAL_BUNDLE.is_file(), reason=f"official TDDUI example {OFFICIAL_BUNDLE} absent (shared/reference not checked out)"
)

V = "2.2.0"
CAREPLAN = f"{ex.SD}tddui-careplan-projet-personnalise|{V}"
PATIENT_INS = f"{ex.SD}tddui-patient-ins|{V}"
TASK = f"{ex.SD}tddui-task-prestation|{V}"
ENCOUNTER = f"{ex.SD}tddui-encounter-evenement|{V}"
# entry positions in examples.bundle()
PATIENT, ORG, CONSENT, PLAN, NEED, GOAL, TASK_AT, EVENT = range(8)


@pytest.fixture(scope="module")
def gate():
    return tddui_gate()


def resource(bundle: dict, i: int) -> dict:
    return bundle["entry"][i]["resource"]


def find(problems, rule: str, location: str | None = None):
    return [p for p in problems if p.rule == rule and (location is None or p.location == location)]


def only_error(problems, rule: str, location: str, source: str | None = None):
    found = find(errors(problems), rule, location)
    assert found, f"no {rule} at {location}; got {[(p.rule, p.location) for p in errors(problems)]}"
    if source:
        assert found[0].source == source
    assert found[0].message and found[0].message_en
    return found[0]


# --- a valid Bundle ----------------------------------------------------------------------------
def test_valid_bundle_gives_no_error(gate):
    problems = gate.validate(ex.bundle())
    assert errors(problems) == []
    assert gate.accepts(ex.bundle(extra_tasks=5))


def test_every_problem_is_reported_once(gate):
    broken = ex.bundle()
    for i in (TASK_AT,):
        resource(broken, i)["input"][1]["valueCodeableConcept"]["coding"][0]["code"] = "9.9.9"
    problems = gate.validate(broken)
    keys = [(p.location, p.rule, p.message) for p in problems]
    assert len(keys) == len(set(keys))


def test_pinned_versions_are_reported(gate):
    pinned = gate.pinned
    assert pinned["main"]["id"] == TDDUI_MAIN and pinned["main"]["version"] == V
    assert all(len(p["sha256"]) == 64 for p in pinned["packages"])
    assert {p["id"] for p in pinned["packages"]} >= {"ans.fhir.fr.tddui", "hl7.fhir.fr.core"}
    assert pinned["rules"]["sha256"] == hashlib.sha256(shipped_rules_path().read_bytes()).hexdigest()
    assert any(d.startswith("tddui-serafin-union") for d in pinned["defects"])
    report = gate.report(ex.bundle())
    assert report["valid"] and report["pinned"] == pinned


# --- acceptance: each defect is rejected with a precise message --------------------------------
def test_wrong_profile_canonical_is_unknown(gate):
    b = ex.bundle()
    resource(b, PLAN)["meta"]["profile"] = [f"{ex.SD}tddui-careplan-projet-perso"]
    p = only_error(gate.validate(b), "profile-unknown", f"Bundle.entry[{PLAN}].resource.meta.profile[0]", f"{TDDUI_MAIN}|{V}")
    assert "tddui-careplan-projet-perso" in p.message


def test_profile_version_other_than_the_pinned_one_is_refused(gate):
    b = ex.bundle()
    resource(b, PLAN)["meta"]["profile"] = [f"{ex.SD}tddui-careplan-projet-personnalise|2.1.0-ballot"]
    p = only_error(gate.validate(b), "profile-unknown", f"Bundle.entry[{PLAN}].resource.meta.profile[0]")
    assert "2.2.0" in p.message and "version" in p.message_en


def test_profile_of_another_resource_type_is_a_mismatch(gate):
    b = ex.bundle()
    resource(b, PLAN)["meta"]["profile"] = [f"{ex.SD}tddui-task-prestation"]
    only_error(gate.validate(b), "profile-mismatch", f"Bundle.entry[{PLAN}].resource.meta.profile[0]")


def test_resource_without_profile_is_refused_by_the_gate(gate):
    b = ex.bundle()
    del resource(b, GOAL)["meta"]
    only_error(gate.validate(b), "profile-missing", f"Bundle.entry[{GOAL}].resource.meta.profile")


def test_qualified_identity_without_ins_breaks_fr_core_1(gate):
    b = ex.bundle()
    resource(b, PATIENT)["identifier"] = [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]},
         "use": "usual", "system": "https://identifiant-medicosocial-localusager.esante.gouv.fr", "value": "3750000001/123456"}
    ]
    p = only_error(gate.validate(b), "invariant:fr-core-1", f"Bundle.entry[{PATIENT}].resource", PATIENT_INS)
    assert "fr-core-1" in p.message


def test_patient_ins_without_identifier_misses_a_mandatory_element(gate):
    b = ex.bundle()
    del resource(b, PATIENT)["identifier"]
    only_error(gate.validate(b), "cardinality-min", f"Bundle.entry[{PATIENT}].resource.identifier", PATIENT_INS)


@pytest.mark.parametrize("code", ["9.9.9", "1.1.1", "2.1"], ids=["unknown", "a-need", "truncated"])
def test_task_prestation_rejects_a_code_outside_serafin_services(gate, code):
    b = ex.bundle()
    resource(b, TASK_AT)["input"][1]["valueCodeableConcept"]["coding"][0]["code"] = code
    if code == "2.1":  # 2.1 is a real J284 code (an intermediate level): FHIR bindings accept it
        assert not find(errors(gate.validate(b)), "binding-required")
        return
    p = only_error(gate.validate(b), "binding-required",
                   f"Bundle.entry[{TASK_AT}].resource.input[1].valueCodeableConcept", TASK)
    assert code in p.message and "tddui-serafin" in p.message


def test_encounter_serafin_type_rejects_an_unknown_code(gate):
    b = ex.bundle()
    resource(b, EVENT)["type"][0]["coding"][0]["code"] = "4.2"
    only_error(gate.validate(b), "binding-required", f"Bundle.entry[{EVENT}].resource.type[0].coding[0].code", ENCOUNTER)


@pytest.mark.parametrize("code", ["2.1.1.2", "2.3.4", "3.1.2.1", "3.2.4.1"])
def test_serafin_services_pass_against_the_union_with_a_note(gate, code):
    b = ex.bundle()
    resource(b, TASK_AT)["input"][1]["valueCodeableConcept"]["coding"][0]["code"] = code
    resource(b, EVENT)["type"][0]["coding"][0]["code"] = code
    problems = gate.validate(b)
    assert errors(problems) == []
    notes = find(problems, "defect:tddui-serafin-union")
    assert len(notes) == 1 and notes[0].severity is Severity.information
    assert "J283 ∪ J284" in notes[0].message and "§11.1" in notes[0].message


def test_broken_internal_reference_is_rejected(gate):
    b = ex.bundle()
    resource(b, PLAN)["subject"]["reference"] = "urn:uuid:dead0000-0000-4000-8000-000000000000"
    p = only_error(gate.validate(b), "reference-unresolved", f"Bundle.entry[{PLAN}].resource.subject.reference")
    assert "fullUrl" in p.message


def test_relative_reference_outside_the_bundle_is_an_error_for_the_gate_only(gate):
    b = ex.bundle()
    resource(b, PLAN)["subject"]["reference"] = "Patient/ailleurs"
    where = f"Bundle.entry[{PLAN}].resource.subject.reference"
    only_error(gate.validate(b), "reference-unresolved", where)
    lenient = Validator(gate.rules).validate(b)
    assert find(lenient, "reference-unresolved", where)[0].severity is Severity.warning


def test_reference_to_the_wrong_resource_type_is_rejected(gate):
    b = ex.bundle()
    resource(b, PLAN)["subject"]["reference"] = ex.U["org"]
    only_error(gate.validate(b), "reference-target-type", f"Bundle.entry[{PLAN}].resource.subject.reference", CAREPLAN)


@pytest.mark.parametrize("element", ["title", "identifier"])
def test_careplan_without_a_mandatory_element_is_rejected(gate, element):
    b = ex.bundle()
    del resource(b, PLAN)[element]
    p = only_error(gate.validate(b), "cardinality-min", f"Bundle.entry[{PLAN}].resource.{element}", CAREPLAN)
    assert f"CarePlan.{element}" in p.message


def test_identifier_system_not_matching_the_pattern_is_rejected(gate):
    b = ex.bundle()
    resource(b, PLAN)["identifier"][0]["system"] = "https://example.org/pp"
    only_error(gate.validate(b), "pattern-value", f"Bundle.entry[{PLAN}].resource.identifier[0].system", CAREPLAN)


def test_supporting_info_with_a_wrong_discriminator_misses_its_slice(gate):
    b = ex.bundle()
    resource(b, PLAN)["supportingInfo"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "titreObjectif"
    problems = gate.validate(b)
    p = only_error(problems, "slice-cardinality", f"Bundle.entry[{PLAN}].resource.supportingInfo", CAREPLAN)
    assert "accordStructure" in p.message


def test_task_without_its_title_input_misses_a_slice(gate):
    b = ex.bundle()
    del resource(b, TASK_AT)["input"][0]
    p = only_error(gate.validate(b), "slice-cardinality", f"Bundle.entry[{TASK_AT}].resource.input", TASK)
    assert "titre" in p.message


def test_slice_with_too_many_occurrences_is_rejected(gate):
    b = ex.bundle()
    inputs = resource(b, TASK_AT)["input"]
    inputs.append(copy.deepcopy(inputs[0]))
    p = only_error(gate.validate(b), "slice-cardinality", f"Bundle.entry[{TASK_AT}].resource.input", TASK)
    assert "maximum 1" in p.message


def test_choice_type_restricted_by_a_slice_is_enforced(gate):
    b = ex.bundle()
    titre = resource(b, TASK_AT)["input"][0]
    del titre["valueString"]
    titre["valueInteger"] = 3
    only_error(gate.validate(b), "type-not-allowed", f"Bundle.entry[{TASK_AT}].resource.input[0].valueInteger", TASK)


@pytest.mark.parametrize("field", ["start", "end"])
def test_bad_date_is_rejected(gate, field):
    b = ex.bundle()
    resource(b, PLAN)["period"][field] = "2026-02-30"
    p = only_error(gate.validate(b), "fhir-structure", f"Bundle.entry[{PLAN}].resource.period.{field}")
    assert "n'existe pas dans ce mois" in p.message and "2026-02-30" not in p.message  # the place, not the value


def test_unknown_element_is_rejected_by_the_base_structure(gate):
    b = ex.bundle()
    resource(b, PLAN)["titre"] = "x"
    only_error(gate.validate(b), "fhir-structure", f"Bundle.entry[{PLAN}].resource.titre")


def test_base_code_list_is_enforced(gate):
    b = ex.bundle()
    resource(b, TASK_AT)["status"] = "en-cours"
    only_error(gate.validate(b), "binding-required", f"Bundle.entry[{TASK_AT}].resource.status", TASK)


def test_request_url_must_name_the_resource_type(gate):
    b = ex.bundle()
    b["entry"][PLAN]["request"]["url"] = "Task"
    only_error(gate.validate(b), "request-url", f"Bundle.entry[{PLAN}].request.url")


def test_conditional_reference_and_patch_entry_are_legitimate_in_a_transaction(gate):
    b = ex.bundle()
    resource(b, PLAN)["author"] = [{"reference": "Organization?identifier=https://finess.esante.gouv.fr|750000001"}]
    b["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-a000-000000000001",
                       "resource": {"resourceType": "Parameters", "parameter": [{"name": "operation"}]},
                       "request": {"method": "PATCH", "url": "CarePlan/pp-1"}})
    problems = gate.validate(b)
    assert not find(problems, "reference-unresolved") and not find(problems, "request-url")


# --- terminology offline -------------------------------------------------------------------------
def test_value_set_not_available_offline_gives_information_not_error(gate):
    b = ex.bundle()
    resource(b, PLAN)["category"] = [{"coding": [{"system": "https://smt.esante.gouv.fr/terminologie-x", "code": "PPA"}]}]
    problems = gate.validate(b)
    assert errors(problems) == []
    note = find(problems, "binding-unverifiable", f"Bundle.entry[{PLAN}].resource.category[0]")[0]
    assert note.severity is Severity.information and "hors ligne" in note.message


def test_partial_value_set_confirms_known_codes_and_leaves_others_unverified(gate):
    # tddui-encounter-type = FR Core types ∪ tddui-serafin ∪ SSIAD events (not available offline)
    b = ex.bundle()
    resource(b, EVENT)["type"].append({"coding": [{"system": "https://smt.esante.gouv.fr/fhir/CodeSystem/terminologie-cisis",
                                                    "code": "SSIAD-01"}]})
    problems = gate.validate(b)
    assert errors(problems) == []
    assert find(problems, "binding-unverifiable", f"Bundle.entry[{EVENT}].resource.type[1]")


@needs_packages
def test_value_set_include_of_several_value_sets_is_an_intersection():
    packages = PackageSet.load([PACKAGES / p for p in TDDUI_PACKAGES])
    faithful = Terminology(packages).expand(f"{ex.TDDUI}/ValueSet/tddui-serafin")
    assert faithful.expandable and faithful.pairs() == set()
    from gateway.conformance.fhir import defects

    union = Terminology(packages, override=defects.value_set).expand(f"{ex.TDDUI}/ValueSet/tddui-serafin")
    codes = union.codes[ex.SERAFIN]
    assert {"2", "3", "2.1.1.2", "3.2.4.1"} <= codes and not any(c.startswith("1") for c in codes)
    assert union.notes == ["tddui-serafin-union"]


# --- invariants ----------------------------------------------------------------------------------
def test_empty_element_breaks_ele_1(gate):
    b = ex.bundle()
    resource(b, PLAN)["period"] = {}
    only_error(gate.validate(b), "invariant:ele-1", f"Bundle.entry[{PLAN}].resource.period")


def test_extension_with_value_and_extensions_breaks_ext_1(gate):
    b = ex.bundle()
    resource(b, GOAL)["extension"][0]["extension"] = [{"url": "x", "valueString": "y"}]
    only_error(gate.validate(b), "invariant:ext-1", f"Bundle.entry[{GOAL}].resource.extension[0]")


def test_fhirpath_invariant_of_the_base_resource_is_evaluated(gate):
    b = ex.bundle()
    task = resource(b, TASK_AT)
    task["authoredOn"], task["lastModified"] = "2026-03-01", "2026-02-01"
    only_error(gate.validate(b), "invariant:inv-1", f"Bundle.entry[{TASK_AT}].resource", TASK)


SAMPLES = [
    {"resourceType": "Patient"},
    {"resourceType": "Patient", "text": {"status": "generated", "div": "<div/>"}},
    {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "meta": {"versionId": "1"}}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "contained": [{"resourceType": "Patient"}]}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "meta": {"security": [{"code": "R"}]}}]},
    {"fullUrl": "http://x/Patient/1/_history/2", "resource": {}},
    {"fullUrl": "urn:uuid:1", "request": {"method": "POST", "url": "Patient"}},
    {"fullUrl": "urn:uuid:1"},
]


@pytest.mark.parametrize("key", sorted(NATIVE))
@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_native_invariants_agree_with_fhirpath(key, sample):
    expression, native = NATIVE[key]
    focus = SAMPLES[sample]
    engine = FhirPath()
    assert native(focus, focus) == engine.evaluate(expression, focus, focus)


def _invariant_expressions() -> list[str]:
    found: set[str] = set()

    def walk(node):
        found.update(c["expression"] for c in node.get("constraints", ()))
        for child in (*node.get("children", ()), *node.get("slices", ())):
            walk(child)

    for profile in RuleSet.load(shipped_rules_path()).profiles.values():
        walk(profile["root"])
    return sorted(found)


def _focus_samples() -> list[dict]:
    b = ex.bundle()
    task = resource(copy.deepcopy(b), TASK_AT)
    task.update(authoredOn="2026-03-01", lastModified="2026-02-01")
    goal = resource(copy.deepcopy(b), GOAL)
    goal["target"] = [{"detailString": "x"}]
    empty_consent = {"resourceType": "Consent", "scope": {"coding": [{"system": "something", "code": "adr"}]}}
    document = {"resourceType": "Bundle", "type": "document", "entry": [{"fullUrl": "urn:uuid:1"}]}
    return [b, *(e["resource"] for e in b["entry"]), task, goal, empty_consent, document]


def test_quick_answers_agree_with_the_fhirpath_engine():
    from gateway.conformance.fhir.fhirpath import quick

    engine, compared = FhirPath(), 0
    for expression in _invariant_expressions():
        for focus in _focus_samples():
            fast = quick(expression, focus)
            if fast is None:
                continue
            slow = engine.evaluate(expression, focus, focus)
            if slow is not None:
                assert fast == slow, (expression, focus.get("resourceType"))
                compared += 1
    assert compared > 50


def test_invariant_expressions_are_compiled_once():
    engine = FhirPath()
    first = engine.compiled("name.exists()")
    assert engine.compiled("name.exists()") is first


# --- official example (made for 2.1.0-ballot) ----------------------------------------------------
@needs_official
def test_official_example_is_judged_against_2_2_0_and_its_defects_explained(gate):
    import orjson

    problems = gate.validate(orjson.loads(OFFICIAL_BUNDLE.read_bytes()))
    urls = find(problems, "request-url")
    assert len(urls) == 7 and all("§11.2" in p.message for p in urls)
    renamed = [p for p in errors(problems) if "§11.3" in p.message]
    assert any("tddui-discriminator-cs" in p.message for p in renamed)
    assert any("input-tddui-task-action-codesystem" in p.message for p in renamed)
    assert find(problems, "slice-cardinality", "Bundle.entry[2].resource.supportingInfo")
    assert all(p.source.endswith(("|2.2.0", "|4.0.1", "R4B models)")) for p in problems)


# --- packages and compiled rules -----------------------------------------------------------------
@needs_packages
def test_shipped_rules_are_what_the_compiler_makes_from_the_packages():
    rules = compile_packages([PACKAGES / p for p in TDDUI_PACKAGES], TDDUI_MAIN)
    assert dump(rules) == shipped_rules_path().read_bytes(), (
        "recompile: python -m gateway.conformance.fhir.compile " + " ".join(f"--package {p}" for p in TDDUI_PACKAGES)
        + f" --main {TDDUI_MAIN} --out mappings/fhir/profiles/"
    )


@needs_packages
def test_gate_compiled_from_packages_judges_like_the_shipped_one(gate):
    fresh = tddui_gate(packages=[PACKAGES / p for p in TDDUI_PACKAGES])
    b = ex.bundle()
    del resource(b, PLAN)["title"]
    assert [p.rule for p in errors(fresh.validate(b))] == [p.rule for p in errors(gate.validate(b))]


@needs_packages
def test_package_reads_the_same_from_tgz_and_folder(tmp_path):
    tgz = PACKAGES / TDDUI_PACKAGES[0]
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp_path, filter="data")
    a, b = load_package(tgz), load_package(tmp_path)
    assert (a.id, a.version) == (b.id, b.version) == (TDDUI_MAIN, V)
    assert [r["url"] for r in a.resources] == [r["url"] for r in b.resources]
    sums = dict(line.split()[::-1] for line in (PACKAGES / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert a.sha256 == sums[tgz.name]
    assert b.sha256.startswith("folder:")


def test_package_is_found_in_a_fhir_package_cache(tmp_path):
    from gateway.conformance.fhir.packages import find_package

    (tmp_path / "ans.fhir.fr.tddui#2.2.0" / "package").mkdir(parents=True)
    assert find_package("ans.fhir.fr.tddui", "2.2.0", [tmp_path]).name == "ans.fhir.fr.tddui#2.2.0"
    with pytest.raises(PackageError):
        find_package("ans.fhir.fr.tddui", "9.9.9", [tmp_path])


def test_missing_package_stops_with_an_error(tmp_path):
    with pytest.raises(PackageError):
        load_package(tmp_path / "absent#1.0.0.tgz")
    with pytest.raises(PackageError):
        load_package(tmp_path)  # a folder without package/package.json


def test_rule_set_of_an_unknown_format_is_refused():
    from gateway.conformance.fhir.rules import RuleSetError

    with pytest.raises(RuleSetError):
        RuleSet({"format": "something-else"})
