"""The `relais` command: contracts other tools rely on, French messages, exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PLANS = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
INVALID = ROOT / "fixtures" / "invalid"
TODAY = "2026-11-26"  # the fixtures' reference date


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_fixture_plan_validates(capsys):
    assert len(PLANS) >= 50
    code, out, _ = run(capsys, "plan", "validate", "--today", TODAY, *map(str, PLANS))
    assert code == 0, out
    assert out.count(": valide") == len(PLANS)


@pytest.mark.parametrize("name", sorted(json.loads((INVALID / "expected.json").read_text("utf-8"))))
def test_each_invalid_fixture_fails_with_file_path_and_reason(capsys, name):
    expected = json.loads((INVALID / "expected.json").read_text("utf-8"))[name]
    path = str(INVALID / name)
    code, out, _ = run(capsys, "plan", "validate", "--today", TODAY, path)
    assert code == 1
    assert f"{path}: {expected['location']}: [{expected['rule']}] " in out


def test_validate_mixes_good_and_bad_files_and_exits_1(capsys, tmp_path):
    missing = tmp_path / "absent.json"
    code, out, _ = run(capsys, "plan", "validate", "--today", TODAY, str(PLANS[0]), str(missing))
    assert code == 1
    assert f"{PLANS[0]}: valide" in out and f"{missing}: $: [file-unreadable]" in out


def test_nomenclature_export_csv_contract(capsys):
    code, out, _ = run(capsys, "nomenclature", "export", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["code", "label", "parent", "family"]
    assert len(rows) == 108
    by_code = {r[0]: r for r in rows[1:]}
    assert by_code["2.3.3.1"][2:] == ["2.3.3", "prestation_directe"]
    assert by_code["1"][2:] == ["", "besoin"]
    assert {r[3] for r in rows[1:]} == {"besoin", "prestation_directe", "prestation_indirecte"}


def test_nomenclature_search_and_show(capsys):
    code, out, _ = run(capsys, "nomenclature", "search", "eleve")
    assert code == 0 and "2.3.3.1" in out
    code, out, _ = run(capsys, "nomenclature", "show", "1.2.1")
    assert code == 0 and "1.2.1.3" in out and "regroupement" in out
    code, _, err = run(capsys, "nomenclature", "show", "7.7")
    assert code == 3 and "inconnu" in err


def test_schema_plan_prints_the_json_schema(capsys):
    code, out, _ = run(capsys, "schema", "plan")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Plan"
    assert {"person", "platform", "needs", "services"} <= set(schema["properties"])


def test_usage_errors_are_in_french_and_exit_2(capsys):
    code, _, err = run(capsys, "plan", "import", str(PLANS[0]))
    assert code == 2 and "arguments obligatoires manquants" in err and "--tenant" in err


def test_tenant_key_import_export_round_trip(capsys, tmp_path):
    db = ["--database", f"sqlite:///{tmp_path / 'cli.db'}"]
    assert run(capsys, "tenant", "create", "pf-test", "--name", "Plateforme test", *db)[0] == 0
    assert run(capsys, "tenant", "create", "pf-test", "--name", "Encore", *db)[0] == 4
    code, token, _ = run(capsys, "tenant", "key", "pf-test", *db)
    assert code == 0 and token.startswith("rls_")
    code, out, _ = run(capsys, "plan", "import", "--tenant", "pf-test", *db, str(PLANS[0]))
    assert code == 0 and "créé" in out
    original = json.loads(PLANS[0].read_text("utf-8"))
    pid = original["person"]["local_id"]
    code, out, _ = run(capsys, "plan", "export", pid, "--tenant", "pf-test", *db)
    assert code == 0 and json.loads(out)["person"]["local_id"] == pid
    # Re-importing over an existing plan needs --if-match or --force.
    code, _, err = run(capsys, "plan", "import", "--tenant", "pf-test", *db, str(PLANS[0]))
    assert code == 4 and "--if-match" in err
    code, out, _ = run(capsys, "plan", "import", "--tenant", "pf-test", "--force", *db, str(PLANS[0]))
    assert code == 0 and "inchangé" in out
    code, _, err = run(capsys, "plan", "export", "inconnu", "--tenant", "pf-test", *db)
    assert code == 3


def test_console_script_is_installed_and_speaks_french():
    relais = Path(sys.executable).with_name("relais")
    result = subprocess.run([str(relais), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "passerelle" in result.stdout


def test_a_command_loads_only_its_own_module_so_the_validator_starts_fast():
    # `relais conformance validate` runs on integrators' laptops and in their CI for each file:
    # it must not pay for the storage layer or the other commands (cold start < 1 s, issue 8).
    code = ("import sys; from gateway.cli.main import build_parser; "
            "build_parser(['conformance', 'validate', 'x.json']); "
            "print(sorted(m for m in ('sqlalchemy', 'gateway.cli.commands.demo', 'gateway.consent') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    every = subprocess.run([sys.executable, "-m", "gateway.cli.main", "--help"], capture_output=True, text=True)
    assert all(f"    {name}" in every.stdout for name in ("serve", "sync", "worker", "exchanges", "conformance"))
