"""Hostile IHE_XDM.zip archives at every entry point that opens one: zip bombs (high ratio,
lying sizes, overlapping entries), path traversal and absolute names, symbolic links and
special files, duplicate names, huge member counts, nested, encrypted or exotic archives.
Each is refused *before anything is extracted*, with a stable rule and a French reason:

- the library (`connectors.mss.xdm.read`),
- `relais mss unpack` (nothing written), `relais conformance validate` (exit 1 with the rule),
- a message received over MSSanté: quarantined with the rule, error 906 for the sender, and
  in the database only the quarantined item and its audit entry — no plan touched.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.mss import xdm
from connectors.mss.inbound import KIND_QUARANTINED, read_message
from connectors.mss.message import parse
from gateway.cli.main import main as relais
from gateway.inbound.receive import receive
from tests.security.conftest import snapshot

VALID = [("INDEX.HTM", b"<html/>"), ("README.TXT", b"readme"), ("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>")]


def _zip(entries, method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for info, data in entries:
                archive.writestr(info, data)
    return buffer.getvalue()


def _unix(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o777) << 16
    return info


def _patch_central(archive: bytes, offset: int, fmt: str, value: int, which: int = -1) -> bytes:
    """Overwrite one field of a central directory record (the last one by default)."""
    data = bytearray(archive)
    positions = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"]
    at = positions[which] + offset
    struct.pack_into(fmt, data, at, value)
    return bytes(data)


def _overlapping(copies: int = 20) -> bytes:
    """Fifield's "better zip bomb" shape: many central directory entries, one compressed kernel
    that all of them point at (each claims 1 MiB)."""
    base = _zip([("IHE_XDM/SUBSET01/K0000000.XML", b"\0" * (1024 * 1024))])
    cd_at = base.index(b"PK\x01\x02")
    eocd_at = base.index(b"PK\x05\x06")
    record = base[cd_at:eocd_at]
    fixed, name = record[:46], record[46:46 + struct.unpack_from("<H", record, 28)[0]]
    records = b"".join(fixed + name[:-12] + f"K{i:07d}.XML".encode() for i in range(copies))
    eocd = bytearray(base[eocd_at:])
    struct.pack_into("<HHII", eocd, 8, copies, copies, len(records), cd_at)
    return base[:cd_at] + records + bytes(eocd)


def _encrypted() -> bytes:
    archive = bytearray(_zip([*VALID, ("IHE_XDM/SUBSET01/DOC0001.XML", b"secret")]))
    central = archive.rfind(b"PK\x01\x02")
    archive[central + 8] |= 0x1
    local = int.from_bytes(archive[central + 42:central + 46], "little")
    archive[local + 6] |= 0x1
    return bytes(archive)


def archives() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """name -> (archive bytes, acceptable rules)."""
    doc = "IHE_XDM/SUBSET01/DOC0001.XML"
    lying = _zip([*VALID, (doc, b"A" * 200_000)])
    return {
        "path-traversal": (_zip([*VALID, ("IHE_XDM/../../EVIL.TXT", b"pwned")]), ("zip-name-traversal",)),
        "deep-traversal": (_zip([*VALID, ("IHE_XDM/SUBSET01/../../../../../../tmp/EVIL.TXT", b"x")]),
                           ("zip-name-traversal",)),
        "absolute-path": (_zip([*VALID, ("/tmp/EVIL.TXT", b"pwned")]), ("zip-name-absolute",)),
        "windows-path": (_zip([*VALID, ("IHE_XDM\\..\\..\\EVIL.TXT", b"pwned")]), ("zip-name-backslash",)),
        "drive-letter": (_zip([*VALID, ("C:/WINDOWS/EVIL.TXT", b"pwned")]), ("zip-name-drive",)),
        "symlink": (_zip([*VALID, (_unix(doc, stat.S_IFLNK), b"/etc/passwd")]), ("zip-symlink",)),
        "symlink-directory": (_zip([*VALID, (_unix("IHE_XDM/SUBSET02", stat.S_IFLNK), b"/")]), ("zip-symlink",)),
        "fifo": (_zip([*VALID, (_unix("IHE_XDM/SUBSET01/PIPE", stat.S_IFIFO), b"")]), ("zip-special-file",)),
        "duplicate-name": (_zip([*VALID, (doc, b"a"), (doc, b"b")]), ("zip-name-duplicate",)),
        "duplicate-name-other-case": (_zip([*VALID, (doc, b"a"), (doc.lower(), b"b")]), ("zip-name-duplicate",)),
        "non-ascii-name": (_zip([*VALID, ("IHE_XDM/SUBSET01/DOCÉ.XML", b"x")]), ("zip-name-not-ascii",)),
        "control-character": (_zip([*VALID, ("IHE_XDM/SUBSET01/DOC\x1b.XML", b"x")]), ("zip-name-control",)),
        "bomb-ratio": (_zip([*VALID, (doc, b"\0" * (16 * 1024 * 1024))]), ("zip-ratio",)),
        "bomb-total": (_zip([*VALID, *((f"IHE_XDM/SUBSET01/B{i:07d}.XML", b"\0" * (4 * 1024 * 1024))
                                       for i in range(14))]), ("zip-ratio", "zip-total-too-large")),
        "bomb-lying-size": (_patch_central(lying, 24, "<I", 100), ("zip-size-mismatch", "zip-corrupt-member")),
        "bomb-declared-4gb": (_patch_central(lying, 24, "<I", 0xFFFFFFF0),
                              ("zip-ratio", "zip-total-too-large", "zip-unreadable")),
        "bomb-overlapping-entries": (_overlapping(), ("zip-ratio", "zip-total-too-large", "zip-corrupt-member",
                                                      "zip-unreadable")),
        "too-many-members": (_zip([*VALID, *((f"IHE_XDM/SUBSET01/D{i:07d}.XML", b"x") for i in range(62))]),
                             ("zip-too-many-members",)),
        "huge-member-count": (_zip([(f"D{i:07d}.XML", b"") for i in range(20_000)], zipfile.ZIP_STORED),
                              ("zip-too-many-members",)),
        "nested-zip": (_zip([*VALID, ("IHE_XDM/SUBSET01/INNER.ZIP", _zip(VALID))]), ("zip-nested-archive",)),
        "nested-zip-renamed": (_zip([*VALID, ("IHE_XDM/SUBSET01/DOC0002.XML", _zip(VALID))]),
                               ("zip-nested-archive",)),
        "encrypted": (_encrypted(), ("zip-encrypted",)),
        "bzip2-method": (_zip([*VALID, (doc, b"x" * 100)], zipfile.ZIP_BZIP2), ("zip-method",)),
        "truncated": (_zip([*VALID, (doc, b"x" * 5000)])[:-40], ("zip-unreadable",)),
        "not-a-zip": (b"%PDF-1.4\n" + b"0" * 100, ("zip-unreadable",)),
        "oversized": (b"PK\x03\x04" + b"\0" * (21 * 1024 * 1024), ("zip-too-large",)),
    }


ARCHIVES = archives()
END_TO_END = ["path-traversal", "symlink", "bomb-ratio", "duplicate-name", "huge-member-count"]


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_a_hostile_archive_is_refused_by_the_reader_with_its_rule(case):
    data, rules = ARCHIVES[case]
    with pytest.raises(xdm.XdmRefused) as caught:
        xdm.read(data)
    assert caught.value.rule in rules, (caught.value.rule, caught.value.reason)
    assert caught.value.reason  # French, names the member when there is one


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_relais_mss_unpack_refuses_it_and_writes_nothing(case, tmp_path, capsys):
    data, rules = ARCHIVES[case]
    source = tmp_path / "IHE_XDM.zip"
    source.write_bytes(data)
    out = tmp_path / "out"
    assert relais(["mss", "unpack", str(source), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert any(rule in err for rule in rules), err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IHE_XDM.zip"]
    assert not Path("/tmp/EVIL.TXT").exists()


@pytest.mark.parametrize("case", ["path-traversal", "symlink", "bomb-ratio", "bomb-overlapping-entries",
                                  "duplicate-name", "huge-member-count", "nested-zip"])
def test_relais_conformance_validate_reports_the_rule_and_fails(case, tmp_path, capsys):
    data, rules = ARCHIVES[case]
    source = tmp_path / "IHE_XDM.zip"
    source.write_bytes(data)
    code = relais(["conformance", "validate", str(source)])
    said = "".join(capsys.readouterr())
    assert code == 1
    assert str(source) in said and any(rule in said for rule in rules), said[-1500:]


def mail_with(archive: bytes, message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = "dr.martin@mss.example"
    message["To"] = "plateforme@mss.example"
    message["Subject"] = "XDM/1.0/DDM"
    message["Message-ID"] = message_id
    message.set_content("Bonjour, ci-joint le document.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes()


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_a_received_message_with_a_hostile_archive_is_quarantined_with_error_906(case):
    data, rules = ARCHIVES[case]
    if len(data) > 15 * 1024 * 1024:
        pytest.skip("over the message size limit: refused as a message (mime-too-large) before any archive")
    reading = read_message(parse(mail_with(data, f"<{case}@mss.example>")), digest="d" * 64,
                           exchange_of=lambda _: None)
    [item] = reading.items
    assert item.kind == KIND_QUARANTINED and item.metadata["rule"] in rules, item.metadata
    assert reading.error is not None and reading.error.code == "906"
    assert item.payload == b""  # nothing of the archive is kept in the item


@pytest.mark.parametrize("case", END_TO_END)
def test_quarantine_writes_only_the_quarantined_item_and_its_audit_entry(world, case):
    data, rules = ARCHIVES[case]
    reading = read_message(parse(mail_with(data, f"<{case}@mss.example>")), digest="e" * 64,
                           exchange_of=lambda _: None)
    before = snapshot(world.store)
    assert receive(world.store, world.a, reading.items) == {"quarantined": 1}
    after = snapshot(world.store)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"inbound_items", "audit_entries", "audit_head", "audit_tiles", "audit_pseudonyms"}, changed
    with world.store.reading() as conn:
        rows = conn.execute(sa.text("SELECT status, person_local_id, summary FROM inbound_items "
                                    "WHERE kind = :k"), {"k": KIND_QUARANTINED}).all()
    assert [(r.status, r.person_local_id) for r in rows] == [("quarantined", None)]
    assert any(rule in rows[0].summary or rule in str(reading.items[0].metadata) for rule in rules)


def test_a_hostile_archive_in_the_real_mailbox_is_quarantined_and_the_sender_told(world, tmp_path):
    """End to end: SMTP/IMAP sandbox over TLS, the connector's poll, the inbound recording."""
    from connectors.sandbox.mss import MssSandbox
    from gateway.inbound.receive import poll

    store, tenant = world.store, world.a
    with MssSandbox(tmp_path / "mss") as sandbox:
        connector = sandbox.connector(state_dir=str(tmp_path / "state"))
        try:
            sender = sandbox.correspondents[0].address
            raw = mail_with(ARCHIVES["path-traversal"][0], "<evil-1@mss.example>").replace(
                b"dr.martin@mss.example", sender.encode())
            sandbox.store.deliver(sandbox.platform_address, raw)
            counts = poll(store, tenant, connector)
        finally:
            connector.close()
        assert counts["quarantined"] == 1
        answers = [m for m in sandbox.inbox(sender) if b"906" in m.data]
        assert answers, "the sender was not told (error 906)"
    assert not (tmp_path / "EVIL.TXT").exists() and not Path("/tmp/EVIL.TXT").exists()
    assert store.get_plan(tenant, world.person).version == 1
