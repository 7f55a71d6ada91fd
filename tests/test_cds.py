"""Cercle de soins 2.0.1 (issue 5 §3): the person's care team, as the consent engine keeps it, →
a `cds-bundle-transaction-creation` Bundle (mappings/fhir/cds) → validated with the rule set
compiled from the CDS, FR Core and Annuaire packages → the spine → the e-parcours sandbox, which
judges it with the same rules and answers 500 + OperationOutcome on error."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa

from connectors.base import Recipient, RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.server import ThreadedServer
from gateway.consent import ConsentRegistry
from gateway.consent.fhir_careteam import MemberSpec, care_team_resource, read_care_team
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import CS_ROLE_CLASS, InformationMethod, InformationTopic, Profession
from gateway.delivery import outbox, payload_cds, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import kind as payload_kind
from gateway.delivery.tables import exchanges
from gateway.delivery.worker import Worker
from gateway.model import Plan
from gateway.model.identity import RepresentativeRole
from gateway.model.problem import errors
from mappings.fhir.cds import CareTeamUnmappable, care_team_bundle
from mappings.fhir.cds import constants as c

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "plans"
PACKAGES = ROOT.parent / "shared" / "reference" / "fhir-packages"
TODAY = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
TOOL = Recipient(kind="system", identifier="eparcours", display="Outil e-parcours régional")

RPPS = "10101010101"
DOCTOR = MemberSpec("PractitionerRole", ("rpps", RPPS), Profession.health, start="2026-02-01",
                    organisation="510000029", roles=((CS_ROLE_CLASS, "PROV"),))
SERVICE = MemberSpec("Organization", ("finess", "510000037"), Profession.social, start="2026-02-01")
MOTHER = MemberSpec("RelatedPerson", ("local", "R1"), None, start="2026-02-01")
FATHER = MemberSpec("RelatedPerson", ("local", "R2"), None, start="2026-02-01")
NURSE = MemberSpec("PractitionerRole", ("mssante", "i.lune@infirmier.mssante.fr"), Profession.health,
                   start="2026-02-01", end="2026-06-30")


def plan_of(name: str = "p001-enfant-tnd.json") -> Plan:
    return Plan.model_validate_json((FIXTURES / name).read_bytes())


def team_of(plan: Plan, members=(DOCTOR, SERVICE, MOTHER, NURSE)) -> dict:
    """The care team as the consent engine stores it (normalised: identifier, name, profile)."""
    resource = care_team_resource(plan.person.local_id, list(members), start="2026-02-01")
    return read_care_team(resource, person_local_id=plan.person.local_id)[0]


def entries(bundle: dict, rtype: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def by_url(bundle: dict) -> dict[str, dict]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


@pytest.fixture(scope="module")
def p001() -> Plan:
    return plan_of()


@pytest.fixture(scope="module")
def bundle(p001) -> dict:
    return care_team_bundle(team_of(p001), p001)


# ------------------------------------------------------------------------------ the mapping


def test_every_resource_declares_its_profile_with_the_version_it_is_judged_against(bundle):
    assert bundle["meta"]["profile"] == [f"{c.BUNDLE_CREATION}|2.0.1"] and bundle["type"] == "transaction"
    declared = {e["resource"]["resourceType"]: e["resource"]["meta"]["profile"] for e in bundle["entry"]}
    assert declared == {
        "CareTeam": [f"{c.CARE_TEAM}|2.0.1"],
        "Patient": [f"{c.PATIENT}|2.1.0", f"{c.PATIENT_INS}|2.1.0"],
        "Organization": [f"{c.ORGANIZATION}|2.0.1"],
        "PractitionerRole": [f"{c.PRACTITIONER_ROLE}|1.1.0"],
        "RelatedPerson": [f"{c.RELATED_PERSON}|2.0.1"],
    }
    assert bundle["entry"][0]["resource"]["resourceType"] == "CareTeam"


def test_the_care_team_names_the_person_the_platform_and_each_member_inside_the_bundle(bundle, p001):
    team = entries(bundle, "CareTeam")[0]["resource"]
    resources = by_url(bundle)
    assert team["identifier"] == [{"system": c.ID_CARE_TEAM, "value": "3510000011/U000001"}]
    assert (team["status"], team["name"], team["period"]) == ("active", "Cercle de soins", {"start": "2026-02-01"})
    assert resources[team["subject"]["reference"]]["resourceType"] == "Patient"
    platform = resources[team["managingOrganization"][0]["reference"]]
    assert platform["name"] == p001.platform.name
    members = [resources[p["member"]["reference"]] for p in team["participant"]]
    assert [m["resourceType"] for m in members] == ["PractitionerRole", "Organization", "RelatedPerson",
                                                      "PractitionerRole"]
    assert all(ref.startswith("urn:uuid:") for ref in [team["subject"]["reference"]]
               + [p["member"]["reference"] for p in team["participant"]])


def test_a_professional_is_a_practitioner_role_with_the_rpps_and_the_structure_as_logical_references(bundle):
    doctor = entries(bundle, "PractitionerRole")[0]["resource"]
    assert doctor["identifier"] == [{"system": "https://rpps.esante.gouv.fr", "value": RPPS}]
    assert doctor["practitioner"]["identifier"]["system"] == "urn:oid:1.2.250.1.71.4.2.1"
    assert doctor["practitioner"]["identifier"]["value"] == f"8{RPPS}"
    assert doctor["organization"]["identifier"] == {"system": "https://finess.esante.gouv.fr", "value": "510000029"}
    team = entries(bundle, "CareTeam")[0]["resource"]
    assert "onBehalfOf" not in team["participant"][0]  # ctm-1: only with a Practitioner member


def test_a_structure_is_an_organization_with_its_finess_and_idnat_struct(bundle):
    service = next(e["resource"] for e in entries(bundle, "Organization")
                   if any(i["value"] == "510000037" for i in e["resource"]["identifier"]))
    assert {(i["system"], i["value"]) for i in service["identifier"]} == {
        ("https://finess.esante.gouv.fr", "510000037"), ("urn:oid:1.2.250.1.71.4.2.2", "1510000037")}


def test_a_representative_is_a_related_person_with_the_plans_name_contact_and_relationship(bundle, p001):
    [mother] = [e["resource"] for e in entries(bundle, "RelatedPerson")]
    rep = p001.person.representatives[0]
    assert mother["identifier"] == [{"system": c.ID_REPRESENTATIVE, "value": "3510000011/U000001-REPR-R1"}]
    assert mother["name"] == [{"use": "official", "family": rep.family_name, "given": ["Manon"]}]
    assert [t["value"] for t in mother["telecom"]] == [t.value for t in rep.telecom]
    assert mother["relationship"] == [
        {"coding": [{"system": c.CS_ROLE_CLASS, "code": "GUARD", "display": "Responsable légal"}]},
        {"coding": [{"system": c.CS_ROLE_CODE, "code": "MTH", "display": "Mère"}]}]
    assert mother["patient"]["reference"] == entries(bundle, "Patient")[0]["fullUrl"]


def test_a_qualified_identity_carries_the_ins_and_the_traits_only(bundle, p001):
    patient = entries(bundle, "Patient")[0]["resource"]
    ins = [i for i in patient["identifier"] if i["system"] == f"urn:oid:{p001.person.ins.oid}"]
    assert [i["value"] for i in ins] == [p001.person.ins.value]
    assert not {"telecom", "address", "_birthDate"} & set(patient)  # not needed by the cercle de soins
    assert [e["url"] for e in patient["extension"]] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
        "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"]


def test_an_identity_not_qualified_is_sent_without_its_ins():
    plan = plan_of("p005-enfant-tnd.json")  # VALI
    assert plan.person.ins is not None
    result = care_team_bundle(team_of(plan, (DOCTOR,)), plan)
    [entry] = entries(result, "Patient")
    assert entry["resource"]["meta"]["profile"] == [f"{c.PATIENT}|2.1.0"]
    assert [i["system"] for i in entry["resource"]["identifier"]] == [c.ID_PATIENT]
    assert entry["request"]["ifNoneExist"] == f"identifier={c.ID_PATIENT}|3{plan.platform.finess}/{plan.person.local_id}"


def test_every_sync_is_create_or_update_on_business_identifiers(bundle, p001):
    requests = {e["resource"]["resourceType"]: e["request"] for e in bundle["entry"]}
    assert requests["CareTeam"] == {"method": "PUT",
                                    "url": f"CareTeam?identifier={c.ID_CARE_TEAM}|3510000011/U000001"}
    assert requests["RelatedPerson"]["method"] == "PUT"
    assert requests["RelatedPerson"]["url"].startswith(f"RelatedPerson?identifier={c.ID_REPRESENTATIVE}|")
    assert requests["Patient"] == {"method": "POST", "url": "Patient",
                                   "ifNoneExist": f"identifier=urn:oid:{p001.person.ins.oid}|{p001.person.ins.value}"}
    assert requests["PractitionerRole"]["ifNoneExist"].startswith("identifier=")
    assert [e["request"]["ifNoneExist"] for e in entries(bundle, "Organization")] == [
        "identifier=https://finess.esante.gouv.fr|510000011", "identifier=https://finess.esante.gouv.fr|510000037"]


def test_the_same_care_team_gives_the_same_bundle_and_urls_come_from_business_identifiers(p001):
    first = care_team_bundle(team_of(p001), p001)
    again = care_team_bundle(team_of(p001), p001)
    assert orjson.dumps(first) == orjson.dumps(again)
    for e in first["entry"]:
        assert uuid.UUID(e["fullUrl"].removeprefix("urn:uuid:")).version == 5
    other = plan_of("p002-enfant-tnd.json")
    theirs = care_team_bundle(team_of(other, (DOCTOR,)), other)
    assert entries(theirs, "CareTeam")[0]["fullUrl"] != entries(first, "CareTeam")[0]["fullUrl"]
    # the professional is the same resource whoever's circle they belong to
    assert entries(theirs, "PractitionerRole")[0]["fullUrl"] == entries(first, "PractitionerRole")[0]["fullUrl"]


def test_a_member_who_left_keeps_the_end_and_relais_internal_codes_stay_in_relais(bundle):
    team = entries(bundle, "CareTeam")[0]["resource"]
    assert team["participant"][3]["period"] == {"start": "2026-02-01", "end": "2026-06-30"}
    text = json.dumps(team)
    assert "r1110-2-category" not in text and "membership-basis" not in text
    assert team["participant"][0]["role"] == [{"coding": [{"system": CS_ROLE_CLASS, "code": "PROV"}]}]


def test_one_member_in_two_periods_is_one_resource_and_two_participants(p001):
    back = MemberSpec("PractitionerRole", ("rpps", RPPS), Profession.health, start="2026-09-01")
    result = care_team_bundle(team_of(p001, (DOCTOR, back)), p001)
    team = entries(result, "CareTeam")[0]["resource"]
    assert len(entries(result, "PractitionerRole")) == 1
    assert team["participant"][0]["member"] == team["participant"][1]["member"]


@pytest.mark.parametrize(("said", "role", "organisation", "expected"), [
    ("mère", "parent", None, "MTH"),
    ("père", "parent", None, "FTH"),
    ("sœur", "other_legal", None, "SIS"),
    ("mandataire judiciaire", "guardian", "UDAF", "RESPRSN"),
    (None, "parent", None, "PRN"),
    (None, "guardian", "ATMP 51", "RESPRSN"),
    ("amie de la famille", "other_legal", None, None),
])
def test_the_relation_type_comes_from_the_plans_words(p001, said, role, organisation, expected):
    rep = p001.person.representatives[0].model_copy(
        update={"relationship": said, "role": RepresentativeRole(role), "organisation": organisation})
    plan = p001.model_copy(update={"person": p001.person.model_copy(update={"representatives": [rep]})})
    [person] = entries(care_team_bundle(team_of(plan, (MOTHER,)), plan), "RelatedPerson")
    codes = [x["code"] for cc in person["resource"]["relationship"] for x in cc["coding"]]
    assert codes == ["GUARD"] + ([expected] if expected else [])


def test_a_related_member_who_is_no_representative_of_the_plan_cannot_be_expressed(p001):
    stranger = MemberSpec("RelatedPerson", ("local", "AIDANT-9"), None)
    with pytest.raises(CareTeamUnmappable) as caught:
        care_team_bundle(team_of(p001, (DOCTOR, stranger)), p001)
    [problem] = caught.value.problems
    assert problem.rule == "cds-related-person-unknown" and "AIDANT-9" in problem.message
    assert problem.location == "CareTeam.participant[1].member.identifier"


def test_a_representative_without_any_contact_cannot_be_expressed(p001):
    rep = p001.person.representatives[0].model_copy(update={"telecom": []})
    plan = p001.model_copy(update={"person": p001.person.model_copy(update={"representatives": [rep]})})
    with pytest.raises(CareTeamUnmappable) as caught:
        care_team_bundle(team_of(plan, (MOTHER,)), plan)
    [problem] = caught.value.problems
    assert problem.rule == "cds-related-person-telecom" and "telecom 1..*" in problem.message
    assert problem.location == "$.person.representatives[0].telecom"


# ---------------------------------------------------------------------------- validation


def _with_representatives(plan: Plan) -> list[MemberSpec]:
    reps = [MemberSpec("RelatedPerson", ("local", r.id), None) for r in plan.person.representatives]
    return [DOCTOR, SERVICE, NURSE, *reps]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_what_relais_produces_passes_the_cds_rules_without_error(name):
    plan = plan_of(name)
    result = care_team_bundle(team_of(plan, _with_representatives(plan)), plan)
    problems = payload_cds.validate_care_team(orjson.dumps(result))
    assert errors(problems) == [], [p.line() for p in errors(problems)]


def _drop(path):
    def mutate(b):
        target = b
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return mutate


def _set(path, value):
    def mutate(b):
        target = b
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return mutate


RELATED = 5  # entry index of the mother's RelatedPerson in the module bundle


@pytest.mark.parametrize(("mutate", "rule", "location"), [
    (_drop(["entry", 0, "resource", "identifier"]), "cardinality-min", "Bundle.entry[0].resource.identifier"),
    (_drop(["entry", 0, "resource", "participant", 0, "period", "start"]), "cardinality-min",
     "Bundle.entry[0].resource.participant[0].period.start"),
    (_drop(["entry", RELATED, "resource", "telecom"]), "cardinality-min",
     f"Bundle.entry[{RELATED}].resource.telecom"),
    (_set(["entry", 0, "resource", "status"], "closed"), "binding-required", "Bundle.entry[0].resource.status"),
    (_set(["entry", 0, "resource", "subject", "reference"], "urn:uuid:00000000-0000-4000-8000-000000000000"),
     "reference-unresolved", "Bundle.entry[0].resource.subject.reference"),
    (_drop(["entry", 1]), "slice-cardinality", "Bundle.entry"),
    (_drop(["entry", 2, "resource", "meta"]), "profile-missing", "Bundle.entry[2].resource.meta.profile"),
])
def test_the_cds_rules_refuse_what_the_guide_forbids(bundle, mutate, rule, location):
    broken = copy.deepcopy(bundle)
    mutate(broken)
    found = [p for p in errors(payload_cds.validate_care_team(orjson.dumps(broken))) if p.rule == rule]
    assert found and (location is None or any(p.location == location for p in found)), found


needs_packages = pytest.mark.skipif(
    not all((PACKAGES / p).is_file() for p in payload_cds.PACKAGES),
    reason=f"FHIR packages {payload_cds.PACKAGES} absent from {PACKAGES} (shared/reference not checked out)")


@needs_packages
def test_shipped_rules_are_what_the_compiler_makes_from_the_packages():
    from gateway.conformance.fhir.compile import compile_packages, dump

    rules = compile_packages([PACKAGES / p for p in payload_cds.PACKAGES], payload_cds.MAIN,
                             payload_cds.ENTRY_PROFILES)
    assert dump(rules) == payload_cds.shipped_rules(), (
        "recompile: python -m gateway.conformance.fhir.compile "
        + " ".join(f"--package {p}" for p in payload_cds.PACKAGES) + f" --main {payload_cds.MAIN} "
        + " ".join(f"--also {p}" for p in payload_cds.ENTRY_PROFILES) + " --out mappings/fhir/profiles/")


def test_the_payload_kind_is_registered_for_the_regional_tool():
    registered = payload_kind("cds-careteam")
    assert registered.content_type == "application/fhir+json" and registered.load is not None
    assert "cds-careteam" in EparcoursConnector.payload_kinds


# ------------------------------------------------------------------------------ the sandbox


@pytest.fixture
def tool():
    sandbox = eparcours_sandbox()
    with ThreadedServer(sandbox.app) as server:
        client = httpx.Client(base_url=server.url, timeout=5.0)
        token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "relais",
                                                   "client_secret": "sandbox-secret"}).json()["access_token"]
        client.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
        yield sandbox, client
        client.close()


def test_the_tool_applies_the_conditional_update_to_the_care_team_it_holds(tool, p001):
    sandbox, client = tool
    first = client.post("/", content=orjson.dumps(care_team_bundle(team_of(p001), p001)))
    assert first.status_code == 200 and first.json()["type"] == "transaction-response"
    [team] = sandbox.store.all("CareTeam")
    again = client.post("/", content=orjson.dumps(care_team_bundle(team_of(p001, (DOCTOR, FATHER)), p001)))
    assert again.status_code == 200
    assert again.json()["entry"][0]["response"]["location"] == f"CareTeam/{team.resource['id']}/_history/2"
    assert sandbox.store.count("CareTeam") == 1 and len(sandbox.store.all("CareTeam")[0].resource["participant"]) == 2
    assert sandbox.store.count("Patient") == 1


def test_the_tool_answers_500_with_an_operation_outcome_to_a_malformed_cercle_de_soins(tool, bundle):
    sandbox, client = tool
    broken = copy.deepcopy(bundle)
    del broken["entry"][0]["resource"]["identifier"]
    answer = client.post("/", content=orjson.dumps(broken))
    assert answer.status_code == 500
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("[cardinality-min]" in i["diagnostics"] and i["expression"] == ["Bundle.entry[0].resource.identifier"]
               for i in outcome["issue"])
    assert sandbox.store.count() == 0


def test_the_tool_refuses_an_update_that_matches_two_care_teams(tool, p001):
    sandbox, client = tool
    held = care_team_bundle(team_of(p001), p001)["entry"][0]["resource"]
    sandbox.store.create(held)
    sandbox.store.create(held)
    answer = client.post("/", content=orjson.dumps(care_team_bundle(team_of(p001), p001)))
    assert answer.status_code == 500 and answer.json()["issue"][0]["code"] == "duplicate"
    assert sandbox.store.count("CareTeam") == 2


# ------------------------------------------------------------------ the spine, end to end


@pytest.fixture
def spine(store):
    sandbox = eparcours_sandbox()
    with ThreadedServer(sandbox.app) as server:
        tenant = store.create_tenant("plateforme-a", "Plateforme A", "510000011")
        connector = EparcoursConnector(FhirEndpoint(
            base_url=server.url, token_url=f"{server.url}/oauth/token", client_id="relais",
            client_secret="sandbox-secret", timeout=5.0), FAST)
        yield store, tenant, sandbox, Worker(store, {"eparcours": connector}, rng=random.Random(1))
        connector.close()


def stored(store, tenant, plan: Plan, members=(DOCTOR, SERVICE, MOTHER)) -> None:
    store.put_plan(tenant, plan, if_match=None, actor="test")
    registry = ConsentRegistry(store)
    registry.record_information(tenant, plan.person.local_id, InformationRecord(
        id=f"info-{plan.person.local_id}", informed_at=TODAY - dt.timedelta(days=30),
        method=InformationMethod.written, informed_by="coordinatrice", notice_version="notice-2026-01",
        topics=frozenset({InformationTopic.care_team_sharing})), actor="test", now=TODAY)
    if members is not None:
        put_team(store, tenant, plan, members)


def put_team(store, tenant, plan: Plan, members) -> None:
    resource = care_team_resource(plan.person.local_id, list(members), start="2026-02-01")
    ConsentRegistry(store).put_care_team(tenant, plan.person.local_id, resource, actor="test", now=TODAY)


def submit(store, tenant, plan: Plan, version: int | None = None):
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="eparcours", recipient=TOOL, purpose="COC",
        payload_kind="cds-careteam", plan_version=version), actor="test", decider=consent_decider).exchange


def exchange(store, tenant, exchange_id):
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id)


def held_members(sandbox) -> list[tuple[str, str, str | None]]:
    """(type, identifier value, period end) of each participant of the CareTeam the tool holds."""
    [team] = sandbox.store.all("CareTeam")
    out = []
    for part in team.resource["participant"]:
        rtype, rid = part["member"]["reference"].split("/")
        member = sandbox.store.read(rtype, rid).resource
        out.append((rtype, member["identifier"][-1]["value"], part["period"].get("end")))
    return out


def test_the_care_team_reaches_the_tool_with_its_participants(spine, p001):
    store, tenant, sandbox, worker = spine
    stored(store, tenant, p001)
    sent = submit(store, tenant, p001)
    assert sent.status is Status.queued, (sent.detail, sent.decision_reasons, sent.problems)
    assert worker.drain() == 1
    done = exchange(store, tenant, sent.id)
    assert done.status is Status.sent and done.receipt["peer_reference"].startswith("CareTeam/")
    assert held_members(sandbox) == [("PractitionerRole", RPPS, None), ("Organization", "510000037", None),
                                     ("RelatedPerson", "3510000011/U000001-REPR-R1", None)]
    [team] = sandbox.store.all("CareTeam")
    patient = sandbox.store.read(*team.resource["subject"]["reference"].split("/")).resource
    assert p001.person.ins.value in [i["value"] for i in patient["identifier"]]


def test_a_care_team_change_sent_again_updates_the_same_care_team(spine, p001):
    store, tenant, sandbox, worker = spine
    stored(store, tenant, p001)
    submit(store, tenant, p001)
    worker.drain()
    # the doctor leaves, the father joins; the plan is revised too (the spine keys on its version)
    left = MemberSpec(**{**DOCTOR.__dict__, "end": "2026-11-01"})
    put_team(store, tenant, p001, (left, SERVICE, MOTHER, FATHER))
    store.put_plan(tenant, p001.model_copy(update={"title": "Projet révisé"}),
                   if_match=store.get_plan(tenant, p001.person.local_id).etag, actor="test")
    again = submit(store, tenant, p001, version=2)
    assert again.status is Status.queued
    worker.drain()
    assert exchange(store, tenant, again.id).status is Status.sent
    [team] = sandbox.store.all("CareTeam")
    assert team.version == 2
    assert held_members(sandbox) == [("PractitionerRole", RPPS, "2026-11-01"), ("Organization", "510000037", None),
                                     ("RelatedPerson", "3510000011/U000001-REPR-R1", None),
                                     ("RelatedPerson", "3510000011/U000001-REPR-R2", None)]
    assert [sandbox.store.count(t) for t in ("Patient", "PractitionerRole", "Organization")] == [1, 1, 2]


def test_a_care_team_change_alone_is_sent_again(spine, p001):
    store, tenant, sandbox, worker = spine
    stored(store, tenant, p001)
    first = submit(store, tenant, p001)
    worker.drain()
    put_team(store, tenant, p001, (DOCTOR, SERVICE, MOTHER, FATHER))
    assert submit(store, tenant, p001).id != first.id


def test_a_care_team_the_tool_rejects_goes_to_dead_letters_with_its_reason_without_retry(spine, p001):
    store, tenant, sandbox, worker = spine
    stored(store, tenant, p001)
    queued = submit(store, tenant, p001)
    # the tool is stricter than Relais was when the payload was queued: the CareTeam lost its identifier
    payload = orjson.loads(exchange_payload(store, queued.id))
    del payload["entry"][0]["resource"]["identifier"]
    with store.transaction() as conn:
        conn.execute(sa.update(exchanges).where(exchanges.c.id == queued.id).values(payload=orjson.dumps(payload)))
    worker.drain()
    dead = exchange(store, tenant, queued.id)
    assert dead.status is Status.dead and dead.attempts == 1
    assert dead.last_error.startswith("[500]") and "cardinality-min" in dead.last_error
    assert sandbox.store.count() == 0


def exchange_payload(store, exchange_id: str) -> bytes:
    with store.reading() as conn:
        return conn.execute(sa.select(exchanges.c.payload).where(exchanges.c.id == exchange_id)).scalar_one()


def test_no_care_team_makes_the_exchange_invalid_with_the_reason(spine, p001):
    store, tenant, sandbox, worker = spine
    stored(store, tenant, p001, members=None)
    invalid = submit(store, tenant, p001)
    assert invalid.status is Status.invalid
    [problem] = invalid.problems
    assert problem["rule"] == "cds-no-care-team" and "aucune équipe de soins" in problem["message"]
    assert worker.drain() == 0 and sandbox.store.count() == 0
