"""`relais conformance run SUITE --base-url URL`: Relais's own sandbox peers pass every suite
(FHIR servers, the DMP over XDS.b, the MSSanté operator); a server that breaks the guide fails
the test that checks it, and a server of another kind fails cleanly; a suite not implemented
says so and fails (never a pass)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from connectors.sandbox import dmp_rules
from connectors.sandbox.dmp_peer import DmpPeer
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.mss import MssSandbox
from connectors.sandbox.smtp_server import SmtpFault
from connectors.sandbox.sdo import make_sandbox, seed_decisions
from connectors.sandbox.server import ThreadedServer
from gateway.cli.main import main as relais
from gateway.conformance.runner.samples import fixture_plan
from gateway.conformance.runner.suites import SUITES, Endpoint, run_suite
from gateway.conformance.runner.suites.base import Suite
from gateway.model import Plan

ROOT = Path(__file__).resolve().parent.parent
FINESS = "750000001"
CLIENT = {"client_id": "relais", "client_secret": "sandbox-secret"}


@pytest.fixture(scope="module")
def eparcours():
    with ThreadedServer(eparcours_sandbox().app) as server:
        yield server


@pytest.fixture(scope="module")
def sdo():
    peer = make_sandbox(FINESS)
    plans = [Plan.model_validate(json.loads(p.read_text(encoding="utf-8")))
             for p in sorted((ROOT / "fixtures" / "plans").glob("*.json"))]
    seed_decisions(peer.store, [p for p in plans if p.orientation_decisions][:2], destination=FINESS)
    with ThreadedServer(peer.app) as server:
        yield server


def outcomes(run) -> dict[str, str]:
    return {case.path.split("/", 1)[1]: case.outcome for case in run.artefacts}


@pytest.mark.parametrize("suite", ["tddui-consommateur", "eparcours"])
def test_eparcours_sandbox_passes_the_suite(eparcours, suite):
    run = run_suite(suite, Endpoint(eparcours.url, **CLIENT))
    assert run.ok, [(c.path, [i.message for i in c.issues]) for c in run.artefacts if not c.valid]
    assert set(outcomes(run).values()) == {"passed"}


def test_sdo_sandbox_passes_the_suite(sdo):
    run = run_suite("sdo", Endpoint(sdo.url, **CLIENT, options={"finess": FINESS}))
    assert run.ok, [(c.path, [i.message for i in c.issues]) for c in run.artefacts if not c.valid]
    assert set(outcomes(run).values()) == {"passed"}


def test_every_suite_is_implemented_and_run_against_a_sandbox_here():
    assert {n for n, s in SUITES.items() if s.implemented} == {"tddui-consommateur", "eparcours", "sdo", "dmp", "mss"}


def test_a_server_that_is_not_a_tddui_consumer_fails_the_tests_that_check_it(sdo):
    run = run_suite("tddui-consommateur", Endpoint(sdo.url, **CLIENT, headers={"struct_idnat": "1" + FINESS}))
    result = outcomes(run)
    assert not run.ok
    assert result["capability"] == "failed" and result["transaction"] == "failed"
    capability = next(c for c in run.artefacts if c.path.endswith("/capability"))
    assert {"capability-resource", "capability-transaction"} <= {i.rule for i in capability.issues}


def test_without_the_structure_the_sdo_flows_are_skipped_with_their_reason(sdo):
    run = run_suite("sdo", Endpoint(sdo.url, **CLIENT))
    skipped = [c for c in run.artefacts if c.outcome == "skipped"]
    assert skipped and all("finess" in c.issues[0].message for c in skipped if c.path.endswith("struct-idnat"))


def test_without_credentials_access_control_is_skipped_not_passed(eparcours):
    run = run_suite("eparcours", Endpoint(eparcours.url))
    assert outcomes(run)["acces-sans-jeton"] == "skipped"


def test_a_suite_not_implemented_says_so_and_fails(eparcours):
    class Declared(Suite):
        name, title, implemented, reference = "declaree", "suite déclarée", False, "pas encore écrite"

    (case,) = Declared().run(Endpoint(eparcours.url))
    assert case.outcome == "error" and case.issues[0].rule == "suite-not-implemented"


def test_cli_runs_a_suite_and_writes_the_reports(eparcours, tmp_path, capsys):
    code = relais(["conformance", "run", "eparcours", "--base-url", eparcours.url, "--client-id", "relais",
                   "--client-secret", "sandbox-secret", "--json", str(tmp_path / "r.json"),
                   "--junit", str(tmp_path / "r.xml"), "--html", str(tmp_path / "r.html")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["suite"] == "eparcours" and all(t["outcome"] == "passed" for t in report["tests"])
    assert 'failures="0"' in (tmp_path / "r.xml").read_text()
    assert "Résumé" in capsys.readouterr().out


def test_cli_refuses_an_unknown_suite(eparcours):
    assert relais(["conformance", "run", "inconnue", "--base-url", eparcours.url]) == 2


def test_cli_lists_the_suites(capsys):
    assert relais(["conformance", "suites"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} — " in out for name in ("sdo", "dmp", "mss")) and "[non implémentée]" not in out


# --- DMP (XDS.b over mutual TLS, VIHF) ----------------------------------------------------------------
PLAN_DMP = fixture_plan(0)
INS = f"{PLAN_DMP.person.ins.value}^^^&{PLAN_DMP.person.ins.oid}&ISO^NH"


@pytest.fixture(scope="module")
def dmp(tmp_path_factory):
    with DmpPeer(tmp_path_factory.mktemp("dmp"), finess=PLAN_DMP.platform.finess, patients={INS}) as peer:
        yield peer


def dmp_endpoint(peer, url: str | None = None, **options) -> Endpoint:
    return Endpoint(url or peer.url, ca_file=str(peer.ca.cert), client_cert=str(peer.client_cert.cert),
                    client_key=str(peer.client_cert.key),
                    options={"finess": PLAN_DMP.platform.finess, "ins": INS, "seal-cert": str(peer.seal_cert),
                             "seal-key": str(peer.seal_key), **options})


def test_the_sandbox_dmp_passes_the_suite(dmp):
    before = len(dmp.sandbox.rejections)
    run = run_suite("dmp", dmp_endpoint(dmp))
    assert run.ok, [(c.path, [i.message for i in c.issues]) for c in run.artefacts if not c.valid]
    assert set(outcomes(run).values()) == {"passed"}
    # each refusal came from the check that makes it, with its XDS or SOAP code
    assert dmp.sandbox.rejections[before:] == ["XDSNonIdenticalHash", "XDSNonIdenticalSize", "XDSUnknownPatientId",
                                               "wsse:InvalidSecurity", "wsse:FailedCheck", "wsa:ActionNotSupported",
                                               "XDSUnknownStoredQuery", "XDSDocumentUniqueIdError"]


def test_a_dmp_that_does_not_verify_the_hash_fails_that_test_only(dmp, monkeypatch):
    real = dmp_rules.check_content

    def without_hash(entry, content, declared):  # the sandbox's own checks, the declared hash ignored
        node = copy.deepcopy(entry.node)
        for slot in node.xpath("rim:Slot[@name='hash']", namespaces=dmp_rules.NS):
            node.remove(slot)
        return real(dmp_rules.Entry(node, entry.entry_uuid, entry.unique_id, entry.patient, entry.mime_type),
                    content, declared)

    monkeypatch.setattr(dmp_rules, "check_content", without_hash)
    run = run_suite("dmp", dmp_endpoint(dmp))
    failed = [case for case in run.artefacts if case.outcome != "passed"]
    assert [case.path for case in failed] == ["dmp/empreinte-fausse"]
    assert failed[0].issues[0].rule == "registry-error-code" and "XDSNonIdenticalHash" in failed[0].issues[0].message


def test_a_server_that_is_not_a_dmp_fails_the_suite_cleanly(dmp, eparcours):
    run = run_suite("dmp", dmp_endpoint(dmp, eparcours.url))
    result = outcomes(run)
    assert not run.ok and "error" not in result.values()
    assert result["tls-mutuel"] == "failed" and result["depot"] == "failed" and result["recherche"] == "skipped"


def test_without_its_options_the_dmp_suite_fails_on_its_configuration(dmp):
    run = run_suite("dmp", Endpoint(dmp.url, ca_file=str(dmp.ca.cert)))
    result = outcomes(run)
    assert not run.ok and result.pop("configuration") == "failed" and set(result.values()) == {"skipped"}
    assert "seal-cert" in run.artefacts[0].issues[0].message


def test_cli_runs_the_dmp_suite(dmp, tmp_path):
    options = [a for k, v in dmp_endpoint(dmp).options.items() for a in ("--option", f"{k}={v}")]
    code = relais(["conformance", "run", "dmp", "--base-url", dmp.url, "--ca-file", str(dmp.ca.cert),
                   "--client-cert", str(dmp.client_cert.cert), "--client-key", str(dmp.client_cert.key), *options,
                   "--json", str(tmp_path / "dmp.json"), "-q"])
    report = json.loads((tmp_path / "dmp.json").read_text())
    assert code == 0 and report["suite"] == "dmp" and len(report["tests"]) == len(SUITES["dmp"].checks())


# --- MSSanté (SMTP submission, IMAP) ---------------------------------------------------------------------
def mss_endpoint(sandbox, *, implicit: bool = False, **options) -> Endpoint:
    smtp, imap = ("smtps", "imaps") if implicit else ("smtp", "imap")
    return Endpoint(f"{smtp}://127.0.0.1:{sandbox.smtp.port}", ca_file=str(sandbox.ca.cert),
                    client_cert=str(sandbox.client.cert), client_key=str(sandbox.client.key),
                    options={"address": sandbox.platform_address, "password": sandbox.password,
                             "imap": f"{imap}://127.0.0.1:{sandbox.imap.port}",
                             "correspondent": sandbox.correspondents[0].address, **options})


def mss_sandbox(directory, **kw) -> MssSandbox:
    return MssSandbox(directory, size_limit=256 * 1024, **kw)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # aiosmtpd, implicit TLS
@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
def test_the_sandbox_mss_operator_passes_the_suite(tmp_path, implicit):
    with mss_sandbox(tmp_path, implicit_tls=implicit) as sandbox:
        run = run_suite("mss", mss_endpoint(sandbox, implicit=implicit))
        assert run.ok, [(c.path, [i.message for i in c.issues]) for c in run.artefacts if not c.valid]
        assert set(outcomes(run).values()) == {"passed"}
        # The suite removed its own messages and the MDN; the correspondent's CDA reply may
        # arrive after the suite finished (it is the correspondent's, answered in its own time).
        assert sandbox.wait()
        left = [m.data.split(b"\r\n\r\n", 1)[0] for m in sandbox.inbox()]
        assert all(b"In-Reply-To: <relais-conformite-" in head and b"multipart/report" not in head for head in left), left


def test_an_operator_without_mutual_tls_fails_that_test(tmp_path):
    with mss_sandbox(tmp_path, mutual_tls=False) as sandbox:
        run = run_suite("mss", mss_endpoint(sandbox))
    failed = [case for case in run.artefacts if case.outcome != "passed"]
    assert [case.path for case in failed] == ["mss/tls-mutuel"]
    assert [i.message[:4] for i in failed[0].issues] == ["SMTP", "IMAP"]


def test_an_operator_that_accepts_an_unknown_recipient_fails_that_test(tmp_path):
    with mss_sandbox(tmp_path) as sandbox:
        sandbox.smtp.faults.add(SmtpFault(stage="rcpt", reply="250 2.1.5 destinataire accepté"))  # the run's 1st RCPT
        run = run_suite("mss", mss_endpoint(sandbox))
    assert [case.path for case in run.artefacts if case.outcome != "passed"] == ["mss/destinataire-inconnu"]


def test_a_server_that_is_not_an_mss_operator_fails_the_suite_cleanly(eparcours):
    port = eparcours.url.rsplit(":", 1)[1]
    run = run_suite("mss", Endpoint(f"smtp://127.0.0.1:{port}", timeout=0.5,
                                    options={"address": "a@b.fr", "password": "x", "imap": f"imap://127.0.0.1:{port}"}))
    result = outcomes(run)
    assert not run.ok and "error" not in result.values() and result["smtp-tls"] == "failed"


def test_without_a_correspondent_the_mdn_test_is_skipped_not_passed(tmp_path):
    with mss_sandbox(tmp_path) as sandbox:
        endpoint = mss_endpoint(sandbox)
        del endpoint.options["correspondent"]
        run = run_suite("mss", endpoint)
    assert outcomes(run)["accuse-mdn"] == "skipped" and run.ok
