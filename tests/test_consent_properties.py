"""Property tests of the PDP over random consent sets (hypothesis): deny overrides, the
person's opposition always wins, monotonicity, determinism."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.consent.matching import build_context
from gateway.consent.model import Effect
from gateway.consent.pdp import decide
from gateway.consent.vocab import ConsentKind, InformationTopic as T, Profession, System
from tests.test_consent_support import (
    DR_HEALTH,
    EDUC,
    NOW,
    STRANGER,
    consent,
    info,
    member,
    node,
    request,
    state,
)

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RECIPIENTS = [DR_HEALTH, EDUC, STRANGER, "10000000008"]
TOKENS = [("rpps", r) for r in RECIPIENTS] + [("system", "mss"), ("system", "eparcours"),
                                              ("category", "health"), ("category", "social")]
PURPOSES = ["TREAT", "COC", "HOPERAT", "CAREMGT"]
CLASSES = ["plan", "needs", "health", "social"]
PERIODS = [None, {"start": "2026-01-01"}, {"start": "2025-01-01", "end": "2026-06-30"},
           {"start": "2027-01-01"}]

criteria = st.fixed_dictionaries({
    "actors": st.lists(st.sampled_from(TOKENS), max_size=2, unique=True),
    "purposes": st.lists(st.sampled_from(PURPOSES), max_size=2, unique=True),
    "classes": st.lists(st.sampled_from(CLASSES), max_size=2, unique=True),
    "period": st.sampled_from(PERIODS),
})


@st.composite
def directives(draw, effect=None, pure=False):
    """A random Consent; `pure` = every provision has the root's effect (a pure permit or
    a pure deny, as the monotonicity properties of consent_audit §4.10 speak of)."""
    root_effect = effect or draw(st.sampled_from(["permit", "deny"]))
    root = draw(criteria)
    nested_effects = st.just(root_effect) if pure else st.sampled_from(["permit", "deny"])
    nested = [node(draw(nested_effects), **draw(criteria))
              for _ in range(draw(st.integers(0, 2)))]
    if root_effect == "deny":
        kind = ConsentKind.opposition.value
    elif root["actors"] or any("actor" in n for n in nested):
        kind = draw(st.sampled_from([None, ConsentKind.outside_team.value]))
    else:
        kind = None
    resource = consent(root_effect, kind=kind, nested=nested, **root)
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        resource["status"] = "inactive"
    return resource


requests = st.builds(
    lambda to, system, purpose, data, profession: request(
        system, **({"kind": "system", "to": None} if system is System.eparcours else {"to": to}),
        purpose=purpose, data=data, profession=profession),
    st.sampled_from(RECIPIENTS),
    st.sampled_from([System.mss, System.eparcours]),
    st.sampled_from(["TREAT", "COC"]),
    st.lists(st.sampled_from(CLASSES), min_size=1, max_size=3, unique=True).map(tuple),
    st.sampled_from(["health", "social"]),
)

TEAM = (member(DR_HEALTH, Profession.health), member(EDUC, Profession.social))
INFORMED = (info(T.care_team_sharing, T.cross_category_exchange),)


def world(consents):
    return state(consents=consents, team=TEAM, information=INFORMED)


@SETTINGS
@given(st.lists(directives(), max_size=5), requests)
def test_any_applicable_deny_makes_the_decision_deny(consents, req):
    s = world(consents)
    ctx = build_context(s, req, NOW)
    d = decide(s, req, now=NOW)
    if ctx.denies:
        assert d.effect is Effect.deny
        assert "L7-opposition" in d.rule_ids
        assert {v.directive.ref for v in ctx.denies} <= set(d.consents)


@SETTINGS
@given(st.lists(directives(), max_size=5), requests)
def test_an_applicable_opposition_always_wins(consents, req):
    """Whatever else is on file, an active opposition naming the request's recipient (or
    everyone) makes the decision deny, citing it."""
    opposition = consent("deny", kind=ConsentKind.opposition.value)  # no criteria: everything
    d = decide(world([*consents, opposition]), req, now=NOW)
    assert d.effect is Effect.deny and "L7-opposition" in d.rule_ids
    assert f"c{len(consents)}" in {c.id for c in d.consents}
    if req.recipient.identifiers:
        named = consent("deny", kind=ConsentKind.opposition.value, actors=[req.recipient.identifiers[0]])
        assert decide(world([*consents, named]), req, now=NOW).effect is Effect.deny


@SETTINGS
@given(st.lists(directives(), max_size=4), st.lists(directives(effect="permit"), min_size=1, max_size=3),
       requests)
def test_adding_permits_never_lifts_a_deny_caused_by_opposition(consents, permits, req):
    before = decide(world(consents), req, now=NOW)
    after = decide(world([*consents, *permits]), req, now=NOW)
    if before.effect is Effect.deny and "L7-opposition" in before.rule_ids:
        assert after.effect is Effect.deny and "L7-opposition" in after.rule_ids


@SETTINGS
@given(st.lists(directives(), max_size=4), directives(effect="deny", pure=True), requests)
def test_adding_a_deny_never_turns_a_deny_into_a_permit(consents, extra_deny, req):
    before = decide(world(consents), req, now=NOW)
    after = decide(world([*consents, extra_deny]), req, now=NOW)
    if before.effect is Effect.deny:
        assert after.effect is Effect.deny
    if after.effect is Effect.permit:
        assert before.effect is Effect.permit


@SETTINGS
@given(st.lists(directives(), min_size=1, max_size=5), requests, st.data())
def test_removing_a_permit_never_turns_a_deny_into_a_permit(consents, req, data):
    permits = [i for i, c in enumerate(consents)
               if {n.get("type") for n in [c["provision"], *c["provision"].get("provision", [])]} == {"permit"}]
    if not permits:
        return
    drop = data.draw(st.sampled_from(permits))
    before = decide(world(consents), req, now=NOW)
    after = decide(world([c for i, c in enumerate(consents) if i != drop]), req, now=NOW)
    if before.effect is Effect.deny:
        assert after.effect is Effect.deny


@SETTINGS
@given(st.lists(directives(), max_size=5), requests)
def test_withdrawing_everything_leaves_no_consent_based_permit(consents, req):
    withdrawn = [{**c, "status": "inactive"} for c in consents]
    d = decide(world(withdrawn), req, now=NOW)
    assert not d.consents
    assert "L7-opposition" not in d.rule_ids


@SETTINGS
@given(st.lists(directives(), max_size=5), requests)
def test_decisions_are_deterministic_under_replay(consents, req):
    s = world(consents)
    a, b = decide(s, req, now=NOW), decide(s, req, now=NOW + dt.timedelta(0))
    assert (a.effect, a.rule_ids, a.consents, a.obligations, a.regime) == \
        (b.effect, b.rule_ids, b.consents, b.obligations, b.regime)
