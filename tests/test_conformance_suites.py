"""`relais conformance run SUITE --base-url URL`: Relais's own sandbox peers pass every implemented
suite; a server that breaks the guide fails the test that checks it; a suite not implemented
says so and fails (never a pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.sdo import make_sandbox, seed_decisions
from connectors.sandbox.server import ThreadedServer
from gateway.cli.main import main as relais
from gateway.conformance.runner.suites import SUITES, Endpoint, run_suite
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


def test_every_implemented_suite_is_run_against_a_sandbox_here():
    assert {n for n, s in SUITES.items() if s.implemented} == {"tddui-consommateur", "eparcours", "sdo"}


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


def test_dmp_suite_is_declared_not_implemented_and_fails(eparcours):
    run = run_suite("dmp", Endpoint(eparcours.url))
    assert not run.ok and run.artefacts[0].issues[0].rule == "suite-not-implemented"


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
    assert "sdo" in out and "dmp [non implémentée]" in out
