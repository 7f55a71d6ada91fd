"""The ViaTrajectoire / SI-SDO connector against the sandbox SI-SDO, over real HTTPS on loopback
with mutual TLS (test CA), OAuth2 and struct_idnat: every flow of the SDO guide (specs §3)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from connectors.base import Envelope, PermanentError, Recipient, TransientError
from connectors.fhirhttp import FhirEndpoint
from connectors.registry import factory
from connectors.sandbox import sdo
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.fhir_store import ResourceStore
from connectors.sandbox.pki import TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles
from connectors.viatrajectoire import (
    DecisionDocumentError,
    StatusReport,
    ViaTrajectoireConnector,
    build_consent,
    build_status_task,
    decision_file,
    orientation_records,
    parse_decision_cda,
)
from connectors.viatrajectoire.resources import ResourceError
from gateway.model.plan import OrientationDecision

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = Path("/work/shared/reference/official/sdo")
OFFICIAL_CDA = OFFICIAL / "CDA_SI-ESMS_Decision.xml"
OFFICIAL_BUNDLE = OFFICIAL / "Bundle-exemple-sdo-bundle-resultat-recherche-notifications-esms.no-narrative.json"
FINESS = "510000011"  # the fixtures' platform (FINESS EG)
STRUCT = "1" + FINESS
OTHER = "510000037"  # another, synthetic ESMS
NOW = dt.datetime.now(dt.UTC)


def plans(*numbers: int) -> list[dict]:
    files = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
    return [json.loads(files[n - 1].read_text()) for n in numbers]


ALL_PLANS = [json.loads(p.read_text()) for p in sorted((ROOT / "fixtures" / "plans").glob("*.json"))]


# -------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = TestCA(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue_server(), ca.issue_client("Plateforme du Val-Fictif (FINESS EJ 510000029)")


@pytest.fixture(scope="module")
def server(pki):
    ca, server_cert, _ = pki
    peer = sdo.make_sandbox(FINESS)
    tls = TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
    with ThreadedServer(peer.app, tls=tls) as running:
        yield peer, running


@pytest.fixture
def peer(server):
    sandbox, _ = server
    sandbox.store = ResourceStore()
    sandbox.faults.clear()
    return sandbox


def endpoint(server, pki, **extra) -> FhirEndpoint:
    ca, _, client = pki
    options = dict(base_url=server[1].url, token_url=f"{server[1].url}/oauth/token", client_id="relais",
                   client_secret="sandbox-secret", ca_file=str(ca.cert), client_cert=str(client.cert),
                   client_key=str(client.key), timeout=2.0)
    return FhirEndpoint(**{**options, **extra})


@pytest.fixture
def connector(server, pki, peer):
    made = []

    def make(**options) -> ViaTrajectoireConnector:
        extra = {k: options.pop(k) for k in list(options) if k in FhirEndpoint.__dataclass_fields__}
        client = ViaTrajectoireConnector(endpoint(server, pki, **extra), struct_idnat=FINESS, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def envelope(kind: str, resource: dict, attempt: int = 1) -> Envelope:
    return Envelope(exchange_id="x-1", idempotency_key="k-1", system="viatrajectoire", payload_kind=kind,
                    content_type="application/fhir+json", payload=json.dumps(resource).encode(),
                    recipient=Recipient("system", "viatrajectoire"), attempt=attempt)


def consent_for(national_id: str) -> dict:
    return build_consent(structure=FINESS, national_decision_id=national_id, collected_on=dt.date(2026, 11, 20),
                         now=NOW)


def report(seeded, **changes) -> StatusReport:
    base = StatusReport(structure=FINESS, esms_name="Plateforme de services coordonnés du Val-Fictif",
                        decision_number=seeded.decision_number, national_decision_id=seeded.national_id,
                        status="41", reason="152", status_date=dt.date(2026, 11, 21))
    return dataclasses.replace(base, **changes)


def status_for(seeded, **changes) -> dict:
    return build_status_task(report(seeded, **changes), now=NOW)


# ----------------------------------------------------- the CDA "Individu + Décision"


@pytest.mark.skipif(not OFFICIAL_CDA.exists(), reason="exemple officiel CDA_SI-ESMS_Decision.xml absent "
                                                      "de /work/shared/reference")
def test_the_official_decision_example_is_read_onto_an_orientation_record():
    doc = parse_decision_cda(OFFICIAL_CDA.read_bytes())
    assert (doc.decision_type.code, doc.decision_date, doc.mdph, doc.hosting_mdph_code) == \
        ("1", dt.date(2022, 1, 1), "06", "22")
    [right] = doc.rights
    assert right.right_type.code == "13.2" and right.care_modes[0].mode.code == "46"
    assert (right.opens_on, right.expires_on) == (dt.date(2022, 1, 4), dt.date(2023, 1, 4))
    assert doc.replaces and doc.version == 2
    assert doc.person.ins_oid == "1.2.250.1.213.1.4.8" and doc.person.sex == "female"
    [record] = orientation_records(doc, national_id="idNat-1")
    decision = OrientationDecision.model_validate(record)
    assert (decision.right_type_code, decision.care_mode_code, decision.organisation_category_code) == \
        ("13.2", "46", "09")
    assert decision.notification_date == dt.date(2023, 1, 10) and decision.status == "notified"


@pytest.mark.parametrize("plan", ALL_PLANS, ids=lambda p: p["person"]["local_id"])
def test_a_seeded_decision_file_reads_back_as_the_plans_orientation_decision(plan):
    store = ResourceStore()
    seeded = sdo.seed_decisions(store, [plan], destination=FINESS, now=NOW)
    assert len(seeded) == len(plan["orientation_decisions"])
    person = plan["person"]
    for item, original in zip(seeded, plan["orientation_decisions"]):
        docref = store.read("DocumentReference", item.document_reference.split("/")[1]).resource
        assert sdo.validate_document_reference(docref) == []
        found = decision_file(docref)
        assert (found.decision_number, found.national_id) == (original["decision_number"], item.national_id)
        [record] = orientation_records(found.document, national_id=found.national_id)
        decision = OrientationDecision.model_validate(record)
        for name in ("decision_number", "mdph", "decision_date", "orientation", "validity"):
            assert getattr(decision, name) == OrientationDecision.model_validate(original).__getattribute__(name)
        traits = found.document.person
        assert traits.birth_family_name == person["birth_family_name"]
        assert traits.birth_given_names == tuple(" ".join(person["birth_given_names"]).split())
        assert (traits.sex, traits.birth_date.isoformat()) == (person["sex"], person["birth_date"])
        assert traits.ins == (person.get("ins") or {}).get("value")


def test_person_traits_never_show_in_a_repr():
    doc = parse_decision_cda(sdo.write_decision_cda(plans(1)[0], plans(1)[0]["orientation_decisions"][0],
                                                    document_id="d1", issued=NOW))
    assert "RHUBARBIVANT" not in repr(doc) and "RHUBARBIVANT" not in repr(doc.person)
    assert doc.person.birth_family_name == "RHUBARBIVANT"


XXE = b"""<?xml version="1.0"?><!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>"""
LAUGHS = ("<?xml version='1.0'?><!DOCTYPE l [<!ENTITY a 'lollollollollollollollollollol'>"
          + "".join(f"<!ENTITY {chr(98 + i)} '{('&' + chr(97 + i) + ';') * 10}'>" for i in range(9))
          + "]><ClinicalDocument xmlns='urn:hl7-org:v3'><title>&j;</title></ClinicalDocument>").encode()
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/x.dtd">
<ClinicalDocument xmlns="urn:hl7-org:v3"/>"""
UTF16 = LAUGHS.decode().replace("version='1.0'?>", "version='1.0' encoding='UTF-16'?>").encode("utf-16")


@pytest.mark.parametrize("hostile", [XXE, LAUGHS, EXTERNAL_DTD, UTF16], ids=["xxe", "billion-laughs",
                                                                              "external-dtd", "utf16-doctype"])
def test_a_hostile_cda_is_refused_without_expanding_anything(hostile):
    with pytest.raises(DecisionDocumentError) as caught:
        parse_decision_cda(hostile)
    assert "DOCTYPE" in caught.value.reason and "root:" not in str(caught.value)


@pytest.mark.parametrize("data, reason", [
    (b"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='1.2.3'/></ClinicalDocument>", "templateId"),
    (b"<not-xml", "XML illisible"),
    (b"<ClinicalDocument xmlns='urn:other'/>", "ClinicalDocument"),
])
def test_a_document_that_is_not_an_individu_decision_cda_is_refused(data, reason):
    with pytest.raises(DecisionDocumentError, match=reason):
        parse_decision_cda(data)


# --------------------------------------------------------------------------- flux 1


def test_new_decision_files_are_searched_then_read_once_each(peer, connector):
    seeded = sdo.seed_decisions(peer.store, plans(1, 2, 3), destination=FINESS)
    client = connector()
    items = list(client.poll_decisions())
    assert [i.kind for i in items] == ["sdo-decision"] * len(seeded)
    assert {i.metadata["idNat_Decision"] for i in items} == {s.national_id for s in seeded}
    first = items[0]
    assert first.metadata["flow"] == "1.4" and first.metadata["mdph"] == "51"
    assert "RHUBARBIVANT" not in json.dumps(dict(first.metadata))  # business ids only, no person
    assert decision_file(json.loads(first.payload)).document.decision_number == first.metadata["idDecision"]
    assert list(client.poll_decisions()) == []
    docref = json.loads(first.payload)
    peer.store.update("DocumentReference", docref["id"], {**docref, "status": "current"})
    [again] = list(client.poll_decisions())
    assert again.metadata["update"] == "true" and again.peer_reference == first.peer_reference


def test_decision_files_addressed_to_another_esms_are_not_served(peer, connector):
    sdo.seed_decisions(peer.store, plans(4), destination=OTHER)
    [mine] = sdo.seed_decisions(peer.store, plans(5), destination=FINESS)
    client = connector()
    assert [i.metadata["idNat_Decision"] for i in client.poll_decisions()] == [mine.national_id]
    other = next(s for s in peer.store.all("DocumentReference") if STRUCT not in sdo._destinations(s.resource))
    with pytest.raises(PermanentError) as caught:
        client.decision(other.resource["id"])
    assert caught.value.code == "403"


def test_a_hostile_decision_file_is_handed_over_as_rejected_not_parsed(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(1), destination=FINESS)
    stored = peer.store.read("DocumentReference", seeded.document_reference.split("/")[1]).resource
    stored["content"][0]["attachment"]["data"] = base64.b64encode(XXE).decode()
    peer.store.update("DocumentReference", stored["id"], stored)
    [item] = list(connector().poll_decisions())
    assert item.kind == "sdo-decision-rejected" and "DOCTYPE" in item.metadata["reason"]


# --------------------------------------------------------------------------- flux 2


def test_a_consent_is_stored_once_and_its_resend_recognised(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(1), destination=FINESS)
    client = connector()
    first = client.send(envelope("sdo-consent", consent_for(seeded.national_id)))
    assert first.status == "accepted" and first.peer_reference.startswith("Consent/")
    again = client.send(envelope("sdo-consent", consent_for(seeded.national_id), attempt=2))
    assert again.status == "duplicate" and again.peer_reference == first.peer_reference
    assert peer.store.count("Consent") == 1


def _without_source(consent):
    consent["meta"].pop("source")


def _instance_meaning(consent):
    consent["provision"]["data"][0]["meaning"] = "instance"


def _usual_identifier(consent):
    consent["provision"]["data"][0]["reference"]["identifier"]["use"] = "usual"


def _two_data(consent):
    consent["provision"]["data"].append(consent["provision"]["data"][0])


def _unknown_decision(consent):
    consent["provision"]["data"][0]["reference"]["identifier"]["value"] = "SDO-99-INCONNU"


@pytest.mark.parametrize("spoil, expression, words", [
    (_without_source, "Consent.meta.source", "meta.source"),
    (_instance_meaning, "Consent.provision.data[0].meaning", "related"),
    (_usual_identifier, "Consent.provision.data[0].reference.identifier.use", "official"),
    (_two_data, "Consent.provision.data", "1..1"),
    (_unknown_decision, "Consent.provision.data[0].reference.identifier.value", "inconnue"),
], ids=["no-meta-source", "meaning", "identifier-use", "two-data", "unknown-decision"])
def test_a_malformed_consent_is_refused_by_the_sdo_with_its_reason(peer, connector, spoil, expression, words):
    [seeded] = sdo.seed_decisions(peer.store, plans(1), destination=FINESS)
    consent = consent_for(seeded.national_id)
    spoil(consent)
    with pytest.raises(PermanentError) as caught:
        connector().send(envelope("sdo-consent", consent))
    assert caught.value.code == "422" and words in caught.value.reason and expression in caught.value.reason
    assert peer.store.count("Consent") == 0


def test_a_consent_for_another_structure_is_not_sent(peer, connector):
    consent = build_consent(structure=OTHER, national_decision_id="SDO-51-X", collected_on=dt.date(2026, 11, 20),
                            now=NOW)
    with pytest.raises(PermanentError, match="structure connectée"):
        connector().send(envelope("sdo-consent", consent))
    assert peer.requests == 0 or peer.store.count("Consent") == 0


# --------------------------------------------------------------------------- flux 3


def test_the_evaluation_is_refused_before_consent_and_served_after(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(2), destination=FINESS)
    client = connector()
    assert client.evaluation(seeded.national_id) is None
    with pytest.raises(PermanentError) as caught:
        client.client.request("GET", f"/{seeded.evaluation}")
    assert caught.value.code == "403"
    client.send(envelope("sdo-consent", consent_for(seeded.national_id)))
    [item] = list(client.poll_evaluations())
    assert item.kind == "sdo-evaluation" and item.metadata["idNat_Decision"] == seeded.national_id
    assert json.loads(item.payload)["type"]["coding"][0]["code"] == "51848-0"
    assert list(client.poll_evaluations()) == []  # fetched once
    assert client.cursor["evaluations"] == {}


def test_another_esms_consent_does_not_open_the_evaluation(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(2), destination=FINESS)
    other = consent_for(seeded.national_id)
    other["meta"]["source"] = "1" + OTHER
    peer.store.create(other)
    assert connector().evaluation(seeded.national_id) is None


# --------------------------------------------------------------------------- flux 4


def test_a_status_is_posted_then_updated_by_a_new_event_and_never_duplicated(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(3), destination=FINESS)
    client = connector()
    contact = client.send(envelope("sdo-status", status_for(seeded)))
    entered = client.send(envelope("sdo-status", status_for(seeded, status="47", reason=None,
                                                            status_date=dt.date(2026, 11, 25))))
    assert (contact.status, entered.status) == ("accepted", "accepted")
    assert contact.peer_reference != entered.peer_reference
    resent = client.send(envelope("sdo-status", status_for(seeded, status="47", reason=None,
                                                           status_date=dt.date(2026, 11, 25)), attempt=2))
    assert resent.status == "duplicate" and resent.peer_reference == entered.peer_reference
    assert peer.store.count("Task") == 2


def test_in_put_mode_the_first_status_is_posted_and_the_next_ones_replace_it(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(3), destination=FINESS)
    client = connector(status_update="put")
    first = client.send(envelope("sdo-status", status_for(seeded)))
    unit = dict(status="47", reason=None, unit_id="ROR-OI-42", unit_name="SESSAD Reims", unit_status="186",
                unit_status_date=dt.date(2026, 11, 25), organisation_category="01", care_mode="47")
    update = client.send(envelope("sdo-status", status_for(seeded, **unit)))
    again = client.send(envelope("sdo-status", status_for(seeded, **unit), attempt=2))
    assert (first.status, update.status, again.status) == ("accepted", "accepted", "duplicate")
    assert first.peer_reference == update.peer_reference == again.peer_reference
    [task] = peer.store.all("Task")
    assert task.version == 2 and sdo._input_value(task.resource, "statutUnite") == "186"


def _statut(code):
    def spoil(task):
        task["input"][2]["valueCodeableConcept"]["coding"][0]["code"] = code
    return spoil


def _no_decision(task):
    task["input"] = [i for i in task["input"] if i["type"]["coding"][0]["code"] != "idNat_Decision"]


def _intent(task):
    task["intent"] = "order"


def _unit_without_unit(task):
    task["input"].append({"type": {"coding": [{"system": sdo.vocab.INPUT_TASK_CS, "code": "statutUnite"}]},
                          "valueCodeableConcept": {"coding": [{"system": sdo.vocab.TRE_R357, "code": "186"}]}})


@pytest.mark.parametrize("spoil, words", [
    (_statut("999"), "hors du jeu de valeurs"),
    (_no_decision, "idNat_Decision 1..1"),
    (_intent, "intent"),
    (_unit_without_unit, "regle-StatutUnite"),
], ids=["status-code", "no-idNat_Decision", "intent", "regle-StatutUnite"])
def test_a_malformed_status_is_refused_by_the_sdo_with_its_reason(peer, connector, spoil, words):
    [seeded] = sdo.seed_decisions(peer.store, plans(3), destination=FINESS)
    task = status_for(seeded)
    spoil(task)
    with pytest.raises(PermanentError) as caught:
        connector().send(envelope("sdo-status", task))
    assert caught.value.code == "422" and words in caught.value.reason
    assert peer.store.count("Task") == 0


@pytest.mark.parametrize("changes, words", [
    (dict(status="99"), "statutESMS"),
    (dict(care_mode="49"), "modePriseCharge"),
    (dict(unit_status="186"), "regle-StatutUnite"),
    (dict(reason="152", status=None, unit_status=None), "statut"),
])
def test_a_status_outside_the_national_value_sets_cannot_be_built(changes, words):
    seeded = sdo.SeededDecision("U1", "DEC-1", "CDAPH-51-1", "SDO-51-1", "DocumentReference/a", "DocumentReference/b")
    with pytest.raises(ResourceError, match=words):
        build_status_task(report(seeded, **changes), now=NOW)


def test_a_status_retried_after_a_transient_fault_is_stored_once(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(3), destination=FINESS)
    client = connector()
    peer.faults.add(Fault(status=503))
    with pytest.raises(TransientError):
        client.send(envelope("sdo-status", status_for(seeded)))
    assert client.send(envelope("sdo-status", status_for(seeded), attempt=2)).status == "accepted"
    assert client.send(envelope("sdo-status", status_for(seeded), attempt=3)).status == "duplicate"
    assert peer.store.count("Task") == 1


# --------------------------------------------------------------------------- flux 5


def test_statuses_look_back_30_days_on_first_connection_then_only_what_is_new(peer, connector):
    seeded = sdo.seed_decisions(peer.store, plans(6, 7, 8), destination=FINESS)
    for item, days in zip(seeded, (40, 20, 0.1)):
        sdo.publish_status(peer.store, structure=OTHER, esms_name="IME des Tilleuls (fictif)",
                           decision_number=item.decision_number, national_id=item.national_id,
                           unit_status="186", last_updated=NOW - dt.timedelta(days=days))
    client = connector()
    first = list(client.poll_statuses())
    assert {i.metadata["idNat_Decision"] for i in first} == {seeded[1].national_id, seeded[2].national_id}
    assert all(i.metadata["entryElsewhere"] == "true" and i.metadata["own"] == "false" for i in first)
    assert list(client.poll_statuses()) == []
    sdo.publish_status(peer.store, structure=OTHER, esms_name="IME des Tilleuls (fictif)",
                       decision_number=seeded[0].decision_number, national_id=seeded[0].national_id,
                       unit_status="185")
    [new] = list(client.poll_statuses())
    assert new.metadata["statutUnite"] == "185" and new.metadata["idNat_Decision"] == seeded[0].national_id


def test_the_incremental_window_is_one_day_before_the_last_pass(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(6), destination=FINESS)
    client = connector()
    client.cursor = {"statuses": {"since": (NOW - dt.timedelta(days=3)).isoformat(), "seen": {}}}
    for days in (5, 3.5):  # before the window (J-4), inside it
        sdo.publish_status(peer.store, structure=OTHER, esms_name="IME (fictif)", unit_status="186",
                           decision_number=seeded.decision_number, national_id=seeded.national_id,
                           last_updated=NOW - dt.timedelta(days=days))
    assert len(list(client.poll_statuses())) == 1


def test_own_statuses_are_not_returned_but_the_sdo_events_on_own_files_are(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(9), destination=FINESS)
    client = connector()
    client.send(envelope("sdo-status", status_for(seeded)))
    sdo.publish_status(peer.store, structure=FINESS, esms_name="Plateforme", status="46",
                       decision_number=seeded.decision_number, national_id=seeded.national_id)
    [event] = list(client.poll_statuses())
    assert (event.metadata["statutESMS"], event.metadata["own"]) == ("46", "true")


@pytest.mark.skipif(not OFFICIAL_BUNDLE.exists(), reason="exemple officiel du flux 5.2 absent de /work/shared/reference")
def test_the_official_flux_5_tasks_are_read_into_status_items(peer, connector):
    bundle = json.loads(OFFICIAL_BUNDLE.read_text())
    [seeded] = sdo.seed_decisions(peer.store, plans(10), destination=FINESS)
    for entry in bundle["entry"]:
        task = {k: v for k, v in entry["resource"].items() if k not in ("id", "meta")}
        for item in task["input"]:
            if item["type"]["coding"][0]["code"] == "idNat_Decision":
                item["valueIdentifier"]["value"] = seeded.national_id
        peer.store.create(task)
    items = list(connector().poll_statuses())
    assert sorted(i.metadata["statutESMS"] for i in items) == ["41", "48"]
    assert {i.metadata["statutUnite"] for i in items} == {"188", ""}


# ------------------------------------------------------------------- cursor, security


def test_a_persisted_cursor_given_back_after_a_restart_yields_nothing_twice(peer, connector):
    seeded = sdo.seed_decisions(peer.store, plans(11, 12), destination=FINESS)
    sdo.publish_status(peer.store, structure=OTHER, esms_name="ESAT (fictif)", unit_status="186",
                       decision_number=seeded[0].decision_number, national_id=seeded[0].national_id)
    first = connector()
    assert len(list(first.poll())) == len(seeded) + 1
    saved = json.loads(json.dumps(first.cursor))
    restarted = connector()
    restarted.cursor = saved
    assert list(restarted.poll()) == []


def test_the_registry_builds_the_connector_from_settings(server, pki, peer):
    ca, _, client_cert = pki
    config = {"base_url": server[1].url, "token_url": f"{server[1].url}/oauth/token", "client_id": "relais",
              "client_secret": "sandbox-secret", "ca_file": str(ca.cert), "client_cert": str(client_cert.cert),
              "client_key": str(client_cert.key), "finess_eg": FINESS, "status_update": "put"}
    built = factory("viatrajectoire")(config)
    try:
        assert built.system == "viatrajectoire" and built.payload_kinds == {"sdo-consent", "sdo-status"}
        assert built.endpoint.headers["struct_idnat"] == STRUCT and built.status_update == "put"
        assert list(built.poll()) == []
    finally:
        built.close()


def _raw(server, pki, headers: dict) -> httpx.Response:
    ca, _, client = pki
    with httpx.Client(verify=_context(ca, client), base_url=server[1].url) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "relais",
                                                "client_secret": "sandbox-secret"}).json()["access_token"]
        headers = {k: (v.format(token=token) if isinstance(v, str) else v) for k, v in headers.items()}
        return http.get("/Task", headers=headers)


def _context(ca, client):
    import ssl

    context = ssl.create_default_context(cafile=str(ca.cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


@pytest.mark.parametrize("headers, status", [
    ({"Authorization": "Bearer {token}", "struct_idnat": STRUCT}, 200),
    ({"Authorization": "Bearer {token}"}, 403),
    ({"Authorization": "Bearer {token}", "struct_idnat": "1" + OTHER}, 403),
    ({"Authorization": "Bearer {token}", "struct_idnat": FINESS}, 403),
    ({"struct_idnat": STRUCT}, 401),
    ({"Authorization": "Bearer forged", "struct_idnat": STRUCT}, 401),
], ids=["ok", "no-struct_idnat", "other-struct", "no-prefix", "no-token", "forged-token"])
def test_calls_need_the_bearer_token_and_the_right_struct_idnat(server, pki, peer, headers, status):
    response = _raw(server, pki, headers)
    assert response.status_code == status
    if status != 200:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_a_wrong_client_secret_is_a_permanent_error(connector):
    with pytest.raises(PermanentError, match="OAuth2"):
        list(connector(client_secret="wrong").poll())


def test_without_the_structure_certificate_the_handshake_fails(connector):
    with pytest.raises((TransientError, PermanentError)):
        list(connector(client_cert=None, client_key=None).poll())


def test_an_unknown_payload_kind_is_refused(connector):
    with pytest.raises(PermanentError, match="non pris en charge"):
        connector().send(envelope("tddui-bundle", {"resourceType": "Bundle"}))


def test_a_refused_evaluation_is_said_once_and_does_not_block_the_status_poll(peer, connector):
    [seeded] = sdo.seed_decisions(peer.store, plans(13), destination=FINESS)
    sdo.publish_status(peer.store, structure=OTHER, esms_name="MAS (fictif)", unit_status="186",
                       decision_number=seeded.decision_number, national_id=seeded.national_id)
    client = connector()
    client.await_evaluation(seeded.national_id)
    list(client.poll_decisions())
    peer.faults.add(Fault(status=400))  # the evaluation search is refused for good
    kinds = [i.kind for i in client.poll_evaluations()] + [i.kind for i in client.poll_statuses()]
    assert kinds == ["sdo-evaluation-refused", "sdo-status"]
    assert client.cursor["evaluations"] == {}


def test_a_decision_file_gone_between_search_and_read_is_skipped_then_read_later(peer, connector):
    seeded = sdo.seed_decisions(peer.store, plans(14), destination=FINESS)
    client = connector()
    peer.faults.add(Fault())  # the search goes through…
    peer.faults.add(Fault(status=404))  # …the first read does not
    assert len(list(client.poll_decisions())) == len(seeded) - 1
    client.cursor = {**client.cursor, "decisions": {"since": None, "seen": {}}}
    assert [i.kind for i in client.poll_decisions()] == ["sdo-decision"] * len(seeded)


SDO_PACKAGE = Path("/work/shared/reference/fhir-packages/ans.fhir.fr.sdo#4.0.7.tgz")
TERMINOLOGY = Path("/work/shared/reference/fhir-packages/ans.fr.terminologies-subset#0.0.0-from-pdsm-combined.tgz")


@pytest.fixture(scope="module")
def official_profiles():
    if not SDO_PACKAGE.exists():
        pytest.skip("paquet FHIR ans.fhir.fr.sdo#4.0.7 absent de /work/shared/reference/fhir-packages")
    from gateway.conformance.fhir.compile import compile_packages
    from gateway.conformance.fhir.rules import RuleSet
    from gateway.conformance.fhir.validator import Validator

    packages = [SDO_PACKAGE] + ([TERMINOLOGY] if TERMINOLOGY.exists() else [])
    return Validator(RuleSet(compile_packages(packages, "ans.fhir.fr.sdo")), best_practice=False)


@pytest.mark.parametrize("resource, profile", [
    (lambda: consent_for("SDO-51-1"), "esms-consent"),
    (lambda: status_for(sdo.SeededDecision("U1", "D1", "CDAPH-51-1", "SDO-51-1", "", "")), "esms-task"),
    (lambda: status_for(sdo.SeededDecision("U1", "D1", "CDAPH-51-1", "SDO-51-1", "", ""), status="47", reason=None,
                        unit_id="ROR-OI-42", unit_name="SESSAD", unit_status="186", organisation_category="01",
                        unit_status_date=dt.date(2026, 11, 25), care_mode="47", reception_timing="02",
                        sequential=False, unit_reason=None), "esms-task"),
], ids=["consent", "status", "status-with-unit"])
def test_what_relais_sends_conforms_to_the_published_sdo_profiles(official_profiles, resource, profile):
    problems = official_profiles.validate(resource(), f"https://interop.esante.gouv.fr/ig/fhir/sdo/StructureDefinition/{profile}")
    assert [p for p in problems if p.severity == "error"] == []


def test_the_demo_peer_serves_the_fixtures_decisions_over_plain_loopback():
    peer = sdo.sdo_sandbox(FINESS, plans(1, 2))
    with ThreadedServer(peer.app) as running:
        client = ViaTrajectoireConnector(FhirEndpoint(base_url=running.url, token_url=f"{running.url}/oauth/token",
                                                      client_id="relais", client_secret="sandbox-secret"),
                                         struct_idnat=FINESS)
        try:
            assert len([i for i in client.poll() if i.kind == "sdo-decision"]) == \
                sum(len(p["orientation_decisions"]) for p in plans(1, 2))
        finally:
            client.close()
