"""The synthetic fixtures keep their promises (fixtures/README.md): valid, covering, fictional,
reproducible; and every invalid fixture fails with exactly its declared problem."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from gateway.model import IdentityStatus, Plan, PlanStatus, Severity
from gateway.model.identity import RepresentativeRole
from gateway.model.plan import Modality, Place, Specialisation
from gateway.plans import validate_plan, validate_plan_json
from mappings.serafin import nomenclature

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
PLAN_FILES = sorted((FIXTURES / "plans").glob("*.json"))
INVALID_DIR = FIXTURES / "invalid"
EXPECTED = json.loads((INVALID_DIR / "expected.json").read_text("utf-8"))
TODAY = dt.date(2026, 11, 26)
TEST_OID = "1.2.250.1.213.1.4.10"
HOUSING = {Modality.full_time_housing, Modality.night_care, Modality.temporary_housing, Modality.sequential}


def _load_generator():
    spec = importlib.util.spec_from_file_location("relais_fixtures_generate", FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator():
    return _load_generator()


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    out = {}
    for path in PLAN_FILES:
        plan, problems = validate_plan_json(path.read_bytes(), TODAY)
        assert plan is not None, [p.line(path.name) for p in problems]
        out[path.name] = plan
    return out


def _age(plan: Plan) -> int:
    return plan.person.age_on(TODAY)


# ------------------------------------------------------------------------ validity


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
def test_every_fixture_plan_validates_without_error(path: Path):
    plan, problems = validate_plan_json(path.read_bytes(), TODAY)
    errors = [p.line(path.name) for p in problems if p.severity is Severity.error]
    assert errors == []
    assert plan is not None


def test_fixture_plans_validate_the_same_from_parsed_json():
    for path in PLAN_FILES:
        plan, _ = validate_plan(json.loads(path.read_bytes()), TODAY)
        assert plan is not None, path.name


def test_warnings_on_fixture_plans_are_rare():
    warnings = [p.line(path.name) for path in PLAN_FILES
                for p in validate_plan_json(path.read_bytes(), TODAY)[1] if p.severity is Severity.warning]
    assert len(warnings) <= 3, warnings


def test_fixture_files_are_pretty_printed_utf8_with_unescaped_accents():
    for path in PLAN_FILES:
        text = path.read_bytes().decode("utf-8")
        assert text.startswith("{\n  ") and text.endswith("}\n"), path.name
        assert "\\u00" not in text, path.name


def test_fixture_names_say_the_age_group_and_family(plans):
    short = {"neurodevelopmental": "tnd", "psychiatric": "psy", "motor_polyhandicap": "moteur",
             "sensory": "sensoriel"}
    for name, plan in plans.items():
        group = "enfant" if _age(plan) < 18 else "adulte"
        assert re.fullmatch(rf"p\d{{3}}-{group}-{short[plan.specialisations[0].value]}\.json", name)


# ------------------------------------------------------------------------ coverage


def test_one_platform_follows_at_least_fifty_distinct_persons(plans):
    assert len(plans) >= 50
    assert len({p.platform.finess for p in plans.values()}) == 1
    assert len({p.person.local_id for p in plans.values()}) == len(plans)
    assert len({p.id for p in plans.values()}) == len(plans)
    ins = [p.person.ins.value for p in plans.values() if p.person.ins]
    assert len(set(ins)) == len(ins)


def test_children_and_adults_aged_two_to_sixty(plans):
    ages = [_age(p) for p in plans.values()]
    assert min(ages) >= 2 and max(ages) <= 60
    assert sum(a < 18 for a in ages) >= 15
    assert sum(a >= 18 for a in ages) >= 15
    assert sum(a < 6 for a in ages) >= 3  # early childhood too


def test_the_four_specialisation_families_are_represented(plans):
    counts = Counter(p.specialisations[0] for p in plans.values())
    assert set(counts) == set(Specialisation)
    assert min(counts.values()) >= 10


def test_every_modality_and_every_place_is_used(plans):
    services = [s for p in plans.values() for s in p.services]
    assert {s.modality for s in services} == set(Modality)
    assert {s.place for s in services} == set(Place)


def test_every_identity_status_is_present_and_persons_without_ins_are_not_qualified(plans):
    persons = [p.person for p in plans.values()]
    assert {p.identity_status for p in persons} == set(IdentityStatus)
    without_ins = [p for p in persons if p.ins is None]
    assert without_ins
    assert all(p.identity_status is not IdentityStatus.QUAL for p in without_ins)


def test_every_plan_status_is_present(plans):
    assert {p.status for p in plans.values()} == set(PlanStatus)


def test_minors_have_a_parent_and_adults_never_do(plans):
    for name, plan in plans.items():
        roles = {r.role for r in plan.person.representatives}
        if _age(plan) < 18:
            assert RepresentativeRole.parent in roles, name
        else:
            assert RepresentativeRole.parent not in roles, name


def test_protected_adults_cover_both_scopes_with_the_matching_protector(plans):
    seen = set()
    for name, plan in plans.items():
        measure = plan.person.protection
        if measure is None:
            continue
        roles = {r.role for r in plan.person.representatives}
        wanted = RepresentativeRole.guardian if measure.scope.value == "representation" else RepresentativeRole.curator
        assert wanted in roles, name
        seen.add((measure.kind.value, measure.scope.value))
    assert ("tutelle", "representation") in seen
    assert ("curatelle", "assistance") in seen


def test_non_draft_plans_carry_the_structure_agreement(plans):
    for name, plan in plans.items():
        parties = {a.party.value for a in plan.agreements}
        assert ("structure" in parties) == (plan.status is not PlanStatus.draft), name


def test_agreed_plans_carry_the_person_agreement_from_the_person_or_representative(plans):
    for name, plan in plans.items():
        if plan.status is not PlanStatus.agreed:
            continue
        person_agreements = [a for a in plan.agreements if a.party.value == "person"]
        assert person_agreements, name
        for agreement in person_agreements:
            if _age(plan) < 18:
                rep = next(r for r in plan.person.representatives if r.id == agreement.performer_id)
                assert rep.role is RepresentativeRole.parent, name
            elif plan.person.protection and plan.person.protection.scope.value == "assistance":
                assert agreement.performer_kind == "person", name
            else:
                assert agreement.performer_kind in ("person", "representative"), name
    performers = {a.performer_kind for p in plans.values() for a in p.agreements if a.party.value == "person"}
    assert performers == {"person", "representative"}


def test_needs_are_serafin_besoin_leaves_and_services_direct_or_transport_leaves(plans):
    terms = nomenclature()
    service_codes = set()
    for plan in plans.values():
        for need in plan.needs:
            concept = terms.get(need.code)
            assert concept.family == "besoin" and concept.is_leaf
        for service in plan.services:
            concept = terms.get(service.code)
            assert concept.is_leaf
            assert service.code.startswith("2.") or service.code.startswith("3.2.4."), service.code
            service_codes.add(service.code)
    assert any(code.startswith("3.2.4.") for code in service_codes)


def test_objectives_address_needs_and_services_serve_objectives(plans):
    for name, plan in plans.items():
        assert plan.needs and plan.objectives and plan.services, name
        assert all(o.need_ids for o in plan.objectives), name
        assert all(s.objective_ids for s in plan.services), name
        assert plan.expectations and plan.life_project, name
        assert plan.orientation_decisions, name


def test_partners_of_droit_commun_are_identified_by_siret_finess_or_local_id(plans):
    systems = Counter()
    for plan in plans.values():
        for service in plan.services:
            if service.provider.kind.value != "platform_team":
                assert service.provider.identifier is not None
                systems[service.provider.identifier.system.value] += 1
    assert {"siret", "finess", "local"} <= set(systems)


def test_intensities_are_given_in_hours_and_in_half_days(plans):
    units = {s.intensity.unit.value for p in plans.values() for s in p.services if s.intensity}
    assert units == {"hours_per_week", "half_days_per_week"}


def test_delivered_events_stays_evaluations_and_transport_are_present(plans):
    with_events = [p for p in plans.values() if p.events]
    assert len(with_events) >= 10
    assert any(e.transport_km is not None and e.transport_minutes is not None for p in with_events for e in p.events)
    assert any(e.outside_plan for p in with_events for e in p.events)
    assert any(e.status.value == "cancelled" for p in with_events for e in p.events)
    assert sum(bool(p.evaluations) for p in plans.values()) >= 5


def test_persons_with_a_housing_modality_have_stays(plans):
    for name, plan in plans.items():
        if any(s.modality in HOUSING for s in plan.services):
            assert plan.stays, name


def test_participation_uses_facilitators_and_alternative_communication(plans):
    means = {m for p in plans.values() if p.participation for m in p.participation.communication_means}
    assert {"pictogrammes", "LSF", "Makaton"} <= means
    assert any(p.participation and p.participation.facilitator for p in plans.values())


# -------------------------------------------------------------------- fictional people


def test_every_ins_uses_the_test_oid(plans):
    oids = {p.person.ins.oid for p in plans.values() if p.person.ins}
    assert oids == {TEST_OID}


def test_ins_birth_digits_match_the_person_traits(plans):
    for name, plan in plans.items():
        person = plan.person
        if person.ins is None:
            continue
        value = person.ins.value
        assert value[0] == ("1" if person.sex.value == "male" else "2"), name
        assert value[1:3] == f"{person.birth_date.year % 100:02d}", name
        assert value[3:5] == f"{person.birth_date.month:02d}", name
        assert value[5:10] == person.birthplace_insee, name


def test_family_names_come_from_the_invented_list(plans, generator):
    invented = set(generator.FAMILY_NAMES)
    for name, plan in plans.items():
        assert plan.person.birth_family_name in invented, name


def test_contact_details_are_fictional(plans):
    for name, plan in plans.items():
        telecoms = list(plan.person.telecom)
        telecoms += [t for r in plan.person.representatives for t in r.telecom]
        telecoms += [t for p in plan.professionals for t in p.telecom]
        for telecom in telecoms:
            kind, value = telecom.system.value, telecom.value
            if kind == "phone":
                assert re.fullmatch(r"01 99 00 \d\d \d\d", value), (name, value)
            elif kind == "email":
                assert re.search(r"[@.]example\.org$", value), (name, value)
            else:
                assert value.endswith(".mssante.example"), (name, value)


def test_structure_and_professional_identifiers_are_synthetic(plans):
    for name, plan in plans.items():
        assert plan.platform.finess.startswith("5100"), name
        for pro in plan.professionals:
            assert pro.rpps is None or re.fullmatch(r"[18]0{5}\d{5}", pro.rpps), (name, pro.rpps)


# ---------------------------------------------------------------- invalid fixtures

INVALID_FILES = sorted(p.name for p in INVALID_DIR.iterdir() if p.is_file() and p.name != "expected.json")
REQUIRED_DEFECTS = {
    "serafin-unknown-code", "serafin-not-leaf", "serafin-wrong-family", "broken-reference", "ins-check-key",
    "ins-oid", "ins-required-when-qualified", "period-order", "unknown-field", "required",
    "invalid-date", "duplicate-id", "intensity-bound", "agreed-without-person-agreement",
    "curator-cannot-agree-alone", "json-syntax", "json-duplicate-key", "json-not-object",
}


def test_expected_json_lists_every_invalid_file_and_nothing_else():
    assert sorted(EXPECTED) == INVALID_FILES


def test_there_are_at_least_eighteen_invalid_fixtures_covering_the_required_defects():
    assert len(INVALID_FILES) >= 18
    assert REQUIRED_DEFECTS <= {e["rule"] for e in EXPECTED.values()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture_is_rejected_with_its_expected_rule_at_its_location(name: str):
    raw = (INVALID_DIR / name).read_bytes()
    plan, problems = validate_plan_json(raw, TODAY)
    assert plan is None
    errors = [(p.rule, p.location) for p in problems if p.severity is Severity.error]
    assert errors == [(EXPECTED[name]["rule"], EXPECTED[name]["location"])]
    assert all(p.message for p in problems)


def test_cnsa_fixture_names_the_national_code():
    _, problems = validate_plan_json((INVALID_DIR / "cnsa-numbered-code.json").read_bytes(), TODAY)
    assert "1.1.4" in problems[0].message


# ---------------------------------------------------------------------- generator


def test_generator_is_deterministic(generator):
    assert generator.build_all() == generator.build_all()
    assert generator.build_invalid() == generator.build_invalid()


def test_generator_output_matches_the_committed_files(generator, tmp_path: Path):
    generator.write(tmp_path)
    for sub in ("plans", "invalid"):
        written = {p.name: p.read_bytes() for p in (tmp_path / sub).iterdir()}
        committed = {p.name: p.read_bytes() for p in (FIXTURES / sub).iterdir() if p.is_file()}
        assert sorted(written) == sorted(committed), f"{sub}: run `make fixtures`"
        stale = [name for name in written if written[name] != committed[name]]
        assert stale == [], f"{sub}: out of date, run `make fixtures`"
