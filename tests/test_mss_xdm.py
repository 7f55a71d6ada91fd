"""The IHE XDM package of MSSanté: what Relais writes reads back identically and passes the XDM
checks; hostile archives are refused before anything is extracted."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from connectors.mss import xdm
from connectors.mss.zipsafe import Limits
from gateway.cli.main import main as relais
from gateway.model import Plan, Severity
from mappings.cda import document_ids
from mappings.xds import metadata as M

ROOT = Path(__file__).resolve().parent.parent
PLANS = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def load(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load(PLANS[0])


@pytest.fixture(scope="module")
def packed(plan) -> xdm.Packed:
    return xdm.pack_plan(plan, now=NOW)


def errors(problems):
    return [p for p in problems if p.severity is Severity.error]


# ------------------------------------------------------------------------ what Relais writes

@pytest.mark.parametrize("path", PLANS[:12], ids=lambda p: p.stem)
def test_the_xdm_zip_relais_writes_reads_back_identically_and_passes_the_checks(path):
    plan = load(path)
    packed = xdm.pack_plan(plan, now=NOW)
    package = xdm.read(packed.archive)
    assert xdm.repack(package) == packed.archive
    assert errors(xdm.check(package)) == []
    assert [p for p in xdm.check(package) if p.severity is Severity.warning] == []
    (entry,) = package.entries
    assert entry.content == packed.cda and entry.unique_id == packed.document_id


def test_the_layout_is_the_ihe_one_with_8_3_upper_case_names(packed):
    names = zipfile.ZipFile(io.BytesIO(packed.archive)).namelist()
    assert names == ["IHE_XDM/", "IHE_XDM/SUBSET01/", "INDEX.HTM", "README.TXT",
                     "IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/DOC0001.XML"]


def test_metadata_comes_from_the_shared_xds_module_with_hash_size_and_uri(plan, packed):
    from mappings.xds import Destination, submit_objects_request

    expected = submit_objects_request(plan, packed.cda, document_ids(plan), now=NOW,
                                      destination=Destination(uri="DOC0001.XML", require_ins=False))
    assert packed.metadata == expected
    entry = etree.fromstring(packed.metadata).find(f"{{{M.RIM}}}RegistryObjectList/{{{M.RIM}}}ExtrinsicObject")
    slots = {s.get("name"): s.findtext(f"{{{M.RIM}}}ValueList/{{{M.RIM}}}Value") for s in entry.iter(f"{{{M.RIM}}}Slot")}
    assert slots["hash"] == hashlib.sha1(packed.cda).hexdigest()
    assert slots["size"] == str(len(packed.cda)) and slots["URI"] == "DOC0001.XML"


def test_the_same_plan_and_time_give_the_same_bytes(plan, packed):
    assert xdm.pack_plan(plan, now=NOW).archive == packed.archive


def test_a_new_version_carries_the_ans_action_slot_c(plan):
    packed = xdm.pack_plan(plan, now=NOW, ids=document_ids(plan, 2))
    (entry,) = xdm.read(packed.archive).entries
    assert entry.action == "C"
    assert errors(xdm.check(xdm.read(packed.archive))) == []


def test_a_qualified_identity_gives_the_ins_as_patient_id(plan, packed):
    (entry,) = xdm.read(packed.archive).entries
    assert entry.ins == (plan.person.ins.value, plan.person.ins.oid)


def test_index_and_readme_carry_no_personal_data(plan, packed):
    package = xdm.read(packed.archive)
    for name in (xdm.INDEX, xdm.README):
        text = package.file(name).decode()
        assert plan.person.birth_family_name not in text and plan.person.ins.value not in text


# ------------------------------------------------------------------------- the XDM checks

def _tampered(packed: xdm.Packed, name: str, data: bytes) -> bytes:
    files = [(i.filename, zipfile.ZipFile(io.BytesIO(packed.archive)).read(i))
             for i in zipfile.ZipFile(io.BytesIO(packed.archive)).infolist() if not i.is_dir()]
    return xdm.write_archive([(n, data if n == name else d) for n, d in files], (2026, 11, 26, 9, 0, 0))


def test_a_document_changed_after_packing_fails_the_hash_and_size_checks(packed):
    archive = _tampered(packed, "IHE_XDM/SUBSET01/DOC0001.XML", packed.cda.replace(b"</title>", b" </title>", 1))
    rules = {p.rule for p in errors(xdm.check(xdm.read(archive)))}
    assert {"xdm-hash-mismatch", "xdm-size-mismatch"} <= rules


def test_metadata_naming_another_document_fails_the_unique_id_check(packed):
    other = packed.metadata.replace(packed.document_id.encode(), b"1.2.3.4.5", 2)
    archive = _tampered(packed, "IHE_XDM/SUBSET01/METADATA.XML", other)
    assert "xdm-unique-id-mismatch" in {p.rule for p in errors(xdm.check(xdm.read(archive)))}


def test_a_missing_document_is_reported(packed):
    files = [("IHE_XDM/SUBSET01/METADATA.XML", packed.metadata), ("INDEX.HTM", b"x"), ("README.TXT", b"x")]
    archive = xdm.write_archive(files, (2026, 1, 1, 0, 0, 0))
    assert "xdm-document-missing" in {p.rule for p in errors(xdm.check(xdm.read(archive)))}


def test_long_names_are_not_8_3(packed):
    files = [("IHE_XDM/SUBSET01/METADATA.XML", packed.metadata), ("IHE_XDM/SUBSET01/DOC0001.XML", packed.cda),
             ("INDEX.HTM", b"x"), ("README.TXT", b"x"), ("IHE_XDM/SUBSET01/COMPTE-RENDU.PDF", b"%PDF")]
    archive = xdm.write_archive(files, (2026, 1, 1, 0, 0, 0))
    assert "xdm-name-not-8.3" in {p.rule for p in errors(xdm.check(xdm.read(archive)))}


def test_an_archive_without_ihe_xdm_folder_is_not_an_xdm_package():
    archive = xdm.write_archive([("README.TXT", b"x")], (2026, 1, 1, 0, 0, 0))
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(archive)
    assert caught.value.rule == "xdm-no-ihe-xdm-folder"


# --------------------------------------------------------------------------- hostile archives

def _zip(entries) -> bytes:
    """entries: (ZipInfo or name, data) pairs, written as given."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in entries:
                archive.writestr(info, data)
    return buffer.getvalue()


def _unix(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o777) << 16
    return info


def _encrypted() -> bytes:
    """zipfile never writes the "encrypted" flag: set it on the last member, as a tool would."""
    archive = bytearray(_zip([*VALID, ("IHE_XDM/SUBSET01/DOC0001.XML", b"secret")]))
    central = archive.rfind(b"PK\x01\x02")
    archive[central + 8] |= 0x1
    local = int.from_bytes(archive[central + 42:central + 46], "little")
    archive[local + 6] |= 0x1
    return bytes(archive)


VALID = [("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>"), ("INDEX.HTM", b"x")]
HOSTILE = {
    "traversal": ([*VALID, ("IHE_XDM/../../EVIL.TXT", b"pwned")], "zip-name-traversal"),
    "absolute": ([*VALID, ("/TMP/EVIL.TXT", b"pwned")], "zip-name-absolute"),
    "backslash": ([*VALID, ("IHE_XDM\\..\\EVIL.TXT", b"pwned")], "zip-name-backslash"),
    "drive-letter": ([*VALID, ("C:/EVIL.TXT", b"pwned")], "zip-name-drive"),
    "symlink": ([*VALID, (_unix("IHE_XDM/SUBSET01/DOC0001.XML", stat.S_IFLNK), b"/etc/passwd")], "zip-symlink"),
    "device": ([*VALID, (_unix("IHE_XDM/SUBSET01/DEV", stat.S_IFCHR), b"")], "zip-special-file"),
    "bomb": ([*VALID, ("IHE_XDM/SUBSET01/DOC0001.XML", b"\0" * (8 * 1024 * 1024))], "zip-ratio"),
    "too-many-members": ([*VALID, *((f"IHE_XDM/SUBSET01/D{i:04d}.XML", b"x") for i in range(80))],
                         "zip-too-many-members"),
    "duplicate": ([*VALID, ("IHE_XDM/SUBSET01/DOC0001.XML", b"a"), ("IHE_XDM/SUBSET01/doc0001.xml", b"b")],
                  "zip-name-duplicate"),
    "nested-zip-name": ([*VALID, ("IHE_XDM/SUBSET01/INNER.ZIP", b"PK\x05\x06" + b"\0" * 18)],
                        "zip-nested-archive"),
    "nested-zip-content": ([*VALID, ("IHE_XDM/SUBSET01/DOC0002.XML", b"PK\x03\x04rest")], "zip-nested-archive"),
    "encrypted": (_encrypted, "zip-encrypted"),
    "control-character": ([*VALID, ("IHE_XDM/SUBSET01/DOC\x070001.XML", b"x")], "zip-name-control"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_without_extracting_anything(case, tmp_path, capsys):
    entries, rule = HOSTILE[case]
    archive = entries() if callable(entries) else _zip(entries)
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(archive)
    assert caught.value.rule == rule
    source = tmp_path / "IHE_XDM.zip"
    source.write_bytes(archive)
    out = tmp_path / "out"
    assert relais(["mss", "unpack", str(source), "--out", str(out)]) == 1
    assert not out.exists()
    assert not (tmp_path / "EVIL.TXT").exists() and not Path("/tmp/EVIL.TXT").exists()
    assert rule in capsys.readouterr().err


def test_an_archive_larger_than_the_limit_is_refused_before_opening():
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(b"PK" + b"\0" * 2048, Limits(archive_bytes=1024))
    assert caught.value.rule == "zip-too-large"


def test_something_that_is_not_a_zip_is_refused():
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(b"%PDF-1.4 not a zip")
    assert caught.value.rule == "zip-unreadable"


def test_a_member_larger_than_it_declares_is_refused():
    archive = bytearray(_zip([*VALID, ("IHE_XDM/SUBSET01/DOC0001.XML", b"A" * 5000)]))
    # lie in the central directory: uncompressed size 5000 -> 50
    central = archive.rfind(b"PK\x01\x02")
    archive[central + 24:central + 28] = (50).to_bytes(4, "little")
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(bytes(archive))
    assert caught.value.rule in ("zip-size-mismatch", "zip-corrupt-member")


# --------------------------------------------------------------------------------- the CLI

def test_cli_pack_then_unpack_extracts_the_checked_package(tmp_path, capsys):
    out_zip = tmp_path / "IHE_XDM.zip"
    assert relais(["mss", "pack", "--plan", str(PLANS[0]), "--out", str(out_zip),
                   "--now", NOW.isoformat()]) == 0
    assert relais(["mss", "unpack", str(out_zip), "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "IHE_XDM" / "SUBSET01" / "DOC0001.XML").read_bytes().startswith(b"<?xml")
    assert "1 document(s) vérifié(s)" in capsys.readouterr().out


def test_cli_unpack_refuses_a_non_conformant_package_and_writes_nothing(packed, tmp_path, capsys):
    archive = _tampered(packed, "IHE_XDM/SUBSET01/DOC0001.XML", packed.cda + b" ")
    source = tmp_path / "IHE_XDM.zip"
    source.write_bytes(archive)
    assert relais(["mss", "unpack", str(source), "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()
    assert "xdm-hash-mismatch" in capsys.readouterr().err
