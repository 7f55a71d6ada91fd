"""Plan ⇄ TDDUI 2.2.0 Bundle (issue 4 items 1, 2, 3, 5, 6): the mapping, its round trips, the
official examples, the API and the CLI."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.cli.main import main
from gateway.model import Severity
from gateway.plans import canonical_json, validate_plan
from gateway.settings import Settings
from mappings.fhir.tddui import TDDUI_VERSION, bundle_to_plan, plan_to_bundle
from mappings.fhir.tddui import constants as c
from tests.conftest import TODAY, make_plan, sample_plan_dict

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
OFFICIAL = ROOT.parent / "shared" / "reference" / "official" / "tddui"
IME = OFFICIAL / "Bundle-tddui-pp-ime-bundle-example.json"
QR_SERAFIN = OFFICIAL / "QuestionnaireResponse-tddui-questionnaire-response-serafin-precision-example.no-narrative.json"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
# Business identifier systems the guide prescribes, per profile (SD identifier.system patterns).
PRESCRIBED = {
    c.P_CAREPLAN: c.ID_CAREPLAN[0], c.P_NEED: c.ID_NEED[0], c.P_EXPECTATION: c.ID_EXPECTATION[0],
    c.P_OBJECTIVE: c.ID_OBJECTIVE[0], c.P_ACTION: c.ID_ACTION[0], c.P_SERVICE: c.ID_SERVICE[0],
    c.P_STAY: c.ID_STAY[0], c.P_EVENT: c.ID_EVENT[0], c.P_EVALUATION: c.ID_EVALUATION[0],
    c.P_PATIENT: c.ID_PATIENT, c.P_PATIENT_INS: c.ID_PATIENT, c.P_PRACTITIONER: c.IDNAT_PS,
    c.P_ORGANIZATION: c.IDNAT_STRUCT,
}


def fixture_plan(path: Path):
    return make_plan(json.loads(path.read_text("utf-8")))


def through_json(bundle: dict) -> dict:
    return orjson.loads(orjson.dumps(bundle))


def tddui_problems(problems) -> list[str]:
    return [p.line() for p in problems if p.rule.startswith("tddui")]


def profile_name(resource: dict) -> str:
    canonical = resource["meta"]["profile"][0]
    return canonical.removeprefix(c.SD).split("|")[0]


def official(path: Path) -> dict:
    if not path.exists():
        pytest.skip(f"exemple officiel absent : {path} (shared/reference non disponible)")
    return json.loads(path.read_text("utf-8"))


# ------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_fixture_round_trips_through_a_tddui_bundle(path):
    plan = fixture_plan(path)
    again, problems = bundle_to_plan(through_json(plan_to_bundle(plan, NOW)), TODAY)
    assert again is not None, [p.line() for p in problems]
    assert tddui_problems(problems) == []
    assert canonical_json(again) == canonical_json(plan)


@pytest.mark.parametrize("path", FIXTURES[::10], ids=[p.stem for p in FIXTURES[::10]])
def test_bundle_to_plan_to_bundle_keeps_every_element(path):
    bundle = through_json(plan_to_bundle(fixture_plan(path), NOW))
    again, _ = bundle_to_plan(bundle, TODAY)
    assert through_json(plan_to_bundle(again, NOW)) == bundle


def test_the_same_plan_always_gives_the_same_bundle(sample_plan):
    first = plan_to_bundle(sample_plan, NOW)
    assert orjson.dumps(plan_to_bundle(make_plan(sample_plan_dict()), NOW)) == orjson.dumps(first)
    later = plan_to_bundle(sample_plan, NOW + dt.timedelta(days=3))
    assert [e["fullUrl"] for e in later["entry"]] == [e["fullUrl"] for e in first["entry"]]
    assert later["entry"] == first["entry"]


# ------------------------------------------------------------------------ the Bundle


@pytest.fixture(scope="module")
def bundles() -> list[dict]:
    return [plan_to_bundle(fixture_plan(p), NOW) for p in FIXTURES]


def test_the_bundle_is_a_transaction_of_posts_to_resource_types(bundles):
    for bundle in bundles:
        assert bundle["type"] == "transaction"
        assert bundle["meta"]["profile"] == [f"{c.SD}tddui-bundle|{TDDUI_VERSION}"]
        for entry in bundle["entry"]:
            request, resource = entry["request"], entry["resource"]
            assert (request["method"], request["url"]) == ("POST", resource["resourceType"])
            assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry["fullUrl"])
            shared = resource["resourceType"] in {"Patient", "Organization", "Practitioner",
                                                  "PractitionerRole", "RelatedPerson"}
            if shared and resource.get("identifier"):  # conditional create: re-syncs never duplicate
                first = resource["identifier"][0]
                assert request["ifNoneExist"] == f"identifier={first['system']}|{first['value']}"
            else:
                assert "ifNoneExist" not in request


def test_every_resource_declares_its_pinned_profile_and_prescribed_identifier(bundles):
    for bundle in bundles:
        for entry in bundle["entry"]:
            res = entry["resource"]
            assert res["meta"]["profile"][0].endswith(f"|{TDDUI_VERSION}")
            name = profile_name(res)
            if name in PRESCRIBED:
                idents = res["identifier"] if isinstance(res["identifier"], list) else [res["identifier"]]
                assert PRESCRIBED[name] in {i["system"] for i in idents}, name


def test_every_reference_resolves_inside_the_bundle(bundles):
    for bundle in bundles:
        urls = {e["fullUrl"] for e in bundle["entry"]}
        refs = re.findall(r'"reference":"([^"]+)"', orjson.dumps(bundle).decode())
        assert refs and set(refs) <= urls


def test_business_identifiers_follow_the_guide_format(sample_plan):
    bundle = plan_to_bundle(sample_plan, NOW)
    values = {profile_name(e["resource"]): e["resource"].get("identifier") for e in bundle["entry"]}
    assert values[c.P_CAREPLAN][0]["value"] == "3750000001/U000001-PPER-PPER-1"
    assert values[c.P_OBJECTIVE][0]["value"] == "3750000001/U000001-OBJE-O1"
    assert values[c.P_PATIENT_INS][0] == {
        "use": "usual", "type": {"coding": [{"system": c.CS_V2_0203, "code": "PI", "display": "Patient internal identifier"}]},
        "system": c.ID_PATIENT, "value": "3750000001/U000001"}


def test_patient_carries_the_ins_with_its_oid_and_the_identity_status(sample_plan):
    patient = plan_to_bundle(sample_plan, NOW)["entry"][3]["resource"]
    assert patient["resourceType"] == "Patient" and profile_name(patient) == c.P_PATIENT_INS
    ins = [i for i in patient["identifier"] if i["system"].startswith("urn:oid:")]
    assert ins == [{"use": "official", "type": {"coding": [{"system": c.CS_FRCORE_0203, "code": "INS-NIR-TEST"}]},
                    "system": "urn:oid:1.2.250.1.213.1.4.10", "value": "212035121518974"}]
    reliability = next(e for e in patient["extension"] if e["url"] == c.X_IDENTITY_RELIABILITY)
    assert reliability["extension"][0]["valueCoding"] == {"system": c.CS_IDENTITY_STATUS, "code": "QUAL"}


def test_serafin_codes_use_the_national_terminology(sample_plan):
    bundle = plan_to_bundle(sample_plan, NOW)
    need = next(e["resource"] for e in bundle["entry"] if profile_name(e["resource"]) == c.P_NEED)
    service = next(e["resource"] for e in bundle["entry"] if profile_name(e["resource"]) == c.P_SERVICE)
    assert need["category"][0]["coding"][0]["system"] == "https://smt.esante.gouv.fr/terminologie-SERAFINPH"
    kind = next(i for i in service["input"] if i["type"]["coding"][0]["code"] == "typePrestation")
    assert kind["valueCodeableConcept"]["coding"][0]["code"] == "2.3.3.1"


def test_exported_fixtures_pass_the_validation_gate_except_drafts_without_structure_agreement(bundles):
    gate = pytest.importorskip("gateway.conformance.fhir.gate").tddui_gate()
    for path, bundle in zip(FIXTURES, bundles):
        plan = fixture_plan(path)
        errors = [p.line() for p in gate.validate(bundle) if p.severity is Severity.error]
        if plan.status.value == "draft" and not any(a.party.value == "structure" for a in plan.agreements):
            # TDDUI CarePlan.supportingInfo:accordStructure 1..*: a draft without it cannot conform
            assert errors and all("supportingInfo" in e for e in errors), errors
        else:
            assert errors == [], (path.name, errors)


# ------------------------------------------------------------------------ import reports


def test_import_reports_what_the_plan_cannot_hold(sample_plan):
    bundle = through_json(plan_to_bundle(sample_plan, NOW))
    careplan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    careplan["description"] = "Description libre"
    careplan["extension"] = [*careplan.get("extension", []), {"url": "https://other.example/x", "valueString": "?"}]
    bundle["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                            "resource": {"resourceType": "Observation", "status": "final",
                                         "code": {"text": "repas"}},
                            "request": {"method": "POST", "url": "Observation"}})
    plan, problems = bundle_to_plan(bundle, TODAY)
    assert plan == sample_plan
    dropped = {p.location: p for p in problems if p.rule.startswith("tddui")}
    index = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "CarePlan")
    assert f"Bundle.entry[{index}].resource.description" in dropped
    assert any(loc.startswith(f"Bundle.entry[{index}].resource.extension[") for loc in dropped)
    last = f"Bundle.entry[{len(bundle['entry']) - 1}].resource"
    assert dropped[last].rule == "tddui-resource-not-imported" and dropped[last].severity is Severity.warning


def test_import_without_careplan_gives_no_plan():
    plan, problems = bundle_to_plan({"resourceType": "Bundle", "type": "transaction", "entry": []}, TODAY)
    assert plan is None and problems[0].severity is Severity.error


def test_import_reads_the_older_discriminator_code_system_and_says_so(sample_plan):
    raw = orjson.dumps(plan_to_bundle(sample_plan, NOW)).decode()
    raw = raw.replace(c.CS_DISCRIMINATOR + '"', c.CS_DISCRIMINATOR + '-cs"')
    plan, problems = bundle_to_plan(json.loads(raw), TODAY)
    assert plan == sample_plan
    notes = [p for p in problems if p.rule == "tddui-legacy-code-system"]
    assert notes and notes[0].severity is Severity.information


# ------------------------------------------------------------------------ official examples


def test_official_ime_example_cannot_be_a_plan_and_says_why():
    """TDDUI 2.1.0-ballot IME example: patient without birth date, sex nor identity status; no
    Organization (platform name), no period, no `created`, no coordinator; the structure's
    agreement is signed by a Practitioner absent from the Bundle; objectives without life domain
    (and without `addresses`); action owners as display text; `…/tddui-discriminator-cs`."""
    bundle = official(IME)
    plan, problems = bundle_to_plan(bundle, TODAY)
    assert plan is None
    rules = {(p.rule, p.location) for p in problems}
    for expected in (("required", "$.person.birth_date"), ("required", "$.person.sex"),
                     ("required", "$.platform.name"), ("required", "$.period"),
                     ("tddui-no-coordinator", "Bundle.entry[2].resource.author"),
                     ("tddui-agreement-performer", "Bundle.entry[1].resource.performer"),
                     ("required", "$.objectives[0].life_domain")):
        assert expected in rules, expected
    assert any(p.rule == "tddui-request" for p in problems)  # profile names in request.url (§11.2)
    assert any(p.rule == "tddui-legacy-code-system" and "tddui-discriminator-cs" in p.message for p in problems)


def test_official_serafin_questionnaire_response_is_read_as_an_evaluation(sample_plan):
    """The standalone SERAFIN QuestionnaireResponse example, placed in a plan's Bundle (its subject
    pointed at that Bundle's patient): answers are read by linkId, the rest is reported."""
    qr = copy.deepcopy(official(QR_SERAFIN))
    bundle = through_json(plan_to_bundle(sample_plan, NOW))
    patient = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    qr["subject"] = {"reference": patient}
    bundle["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002", "resource": qr,
                            "request": {"method": "POST", "url": "QuestionnaireResponse"}})
    plan, problems = bundle_to_plan(bundle, TODAY)
    assert plan is not None, [p.line() for p in problems]
    [evaluation] = plan.evaluations
    assert evaluation.id == "21564657" and evaluation.date == dt.date(2023, 4, 6)
    assert [(i.code, i.value) for i in evaluation.items] == [("1.1.8", 31), ("1.2.1.1", 31), ("1.2.1.3", 31), ("1.3.2.1", 31)]
    reported = {p.location.rsplit(".", 1)[-1] for p in problems if p.rule.startswith("tddui")}
    assert {"encounter", "extension[0]"} <= reported or {"encounter", "extension"} <= reported


# ------------------------------------------------------------------------ API and CLI


@pytest.fixture
def api(store):
    store.create_tenant("plateforme-a", "Plateforme A")
    _, token = store.create_api_key("plateforme-a", "test")
    with TestClient(create_app(store, Settings(max_body_bytes=512 * 1024))) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_api_serves_the_current_plan_as_a_tddui_bundle(api, sample_plan):
    client, auth = api
    data = sample_plan.model_dump(mode="json")
    assert client.put("/persons/U000001/plan", json=data, headers=auth).status_code == 201
    response = client.get("/persons/U000001/plan/$tddui", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["entry"] == through_json(plan_to_bundle(sample_plan, NOW))["entry"]
    assert client.get("/persons/nobody/plan/$tddui", headers=auth).status_code == 404


def test_api_imports_a_bundle_without_storing_it(api, sample_plan):
    client, auth = api
    bundle = through_json(plan_to_bundle(sample_plan, NOW))
    response = client.post("/$import-tddui", json=bundle, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["plan"] == sample_plan.model_dump(mode="json")
    assert client.get("/persons/U000001/plan", headers=auth).status_code == 404  # nothing stored
    bad = client.post("/$import-tddui", json={"resourceType": "Bundle", "type": "transaction"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exports_imports_and_validates(capsys, tmp_path):
    plan_file = FIXTURES[0]
    code, out, _ = run(capsys, "fhir", "export", "--plan", str(plan_file), "--today", TODAY.isoformat())
    assert code == 0 and json.loads(out)["resourceType"] == "Bundle"
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(out, "utf-8")
    code, out, _ = run(capsys, "fhir", "import", str(bundle_file), "--today", TODAY.isoformat())
    assert code == 0
    assert validate_plan(json.loads(out), TODAY)[0] == fixture_plan(plan_file)
    code, out, _ = run(capsys, "fhir", "validate", str(bundle_file))
    assert code == 0 and out.strip().endswith(f"conforme à TDDUI {TDDUI_VERSION}")


def test_cli_import_of_an_unrepresentable_bundle_exits_1_with_the_problems(capsys, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"resourceType": "Bundle", "type": "transaction"}', "utf-8")
    code, out, _ = run(capsys, "fhir", "import", str(empty))
    assert code == 1 and "[tddui-plan-incomplete]" in out


def test_cli_validate_flags_the_official_ime_example(capsys):
    if not IME.exists():
        pytest.skip(f"exemple officiel absent : {IME}")
    code, out, _ = run(capsys, "fhir", "validate", str(IME))
    assert code == 1 and "request.url" in out
