"""`relais consent …`: the explain contract, import/export/withdraw, care team, information."""

from __future__ import annotations

import json
import uuid

import pytest

from gateway.cli.main import main
from gateway.consent.fhir_careteam import care_team_resource
from gateway.consent.vocab import ConsentKind
from gateway.storage import Store
from tests.test_consent_store import ADULT, CURATELLE, PLANS
from tests.test_consent_support import DR_HEALTH, STRANGER, consent, member


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    with Store(url) as store:
        store.migrate()
        tenant = store.create_tenant("plateforme-a", "Plateforme A")
        for local_id in (ADULT, CURATELLE):
            store.put_plan(tenant, PLANS[local_id], if_match=None, actor="test")
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def explain(capsys, db, *extra):
    return run(capsys, "consent", "explain", ADULT, "--to", "mss", "--purpose", "COC",
               "--recipient", STRANGER, "--profession", "sante", "--database", db, *extra)


def test_explain_prints_the_decision_and_each_reason_in_french(capsys, db):
    code, out, _ = explain(capsys, db, "--tenant", "plateforme-a")
    lines = out.splitlines()
    assert code == 1 and lines[0].startswith("REFUSÉ")
    assert "[L4-outside-team-prior-consent]" in out and "consentement préalable" in out
    assert "source : CSP L.1110-4 III al. 2" in out
    assert "enregistrée au journal d'audit" in lines[-1]


def test_import_then_explain_permits_then_withdraw_refuses(capsys, db, tmp_path):
    given = consent(person=ADULT, kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])
    code, out, _ = run(capsys, "consent", "import", write(tmp_path, "c.json", given),
                       "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and "consentement enregistré" in out
    consent_id = out.split(" id ")[1].split(",")[0]
    code, out, _ = explain(capsys, db)  # --tenant may be omitted when there is only one
    assert code == 0 and out.startswith("AUTORISÉ") and consent_id in out
    code, out, _ = run(capsys, "consent", "withdraw", ADULT, consent_id, "--tenant", "plateforme-a",
                       "--database", db)
    assert code == 0 and "retiré" in out
    code, out, _ = explain(capsys, db)
    assert code == 1 and out.startswith("REFUSÉ") and "[L16-withdrawn-consent]" in out


def test_export_prints_a_fhir_bundle(capsys, db, tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": consent(person=ADULT, kind=ConsentKind.opposition.value, effect="deny")},
        {"resource": consent(person=ADULT, kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)])}]}
    code, out, _ = run(capsys, "consent", "import", write(tmp_path, "b.json", bundle),
                       "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and out.count("consentement enregistré") == 2
    code, out, _ = run(capsys, "consent", "export", ADULT, "--tenant", "plateforme-a", "--database", db)
    exported = json.loads(out)
    assert code == 0 and exported["resourceType"] == "Bundle" and len(exported["entry"]) == 2
    assert [e["fullUrl"] for e in exported["entry"]] == [f"urn:uuid:{uuid.UUID(hex=e['resource']['id'])}"
                                                         for e in exported["entry"]]  # absolute, R4
    code, out, _ = run(capsys, "consent", "export", CURATELLE, "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and json.loads(out) == {"resourceType": "Bundle", "type": "collection"}  # no empty array
    code, out, _ = explain(capsys, db)
    assert code == 1 and "[L7-opposition]" in out


def test_import_reports_each_problem_with_its_location_and_rule(capsys, db, tmp_path):
    bad = consent(person=ADULT, purposes=["SHOPPING"])
    path = write(tmp_path, "bad.json", bad)
    code, out, _ = run(capsys, "consent", "import", path, "--tenant", "plateforme-a", "--database", db)
    assert code == 1
    assert f"{path}: Consent.provision.purpose[0]: [consent-purpose] finalité inconnue" in out


def test_import_refuses_a_curator_consenting_alone(capsys, db, tmp_path):
    given = consent(person=CURATELLE, kind=ConsentKind.outside_team.value, actors=[("rpps", STRANGER)],
                    performer="RelatedPerson/R1")
    code, out, _ = run(capsys, "consent", "import", write(tmp_path, "c.json", given),
                       "--tenant", "plateforme-a", "--database", db)
    assert code == 1 and "[L17-curator-cannot-consent-instead] refusé" in out


def test_care_team_and_information_commands(capsys, db, tmp_path):
    team = care_team_resource(ADULT, [member(DR_HEALTH)])
    code, out, _ = run(capsys, "consent", "care-team", ADULT, "--tenant", "plateforme-a",
                       "--import", write(tmp_path, "t.json", team), "--database", db)
    assert code == 0 and "1 membre(s)" in out
    code, out, _ = run(capsys, "consent", "care-team", ADULT, "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and json.loads(out)["resourceType"] == "CareTeam"
    args = ("consent", "explain", ADULT, "--to", "eparcours", "--purpose", "COC", "--database", db)
    code, out, _ = run(capsys, *args)
    assert code == 1 and "[L3-L5-care-team-sharing]" in out
    code, out, _ = run(capsys, "consent", "inform", ADULT, "--tenant", "plateforme-a", "--topic",
                       "care-team-sharing", "--method", "written", "--by", "PRO-COORD-B", "--notice", "v1",
                       "--at", "2026-11-01T10:00:00+01:00", "--database", db)
    assert code == 0 and "information enregistrée" in out
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.startswith("AUTORISÉ")


def test_unknown_person_and_bad_usage(capsys, db):
    code, _, err = run(capsys, "consent", "explain", "U999999", "--to", "mss", "--purpose", "COC",
                       "--database", db)
    assert code == 3 and "introuvable" in err
    code, _, err = run(capsys, "consent", "explain", ADULT, "--to", "fax", "--purpose", "COC")
    assert code == 2 and "choix invalide" in err


def test_an_opposition_imported_from_the_cli_cancels_pending_exchanges(capsys, db, tmp_path):
    from connectors.base import Recipient as DeliveryRecipient
    from gateway.consent import ConsentRegistry
    from gateway.consent.vocab import InformationTopic
    from gateway.delivery import outbox, pipeline
    from gateway.delivery.consent_step import consent_decider
    from gateway.delivery.model import ExchangeRequest, Status
    from tests.test_consent_support import info

    with Store(db) as store:
        tenant = store.get_tenant("plateforme-a")
        ConsentRegistry(store).record_information(tenant, ADULT, info(InformationTopic.care_team_sharing),
                                                  actor="test")
        exchange = pipeline.submit(store, tenant, ExchangeRequest(
            person_local_id=ADULT, system="eparcours",
            recipient=DeliveryRecipient(kind="system", identifier="eparcours"), purpose="COC",
            payload_kind="tddui-bundle"), actor="test", decider=consent_decider).exchange
        with store.engine.connect() as conn:
            assert outbox.get(conn, tenant.id, exchange.id).status is Status.queued
    opposition = consent("deny", person=ADULT, kind=ConsentKind.opposition.value, actors=[("system", "eparcours")])
    code, out, _ = run(capsys, "consent", "import", write(tmp_path, "o.json", opposition),
                       "--tenant", "plateforme-a", "--database", db)
    assert code == 0, out
    with Store(db) as store, store.engine.connect() as conn:
        assert outbox.get(conn, tenant.id, exchange.id).status is Status.cancelled
