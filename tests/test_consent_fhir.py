"""FHIR in and out: the Relais privacy-consent profile and the care team (cercle de soins shape).
Bad input gets a precise error: FHIRPath location, rule id, French message."""

from __future__ import annotations

import copy

import pytest
from fhir.resources.R4B.careteam import CareTeam as FhirCareTeam
from fhir.resources.R4B.consent import Consent as FhirConsent

from gateway.consent.fhir_careteam import MemberSpec, care_team_resource, read_care_team
from gateway.consent.fhir_common import FhirInputError, parse_fhir_datetime
from gateway.consent.fhir_consent import check_structure, read_consent
from gateway.consent.model import Effect
from gateway.consent.vocab import ConsentKind, MembershipBasis, Profession
from tests.test_consent_support import DR_HEALTH, NOW, PERSON, consent, node


def problems_of(resource, **kw):
    with pytest.raises(FhirInputError) as caught:
        check_structure(resource)
        read_consent(resource, person_local_id=kw.get("person", PERSON), now=NOW)
    return {(p.location, p.rule) for p in caught.value.problems if p.severity.value == "error"}, caught.value


def mutate(fn, **kw):
    resource = consent(**kw)
    fn(resource)
    return resource


@pytest.mark.parametrize("resource, location, rule", [
    ({"resourceType": "Patient"}, "Consent.resourceType", "consent-resource-type"),
    (mutate(lambda r: r.update(foo=1)), "Consent.foo", "fhir-extra-forbidden"),
    (mutate(lambda r: r.pop("scope")), "Consent.scope", "fhir-missing"),
    (mutate(lambda r: r["provision"].update(provision=[{"type": "deny", "period": {"start": "hier"}}])),
     "Consent.provision.provision[0].period.start", "fhir-value-error"),
    (mutate(lambda r: r.update(status="inactive")), "Consent.status", "consent-status"),
    (mutate(lambda r: r.update(scope={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                                   "code": "research"}]})), "Consent.scope", "consent-scope"),
    (mutate(lambda r: r.update(category=[{"text": "x"}])), "Consent.category", "consent-category"),
    (consent(kind="pas-une-categorie"), "Consent.category", "consent-category-unknown"),
    (mutate(lambda r: r.pop("policy")), "Consent", "ppc-1"),
    (consent(None), "Consent.provision.type", "consent-root-decision"),
    (consent("permit", policy_rule="OPTOUT"), "Consent.provision.type", "consent-root-decision-conflict"),
    (consent(policy_rule="OPTALL"), "Consent.policyRule.coding[0]", "consent-policy-rule"),
    (consent(nested=[node("deny", nested=[node("permit")])]), "Consent.provision.provision[0].provision",
     "consent-provision-depth"),
    (consent(nested=[node(None, purposes=["COC"])]), "Consent.provision.provision[0].type",
     "consent-provision-type"),
    (mutate(lambda r: r["provision"].update(actor=[{"role": {"coding": [{"system": "urn:x", "code": "PRCP"}]},
                                                     "reference": {"identifier": {"system": "https://rpps.esante.gouv.fr",
                                                                                  "value": DR_HEALTH}}}])),
     "Consent.provision.actor[0].role", "consent-actor-role"),
    (mutate(lambda r: r["provision"].update(actor=[{"role": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"reference": "Practitioner/123"}}])),
     "Consent.provision.actor[0].reference.identifier", "consent-actor-identifier"),
    (consent(purposes=["SHOPPING"]), "Consent.provision.purpose[0]", "consent-purpose"),
    (consent(classes=["dossier-complet"]), "Consent.provision.class[0]", "consent-class"),
    (consent("permit", kind=ConsentKind.opposition.value), "Consent.provision.type", "consent-category-decision"),
    (consent(kind=ConsentKind.outside_team.value), "Consent.provision.actor", "consent-recipient-required"),
    (consent(person="U000002"), "Consent.patient", "consent-patient-mismatch"),
    (consent(date="2030-01-01T10:00:00+01:00"), "Consent.dateTime", "consent-datetime-future"),
    (consent(period={"start": "2026-05-01", "end": "2026-04-01"}), "Consent.provision.period", "consent-period"),
    (mutate(lambda r: r.pop("performer")), "Consent.performer", "consent-performer"),
])
def test_bad_consents_get_a_precise_error(resource, location, rule):
    found, exc = problems_of(resource)
    assert (location, rule) in found, found
    assert all(p.message and p.source for p in exc.problems)


def test_error_messages_are_french():
    _, exc = problems_of(consent(kind=ConsentKind.outside_team.value))
    message = exc.problems[0].message
    assert "destinataires" in message and exc.problems[0].message_en


def test_missing_evidence_is_only_a_warning():
    resource = consent()
    del resource["sourceReference"]
    parsed = read_consent(resource, person_local_id=PERSON, now=NOW)
    assert [w.rule for w in parsed.warnings] == ["consent-evidence"]


@pytest.mark.parametrize("code, effect", [("OPTIN", Effect.permit), ("OPTINR", Effect.permit),
                                          ("OPTOUT", Effect.deny), ("OPTOUTE", Effect.deny)])
def test_the_r4_policy_rule_form_gives_the_root_decision(code, effect):
    parsed = read_consent(consent(None, policy_rule=code), person_local_id=PERSON, now=NOW)
    assert parsed.root.effect is effect


def test_the_patient_may_be_named_by_the_tddui_local_identifier():
    resource = consent()
    resource["patient"] = {"identifier": {"system": "https://identifiant-medicosocial-localusager.esante.gouv.fr",
                                          "value": f"3510000011/{PERSON}"}}
    assert read_consent(resource, person_local_id=PERSON, now=NOW).root is not None


def test_a_tddui_agreement_is_read_as_agreement_evidence_without_provision():
    agreement = consent(provision=False)
    agreement["meta"] = {"profile": ["https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-consent"]}
    del agreement["patient"]  # the TDDUI example has none
    parsed = read_consent(agreement, person_local_id=PERSON, now=NOW)
    assert parsed.kind is ConsentKind.agreement and parsed.root is None
    agreement["provision"] = {"type": "permit"}
    found, _ = problems_of(agreement)
    assert ("Consent.provision", "agreement-has-no-provision") in found


def test_idnat_ps_identifiers_name_the_same_professional_as_rpps():
    resource = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", DR_HEALTH)])
    resource["provision"]["actor"][0]["reference"]["identifier"] = {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                                                    "value": "8" + DR_HEALTH}
    parsed = read_consent(resource, person_local_id=PERSON, now=NOW)
    assert parsed.root.actors == {("rpps", DR_HEALTH)}


def test_date_only_periods_cover_whole_french_days():
    start = parse_fhir_datetime("2026-03-01")
    end = parse_fhir_datetime("2026-03-31", end=True)
    assert start.isoformat() == "2026-02-28T23:00:00+00:00"
    assert end.isoformat() == "2026-03-31T21:59:59.999999+00:00"  # CEST from 29 March
    assert parse_fhir_datetime("2026", end=True).isoformat().startswith("2026-12-31T22:59:59")


def test_every_consent_the_builders_make_is_valid_fhir_r4():
    resource = consent(kind=ConsentKind.opposition.value, effect="deny", actors=[("system", "dmp")],
                       nested=[node("permit", actors=[("rpps", DR_HEALTH)], purposes=["ETREAT"])])
    model = FhirConsent.model_validate(resource)
    again = model.model_dump(mode="json", exclude_none=True)
    assert again == resource


# ------------------------------------------------------------------ care team


def team(**kw):
    members = [MemberSpec("PractitionerRole", ("rpps", DR_HEALTH), Profession.health,
                          roles=(("https://mos.esante.gouv.fr/NOS/TRE_R260-HL7RoleClass/FHIR/TRE-R260-HL7RoleClass", "PROV"),),
                          organisation="510000029"),
               MemberSpec("Organization", ("finess", "510000029"), Profession.social,
                          basis=MembershipBasis.same_structure, end="2026-12-31"),
               MemberSpec("RelatedPerson", ("local", "AIDANT-1"), None)]
    return care_team_resource(PERSON, members, **kw)


def test_a_care_team_follows_the_cercle_de_soins_shape_and_is_valid_fhir():
    resource = team()
    FhirCareTeam.model_validate(resource)
    normalised, members = read_care_team(resource, person_local_id=PERSON)
    assert normalised["identifier"] and normalised["name"] and normalised["period"]["start"]
    assert [m.profession for m in members] == [Profession.health, Profession.social, None]
    assert members[0].roles == ("PROV",) and members[1].end is not None
    assert members[1].basis is MembershipBasis.same_structure


def test_an_inactive_care_team_has_no_members():
    _, members = read_care_team(team(status="inactive"), person_local_id=PERSON)
    assert members == ()


@pytest.mark.parametrize("change, location, rule", [
    (lambda r: r.update(subject={"reference": "Patient/U000002"}), "CareTeam.subject", "careteam-subject"),
    (lambda r: r.pop("period"), "CareTeam.period.start", "careteam-period"),
    (lambda r: r.pop("status"), "CareTeam.status", "careteam-status"),
    (lambda r: r["participant"][0]["member"].update(type="Device"), "CareTeam.participant[0].member.type",
     "careteam-member-type"),
    (lambda r: r["participant"][0]["member"].update(identifier={"system": "urn:x", "value": "1"}),
     "CareTeam.participant[0].member.identifier", "careteam-member-identifier"),
    (lambda r: r["participant"][1].pop("period"), "CareTeam.participant[1].period.start",
     "careteam-participant-period"),
    (lambda r: r["participant"][0]["role"].append({"coding": [{"system": "https://relais.example/fhir/CodeSystem/r1110-2-category",
                                                                "code": "astrologer"}]}),
     "CareTeam.participant[0].role", "careteam-profession"),
    (lambda r: r.update(bogus=True), "CareTeam.bogus", "fhir-extra-forbidden"),
])
def test_bad_care_teams_get_a_precise_error(change, location, rule):
    resource = copy.deepcopy(team())
    change(resource)
    with pytest.raises(FhirInputError) as caught:
        read_care_team(resource, person_local_id=PERSON)
    assert (location, rule) in {(p.location, p.rule) for p in caught.value.problems}
