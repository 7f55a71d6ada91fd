"""`relais activity import|indicators|dataset|capacity|person` (French, exit codes)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from gateway.cli.main import main
from gateway.storage import Store
from mappings.fhir.tddui import plan_to_bundle
from tests.test_activity_record import _plan_with_events
from tests.test_activity_support import FINESS, HAND_CASE, NOW, act, hand_case, plan_for


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    with Store(url) as store:
        store.migrate()
        hand_case(store, "plateforme-a")
        store.put_plan(store.get_tenant("plateforme-a"), plan_for("D"), if_match=None, actor="test")
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, name: str, document) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def test_import_records_activities_of_several_persons(capsys, db, tmp_path):
    items = [dict(act("x1", "2026-03-02", "09:00", "10:00"), person="D"),
             dict(act("x2", "2026-03-02", "09:00", "10:00"), person="B"), HAND_CASE["B"][1][0] | {"person": "B"}]
    code, out, _ = run(capsys, "activity", "import", write(tmp_path, "a.json", items), "--tenant", "plateforme-a",
                       "--database", db)
    assert code == 0, out
    assert "personne D — 1 activité(s) enregistrée(s), 0 remplacée(s), 0 inchangée(s)" in out
    assert "personne B — 1 activité(s) enregistrée(s), 0 remplacée(s), 1 inchangée(s)" in out


def test_import_of_a_tddui_bundle_reads_the_person_from_the_identifiers(capsys, db, tmp_path):
    path = write(tmp_path, "b.json", plan_to_bundle(_plan_with_events(), NOW))
    code, out, _ = run(capsys, "activity", "import", path, "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and "personne A — 3 activité(s) enregistrée(s)" in out


def test_a_refused_file_prints_one_line_per_problem_and_exits_1(capsys, db, tmp_path):
    path = write(tmp_path, "bad.json", {"person": "D", "activities": [act("x3", "2026-03-02", "09:00", "10:00",
                                                                           code="1.1.1")]})
    code, out, _ = run(capsys, "activity", "import", path, "--tenant", "plateforme-a", "--database", db)
    assert code == 1
    assert f"{path}: $.activities[0].code: [serafin-wrong-family]" in out
    assert "rien n'a été enregistré" in out


def test_an_activity_without_a_person_is_refused(capsys, db, tmp_path):
    path = write(tmp_path, "np.json", [act("x4", "2026-03-02", "09:00", "10:00")])
    code, out, _ = run(capsys, "activity", "import", path, "--tenant", "plateforme-a", "--database", db)
    assert code == 1 and "[activity-person]" in out


def test_indicators_print_french_lines(capsys, db):
    code, out, _ = run(capsys, "activity", "indicators", "--tenant", "plateforme-a", "--from", "2026-02-01",
                       "--to", "2026-02-28", "--reference-week", "2026-W06", "--by", "specialisation",
                       "--database", db)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Activité réalisée du 01/02/2026 au 28/02/2026, en unités SERAFIN-PH")
    assert "  file active : 2 personnes (milieu ordinaire 2, accueil de jour 2)" in lines
    assert any(line.startswith("  taux d'occupation : 8,3 %") for line in lines)
    assert any(line.startswith("  taux de rotation : 1,33 personne(s) par place") for line in lines)
    assert any(line.startswith("  intensité : 3,3 h de prestations directes par jour") for line in lines)
    assert "  transports : 30 km, 1 h" in lines
    assert any(line.startswith("  handicap psychique : file active 1") for line in lines)


def test_indicators_as_json(capsys, db):
    code, out, _ = run(capsys, "activity", "indicators", "--tenant", "plateforme-a", "--from", "2026-02-01",
                       "--to", "2026-02-28", "--json", "--database", db)
    assert code == 0 and json.loads(out)["intensity"]["all"]["hours"] == 16.5


@pytest.mark.parametrize("fmt", ["csv", "json", "fhir"])
def test_dataset_in_each_format(capsys, db, tmp_path, fmt):
    out_file = tmp_path / f"ds.{fmt}"
    code, out, _ = run(capsys, "activity", "dataset", "--tenant", "plateforme-a", "--year", "2026",
                       "--format", fmt, "--output", str(out_file), "--database", db)
    assert code == 0 and "écrit dans" in out
    text = out_file.read_text(encoding="utf-8")
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["format"] == "relais-serafin-dataset/1" and rows[0]["finess"] == FINESS
    elif fmt == "json":
        assert json.loads(text)["year"] == 2026
    else:
        assert json.loads(text)["entry"][0]["resource"]["resourceType"] == "MeasureReport"


def test_capacity_is_set_then_listed(capsys, db):
    code, out, _ = run(capsys, "activity", "capacity", "--tenant", "plateforme-a", "--modality", "night_care",
                       "--places", "3", "--from", "2026-05-01", "--database", db)
    assert code == 0 and "accueil de nuit, 3 place(s), 365 jours d'ouverture par an, FINESS 750000001" in out
    code, out, _ = run(capsys, "activity", "capacity", "--tenant", "plateforme-a", "--database", db)
    assert code == 0 and "2026-05-01  night_care" in out and "day_care" in out


@pytest.mark.parametrize(("argv", "code"), [
    (("--modality", "day_care"), 2),
    (("--modality", "day_care", "--places", "2", "--finess", "123"), 1),
    (("--modality", "lune", "--places", "2"), 2),
])
def test_capacity_usage_errors(capsys, db, argv, code):
    assert run(capsys, "activity", "capacity", "--tenant", "plateforme-a", *argv, "--database", db)[0] == code


def test_person_shows_planned_and_delivered(capsys, db):
    code, out, _ = run(capsys, "activity", "person", "A", "--tenant", "plateforme-a", "--from", "2026-02-01",
                       "--to", "2026-02-28", "--database", db)
    assert code == 0
    assert "S1" in out and "prévu 12 h" in out and "réalisé 2,5 h, 2 demi-j., 2 séance(s)" in out
    assert "(1 absence(s), 1 annulée(s))" in out


def test_unknown_tenant_or_person_is_exit_3(capsys, db):
    assert run(capsys, "activity", "indicators", "--tenant", "inconnue", "--database", db)[0] == 3
    assert run(capsys, "activity", "person", "ZZ", "--tenant", "plateforme-a", "--database", db)[0] == 3
