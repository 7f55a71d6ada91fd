"""`relais cda export|import|validate|render` and `relais xds metadata`: the command contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from gateway.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "fixtures" / "plans" / "p001-enfant-tnd.json"
FIXED = ["--now", "2026-11-26T10:00:00+01:00", "--today", "2026-11-26"]


def run(capsysbinary, *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    out = capsysbinary.readouterr()
    return code, out.out, out.err.decode("utf-8")


def test_export_prints_the_cda_document(capsysbinary):
    code, out, _ = run(capsysbinary, "cda", "export", "--plan", str(PLAN), *FIXED)
    assert code == 0
    assert etree.fromstring(out).tag == "{urn:hl7-org:v3}ClinicalDocument"


def test_export_of_an_invalid_plan_exits_1(tmp_path, capsysbinary):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x"}', encoding="utf-8")
    code, out, err = run(capsysbinary, "cda", "export", "--plan", str(bad), *FIXED)
    assert code == 1 and out == b"" and "bad.json" in err


def test_import_prints_the_plan_of_a_relais_document(tmp_path, capsysbinary):
    _, xml, _ = run(capsysbinary, "cda", "export", "--plan", str(PLAN), *FIXED)
    path = tmp_path / "doc.xml"
    path.write_bytes(xml)
    code, out, _ = run(capsysbinary, "cda", "import", str(path), "--today", "2026-11-26")
    assert code == 0
    assert json.loads(out)["id"] == json.loads(PLAN.read_text(encoding="utf-8"))["id"]


@pytest.mark.parametrize("content", [b"<pas du xml", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'])
def test_import_of_bad_xml_exits_1_with_a_reason(tmp_path, capsysbinary, content):
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    code, out, err = run(capsysbinary, "cda", "import", str(path))
    assert code == 1 and out == b"" and "bad.xml" in err


def test_validate_without_reference_set_fails_loudly(tmp_path, capsysbinary, monkeypatch):
    from gateway.conformance.cda import gate as gate_module

    monkeypatch.setattr(gate_module, "cda_gate", lambda: gate_module.CdaGate(tmp_path / "absent"))
    _, xml, _ = run(capsysbinary, "cda", "export", "--plan", str(PLAN), *FIXED)
    path = tmp_path / "doc.xml"
    path.write_bytes(xml)
    code, out, _ = run(capsysbinary, "cda", "validate", str(path))
    assert code == 1
    assert "jeu de schématrons introuvable" in out.decode("utf-8")


def test_render_prints_self_contained_html(tmp_path, capsysbinary):
    _, xml, _ = run(capsysbinary, "cda", "export", "--plan", str(PLAN), *FIXED)
    path = tmp_path / "doc.xml"
    path.write_bytes(xml)
    code, out, _ = run(capsysbinary, "cda", "render", str(path))
    html = out.decode("utf-8")
    assert code == 0 and html.startswith("<!DOCTYPE html>")
    assert "Besoins évalués" in html and "RHUBARBIVANT" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_xds_metadata_prints_the_submit_objects_request(capsysbinary):
    code, out, _ = run(capsysbinary, "xds", "metadata", "--plan", str(PLAN), *FIXED)
    assert code == 0
    assert etree.fromstring(out).tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0}SubmitObjectsRequest"


def test_xds_metadata_refuses_an_unqualified_identity(capsysbinary):
    plan = next(p for p in sorted((ROOT / "fixtures" / "plans").glob("*.json"))
                if json.loads(p.read_text(encoding="utf-8"))["person"]["identity_status"] != "QUAL")
    code, out, err = run(capsysbinary, "xds", "metadata", "--plan", str(plan), *FIXED)
    assert code == 1 and out == b"" and "non qualifiée" in err
