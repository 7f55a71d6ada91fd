"""Every French rule of the PDP, with a case it permits and a case it denies (pure, in memory)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from gateway.consent import rules as rules_module
from gateway.consent.model import Effect, Recipient
from gateway.consent.pdp import decide
from gateway.consent.vocab import ConsentKind, InformationMethod, InformationTopic as T, MembershipBasis, Profession, System
from tests.test_consent_support import (
    DR_HEALTH,
    EDUC,
    NOW,
    PARENT_MAIL,
    PARTNER_ORG,
    PLATFORM,
    STRANGER,
    consent,
    facts,
    info,
    member,
    node,
    request,
    state,
)

INFORMED = (info(T.care_team_sharing, T.cross_category_exchange, T.dmp),)
TEAM = (member(DR_HEALTH, Profession.health), member(EDUC, Profession.social))


def ok_state(**kw):
    kw.setdefault("team", TEAM)
    kw.setdefault("information", INFORMED)
    return state(**kw)


def verdict(s, req, now=NOW):
    return decide(s, req, now=now)


def assert_denied_by(decision, rule_id):
    assert decision.effect is Effect.deny, decision.reasons
    assert rule_id in decision.rule_ids, decision.rule_ids


def assert_permitted(decision, rule_id=None):
    assert decision.effect is Effect.permit, [(r.rule_id, r.message) for r in decision.reasons]
    if rule_id is not None:
        assert rule_id in {r.rule_id for r in decision.reasons}


def reasons_of(decision):
    return {r.rule_id: r for r in decision.reasons}


# ------------------------------------------------------------------ L13 / L9: INS qualified


@pytest.mark.parametrize("status, expected", [("QUAL", Effect.permit), ("VALI", Effect.deny),
                                              ("RECUP", Effect.deny), ("PROV", Effect.deny)])
def test_dmp_feeding_needs_a_qualified_ins(status, expected):
    d = verdict(ok_state(person=facts(status=status)), request(System.dmp, kind="system", data=("plan",)))
    assert d.effect is expected
    if expected is Effect.deny:
        assert_denied_by(d, "L13-ins-qualified")


@pytest.mark.parametrize("status, expected", [("QUAL", Effect.permit), ("VALI", Effect.deny)])
def test_the_persons_own_mailbox_needs_a_qualified_ins(status, expected):
    req = request(System.mss, to="personne.test@patient.mssante.example", kind="person",
                  profession=None, purpose="PATRQT")
    d = verdict(ok_state(person=facts(status=status)), req)
    assert d.effect is expected
    if expected is Effect.permit:
        assert "L1111-7-communication-to-person" in d.rule_ids
    else:
        assert_denied_by(d, "L13-ins-qualified")


@pytest.mark.parametrize("status, expected", [("QUAL", Effect.permit), ("RECUP", Effect.deny)])
def test_a_document_naming_the_ins_needs_a_qualified_identity(status, expected):
    d = verdict(ok_state(person=facts(status=status)), request(names_ins=True))
    assert d.effect is expected
    # without the INS in the payload, the identity status does not matter
    assert verdict(ok_state(person=facts(status=status)), request(names_ins=False)).permitted


# ------------------------------------------------------------------ purpose of use (§2.5)


@pytest.mark.parametrize("system, purpose, expected", [
    (System.mss, "COC", Effect.permit),
    (System.mss, "TREAT", Effect.permit),
    (System.viatrajectoire, "PATADMIN", Effect.permit),
    (System.mss, "HRESCH", Effect.deny),  # research: another regime
    (System.mss, "HMARKT", Effect.deny),
    (System.mss, "HOPERAT", Effect.deny),  # not a purpose of the MSSanté channel
    (System.mss, "BTG", Effect.deny),  # break-glass only on the DMP
    (System.mss, "NOPE", Effect.deny),
])
def test_the_channel_determines_the_allowed_purposes(system, purpose, expected):
    kind = "system" if system is System.viatrajectoire else "professional"
    data = ("orientation",) if system is System.viatrajectoire else ("plan",)
    d = verdict(ok_state(), request(system, kind=kind, purpose=purpose, data=data))
    assert d.effect is expected
    if expected is Effect.deny:
        assert_denied_by(d, "purpose-of-use")


# ------------------------------------------------------------------ L1: identified recipients


def test_an_exchange_goes_to_an_identified_recipient():
    assert_permitted(verdict(ok_state(), request()), "L3-exchange-care-participant")
    assert_denied_by(verdict(ok_state(), request(to=None)), "L1-identified-recipient")


def test_an_exchange_cannot_target_a_shared_space():
    d = verdict(ok_state(), request(System.mss, kind="system", flow="echange"))
    assert_denied_by(d, "L1-identified-recipient")


# ------------------------------------------------------------------ L8: R.1110-2 category


@pytest.mark.parametrize("profession, expected", [("health", Effect.permit), ("social", Effect.permit),
                                                  ("other", Effect.deny), (None, Effect.deny)])
def test_the_recipient_must_be_in_an_r1110_2_category(profession, expected):
    team = (member(DR_HEALTH, Profession(profession) if profession else None),)
    d = verdict(ok_state(team=team), request(profession=profession))
    assert d.effect is expected
    if expected is Effect.deny:
        assert_denied_by(d, "L8-recipient-profession")


# ------------------------------------------------------------------ L2: strictly necessary


@pytest.mark.parametrize("data, expected", [
    (("orientation", "identity"), Effect.permit),
    (("orientation", "health"), Effect.deny),  # health data are not ViaTrajectoire's business
    ((), Effect.deny),  # undeclared payload
    (("orientation", "gossip"), Effect.deny),
])
def test_only_strictly_necessary_data_leave(data, expected):
    d = verdict(ok_state(), request(System.viatrajectoire, kind="system", purpose="PATADMIN", data=data))
    assert d.effect is expected
    if expected is Effect.deny:
        assert_denied_by(d, "L2-strictly-necessary")


# ------------------------------------------------------------------ L3: échange with care participants


def test_exchange_with_a_professional_taking_part_in_the_care_is_permitted():
    d = verdict(ok_state(), request())
    assert_permitted(d, "L3-exchange-care-participant")
    assert d.regime == "echange"


def test_exchange_with_a_professional_outside_the_care_is_refused():
    d = verdict(ok_state(), request(to=STRANGER))
    assert_denied_by(d, "L4-outside-team-prior-consent")
    assert reasons_of(d)["L3-exchange-care-participant"].effect == "note"


def test_a_member_whose_participation_ended_no_longer_takes_part():
    team = (member(DR_HEALTH, start="2025-01-01", end="2026-06-30"),)
    assert_denied_by(verdict(ok_state(team=team), request()), "L4-outside-team-prior-consent")
    assert verdict(ok_state(team=team), request(), now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)).permitted


def test_professionals_of_the_persons_own_platform_are_in_the_team():
    req = request(to=STRANGER)
    req = dataclasses.replace(req, recipient=dataclasses.replace(req.recipient, organisation=PLATFORM))
    d = verdict(ok_state(), req)
    assert_permitted(d, "L3-exchange-care-participant")
    assert "same-structure" in reasons_of(d)["L3-exchange-care-participant"].message


def test_staff_of_a_member_structure_are_in_the_team():
    team = (dataclasses.replace(member(DR_HEALTH), kind="Organization", identifier=("finess", PARTNER_ORG)),)
    req = request(to=STRANGER)
    req = dataclasses.replace(req, recipient=dataclasses.replace(req.recipient, organisation=PARTNER_ORG))
    assert_permitted(verdict(ok_state(team=team), req))


def test_a_professional_the_person_recognises_joins_the_team():
    recognition = consent(kind=ConsentKind.team_recognition.value, actors=[("rpps", STRANGER)])
    d = verdict(ok_state(consents=[recognition]), request(to=STRANGER))
    assert_permitted(d, "L3-exchange-care-participant")
    assert "recognised-by-person" in reasons_of(d)["L3-exchange-care-participant"].message


# ------------------------------------------------------------------ L3 / L5: partage within the team


def test_sharing_within_the_care_team_after_information_is_permitted():
    d = verdict(ok_state(), request(System.eparcours, kind="system", purpose="COC"))
    assert_permitted(d, "L3-L5-care-team-sharing")
    assert d.regime == "partage-equipe"


def test_sharing_within_the_care_team_without_information_is_refused():
    d = verdict(ok_state(information=()), request(System.eparcours, kind="system"))
    assert_denied_by(d, "L3-L5-care-team-sharing")


def test_sharing_with_a_team_member_uses_the_partage_regime():
    d = verdict(ok_state(), request(flow="partage"))
    assert_permitted(d, "L3-L5-care-team-sharing")
    d = verdict(ok_state(information=()), request(flow="partage"))
    assert_denied_by(d, "L3-L5-care-team-sharing")


# ------------------------------------------------------------------ L4: outside the team


def test_sharing_outside_care_team_needs_prior_consent():
    assert_denied_by(verdict(ok_state(), request(to=STRANGER)), "L4-outside-team-prior-consent")
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)], purposes=["TREAT"])
    d = verdict(ok_state(consents=[given]), request(to=STRANGER))
    assert_permitted(d, "L4-outside-team-prior-consent")
    assert [c.id for c in d.consents] == ["c0"]


@pytest.mark.parametrize("variant", ["other-recipient", "other-purpose", "expired", "not-yet",
                                     "data-not-covered"])
def test_a_consent_only_covers_what_it_names(variant):
    kw = {"actors": [("rpps", STRANGER)], "purposes": ["COC"], "classes": ["plan"]}
    if variant == "other-recipient":
        kw["actors"] = [("rpps", "10000000008")]
    elif variant == "other-purpose":
        kw["purposes"] = ["HOPERAT"]
    elif variant == "expired":
        kw["period"] = {"start": "2025-01-01", "end": "2026-10-31"}
    elif variant == "not-yet":
        kw["period"] = {"start": "2026-12-01"}
    given = consent(kind=ConsentKind.outside_team.value, **kw)
    data = ("plan", "health") if variant == "data-not-covered" else ("plan",)
    assert_denied_by(verdict(ok_state(consents=[given]), request(to=STRANGER, data=data)),
                     "L4-outside-team-prior-consent")


def test_a_consent_to_a_category_of_professionals_covers_its_members():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("category", "health")])
    assert_permitted(verdict(ok_state(consents=[given]), request(to=STRANGER)))
    assert_denied_by(verdict(ok_state(consents=[given]), request(to=STRANGER, profession="social")),
                     "L4-outside-team-prior-consent")


def test_a_consent_to_a_structure_covers_its_staff():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("finess", PARTNER_ORG)])
    req = request(to=STRANGER)
    req = dataclasses.replace(req, recipient=dataclasses.replace(req.recipient, organisation=PARTNER_ORG))
    assert_permitted(verdict(ok_state(consents=[given]), req))


def test_purpose_subsumption_a_treatment_consent_covers_coordination_not_the_reverse():
    treat = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)], purposes=["TREAT"])
    coc = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)], purposes=["COC"])
    assert verdict(ok_state(consents=[treat]), request(to=STRANGER, purpose="COC")).permitted
    assert not verdict(ok_state(consents=[coc]), request(to=STRANGER, purpose="TREAT")).permitted


def test_a_blanket_permit_without_recipients_is_not_prior_consent():
    blanket = consent()  # generic permit, no actor
    assert_denied_by(verdict(ok_state(consents=[blanket]), request(to=STRANGER)),
                     "L4-outside-team-prior-consent")


# ------------------------------------------------------------------ L5: cross-category information


def test_cross_category_exchange_needs_prior_information():
    social_sender = dict(requester=Profession.social)
    d = verdict(ok_state(information=(info(T.care_team_sharing),)), request(**social_sender))
    assert_denied_by(d, "L5-cross-category-information")
    d = verdict(ok_state(information=(info(T.cross_category_exchange),)), request(**social_sender))
    assert_permitted(d, "L5-cross-category-information")
    # same category: no such information needed
    assert verdict(ok_state(information=()), request(to=EDUC, profession="social", **social_sender)).permitted


def test_cross_category_information_naming_another_recipient_does_not_count():
    named_other = info(T.cross_category_exchange, recipient=("rpps", "10000000008"))
    named_this = info(T.cross_category_exchange, recipient=("rpps", DR_HEALTH))
    assert_denied_by(verdict(ok_state(information=(named_other,)), request(requester=Profession.social)),
                     "L5-cross-category-information")
    assert verdict(ok_state(information=(named_this,)), request(requester=Profession.social)).permitted


def test_information_given_after_the_decision_time_does_not_count():
    later = info(T.care_team_sharing, at=NOW + dt.timedelta(days=1))
    assert_denied_by(verdict(ok_state(information=(later,)), request(System.eparcours, kind="system")),
                     "L3-L5-care-team-sharing")


# ------------------------------------------------------------------ L6: urgency


def test_urgency_allows_team_sharing_and_creates_the_inform_later_obligation():
    d = verdict(ok_state(information=()), request(System.eparcours, kind="system", urgency=True))
    assert_permitted(d, "L6-urgency-inform-later")
    assert "inform-person-afterwards" in d.obligations


def test_urgency_does_not_replace_consent_outside_the_team():
    d = verdict(ok_state(information=()), request(to=STRANGER, urgency=True))
    assert_denied_by(d, "L4-outside-team-prior-consent")


# ------------------------------------------------------------------ L7: opposition


def test_opposition_wins_over_team_membership_and_consent():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", DR_HEALTH)])
    opposition = consent("deny", kind=ConsentKind.opposition.value)
    assert verdict(ok_state(consents=[given]), request()).permitted
    d = verdict(ok_state(consents=[given, opposition]), request())
    assert_denied_by(d, "L7-opposition")
    assert [c.id for c in d.consents] == ["c1"]


def test_opposition_only_covers_its_scope():
    against_stranger = consent("deny", kind=ConsentKind.opposition.value, actors=[("rpps", "10000000008")])
    against_health = consent("deny", kind=ConsentKind.opposition.value, classes=["health"])
    assert verdict(ok_state(consents=[against_stranger]), request()).permitted
    assert verdict(ok_state(consents=[against_health]), request(data=("plan",))).permitted
    assert_denied_by(verdict(ok_state(consents=[against_health]), request(data=("plan", "health"))),
                     "L7-opposition")


def test_dmp_opposition_blocks_dmp_feeding_only():
    against_dmp = consent("deny", kind=ConsentKind.opposition.value, actors=[("system", "dmp")])
    s = ok_state(consents=[against_dmp])
    assert_denied_by(verdict(s, request(System.dmp, kind="system")), "L7-opposition")
    assert verdict(s, request(System.mss)).permitted


def test_an_exception_inside_an_opposition_permits_only_what_it_names():
    opposition = consent("deny", kind=ConsentKind.opposition.value,
                         nested=[node("permit", actors=[("rpps", DR_HEALTH)])])
    s = ok_state(consents=[opposition])
    assert verdict(s, request()).permitted
    assert_denied_by(verdict(s, request(to=EDUC, profession="social")), "L7-opposition")


def test_a_deny_exception_inside_a_consent_restricts_it():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                    nested=[node("deny", classes=["health"])])
    s = ok_state(consents=[given])
    assert verdict(s, request(to=STRANGER, data=("plan",))).permitted
    assert_denied_by(verdict(s, request(to=STRANGER, data=("health",))), "L7-opposition")


@pytest.mark.parametrize("element", ["securityLabel", "code", "dataPeriod"])
def test_unevaluated_elements_match_for_deny_and_never_for_permit(element):
    value = {"dataPeriod": {"start": "2020-01-01"}}.get(element, [{"system": "urn:x", "code": "x"}])
    if element == "code":
        value = [{"coding": [{"system": "urn:x", "code": "x"}]}]
    deny = consent("deny", kind=ConsentKind.opposition.value)
    deny["provision"][element] = value
    assert_denied_by(verdict(ok_state(consents=[deny]), request()), "L7-opposition")
    permit = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])
    permit["provision"][element] = value
    assert_denied_by(verdict(ok_state(consents=[permit]), request(to=STRANGER)),
                     "L4-outside-team-prior-consent")


# ------------------------------------------------------------------ both R4 forms of the root rule


@pytest.mark.parametrize("form", ["provision.type", "policyRule", "both"])
def test_both_r4_forms_of_the_root_decision_are_understood(form):
    opt_out = consent(None if form == "policyRule" else "deny", kind=ConsentKind.opposition.value,
                      policy_rule=None if form == "provision.type" else "OPTOUT")
    assert_denied_by(verdict(ok_state(consents=[opt_out]), request()), "L7-opposition")
    opt_in = consent(None if form == "policyRule" else "permit", kind=ConsentKind.outside_team.value,
                     actors=[("rpps", STRANGER)], policy_rule=None if form == "provision.type" else "OPTIN")
    assert_permitted(verdict(ok_state(consents=[opt_in]), request(to=STRANGER)))


def test_a_policy_rule_without_provision_is_a_root_rule_without_criteria():
    opt_out = consent(None, policy_rule="OPTOUT", provision=False)
    assert_denied_by(verdict(ok_state(consents=[opt_out]), request()), "L7-opposition")


# ------------------------------------------------------------------ L9: DMP feeding


def test_dmp_feeding_after_written_information_is_permitted_with_masking_flags():
    d = verdict(ok_state(), request(System.dmp, kind="system"))
    assert_permitted(d, "L9-dmp-feeding")
    assert "dmp-masking-flags" in d.obligations


@pytest.mark.parametrize("information", [(), (info(T.dmp, method=InformationMethod.oral),),
                                         (info(T.care_team_sharing),)])
def test_dmp_feeding_without_written_information_is_refused(information):
    d = verdict(ok_state(information=information), request(System.dmp, kind="system"))
    assert_denied_by(d, "L9-dmp-feeding")


# ------------------------------------------------------------------ L11: break-glass


def btg(**kw):
    base = dict(to=DR_HEALTH, profession="health", purpose="BTG", urgency=True,
                justification="détresse respiratoire, personne inconsciente")
    base.update(kw)
    return request(System.dmp, **base)


def test_break_glass_by_a_health_professional_in_an_emergency_is_permitted():
    d = verdict(ok_state(), btg())
    assert_permitted(d, "L11-break-glass")
    assert {"notify-person-after-break-glass", "alert-dpo"} <= set(d.obligations)


@pytest.mark.parametrize("change", [dict(profession="social"), dict(justification=None), dict(urgency=False)])
def test_break_glass_without_its_conditions_is_refused(change):
    assert_denied_by(verdict(ok_state(), btg(**change)), "L11-break-glass")


def test_break_glass_is_refused_after_an_express_opposition_to_emergency_access():
    opposition = consent("deny", kind=ConsentKind.emergency_opposition.value,
                         actors=[("system", "dmp")], purposes=["ETREAT"])
    d = verdict(ok_state(consents=[opposition]), btg())
    assert_denied_by(d, "L7-opposition")
    assert verdict(ok_state(consents=[opposition]), request(System.dmp, kind="system")).permitted


# ------------------------------------------------------------------ L12: minor's secrecy

MINOR = facts(birth=dt.date(2012, 3, 15), reps=[("R1", "parent")], rep_tokens=[("mssante", PARENT_MAIL)])


def test_a_minors_secret_never_goes_to_a_parent_facing_channel():
    secret = dict(labels=frozenset({"minor-secret"}))
    mailbox = request(to="jeune.test@patient.mssante.example", kind="person", profession=None,
                      purpose="PATRQT", **secret)
    assert_denied_by(verdict(ok_state(person=MINOR), mailbox), "L12-minor-secrecy")
    to_parent = request(to=PARENT_MAIL, **secret)
    assert_denied_by(verdict(ok_state(person=MINOR), to_parent), "L12-minor-secrecy")
    assert verdict(ok_state(person=MINOR), request(**secret)).permitted  # to the care team


def test_a_minors_secret_reaches_the_dmp_invisible_to_the_parents():
    d = verdict(ok_state(person=MINOR), request(System.dmp, kind="system", labels=frozenset({"minor-secret"})))
    assert_permitted(d, "L12-minor-secrecy")
    assert "dmp-invisible-representants-legaux" in d.obligations


def test_the_secrecy_label_has_no_effect_for_an_adult():
    mailbox = request(to="adulte.test@patient.mssante.example", kind="person", profession=None,
                      purpose="PATRQT", labels=frozenset({"minor-secret"}))
    assert verdict(ok_state(), mailbox).permitted


# ------------------------------------------------------------------ L16: withdrawal


def test_a_withdrawn_consent_no_longer_permits():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])
    assert verdict(ok_state(consents=[given]), request(to=STRANGER)).permitted
    withdrawn = {**given, "status": "inactive"}
    d = verdict(ok_state(consents=[withdrawn]), request(to=STRANGER))
    assert_denied_by(d, "L4-outside-team-prior-consent")
    assert reasons_of(d)["L16-withdrawn-consent"].effect == "note"


def test_a_withdrawn_opposition_no_longer_denies():
    opposition = {**consent("deny", kind=ConsentKind.opposition.value), "status": "inactive"}
    assert verdict(ok_state(consents=[opposition]), request()).permitted


# ------------------------------------------------------------------ L17: representatives' capacity lapses


def test_a_parents_consent_lapses_when_the_person_comes_of_age():
    child = facts(birth=dt.date(2008, 12, 1), reps=[("R1", "parent")])
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                    performer="RelatedPerson/R1")
    assert verdict(ok_state(person=child, consents=[given]), request(to=STRANGER)).permitted
    after = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    d = verdict(ok_state(person=child, consents=[given]), request(to=STRANGER), now=after)
    assert_denied_by(d, "L4-outside-team-prior-consent")
    assert reasons_of(d)["L17-representative-capacity"].effect == "note"


def test_a_guardians_consent_lapses_when_the_measure_ends():
    ward = facts(protection="representation", reps=[("G1", "guardian")], protection_end=dt.date(2026, 6, 30))
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                    performer="RelatedPerson/G1", can_express_will=False)
    d = verdict(ok_state(person=ward, consents=[given]), request(to=STRANGER))
    assert_denied_by(d, "L4-outside-team-prior-consent")
    early = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert verdict(ok_state(person=ward, consents=[given]), request(to=STRANGER), now=early).permitted


# ------------------------------------------------------------------ the combination itself


def test_the_tddui_agreement_grants_nothing():
    agreement = consent(kind=None, actors=[("rpps", STRANGER)])
    agreement["meta"] = {"profile": ["https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-consent-accord"]}
    del agreement["provision"]
    assert_denied_by(verdict(ok_state(consents=[agreement]), request(to=STRANGER)),
                     "L4-outside-team-prior-consent")


def test_default_deny_when_no_rule_permits(monkeypatch):
    monkeypatch.setattr("gateway.consent.pdp.RULES", [])
    d = verdict(ok_state(), request())
    assert_denied_by(d, "default-deny")


def test_an_error_inside_the_pdp_is_a_deny(monkeypatch):
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway.consent.pdp.RULES", [rules_module.Rule("x", "y", broken)])
    d = verdict(ok_state(), request())
    assert d.effect is Effect.deny and d.rule_ids == ("pdp-error",)


def test_decisions_are_deterministic():
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])
    s, req = ok_state(consents=[given]), request(to=STRANGER)
    first, second = verdict(s, req), verdict(s, req)
    assert first.id != second.id
    assert (first.effect, first.rule_ids, first.consents, first.obligations, first.request_digest) == \
        (second.effect, second.rule_ids, second.consents, second.obligations, second.request_digest)


def test_every_rule_has_a_stable_id_and_a_source():
    ids = [r.id for r in rules_module.RULES]
    assert len(ids) == len(set(ids))
    assert all(r.source for r in rules_module.RULES)
    assert {"L1-identified-recipient", "L2-strictly-necessary", "L3-exchange-care-participant",
            "L3-L5-care-team-sharing", "L4-outside-team-prior-consent", "L5-cross-category-information",
            "L6-urgency-inform-later", "L7-opposition", "L8-recipient-profession", "L9-dmp-feeding",
            "L11-break-glass", "L12-minor-secrecy", "L13-ins-qualified", "L16-withdrawn-consent",
            "L17-representative-capacity"} <= set(ids)


def test_reasons_are_bilingual_and_carry_no_personal_data():
    d = verdict(ok_state(person=facts(status="PROV")), request(System.dmp, kind="system"))
    for reason in d.reasons:
        assert reason.message and reason.message_en
        assert "TESTNOM" not in reason.message


def test_recipient_from_identifier_recognises_rpps_finess_and_mailboxes():
    assert Recipient.from_identifier("professional", DR_HEALTH).identifiers == (("rpps", DR_HEALTH),)
    assert Recipient.from_identifier("organisation", PARTNER_ORG).identifiers == (("finess", PARTNER_ORG),)
    assert Recipient.from_identifier("professional", "A.B@Mssante.Example").identifiers == \
        (("mssante", "a.b@mssante.example"),)


def test_membership_basis_is_reported():
    team = (member(DR_HEALTH, basis=MembershipBasis.recognised_by_person),)
    d = verdict(ok_state(team=team), request())
    assert "recognised-by-person" in reasons_of(d)["L3-exchange-care-participant"].message


def test_a_representative_out_of_office_no_longer_consents():
    child = facts(birth=dt.date(2015, 1, 1), reps=[("R1", "parent")])
    child = dataclasses.replace(child, representative_periods=(("R1", dt.date(2015, 1, 1), dt.date(2026, 6, 30)),))
    given = consent(kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                    performer="RelatedPerson/R1")
    d = verdict(ok_state(person=child, consents=[given]), request(to=STRANGER))
    assert_denied_by(d, "L4-outside-team-prior-consent")
    assert reasons_of(d)["L17-representative-capacity"].effect == "note"
    early = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert verdict(ok_state(person=child, consents=[given]), request(to=STRANGER), now=early).permitted
