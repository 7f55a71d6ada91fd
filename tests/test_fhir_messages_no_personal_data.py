"""The FHIR checks say where a value is wrong and why, never what it is: a name, a birth date or
an INS may be that value, and personal data stays out of messages (logs, problem+json, CLI).
What a profile's fixed value or pattern constrains (codes, systems, profiles) is still quoted."""

from __future__ import annotations

import pytest

from gateway.conformance.fhir.structure import check_structure, described
from gateway.conformance.fhir.validator import _constrained

NAME, BIRTH, INS = "Zoéline Quaresmat", "31/12/1985", "2851299123456"  # synthetic


@pytest.mark.parametrize("engine", ["compiled", "models"])
@pytest.mark.parametrize("patient", [
    {"resourceType": "Patient", "birthDate": BIRTH},  # a date of the wrong format
    {"resourceType": "Patient", "birthDate": [BIRTH]},  # of the wrong JSON type
    {"resourceType": "Patient", "name": NAME},  # a string where a list is expected
    {"resourceType": "Patient", "name": [NAME]},  # a string where an object is expected
    {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": [INS]}]},
    {"resourceType": "Patient", "gender": {"text": NAME}},
])
def test_a_structure_problem_names_the_place_not_the_value(engine, patient):
    problems = check_structure(patient, engine=engine)
    assert problems, patient
    for p in problems:
        text = f"{p.location} {p.message} {p.message_en}"
        assert NAME not in text and BIRTH not in text and INS not in text, text
        assert p.location.startswith("Patient.")


def test_a_pattern_or_fixed_value_mismatch_quotes_only_what_it_constrains():
    identifier = {"system": "urn:oid:1.2.3", "value": INS, "type": {"text": NAME}}
    shown = repr(_constrained(identifier, {"system": "urn:oid:1.2.250.1.213.1.4.8"}))
    assert "urn:oid:1.2.3" in shown and INS not in shown and NAME not in shown
    coding = {"coding": [{"system": "http://loinc.org", "code": "X", "display": NAME}]}
    shown = repr(_constrained(coding, {"coding": [{"system": "http://loinc.org", "code": "Y"}]}))
    assert "'X'" in shown and NAME not in shown
    assert repr(_constrained(INS, {"system": "s"})) == "<une chaîne de 13 caractère(s)>"


def test_a_wrong_value_is_described_by_its_kind_and_size_only():
    assert described(NAME) == ("une chaîne de 17 caractère(s)", "a string of 17 character(s)")
    assert described([BIRTH, INS]) == ("une liste de 2 élément(s)", "a list of 2 item(s)")
    assert described({"family": NAME})[0] == "un objet JSON"
    assert described(None) == ("null", "null") and described(True) == ("true", "true")
