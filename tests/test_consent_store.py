"""The consent registry on both backends: immutable versions, capacity at recording time,
immediate withdrawal, audit entries atomic with what they record, events, tenant isolation."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from gateway.consent import events
from gateway.consent.capacity import consent_refusals
from gateway.consent.fhir_careteam import care_team_resource
from gateway.consent.fhir_common import FhirInputError
from gateway.consent.model import Effect, Performer, Recipient
from gateway.consent.record import decide_and_record
from gateway.consent.registry import ConsentRegistry, ConsentRejected, load_state, person_facts
from gateway.consent.vocab import ConsentKind, InformationMethod, InformationTopic, Profession, System
from gateway.storage.engine import WRITE
from gateway.storage.store import Conflict, NotFound, Store
from tests.conftest import TODAY, make_plan, sample_plan_dict
from tests.test_consent_support import DR_HEALTH, STRANGER, consent, info, member, node, request

ROOT = Path(__file__).resolve().parents[1]
MINOR, CURATELLE, TUTELLE, ADULT = "U000001", "U000012", "U000014", "U000013"
FILES = {MINOR: "p001-enfant-tnd", CURATELLE: "p012-adulte-tnd", TUTELLE: "p014-adulte-tnd",
         ADULT: "p013-adulte-tnd"}


def fixture_plan(local_id: str):
    return make_plan(json.loads((ROOT / "fixtures" / "plans" / f"{FILES[local_id]}.json").read_text("utf-8")))


@pytest.fixture(scope="module", params=[pytest.param("sqlite", id="sqlite"),
                                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def shared_store(request, tmp_path_factory):
    """One migrated store per backend for this module (each test uses its own tenants):
    migrating once keeps the module fast. Same set-up as conftest's `store`."""
    dbname = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('consent') / 'relais.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        dbname = f"relais_c_{uuid.uuid4().hex[:12]}"
        url = server.create_database(dbname)
    instance = Store(url)
    instance.migrate()
    yield instance
    instance.close()
    if dbname is not None:
        server.drop_database(dbname)


PLANS = {local_id: fixture_plan(local_id) for local_id in FILES}


@pytest.fixture
def world(shared_store):
    store = shared_store
    suffix = uuid.uuid4().hex[:8]
    tenant = store.create_tenant(f"plateforme-a-{suffix}", "Plateforme A")
    other = store.create_tenant(f"plateforme-b-{suffix}", "Plateforme B")
    for local_id in FILES:
        store.put_plan(tenant, PLANS[local_id], if_match=None, actor="test")
    return store, tenant, other, ConsentRegistry(store)


def outside_team(person: str, performer: str | None = None, **kw) -> dict:
    return consent(person=person, kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                   performer=performer, **kw)


def ask(tenant, person, system=System.mss, to=STRANGER, **kw):
    req = request(system, to=to, person=person, **kw)
    return req.__class__(**{**req.__dict__, "tenant_id": tenant.id})


def audit_actions(store, tenant) -> list[tuple[str, dict]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, body FROM audit_entries WHERE tenant_id = :t ORDER BY seq"),
                            {"t": tenant.id}).all()
    return [(a, orjson.loads(bytes(b))) for a, b in rows]


def count(store, sql: str, **params) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


# ------------------------------------------------------------------ storage


def test_a_consent_is_stored_as_an_immutable_hashed_version(world):
    store, tenant, _, registry = world
    stored = registry.record_consent(tenant, ADULT, outside_team(ADULT), actor="test")
    assert stored.version == 1 and stored.status == "active" and stored.kind == ConsentKind.outside_team.value
    resource = stored.resource
    assert resource["id"] == stored.id and resource["meta"]["versionId"] == "1"
    assert "https://relais.example/fhir/StructureDefinition/relais-privacy-consent" in resource["meta"]["profile"]
    from gateway.consent.fhir_common import sha256_hex

    assert sha256_hex(stored.content) == stored.content_hash
    assert registry.get_consent(tenant, ADULT, stored.id).content == stored.content
    with pytest.raises(sa.exc.DatabaseError):
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE consent_versions SET status = 'inactive'"))
    with pytest.raises(sa.exc.DatabaseError):
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM consent_versions"))


def test_a_stored_consent_round_trips_through_fhir(world):
    _, tenant, _, registry = world
    original = outside_team(ADULT, nested=[node("deny", classes=["health"])], policy_rule="OPTIN")
    stored = registry.record_consent(tenant, ADULT, original, actor="test")
    exported = registry.list_consents(tenant, ADULT)[0].resource
    for key in ("id", "meta"):
        exported.pop(key)
    assert exported == original
    again = registry.record_consent(tenant, ADULT, stored.resource, actor="test")
    assert again.resource["provision"] == stored.resource["provision"]


def test_a_person_without_a_plan_has_no_consents(world):
    _, tenant, _, registry = world
    with pytest.raises(NotFound):
        registry.record_consent(tenant, "U999999", outside_team("U999999"), actor="test")


def test_bad_fhir_is_refused_before_anything_is_written(world):
    store, tenant, _, registry = world
    with pytest.raises(FhirInputError):
        registry.record_consent(tenant, ADULT, {**outside_team(ADULT), "status": "draft"}, actor="test")
    assert count(store, "SELECT count(*) FROM consent_versions WHERE tenant_id = :t", t=tenant.id) == 0


# ------------------------------------------------------------------ who may consent (L17)


def test_consent_by_a_curator_alone_is_rejected_with_the_reason_and_audited(world):
    store, tenant, _, registry = world
    with pytest.raises(ConsentRejected) as caught:
        registry.record_consent(tenant, CURATELLE, outside_team(CURATELLE, "RelatedPerson/R1"), actor="test")
    assert [r.rule_id for r in caught.value.refusals] == ["L17-curator-cannot-consent-instead"]
    assert "curateur" in caught.value.refusals[0].message
    assert registry.list_consents(tenant, CURATELLE) == []
    rejected = [body for action, body in audit_actions(store, tenant) if action == "consent.rejected"]
    assert rejected and rejected[0]["refs"]["rules"] == "L17-curator-cannot-consent-instead"


def test_a_person_under_curatelle_consents_themself_assisted_by_the_curator(world):
    _, tenant, _, registry = world
    resource = outside_team(CURATELLE)
    resource["performer"].append({"reference": "RelatedPerson/R1"})
    assert registry.record_consent(tenant, CURATELLE, resource, actor="test").version == 1


def test_consent_by_a_parent_of_a_minor_is_accepted(world):
    _, tenant, _, registry = world
    stored = registry.record_consent(tenant, MINOR, outside_team(MINOR, "RelatedPerson/R1"), actor="test")
    assert stored.status == "active"


def test_a_minor_cannot_consent_alone_but_may_oppose(world):
    _, tenant, _, registry = world
    with pytest.raises(ConsentRejected) as caught:
        registry.record_consent(tenant, MINOR, outside_team(MINOR), actor="test")
    assert caught.value.refusals[0].rule_id == "L17-minor-cannot-consent-alone"
    opposition = consent("deny", person=MINOR, kind=ConsentKind.opposition.value)
    assert registry.record_consent(tenant, MINOR, opposition, actor="test").status == "active"


def test_consent_by_the_parent_of_an_adult_is_rejected():
    # A plan cannot even record a parent for an adult (validator); the capacity rule refuses
    # it independently, e.g. for a consent collected after the person came of age.
    facts = person_facts(fixture_plan(ADULT).model_dump(mode="json"), 1)
    facts = facts.__class__(**{**facts.__dict__, "representatives": (("R9", "parent"),)})
    refusals = consent_refusals(facts, (Performer("representative", "R9"),), effect=Effect.permit,
                                kind=ConsentKind.outside_team, day=TODAY, can_express_will=None)
    assert [r.rule_id for r in refusals] == ["L17-parental-authority-ended"]


def test_a_guardian_consents_only_when_the_person_cannot_express_their_will(world):
    _, tenant, _, registry = world
    with pytest.raises(ConsentRejected) as caught:
        registry.record_consent(tenant, TUTELLE, outside_team(TUTELLE, "RelatedPerson/R1"), actor="test")
    assert caught.value.refusals[0].rule_id == "L17-person-must-consent-if-able"
    accepted = outside_team(TUTELLE, "RelatedPerson/R1", can_express_will=False)
    assert registry.record_consent(tenant, TUTELLE, accepted, actor="test").version == 1
    assert registry.record_consent(tenant, TUTELLE, outside_team(TUTELLE), actor="test").version == 1


@pytest.mark.parametrize("performer, rule", [("Practitioner/PRO-1", "L17-performer-not-person-or-representative"),
                                             ("RelatedPerson/R7", "L17-representative-unknown")])
def test_only_the_person_or_a_recorded_representative_consents(world, performer, rule):
    _, tenant, _, registry = world
    with pytest.raises(ConsentRejected) as caught:
        registry.record_consent(tenant, ADULT, outside_team(ADULT, performer), actor="test")
    assert caught.value.refusals[0].rule_id == rule


# ------------------------------------------------------------------ withdrawal (L16)


def test_withdrawal_is_a_new_version_and_takes_effect_at_once(world):
    store, tenant, _, registry = world
    stored = registry.record_consent(tenant, ADULT, outside_team(ADULT), actor="test")
    assert registry.decide(ask(tenant, ADULT)).effect is Effect.permit
    other_process = ConsentRegistry(store.__class__(store.engine.url.render_as_string(hide_password=False)))
    try:
        withdrawn = other_process.withdraw(tenant, ADULT, stored.id, actor="test")
    finally:
        other_process.store.close()
    assert withdrawn.version == 2 and withdrawn.status == "inactive"
    decision = registry.decide(ask(tenant, ADULT))
    assert decision.effect is Effect.deny and "L4-outside-team-prior-consent" in decision.rule_ids
    assert registry.get_consent(tenant, ADULT, stored.id, 1).status == "active"  # history kept
    with pytest.raises(Conflict):
        registry.withdraw(tenant, ADULT, stored.id, actor="test")
    with pytest.raises(NotFound):
        registry.withdraw(tenant, ADULT, "0" * 32, actor="test")


def test_the_state_is_cached_until_something_changes(world):
    store, tenant, _, registry = world
    with store.engine.connect() as conn:
        first, second = load_state(conn, tenant.id, ADULT), load_state(conn, tenant.id, ADULT)
    assert first is second
    registry.record_information(tenant, ADULT, info(InformationTopic.dmp), actor="test")
    with store.engine.connect() as conn:
        assert load_state(conn, tenant.id, ADULT) is not first


def test_a_new_plan_version_refreshes_the_identity_status(world, sample_plan):
    # sample_plan is U000001 too: it replaces the fixture plan of the minor
    store, tenant, _, registry = world
    store.put_plan(tenant, sample_plan, if_match="*", actor="test")  # U000001, QUAL
    registry.record_information(tenant, MINOR, info(InformationTopic.dmp), actor="test")
    dmp = ask(tenant, MINOR, System.dmp, kind="system", to=None)
    assert registry.decide(dmp).effect is Effect.permit
    data = sample_plan_dict()
    data["person"]["identity_status"] = "VALI"
    store.put_plan(tenant, make_plan(data), if_match="*", actor="test")
    decision = registry.decide(dmp)
    assert decision.effect is Effect.deny and decision.rule_ids == ("L13-ins-qualified",)


# ------------------------------------------------------------------ decisions and the audit trail


def test_every_decision_is_logged_and_audited_in_the_callers_transaction(world):
    store, tenant, _, registry = world
    before = count(store, "SELECT count(*) FROM audit_entries")
    with store.engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            decision = decide_and_record(conn, ask(tenant, ADULT, to=DR_HEALTH))
            inside = conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
            assert inside == before + 1  # appended before the decision was returned
    assert count(store, "SELECT count(*) FROM audit_entries") == before + 1
    assert count(store, "SELECT count(*) FROM consent_decisions WHERE id = :i", i=decision.id) == 1
    action, body = audit_actions(store, tenant)[-1]
    assert action == f"decision.{decision.effect.value}"
    assert body["refs"]["decision"] == decision.id and body["system"] == "mss"
    assert body["refs"]["rules"] == " ".join(decision.rule_ids) and body["refs"]["purpose"] == "COC"
    assert body["subject"].startswith("ps1-")


def test_a_decision_whose_transaction_rolls_back_leaves_no_entry(world):
    store, tenant, _, _ = world
    before = count(store, "SELECT count(*) FROM audit_entries")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with store.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                decide_and_record(conn, ask(tenant, ADULT))
                raise Abort
    assert count(store, "SELECT count(*) FROM audit_entries") == before
    assert count(store, "SELECT count(*) FROM consent_decisions WHERE tenant_id = :t", t=tenant.id) == 0


def test_permits_and_denies_are_both_audited_with_their_consents(world):
    store, tenant, _, registry = world
    stored = registry.record_consent(tenant, ADULT, outside_team(ADULT), actor="test")
    permit = registry.decide(ask(tenant, ADULT))
    deny = registry.decide(ask(tenant, ADULT, to="10000000008"))
    entries = {body["refs"]["decision"]: (action, body) for action, body in audit_actions(store, tenant)
               if action.startswith("decision.")}
    assert entries[permit.id][0] == "decision.permit"
    assert entries[permit.id][1]["refs"]["consents"] == f"{stored.id}/1/{stored.content_hash}"
    assert entries[deny.id][0] == "decision.deny"


def test_consent_writes_are_audited_without_personal_data(world):
    store, tenant, _, registry = world
    stored = registry.record_consent(tenant, MINOR, outside_team(MINOR, "RelatedPerson/R1"), actor="test")
    registry.withdraw(tenant, MINOR, stored.id, actor="test")
    registry.put_care_team(tenant, MINOR, care_team_resource(MINOR, [member(DR_HEALTH)]), actor="test")
    registry.record_information(tenant, MINOR, info(InformationTopic.care_team_sharing), actor="test")
    actions = [a for a, _ in audit_actions(store, tenant)]
    for expected in ("consent.recorded", "consent.withdrawn", "careteam.changed", "information.recorded"):
        assert expected in actions
    raw = json.dumps([b for _, b in audit_actions(store, tenant)])
    for personal in ("RHUBARBIVANT", "122100810511315", MINOR, "Manon", "2022-10-17"):
        assert personal not in raw


# ------------------------------------------------------------------ events


@pytest.fixture
def received():
    got: list[events.ConsentChange] = []
    unsubscribe = events.on_consent_change(got.append)
    yield got
    unsubscribe()


def test_a_new_opposition_publishes_what_it_now_forbids_after_commit(world, received):
    store, tenant, _, registry = world
    seen_in_db = []
    unsubscribe = events.on_consent_change(
        lambda change: seen_in_db.append(count(store, "SELECT count(*) FROM consent_versions WHERE tenant_id = :t",
                                               t=tenant.id)))
    try:
        registry.record_consent(tenant, ADULT, consent("deny", person=ADULT, kind=ConsentKind.opposition.value,
                                                       actors=[("system", "dmp")]), actor="test")
    finally:
        unsubscribe()
    assert seen_in_db == [1]  # committed before the event
    (change,) = received
    assert change.cause == "opposition" and change.person_local_id == ADULT
    assert change.forbidden[0].systems == {"dmp"} and change.forbidden[0].recipients is None


def test_a_withdrawal_publishes_what_the_consent_allowed(world, received):
    _, tenant, _, registry = world
    stored = registry.record_consent(tenant, ADULT, outside_team(ADULT), actor="test")
    assert received == []  # a permit forbids nothing
    registry.withdraw(tenant, ADULT, stored.id, actor="test")
    (change,) = received
    assert change.cause == "withdrawal" and change.consent.version == 2
    assert change.forbidden[0].recipients == {("rpps", STRANGER)}


def test_removing_a_care_team_member_publishes_a_change(world, received):
    _, tenant, _, registry = world
    registry.put_care_team(tenant, ADULT, care_team_resource(ADULT, [member(DR_HEALTH), member(STRANGER)]),
                           actor="test")
    registry.put_care_team(tenant, ADULT, care_team_resource(ADULT, [member(DR_HEALTH)]), actor="test")
    (change,) = received
    assert change.cause == "care-team" and change.forbidden[0].recipients == {("rpps", STRANGER)}


def test_a_failing_subscriber_does_not_break_the_write(world):
    _, tenant, _, registry = world

    def broken(change):
        raise RuntimeError("boom")

    unsubscribe = events.on_consent_change(broken)
    try:
        registry.record_consent(tenant, ADULT, consent("deny", person=ADULT, kind=ConsentKind.opposition.value),
                                actor="test")
    finally:
        unsubscribe()
    assert len(registry.list_consents(tenant, ADULT)) == 1


# ------------------------------------------------------------------ care team and information


def test_care_team_versions_keep_one_identity(world):
    _, tenant, _, registry = world
    assert registry.get_care_team(tenant, ADULT) is None
    first = registry.put_care_team(tenant, ADULT, care_team_resource(ADULT, [member(DR_HEALTH)]), actor="test")
    second = registry.put_care_team(tenant, ADULT, care_team_resource(ADULT, [member(STRANGER)]), actor="test")
    assert (first.version, second.version) == (1, 2)
    assert first.resource["id"] == second.resource["id"]
    assert registry.get_care_team(tenant, ADULT).content == second.content
    decision = registry.decide(ask(tenant, ADULT, requester=Profession.health))
    assert decision.effect is Effect.permit and "L3-exchange-care-participant" in decision.rule_ids


def test_information_records_are_kept_and_future_ones_refused(world):
    _, tenant, _, registry = world
    registry.record_information(tenant, ADULT, info(InformationTopic.dmp, method=InformationMethod.electronic),
                                actor="test")
    (record,) = registry.list_information(tenant, ADULT)
    assert record.topics == {InformationTopic.dmp} and record.method is InformationMethod.electronic
    with pytest.raises(ValueError):
        registry.record_information(tenant, ADULT, info(InformationTopic.dmp,
                                                        at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)),
                                    actor="test")


# ------------------------------------------------------------------ tenants


def test_a_tenant_never_sees_or_changes_another_tenants_consents(world):
    store, tenant, other, registry = world
    stored = registry.record_consent(tenant, ADULT, outside_team(ADULT), actor="test")
    with pytest.raises(NotFound):
        registry.list_consents(other, ADULT)
    store.put_plan(other, fixture_plan(ADULT), if_match=None, actor="test")  # same local id elsewhere
    assert registry.list_consents(other, ADULT) == []
    with pytest.raises(NotFound):
        registry.get_consent(other, ADULT, stored.id)
    with pytest.raises(NotFound):
        registry.withdraw(other, ADULT, stored.id, actor="test")
    assert registry.decide(ask(other, ADULT)).effect is Effect.deny
    assert registry.decide(ask(tenant, ADULT)).effect is Effect.permit


def test_recipient_strings_from_the_delivery_spine_are_accepted():
    r = Recipient("professional", (("rpps", DR_HEALTH),), "health")
    assert r.profession is Profession.health
