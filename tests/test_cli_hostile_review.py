"""Hostile input to the `relais` command, found in a defect hunt: each case exits with its code
and a French message naming the place and the reason (never a Python traceback), and leaves
nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.storage import Store
from tests.test_consent_cli import run
from tests.test_consent_store import ADULT, PLANS
from tests.test_dmp_cli import PLAN as DMP_PLAN
from tests.test_dmp_cli import configured  # noqa: F401 (a fixture: a sandbox DMP holding one document)

TENANT = ["--tenant", "plateforme-a"]


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    with Store(url) as store:
        store.migrate()
        tenant = store.create_tenant("plateforme-a", "Plateforme A")
        store.put_plan(tenant, PLANS[ADULT], if_match=None, actor="test")
    return url


def write(tmp_path, name: str, data: bytes | dict) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(path)


# ------------------------------------------------------------------ --database


@pytest.mark.parametrize("url", ["garbage://", "not a url", "mysql://host/base"])
def test_an_unusable_database_url_is_a_usage_error_in_french(capsys, url):
    code, out, err = run(capsys, "tenant", "list", "--database", url)
    assert code == 2
    assert "base de données" in err and "Traceback" not in err


def test_a_database_file_that_is_not_a_database_exits_5_in_french(capsys, tmp_path):
    path = tmp_path / "pas-une-base.db"
    path.write_bytes(os.urandom(4096))
    code, _, err = run(capsys, "tenant", "list", "--database", f"sqlite:///{path}")
    assert code == 5
    assert err.startswith("base de données")


# ------------------------------------------------------------------ sync, consent


def test_sync_to_an_unknown_system_is_a_usage_error(capsys, db):
    code, _, err = run(capsys, "sync", ADULT, *TENANT, "--to", "nulle-part", "--database", db)
    assert code == 2 and "choix invalide : 'nulle-part'" in err


@pytest.mark.parametrize("patient", ["Patient/x", 5, ["Patient/x"]])
def test_consent_import_with_a_patient_that_is_not_an_object_names_the_field(capsys, db, tmp_path, patient):
    path = write(tmp_path, "c.json", {"resourceType": "Consent", "patient": patient})
    code, out, _ = run(capsys, "consent", "import", path, *TENANT, "--database", db)
    assert code == 1 and f"{path}: Consent.patient: [consent-patient]" in out


@pytest.mark.parametrize("entry", ["x", {"resource": {}}, [5], [{"resource": "x"}]])
def test_consent_import_of_a_bundle_with_malformed_entries_is_refused(capsys, db, tmp_path, entry):
    path = write(tmp_path, "b.json", {"resourceType": "Bundle", "type": "collection", "entry": entry})
    code, out, _ = run(capsys, "consent", "import", path, *TENANT, "--database", db)
    assert code == 1 and f"{path}" in out and "Bundle.entry" in out


INFORM = ["consent", "inform", ADULT, *TENANT, "--topic", "care-team-sharing", "--method", "oral"]


@pytest.mark.parametrize(("extra", "place"), [
    (["--by", "dr-x", "--notice", "v1", "--at", "hier"], "--at"),
    (["--by", "dr-x", "--notice", "v1", "--at", "2026-01-01"], "--at"),
    (["--by", "", "--notice", "v1"], "--by"),
    (["--by", "dr x", "--notice", "v1"], "--by"),
    (["--by", "dr-x", "--notice", ""], "--notice"),
])
def test_consent_inform_refuses_bad_options_in_french(capsys, db, extra, place):
    code, out, err = run(capsys, *INFORM, *extra, "--database", db)
    assert code == 1 and out == ""
    assert err.startswith(f"information refusée : {place} : ")
    assert "pydantic" not in err and "Input should" not in err and "Invalid isoformat" not in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------------ activity


@pytest.mark.parametrize("document", [
    {"resourceType": "Bundle", "entry": "x"},
    {"resourceType": "Bundle", "entry": [{"resource": "x"}]},
    {"resourceType": "Bundle", "entry": [5]},
    {"activities": [{"person": ["a"]}]},
    {"activities": [{"person": {"a": 1}}]},
    {"activities": [{"person": 5}]},
])
def test_activity_import_of_a_malformed_document_is_refused(capsys, db, tmp_path, document):
    path = write(tmp_path, "a.json", document)
    code, out, _ = run(capsys, "activity", "import", path, *TENANT, "--database", db)
    assert code == 1 and out.startswith(f"{path}: ")


def test_activity_person_with_a_period_ending_before_it_starts_is_a_usage_error(capsys, db):
    code, _, err = run(capsys, "activity", "person", ADULT, *TENANT, "--from", "2026-12-31",
                       "--to", "2026-01-01", "--database", db)
    assert code == 2 and err.strip() == "la fin de la période précède son début"


def test_activity_dataset_to_a_directory_names_the_file(capsys, db, tmp_path):
    code, _, err = run(capsys, "activity", "dataset", *TENANT, "--year", "2026", "--output", str(tmp_path),
                       "--database", db)
    assert code == 1 and err.startswith(f"{tmp_path} : fichier impossible à écrire")


# ------------------------------------------------------------------ plan, audit keys


@pytest.mark.parametrize("version", ["99999999999999999999999", "0", "-1"])
def test_plan_export_of_an_impossible_version_is_a_usage_error(capsys, db, version):
    code, _, err = run(capsys, "plan", "export", ADULT, *TENANT, "--version", version, "--database", db)
    assert code == 2 and f"argument --version : valeur invalide : '{version}'" in err


def test_audit_cosign_with_a_binary_key_file_names_it(capsys, db, tmp_path):
    path = write(tmp_path, "dpo.key", os.urandom(64) + b"\xff")
    code, _, err = run(capsys, "audit", "cosign", "--key", path, "--database", db)
    assert code == 1 and err.strip() == f"clé illisible : {path}"


# ------------------------------------------------------------------ audit export


@pytest.fixture
def audit_db(db, tmp_path, monkeypatch):
    from gateway.settings import settings

    monkeypatch.setenv("RELAIS_AUDIT_KEY_DIR", str(tmp_path / "keys"))
    settings.cache_clear()
    assert main(["audit", "checkpoint", "--database", db]) == 0
    yield db
    settings.cache_clear()


def test_audit_export_onto_a_file_is_refused_and_leaves_it(capsys, audit_db, tmp_path):
    target = tmp_path / "export"
    target.write_bytes(b"x")
    code, _, err = run(capsys, "audit", "export", str(target), "--database", audit_db)
    assert code == 1 and err.startswith(f"le dossier d'export {target} ")
    assert target.read_bytes() == b"x"


def test_audit_export_under_a_file_is_refused(capsys, audit_db, tmp_path):
    (tmp_path / "fichier").write_bytes(b"x")
    target = tmp_path / "fichier" / "export"
    code, _, err = run(capsys, "audit", "export", str(target), "--database", audit_db)
    assert code == 1 and err.startswith(f"le dossier d'export {target} ")


@pytest.mark.parametrize("existing", [False, True])
def test_an_audit_export_that_fails_midway_leaves_nothing_half_written(capsys, audit_db, tmp_path, existing):
    import sqlalchemy as sa

    from gateway.audit.tables import audit_tiles

    with Store(audit_db) as store, store.engine.begin() as conn:  # a damaged base: tiles lost
        conn.execute(sa.delete(audit_tiles))
    target = tmp_path / "export"
    if existing:
        target.mkdir()
    code, _, err = run(capsys, "audit", "export", str(target), "--no-checkpoint", "--database", audit_db)
    assert code == 1 and "tuile" in err
    assert target.exists() == existing and (not existing or not any(target.iterdir()))
    assert not [p.name for p in tmp_path.iterdir() if "export" in p.name and p != target]  # no partial copy


def test_an_export_failing_while_moved_into_place_removes_only_its_own_files(audit_db, tmp_path, monkeypatch):
    """DIR existed (empty): when the move into it fails half-way, what the export moved in is
    taken out again, and a file someone else put in DIR meanwhile stays."""
    from gateway.audit import export as export_module

    target = tmp_path / "export"
    target.mkdir()
    real_rename = Path.rename

    def rename(self, destination):
        if Path(destination).name == "entries.jsonl":  # after checkpoint(s), keys, tile: mid-way
            (target / "notes.txt").write_text("autre")
            raise OSError(28, "No space left on device")
        return real_rename(self, destination)

    monkeypatch.setattr(Path, "rename", rename)
    with Store(audit_db) as store, pytest.raises(export_module.AuditError, match="rien n'a été écrit"):
        export_module.export(store.engine, target, sign=False)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------ audit verify


@pytest.fixture
def exported(capsys, audit_db, tmp_path):
    directory = tmp_path / "export"
    assert main(["audit", "export", str(directory), "--database", audit_db]) == 0
    capsys.readouterr()
    return directory


def _a_directory_instead_of(path):
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("where", ["checkpoints", "keys"])
def test_audit_verify_names_a_directory_found_where_a_file_is_expected(capsys, exported, where):
    path = next((exported / where).iterdir())
    _a_directory_instead_of(path)
    code, _, err = run(capsys, "audit", "verify", str(exported))
    assert code == 1 and f"{where}/{path.name}" in err and "ÉCHEC de la vérification" in err


def test_audit_verify_fails_when_the_newest_checkpoint_is_missing_from_checkpoints(capsys, exported):
    newest = (exported / "checkpoint").read_text().split("\n")[1]
    (exported / "checkpoints" / newest).unlink()
    code, _, err = run(capsys, "audit", "verify", str(exported))
    assert code == 1 and f"checkpoints/{newest} absent" in err


# ------------------------------------------------------------------ files written by a command


@pytest.mark.parametrize("where", ["directory", "missing-parent"])
def test_mss_pack_to_an_unwritable_place_names_the_file(capsys, tmp_path, where):
    from tests.test_cli import PLANS as FIXTURES, TODAY

    out = tmp_path if where == "directory" else tmp_path / "absent" / "paquet.zip"
    code, _, err = run(capsys, "mss", "pack", "--plan", str(FIXTURES[0]), "--today", TODAY, "--out", str(out))
    assert code == 1 and err.startswith(f"{out} : fichier impossible à écrire")


def test_dmp_retrieve_to_a_directory_names_the_file(capsys, tmp_path, configured):
    url, sub = configured
    code, _, err = run(capsys, "dmp", "retrieve", DMP_PLAN.person.local_id, sub.unique_id, *TENANT,
                       "--database", url, "--out", str(tmp_path))
    assert code == 1 and err.startswith(f"{tmp_path} : fichier impossible à écrire")


# ------------------------------------------------------------------ endless or huge input files


def _limited_memory():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a whole /dev/zero would not fit


ENDLESS = "/dev/zero"


@pytest.mark.parametrize("argv", [
    ["plan", "validate", ENDLESS],
    ["fhir", "validate", ENDLESS],
    ["fhir", "import", ENDLESS],
    ["fhir", "export", "--plan", ENDLESS],
    ["cda", "export", "--plan", ENDLESS],
    ["cda", "import", ENDLESS],
    ["mss", "unpack", ENDLESS, "--out", "/nonexistent-relais-out"],
])
def test_an_endless_input_file_is_refused_without_being_read_whole(argv, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gateway.cli.main", *argv], capture_output=True, text=True,
                          timeout=120, preexec_fn=_limited_memory, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and ENDLESS in output and "trop volumineu" in output


@pytest.mark.parametrize("where", ["keys/00000000.vkey", "checkpoints/99", "--since"])
def test_audit_verify_refuses_an_endless_note_or_key_without_reading_it_whole(exported, where):
    import subprocess
    import sys

    extra = []
    if where == "--since":
        extra = ["--since", "/dev/zero"]
    else:
        (exported / where).symlink_to("/dev/zero")
    done = subprocess.run([sys.executable, "-m", "gateway.audit.verify", str(exported), *extra],
                          capture_output=True, text=True, timeout=120, preexec_fn=_limited_memory,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "trop volumineux" in output


@pytest.mark.parametrize("kind", ["0", "entries"])
def test_audit_verify_refuses_a_huge_tile_without_reading_it_whole(exported, kind):
    import subprocess
    import sys

    tile = next(p for p in (exported / "tile" / kind).rglob("*") if p.is_file())
    os.truncate(tile, 8 << 30)  # sparse: 8 GB that take no disk
    done = subprocess.run([sys.executable, "-m", "gateway.audit.verify", str(exported)],
                          capture_output=True, text=True, timeout=120, preexec_fn=_limited_memory,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "ÉCHEC de la vérification" in output


@pytest.mark.parametrize("label", ["", "x" * 201])
def test_tenant_key_with_an_impossible_label_is_refused_in_french(capsys, db, label):
    code, out, err = run(capsys, "tenant", "key", "plateforme-a", "--label", label, "--database", db)
    assert code == 1 and out == "" and err.strip() == "le libellé de la clé doit compter de 1 à 200 caractères"


# ------------------------------------------------------------------ serve


@pytest.mark.parametrize("port", ["0", "99999", "-1"])
def test_serve_refuses_a_port_outside_1_to_65535(capsys, port):
    code, _, err = run(capsys, "serve", "--port", port)
    assert code == 2 and f"argument --port : valeur invalide : '{port}'" in err


def test_serve_with_an_unusable_database_url_is_a_usage_error(capsys):
    code, out, err = run(capsys, "serve", "--database", "garbage://")
    assert code == 2 and "base de données non prise en charge : garbage" in err and "écoute" not in out


def test_demo_with_an_unusable_database_url_is_a_usage_error(capsys):
    code, _, err = run(capsys, "demo", "--database", "garbage://")
    assert code == 2 and "base de données non prise en charge : garbage" in err


@pytest.mark.parametrize("dates", [["--from", "0001-01-01", "--to", "0001-01-02"],
                                   ["--from", "9999-12-31", "--to", "9999-12-31"],
                                   ["--reference-week", "9999-12-31"]])
def test_activity_indicators_at_the_ends_of_the_calendar_is_a_usage_error(capsys, db, dates):
    code, _, err = run(capsys, "activity", "indicators", *TENANT, *dates, "--database", db)
    assert code == 2 and ("hors limites" in err or "illisible" in err)


def test_consent_inform_at_an_instant_before_year_1_in_utc_is_refused(capsys, db):
    code, _, err = run(capsys, *INFORM, "--by", "dr-x", "--notice", "v1", "--at", "0001-01-01T00:30+01:00",
                       "--database", db)
    assert code == 1 and err.startswith("information refusée : --at : ")
