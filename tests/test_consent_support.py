"""Builders shared by the consent tests (FHIR Consents, states, requests), and their own checks.

Everything here is synthetic: RPPS 100000000xx, FINESS 51000xxxx, MSSanté addresses under
`mssante.example`.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from gateway.consent.fhir_careteam import MemberSpec, care_team_resource, read_care_team
from gateway.consent.fhir_common import canonical_bytes, sha256_hex, token_identifier
from gateway.consent.fhir_consent import compile_directive
from gateway.consent.model import (
    DecisionRequest,
    InformationRecord,
    PersonFacts,
    PolicyState,
    Recipient,
    Requester,
)
from gateway.consent.vocab import (
    CS_ACT_CODE,
    CS_ACT_REASON,
    CS_CONSENT_CATEGORY,
    CS_CONSENT_SCOPE,
    CS_DATA_CATEGORY,
    CS_LOINC,
    CS_PARTICIPATION_TYPE,
    EXT_CAN_EXPRESS_WILL,
    InformationMethod,
    InformationTopic,
    Profession,
    System,
)

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
TENANT = "t-test"
PERSON = "U000001"
PLATFORM = "510000011"
DR_HEALTH = "10000000001"  # a health professional (RPPS)
EDUC = "10000000002"  # a social professional (RPPS)
STRANGER = "10000000009"  # a professional outside the team
PARTNER_ORG = "510000029"  # a partner structure (FINESS)
PARENT_MAIL = "parent.test@mssante.example"


def actor(token: tuple[str, str]) -> dict:
    return {"role": {"coding": [{"system": CS_PARTICIPATION_TYPE, "code": "IRCP"}]},
            "reference": {"identifier": token_identifier(token)}}


def node(effect: str | None = None, *, actors=(), purposes=(), classes=(), period=None,
         nested=(), **extra) -> dict:
    out: dict = {}
    if effect:
        out["type"] = effect
    if actors:
        out["actor"] = [actor(t) for t in actors]
    if purposes:
        out["purpose"] = [{"system": CS_ACT_REASON, "code": p} for p in purposes]
    if classes:
        out["class"] = [{"system": CS_DATA_CATEGORY, "code": c} for c in classes]
    if period:
        out["period"] = period
    if nested:
        out["provision"] = list(nested)
    out.update(extra)
    return out


def consent(effect: str | None = "permit", *, person: str = PERSON, kind: str | None = None,
            performer: str | None = None, actors=(), purposes=(), classes=(), period=None,
            nested=(), policy_rule: str | None = None, date: str = "2026-11-01T10:00:00+01:00",
            can_express_will: bool | None = None, status: str = "active",
            provision: bool = True) -> dict:
    categories = [{"coding": [{"system": CS_LOINC, "code": "59284-0"}]}]
    if kind:
        categories.append({"coding": [{"system": CS_CONSENT_CATEGORY, "code": kind}]})
    resource: dict = {
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": CS_CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": categories,
        "patient": {"reference": f"Patient/{person}"},
        "dateTime": date,
        "performer": [{"reference": performer or f"Patient/{person}"}],
        "policy": [{"uri": "https://relais.example/notices/information-v1"}],
        "sourceReference": {"reference": "DocumentReference/evidence-1"},
    }
    if policy_rule:
        resource["policyRule"] = {"coding": [{"system": CS_ACT_CODE, "code": policy_rule}]}
    if can_express_will is not None:
        resource["extension"] = [{"url": EXT_CAN_EXPRESS_WILL, "valueBoolean": can_express_will}]
    if provision:
        resource["provision"] = node(effect, actors=actors, purposes=purposes, classes=classes,
                                     period=period, nested=nested)
    return resource


def facts(*, status: str = "QUAL", birth: dt.date = dt.date(1990, 5, 1), protection: str | None = None,
          reps=(), rep_tokens=(), local_id: str = PERSON, protection_end: dt.date | None = None) -> PersonFacts:
    return PersonFacts(local_id=local_id, identity_status=status, birth_date=birth,
                       platform_finess=PLATFORM, protection_scope=protection,
                       protection_end=protection_end, representatives=tuple(reps),
                       representative_tokens=frozenset(rep_tokens), plan_version=1)


def info(*topics: InformationTopic, method: InformationMethod = InformationMethod.written,
         at: dt.datetime = NOW - dt.timedelta(days=30), recipient=None) -> InformationRecord:
    return InformationRecord(id=uuid.uuid4().hex, informed_at=at, method=method, informed_by="PRO-1",
                             notice_version="v1", topics=frozenset(topics), recipient=recipient)


def member(rpps: str, profession: Profession = Profession.health, **kw) -> MemberSpec:
    return MemberSpec("PractitionerRole", ("rpps", rpps), profession, **kw)


@functools.lru_cache(maxsize=256)
def _members(local_id: str, team: tuple[MemberSpec, ...]):
    return read_care_team(care_team_resource(local_id, list(team)), person_local_id=local_id)[1]


def state(person: PersonFacts | None = None, consents=(), team=(), information=()) -> PolicyState:
    person = person or facts()
    directives = []
    for i, resource in enumerate(consents):
        content = canonical_bytes(resource)
        directives.append(compile_directive(resource, consent_id=f"c{i}", version=1,
                                            sha256=sha256_hex(content),
                                            person_local_id=person.local_id,
                                            changed_at=NOW - dt.timedelta(days=1)))
    members = _members(person.local_id, tuple(team)) if team else ()
    return PolicyState(tenant_id=TENANT, person=person, directives=tuple(directives), team=members,
                       information=tuple(information))


def request(system: System = System.mss, *, to: str | None = DR_HEALTH, kind: str = "professional",
            profession: str | None = "health", purpose: str = "COC", data=("plan",),
            requester: Profession = Profession.health, person: str = PERSON, **kw) -> DecisionRequest:
    if kind == "system":
        recipient = Recipient.of("system")
    elif to is None:
        recipient = Recipient.of(kind, profession=profession)
    else:
        recipient = Recipient.from_identifier(kind, to, profession)
    return DecisionRequest(tenant_id=TENANT, person_local_id=person, recipient=recipient,
                           system=system, purpose=purpose, data_categories=frozenset(data),
                           requester=Requester("test", requester), **kw)


# ------------------------------------------------------------------ checks of the builders


def test_the_builders_produce_valid_relais_consents_and_care_teams():
    from gateway.consent.fhir_consent import check_structure, read_consent

    resource = consent(actors=[("rpps", DR_HEALTH)], purposes=["COC"], classes=["plan"])
    check_structure(resource)
    parsed = read_consent(resource, person_local_id=PERSON, now=NOW)
    assert parsed.root.actors == {("rpps", DR_HEALTH)} and not parsed.warnings
    s = state(team=[member(DR_HEALTH)])
    assert len(s.team) == 1 and s.team[0].active_at(NOW)
