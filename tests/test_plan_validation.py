"""Plan validation, one behaviour per test: the rule id, the JSON path, and a French message that
says what is wrong. Plus the strict JSON guards and the stability of the canonical form."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import Plan, Severity
from gateway.model.identity import ins_check_key
from gateway.plans import canonical_json, content_hash, loads_strict, validate_plan, validate_plan_json
from gateway.plans.jsoninput import MAX_BYTES, MAX_DEPTH, JsonInputError

TODAY = dt.date(2026, 11, 26)
FIXTURE_FILES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "plans").glob("*.json"))


def _ins(head13: str) -> str:
    return f"{head13}{ins_check_key(head13):02d}"


CHILD_INS = _ins("2120351454123")  # girl born 03/2012 in Reims (51454), synthetic
BASE = {
    "id": "PPA-T1", "title": "Projet personnalisé de test", "status": "agreed",
    "period": {"start": "2026-01-01", "end": "2026-12-31"}, "established_on": "2026-01-10",
    "person": {
        "local_id": "U-T1", "ins": {"value": CHILD_INS, "oid": "1.2.250.1.213.1.4.10"},
        "identity_status": "QUAL", "birth_family_name": "EXEMPLONNIN", "birth_given_names": ["LEA"],
        "birth_date": "2012-03-15", "sex": "female", "birthplace_insee": "51454",
        "representatives": [{"id": "R1", "role": "parent", "family_name": "EXEMPLONNIN", "given_names": ["Alex"]}],
    },
    "platform": {"finess": "510000011", "name": "Plateforme fictive", "coordinator": {"professional_id": "P1"}},
    "professionals": [{"id": "P1", "family_name": "COORDINEAU", "role": "coordinatrice de parcours"}],
    "needs": [
        {"id": "B1", "code": "1.3.3.1", "description": "Scolarité", "level": "moderate",
         "assessed_on": "2026-01-05", "method": "interview"},
        {"id": "B2", "code": "1.2.1.2", "description": "Relations", "level": "light",
         "assessed_on": "2026-01-05", "method": "observation"},
    ],
    "objectives": [
        {"id": "O1", "title": "Aller à l'école", "description": "Inclusion", "life_domain": "education",
         "need_ids": ["B1"]},
        {"id": "O2", "title": "Se faire des amis", "description": "Relations", "life_domain": "social_life_leisure",
         "need_ids": ["B2"]},
    ],
    "actions": [{"id": "AC1", "title": "Réunion d'équipe", "objective_ids": ["O1"], "owner_id": "P1"}],
    "services": [
        {"id": "S1", "code": "2.3.3.1", "title": "Soutien scolaire", "modality": "ordinary_environment",
         "place": "school", "provider": {"kind": "platform_team", "name": "Équipe"},
         "intensity": {"value": 3, "unit": "hours_per_week"}, "objective_ids": ["O1"], "action_id": "AC1"},
        {"id": "S2", "code": "2.2.2", "title": "Atelier communication", "modality": "day_care",
         "place": "platform_premises", "provider": {"kind": "platform_team", "name": "Équipe"},
         "objective_ids": ["O2"]},
    ],
    "stays": [{"id": "SEJ1", "period": {"start": "2026-02-01", "end": "2026-02-14"}}],
    "events": [{"id": "EV1", "code": "2.3.3.1", "service_id": "S1", "stay_id": "SEJ1", "professional_ids": ["P1"],
                "period": {"start": "2026-02-03T09:00:00+01:00", "end": "2026-02-03T10:00:00+01:00"}}],
    "evaluations": [{"id": "EVAL1", "date": "2026-01-04", "items": [{"code": "1.3.3.1", "value": 2}]}],
    "agreements": [
        {"id": "A1", "party": "person", "performer_kind": "representative", "performer_id": "R1",
         "date": "2026-01-10T10:00:00+01:00"},
        {"id": "A2", "party": "structure", "performer_kind": "professional", "performer_id": "P1",
         "date": "2026-01-10T10:00:00+01:00"},
    ],
}


def plan(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def adult(protection: dict | None = None, representatives: list | None = None, **changes) -> dict:
    """The same plan for a 40-year-old man (INS consistent with the traits)."""
    data = plan(**changes)
    data["person"].update(birth_date="1986-06-02", sex="male", birth_given_names=["PAUL"],
                          ins={"value": _ins("1860651454042"), "oid": "1.2.250.1.213.1.4.10"},
                          representatives=representatives or [])
    if protection:
        data["person"]["protection"] = protection
    data["agreements"][0] = {"id": "A1", "party": "person", "performer_kind": "person",
                             "date": "2026-01-10T10:00:00+01:00"}
    return data


def problems(data: object, today: dt.date = TODAY):
    return validate_plan(data, today)[1]


def only_error(data: object):
    """The single error the data must produce (warnings tolerated)."""
    result, found = validate_plan(data, TODAY)
    assert result is None
    errors = [p for p in found if p.severity is Severity.error]
    assert len(errors) == 1, [(p.rule, p.location, p.message) for p in errors]
    return errors[0]


def only_json_error(raw: bytes | str, **limits):
    result, found = validate_plan_json(raw, TODAY, **limits)
    assert result is None
    assert len(found) == 1, found
    assert found[0].location == "$" and found[0].source == "relais-json"
    return found[0]


# ------------------------------------------------------------------------- baseline


def test_the_reference_plan_is_valid_without_any_problem():
    result, found = validate_plan(plan(), TODAY)
    assert found == []
    assert isinstance(result, Plan)


def test_every_problem_names_its_source_and_has_french_and_english_text():
    data = plan()
    data["services"][0]["code"] = "1.3.3.1"
    problem = only_error(data)
    assert problem.source.startswith("relais-plan")
    assert problem.message and problem.message_en and problem.message != problem.message_en


# ------------------------------------------------------------------------- SERAFIN-PH


def test_unknown_serafin_code_is_rejected():
    data = plan()
    data["needs"][0]["code"] = "1.3.9.9"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-unknown-code", "$.needs[0].code")
    assert "inconnu" in problem.message and "1.3.9.9" in problem.message


def test_cnsa_numbering_points_to_national_code():
    data = plan()
    data["needs"][0]["code"] = "1.1.1.4"
    problem = only_error(data)
    assert problem.rule == "serafin-unknown-code"
    assert "CNSA" in problem.message and "le code national est 1.1.4" in problem.message


def test_cnsa_hint_only_when_the_national_code_exists():
    data = plan()
    data["needs"][0]["code"] = "1.1.1.11"
    assert "CNSA" not in only_error(data).message


def test_service_with_need_code_is_rejected_with_family_reason():
    data = plan()
    data["services"][0]["code"] = "1.3.3.1"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-wrong-family", "$.services[0].code")
    assert "besoins (1.x)" in problem.message
    assert "prestations directes (2.x)" in problem.message


def test_need_with_service_code_is_rejected_with_family_reason():
    data = plan()
    data["needs"][1]["code"] = "2.2.2"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-wrong-family", "$.needs[1].code")
    assert "prestations directes (2.x)" in problem.message and "attendu : besoins (1.x)" in problem.message


def test_non_leaf_service_code_lists_the_more_precise_codes():
    data = plan()
    data["services"][0]["code"] = "2.3.3"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-not-leaf", "$.services[0].code")
    assert "choisir le plus précis" in problem.message
    assert "2.3.3.1, 2.3.3.2, 2.3.3.3, 2.3.3.4, 2.3.3.5, 2.3.3.6" in problem.message


def test_non_leaf_need_code_is_rejected():
    data = plan()
    data["needs"][0]["code"] = "1.2.1"
    assert only_error(data).rule == "serafin-not-leaf"


@pytest.mark.parametrize("code", ["3.2.4.1", "3.2.4.2", "3.2.4.3"])
def test_transport_leaves_are_accepted_as_services_and_events(code):
    data = plan()
    data["services"][1]["code"] = code
    data["events"][0]["code"] = code
    assert problems(data) == []


def test_event_code_must_be_a_service_leaf():
    data = plan()
    data["events"][0]["code"] = "1.3.3.1"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-wrong-family", "$.events[0].code")


def test_evaluation_items_accept_need_codes_of_any_level():
    data = plan()
    data["evaluations"][0]["items"] += [{"code": "1.2", "value": 3}, {"code": "1", "value": 1}]
    assert problems(data) == []


def test_evaluation_items_reject_service_codes():
    data = plan()
    data["evaluations"][0]["items"][0]["code"] = "2.3.3.1"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("serafin-wrong-family", "$.evaluations[0].items[0].code")


def test_malformed_serafin_code_is_a_format_error():
    data = plan()
    data["needs"][0]["code"] = "1.3.3.1.1"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("format", "$.needs[0].code")
    assert problem.message.startswith("format invalide")


# ------------------------------------------------------------------------- references


def test_objective_pointing_at_a_missing_need_is_a_broken_reference():
    data = plan()
    data["objectives"][0]["need_ids"] = ["B9"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("broken-reference", "$.objectives[0].need_ids[0]")
    assert problem.message == "'B9' : besoin introuvable dans le projet"


def test_service_pointing_at_a_missing_objective_is_a_broken_reference():
    data = plan()
    data["services"][1]["objective_ids"] = ["O2", "O7"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("broken-reference", "$.services[1].objective_ids[1]")
    assert "objectif introuvable" in problem.message


@pytest.mark.parametrize("path, field, location, what", [
    ("services", "action_id", "$.services[0].action_id", "action"),
    ("events", "service_id", "$.events[0].service_id", "prestation"),
    ("events", "stay_id", "$.events[0].stay_id", "séjour"),
    ("actions", "owner_id", "$.actions[0].owner_id", "professionnel"),
    ("needs", "assessor_id", "$.needs[0].assessor_id", "professionnel"),
    ("evaluations", "assessor_id", "$.evaluations[0].assessor_id", "professionnel"),
])
def test_every_reference_must_point_at_an_existing_element(path, field, location, what):
    data = plan()
    data[path][0][field] = "NOPE"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("broken-reference", location)
    assert f"{what} introuvable" in problem.message


def test_coordinator_must_be_one_of_the_listed_professionals():
    data = plan()
    data["platform"]["coordinator"]["professional_id"] = "P9"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("broken-reference", "$.platform.coordinator.professional_id")


@pytest.mark.parametrize("path, what", [("needs", "les besoins"), ("objectives", "les objectifs"),
                                        ("services", "les prestations")])
def test_duplicate_id_is_reported_at_the_second_occurrence(path, what):
    data = plan()
    data[path].append(copy.deepcopy(data[path][0]))
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("duplicate-id", f"$.{path}[2].id")
    assert "en double" in problem.message and what in problem.message


def test_objective_without_need_is_a_warning_when_needs_were_assessed():
    data = plan()
    data["objectives"][1]["need_ids"] = []
    result, found = validate_plan(data, TODAY)
    assert result is not None
    assert [(p.rule, p.location, p.severity) for p in found] == [
        ("objective-without-need", "$.objectives[1].need_ids", Severity.warning)]


# -------------------------------------------------------------------- identity (INS)


def test_qualified_identity_requires_ins():
    data = plan()
    del data["person"]["ins"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-required-when-qualified", "$.person")
    assert "qualifiée (QUAL)" in problem.message and "INS" in problem.message


def test_qualified_identity_requires_the_birthplace_trait():
    data = plan()
    del data["person"]["birthplace_insee"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-traits-incomplete", "$.person")
    assert "lieu de naissance" in problem.message


@pytest.mark.parametrize("status", ["PROV", "VALI"])
def test_provisional_or_validated_identities_may_lack_the_ins(status):
    data = plan()
    del data["person"]["ins"]
    data["person"]["identity_status"] = status
    assert problems(data) == []


def test_recovered_identity_requires_the_ins_it_was_recovered_with():
    data = plan()
    del data["person"]["ins"]
    data["person"]["identity_status"] = "RECUP"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-required-when-recovered", "$.person")
    assert "INSi" in problem.message


@pytest.mark.parametrize("kind, scope", [("tutelle", "assistance"), ("curatelle", "representation"),
                                         ("curatelle_renforcee", "representation")])
def test_protection_scope_must_fit_the_measure(kind, scope):
    data = plan()
    data["person"]["protection"] = {"kind": kind, "scope": scope}
    data["person"]["birth_date"] = "1980-01-01"
    rules = [(p.rule, p.location) for p in problems(data) if p.severity is Severity.error]
    assert ("protection-scope", "$.person.protection") in rules


def test_structure_agreement_must_be_signed_by_a_professional():
    data = plan()
    structure = next(a for a in data["agreements"] if a["party"] == "structure")
    structure["performer_kind"] = "person"
    structure.pop("performer_id", None)
    problem = only_error(data)
    assert problem.rule == "structure-agreement-by-professional"


def test_ins_whose_birth_digits_contradict_the_birth_date_is_a_warning():
    data = plan()
    data["person"]["birth_date"] = "2013-05-15"
    found = [p for p in problems(data) if p.rule == "ins-traits-mismatch"]
    assert found and all(p.severity is Severity.warning for p in found)
    assert found[0].location == "$.person.ins.value"


def test_ins_with_a_wrong_check_key_is_rejected():
    data = plan()
    data["person"]["ins"]["value"] = CHILD_INS[:13] + f"{(int(CHILD_INS[13:]) + 1) % 100:02d}"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-check-key", "$.person.ins.value")
    assert "clé de contrôle" in problem.message


@pytest.mark.parametrize("value", ["12345", "9120351454123", CHILD_INS + "0", "2120351454123AB"])
def test_ins_with_a_bad_format_is_rejected(value):
    data = plan()
    data["person"]["ins"]["value"] = value
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-format", "$.person.ins.value")
    assert "15 caractères" in problem.message


def test_corsican_matricules_count_2a_as_19_for_the_key():
    head = "195052A004282"  # born in Ajaccio (2A004)
    assert ins_check_key(head) == 97 - int("1950519004282") % 97
    data = plan()
    data["person"].update(ins={"value": _ins(head), "oid": "1.2.250.1.213.1.4.10"}, birthplace_insee="2A004",
                          sex="male", birth_date="1995-05-20")
    data["person"]["representatives"] = []
    assert [p for p in problems(data) if p.rule.startswith("ins")] == []


def test_ins_is_normalised_to_upper_case_without_spaces():
    head = "195052A004282"
    spaced = " ".join([head[0], head[1:3], head[3:5], head[5:7].lower(), head[7:10], head[10:13],
                       f"{ins_check_key(head):02d}"])
    data = plan()
    data["person"]["ins"]["value"] = spaced
    result, found = validate_plan(data, TODAY)
    assert result is not None and result.person.ins.value == _ins(head)
    assert [p.rule for p in found] == ["ins-traits-mismatch"] * 2  # another person's digits


def test_ins_with_an_unknown_oid_is_rejected_and_the_known_ones_listed():
    data = plan()
    data["person"]["ins"]["oid"] = "1.2.250.1.213.1.4.99"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("ins-oid", "$.person.ins.oid")
    assert "1.2.250.1.213.1.4.99" in problem.message and "1.2.250.1.213.1.4.10" in problem.message


# ------------------------------------------------------------------ structure, formats


def test_period_end_before_start_names_both_dates():
    data = plan(period={"start": "2026-06-01", "end": "2026-01-31"})
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("period-order", "$.period")
    assert problem.message == "la date de fin (2026-01-31) précède la date de début (2026-06-01)"


def test_event_ending_before_it_starts_is_rejected():
    data = plan()
    data["events"][0]["period"]["end"] = "2026-02-03T08:00:00+01:00"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("period-order", "$.events[0].period")


def test_objective_target_before_its_start_is_rejected():
    data = plan()
    data["objectives"][0].update(start_date="2026-06-01", target_date="2026-05-01")
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("objective-dates", "$.objectives[0]")


def test_orientation_decision_needs_a_bounded_validity():
    data = plan(orientation_decisions=[{"id": "D1", "decision_number": "CDAPH-51-2026-000001", "mdph": "51",
                                        "decision_date": "2026-01-02", "orientation": "SESSAD",
                                        "validity": {"start": "2026-02-01"}}])
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("orientation-validity", "$.orientation_decisions[0]")
    assert "date de début et de fin" in problem.message


def test_unknown_field_is_rejected_not_silently_dropped():
    data = plan(next_reveiw="2027-01-01")
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("unknown-field", "$.next_reveiw")
    assert problem.message.startswith("champ inconnu")


def test_missing_mandatory_field_is_named():
    data = plan()
    del data["person"]["birth_date"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("required", "$.person.birth_date")
    assert problem.message == "champ obligatoire manquant"


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "26/01/2026"])
def test_impossible_date_is_rejected(value):
    problem = only_error(plan(established_on=value))
    assert problem.location == "$.established_on"
    assert problem.rule == "invalid-date"
    assert "date invalide" in problem.message


def test_enum_value_lists_the_allowed_ones():
    data = plan()
    data["services"][0]["modality"] = "boarding"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("value-not-allowed", "$.services[0].modality")
    assert "'ordinary_environment'" in problem.message


def test_intensity_beyond_168_hours_a_week_is_impossible():
    data = plan()
    data["services"][0]["intensity"]["value"] = 168.5
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("intensity-bound", "$.services[0].intensity")
    assert problem.message == "intensité impossible : 168.5 au-delà de 168 par semaine"


def test_intensity_of_exactly_168_hours_is_accepted():
    data = plan()
    data["services"][0]["intensity"]["value"] = 168
    assert problems(data) == []


def test_intensity_beyond_14_half_days_a_week_is_impossible():
    data = plan()
    data["services"][0]["intensity"] = {"value": 15, "unit": "half_days_per_week"}
    problem = only_error(data)
    assert problem.rule == "intensity-bound" and "au-delà de 14" in problem.message


@pytest.mark.parametrize("value", [0, -1])
def test_intensity_must_be_positive(value):
    data = plan()
    data["services"][0]["intensity"]["value"] = value
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("out-of-range", "$.services[0].intensity.value")
    assert problem.message == "la valeur doit être supérieure à 0"


def test_partner_provider_must_be_identified():
    data = plan()
    data["services"][0]["provider"] = {"kind": "mainstream_partner", "name": "École fictive"}
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("provider-identifier", "$.services[0].provider")
    assert "FINESS, SIRET, RPPS" in problem.message


def test_partner_identified_by_siret_is_accepted():
    data = plan()
    data["services"][0]["provider"] = {"kind": "mainstream_partner", "name": "Club fictif",
                                       "identifier": {"system": "siret", "value": "99900000000018"}}
    assert problems(data) == []


# ---------------------------------------------------------------- who may act, agree


def test_minor_without_parent_is_a_warning_not_an_error():
    data = plan()
    data["person"]["representatives"] = []
    data["agreements"][0] = {"id": "A1", "party": "person", "performer_kind": "person",
                             "date": "2026-01-10T10:00:00+01:00"}
    result, found = validate_plan(data, TODAY)
    assert result is not None
    assert [(p.rule, p.location, p.severity) for p in found] == [
        ("minor-without-parental-authority", "$.person.representatives", Severity.warning)]
    assert "autorité parentale" in found[0].message


def test_minority_is_decided_on_the_day_passed_in():
    data = adult()
    data["person"]["birth_date"] = "2008-11-27"  # 18 on 2026-11-27
    data["person"]["representatives"] = [{"id": "R1", "role": "parent", "family_name": "X", "given_names": ["Y"]}]
    data["person"].pop("ins"), data["person"].update(identity_status="VALI")
    assert [p.rule for p in problems(data, dt.date(2026, 11, 26))] == []
    assert [p.rule for p in problems(data, dt.date(2026, 11, 27))] == ["parental-authority-on-adult"]


def test_parent_role_on_an_adult_is_rejected():
    data = adult(representatives=[{"id": "R1", "role": "parent", "family_name": "X", "given_names": ["Y"]}])
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("parental-authority-on-adult", "$.person.representatives[0].role")
    assert "majorité" in problem.message


def test_adult_protection_measure_on_a_minor_is_rejected():
    data = plan()
    data["person"]["protection"] = {"kind": "tutelle", "scope": "representation"}
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("protection-on-minor", "$.person.protection")


@pytest.mark.parametrize("kind, scope, label", [("tutelle", "representation", "tuteur"),
                                                ("curatelle", "assistance", "curateur")])
def test_protection_measure_requires_its_protector(kind, scope, label):
    data = adult(protection={"kind": kind, "scope": scope})
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("protection-without-protector", "$.person.representatives")
    assert label in problem.message


def test_guardian_may_agree_for_an_adult_under_representation():
    data = adult(protection={"kind": "tutelle", "scope": "representation"},
                 representatives=[{"id": "R1", "role": "guardian", "family_name": "TUTEUR", "given_names": ["Ana"]}])
    data["agreements"][0] = {"id": "A1", "party": "person", "performer_kind": "representative",
                             "performer_id": "R1", "date": "2026-01-10T10:00:00+01:00"}
    assert problems(data) == []


def test_curator_agreeing_alone_is_rejected():
    data = adult(protection={"kind": "curatelle", "scope": "assistance"},
                 representatives=[{"id": "R1", "role": "curator", "family_name": "CURATEUR", "given_names": ["Ana"]}])
    data["agreements"][0] = {"id": "A1", "party": "person", "performer_kind": "representative",
                             "performer_id": "R1", "date": "2026-01-10T10:00:00+01:00"}
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("curator-cannot-agree-alone", "$.agreements[0].performer_id")
    assert "assiste la personne" in problem.message


def test_person_under_curatelle_agrees_themselves():
    data = adult(protection={"kind": "curatelle", "scope": "assistance"},
                 representatives=[{"id": "R1", "role": "curator", "family_name": "CURATEUR", "given_names": ["Ana"]}])
    assert problems(data) == []


def test_agreement_by_an_unknown_representative_is_a_broken_reference():
    data = plan()
    data["agreements"][0]["performer_id"] = "R9"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("broken-reference", "$.agreements[0].performer_id")
    assert "représentant légal introuvable" in problem.message


def test_person_agreement_cannot_be_signed_by_a_professional():
    data = plan()
    data["agreements"][0].update(performer_kind="professional", performer_id="P1")
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("person-agreement-by-professional", "$.agreements[0].performer_kind")


def test_agreement_by_a_representative_must_name_the_signatory():
    data = plan()
    del data["agreements"][0]["performer_id"]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("agreement-performer", "$.agreements[0]")


def test_agreed_plan_without_the_person_agreement_is_rejected():
    data = plan()
    del data["agreements"][0]
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("agreed-without-person-agreement", "$.status")
    assert "sans accord de la personne" in problem.message


@pytest.mark.parametrize("status", ["validated", "agreed", "suspended", "closed"])
def test_non_draft_plan_requires_the_structure_agreement(status):
    data = plan(status=status)
    del data["agreements"][1]
    found = [p for p in problems(data) if p.rule == "missing-structure-agreement"]
    assert [(p.location, p.severity) for p in found] == [("$.agreements", Severity.error)]
    assert f"« {status} »" in found[0].message


def test_draft_plan_needs_no_agreement():
    assert problems(plan(status="draft", agreements=[])) == []


# ------------------------------------------------------------------------ the clock


def test_birth_date_in_the_future_is_rejected():
    data = plan()
    data["person"]["birth_date"] = "2026-11-27"
    found = [p for p in problems(data) if p.severity is Severity.error]
    assert [(p.rule, p.location) for p in found] == [("birth-date-future", "$.person.birth_date")]


def test_need_assessed_in_the_future_is_rejected():
    data = plan()
    data["needs"][1]["assessed_on"] = "2026-11-27"
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("date-future", "$.needs[1].assessed_on")
    assert validate_plan(data, dt.date(2026, 11, 27))[1] == []


def test_event_outside_the_plan_cannot_be_linked_to_a_planned_service():
    data = plan()
    data["events"][0]["outside_plan"] = True
    problem = only_error(data)
    assert (problem.rule, problem.location) == ("event-outside-plan-linked", "$.events[0].outside_plan")


# ------------------------------------------------------------------------- JSON guards


def test_json_duplicate_key_is_refused_and_named():
    problem = only_json_error(b'{"id": "A", "id": "B"}')
    assert problem.rule == "json-duplicate-key"
    assert "'id'" in problem.message and "double" in problem.message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_numbers_are_refused(literal):
    problem = only_json_error(f'{{"value": {literal}}}')
    assert problem.rule == "json-non-finite"
    assert literal in problem.message


def test_json_nested_too_deep_is_refused():
    raw = '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    problem = only_json_error(raw)
    assert problem.rule == "json-too-deep"
    assert f"plus de {MAX_DEPTH} niveaux" in problem.message


def test_json_nesting_at_the_limit_is_read():
    value = loads_strict('{"a": ' + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "}")
    assert "a" in value


def test_json_nesting_beyond_the_parser_stack_is_refused_not_crashing():
    problem = only_json_error("[" * 200_000 + "]" * 200_000)
    assert problem.rule == "json-too-deep"


def test_json_that_is_not_utf8_is_refused_with_the_byte_offset():
    problem = only_json_error('{"title": "Projet élaboré"}'.encode("latin-1"))
    assert problem.rule == "json-encoding"
    assert "UTF-8" in problem.message and "octet 18" in problem.message  # the "é" of "élaboré"


def test_json_document_too_large_is_refused_before_parsing():
    problem = only_json_error(b"{" + b" " * MAX_BYTES + b"}")
    assert problem.rule == "too-large"
    assert f"maximum {MAX_BYTES}" in problem.message


def test_json_size_limit_can_be_lowered_by_the_caller():
    problem = only_json_error(json.dumps(BASE).encode(), max_bytes=100)
    assert problem.rule == "too-large" and "maximum 100" in problem.message


def test_json_number_with_too_many_digits_is_refused():
    problem = only_json_error('{"value": ' + "9" * 41 + "}")
    assert problem.rule == "json-number-too-large"


def test_json_syntax_error_says_where_in_french():
    problem = only_json_error(b'{\n  "id": "A"\n  "title": "B"\n}')
    assert problem.rule == "json-syntax"
    assert problem.message == "JSON invalide ligne 3, colonne 3 : virgule attendue"


@pytest.mark.parametrize("raw", [b"[]", b'"plan"', b"42", b"null"])
def test_json_root_must_be_an_object(raw):
    problem = only_json_error(raw)
    assert problem.rule == "json-not-object"
    assert "objet JSON" in problem.message


def test_json_with_a_byte_order_mark_is_read():
    result, found = validate_plan_json(b"\xef\xbb\xbf" + json.dumps(BASE).encode(), TODAY)
    assert found == [] and result is not None


def test_json_text_and_bytes_give_the_same_result():
    text = json.dumps(BASE, ensure_ascii=False)
    assert validate_plan_json(text, TODAY) == validate_plan_json(text.encode(), TODAY)


def test_json_guard_errors_are_json_input_errors():
    with pytest.raises(JsonInputError) as caught:
        loads_strict(b'{"a": 1, "a": 2}')
    assert caught.value.problem.rule == "json-duplicate-key"


# ------------------------------------------------------------- canonical form (property)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_canonical_form_of_every_fixture_is_stable(path):
    plan_obj = Plan.model_validate_json(path.read_bytes())
    canonical = canonical_json(plan_obj)
    again = canonical_json(Plan.model_validate_json(canonical))
    assert again == canonical
    assert content_hash(again) == content_hash(canonical)


def test_canonical_form_ignores_key_order_and_whitespace():
    data = plan()
    shuffled = json.loads(json.dumps(data, sort_keys=True, indent=4))
    shuffled = dict(reversed(list(shuffled.items())))
    assert canonical_json(Plan.model_validate(shuffled)) == canonical_json(Plan.model_validate(data))


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60).filter(str.strip)
_FIXTURES = [json.loads(p.read_bytes()) for p in FIXTURE_FILES[::6]]


@st.composite
def mutated_plans(draw):
    data = copy.deepcopy(draw(st.sampled_from(_FIXTURES or [BASE])))
    data["title"] = draw(_TEXT)
    data["notes"] = draw(_TEXT)
    need = draw(st.sampled_from(data["needs"]))
    need["description"] = draw(_TEXT)
    service = draw(st.sampled_from(data["services"]))
    value = draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("168"), places=2))
    service["intensity"] = {"value": str(value), "unit": "hours_per_week"}
    start = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31)))
    data["period"] = {"start": start.isoformat(),
                      "end": (start + dt.timedelta(days=draw(st.integers(0, 800)))).isoformat()}
    offset = dt.timezone(dt.timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    when = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31)))
    data.setdefault("agreements", [])
    data["agreements"] = data["agreements"] + [{
        "id": "ACC-HYP", "party": "structure", "performer_kind": "professional",
        "performer_id": data["platform"]["coordinator"]["professional_id"],
        "date": when.replace(tzinfo=offset).isoformat()}]
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_canonical_form_is_stable_under_small_mutations(data):
    plan_obj = Plan.model_validate(data)
    canonical = canonical_json(plan_obj)
    assert canonical_json(Plan.model_validate_json(canonical)) == canonical


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(BASE) + ["extra"]), _JSON, max_size=6))
def test_validation_reports_problems_and_never_raises_on_arbitrary_objects(data):
    result, found = validate_plan(data, TODAY)
    assert result is None and found
    assert all(p.location.startswith("$") and p.rule and p.message for p in found)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=200))
def test_json_validation_never_raises_on_arbitrary_bytes(raw):
    result, found = validate_plan_json(raw, TODAY)
    assert result is None and found
