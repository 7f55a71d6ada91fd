"""Malformed input on the inbound paths that used to escape as a traceback instead of a refusal
(defect hunt, inbound review): acknowledgements (MDN, DSN, error mail) whose parts the standard
`email` parser cannot read, an IHE_XDM.zip with a corrupt deflate stream or an unsupported ZIP
version, and a received CDA that the CDA reader could not map. Each must be read or quarantined
with its reason; one bad message never blocks the mailbox or the batch."""

from __future__ import annotations

import hashlib
import io
import zipfile
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from connectors.base import Inbound
from connectors.mss import xdm
from connectors.mss.inbound import KIND_ACKNOWLEDGEMENT, KIND_QUARANTINED, read_message
from connectors.mss.message import parse
from gateway.inbound.receive import receive
from mappings.cda import constants as C
from mappings.cda.sections import KINDS
from tests.security.conftest import snapshot

KEY = "rls-" + "0" * 40
HEAD = b"From: mailer-daemon@mss.example\r\nTo: plateforme@mss.example\r\nMessage-ID: <ack-1@mss.example>\r\n"
DSN = (HEAD + b"Subject: Undelivered\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
       b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;mx.example\r\n"
       b"Original-Envelope-Id: " + KEY.encode() + b"\r\n%(extra)s\r\n"
       b"Final-Recipient: rfc822;dr@mss.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
       b"--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: %(inner)s\r\nSubject: s\r\n\r\nbody\r\n--b--\r\n")
ERROR_MAIL = (HEAD + "Subject: [KO Intégration système !][906] XDM/1.0/DDM\r\n".encode()
              + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=%(charset)s\r\n\r\n"
              + "Erreur détectée : Erreur 'Autre'\r\n".encode())

MALFORMED_ACKS = {  # name -> (raw message, acknowledgement kind expected)
    "dsn-returned-message-with-broken-message-id": (DSN % {b"extra": b"", b"inner": b"<"}, "dsn"),
    "dsn-broken-message-id-among-its-fields": (DSN % {b"extra": b"Message-ID: <(", b"inner": b"<a@b>"}, "dsn"),
    "error-mail-unknown-charset": (ERROR_MAIL % {b"charset": b"x-unknown"}, "error-mail"),
    "error-mail-charset-with-nul": (ERROR_MAIL % {b"charset": b"\x00utf-8"}, "error-mail"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ACKS))
def test_an_acknowledgement_with_an_unreadable_part_is_still_read_as_one(case):
    raw, kind = MALFORMED_ACKS[case]
    reading = read_message(parse(raw), digest="d" * 64, exchange_of=lambda _: None)
    [item] = reading.items
    assert item.kind == KIND_ACKNOWLEDGEMENT and item.metadata["acknowledgement"] == kind
    assert item.metadata["ok"] == "false" and not reading.acknowledgeable


def test_a_malformed_bounce_in_the_mailbox_does_not_block_the_messages_after_it(world, tmp_path):
    """End to end (SMTP/IMAP sandbox, the connector's poll, the recording): before, the bounce
    raised out of `poll` on every run, unflagged, and nothing after it was ever imported."""
    from connectors.sandbox.mss import MssSandbox
    from gateway.inbound.receive import poll

    with MssSandbox(tmp_path / "mss") as sandbox:
        connector = sandbox.connector(state_dir=str(tmp_path / "state"))
        try:
            sandbox.store.deliver(sandbox.platform_address,
                                  MALFORMED_ACKS["dsn-returned-message-with-broken-message-id"][0])
            sandbox.store.deliver(sandbox.platform_address, HEAD.replace(b"ack-1", b"plain-2")
                                  + b"Subject: Bonjour\r\n\r\nUne question.\r\n")
            counts = poll(world.store, world.a, connector)
            again = poll(world.store, world.a, connector)
        finally:
            connector.close()
    assert sum(counts.values()) == 2, counts
    assert sum(again.values()) == 0, again


DOC = "IHE_XDM/SUBSET01/DOC0001.XML"


def _archive() -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>")
        archive.writestr(DOC, bytes(range(256)) * 20)
    return bytearray(buffer.getvalue())


def _corrupt_deflate() -> bytes:
    data = _archive()
    start = data.index(b"PK\x03\x04" + data[4:8], data.index(b"METADATA.XML") + 12)  # DOC0001.XML's header
    data[start + 30 + len(DOC)] = 0xFF  # first byte of its deflate stream: "invalid block type"
    return bytes(data)


def _future_zip_version() -> bytes:
    data = _archive()
    data[data.index(b"PK\x01\x02") + 6] = 74  # version needed to extract: 7.4 (Python reads up to 6.3)
    return bytes(data)


BROKEN_ARCHIVES = {  # name -> (archive, rule)
    "corrupt-deflate-stream": (_corrupt_deflate(), "zip-corrupt-member"),
    "unsupported-zip-version": (_future_zip_version(), "zip-unreadable"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_ARCHIVES))
def test_a_broken_archive_is_refused_with_its_rule_and_quarantined_with_error_906(case):
    archive, rule = BROKEN_ARCHIVES[case]
    with pytest.raises(xdm.XdmRefused) as refused:
        xdm.read(archive)
    assert refused.value.rule == rule
    message = EmailMessage()
    message["From"], message["To"] = "dr@mss.example", "plateforme@mss.example"
    message["Subject"], message["Message-ID"] = "XDM/1.0/DDM", f"<{case}@mss.example>"
    message.set_content("Bonjour, ci-joint le document.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    reading = read_message(parse(message.as_bytes()), digest="d" * 64, exchange_of=lambda _: None)
    [item] = reading.items
    assert item.kind == KIND_QUARANTINED and item.metadata["rule"] == rule
    assert reading.error is not None and reading.error.code == "906"


def _cda_with_evaluation(observation: str) -> bytes:
    kind = next(k for k in KINDS if k.key == "evaluations")
    return (f'<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<component><structuredBody><component><section><templateId root="{kind.section_template}"/>'
            f'<entry><organizer><templateId root="{kind.entry_template}"/><component><observation>'
            f'<templateId root="{C.relais_oid(1, 5)}"/>{observation}</observation></component></organizer>'
            f'</entry></section></component></structuredBody></component></ClinicalDocument>').encode()


UNMAPPABLE_CDA = {
    "evaluation-item-without-code": _cda_with_evaluation('<value xsi:type="INT" value="3"/>'),
    "evaluation-item-without-value": _cda_with_evaluation('<code code="X"/>'),
    "evaluation-item-integer-without-value": _cda_with_evaluation('<code code="X"/><value xsi:type="INT"/>'),
}


@pytest.mark.parametrize("case", sorted(UNMAPPABLE_CDA))
def test_a_received_cda_the_reader_cannot_map_is_quarantined_and_writes_nothing_else(world, case):
    store, tenant = world.store, world.a
    ins = world.plan["person"]["ins"]["value"]
    before = snapshot(store)
    counts = receive(store, tenant, [Inbound("mss", "mss-document", f"<m-{case}@mss.example>#SUBSET01/DOC0001.XML",
                                             "text/xml", UNMAPPABLE_CDA[case],
                                             {"message_id": f"<m-{case}@mss.example>", "ins": ins,
                                              "sender": "dr@mss.example"})])
    assert counts == {"quarantined": 1}
    after = snapshot(store)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"inbound_items", "audit_entries", "audit_head", "audit_tiles", "audit_pseudonyms"}, changed
    with store.reading() as conn:
        summary = conn.execute(sa.text("SELECT summary FROM inbound_items WHERE status = 'quarantined'")).scalar()
    assert "document CDA illisible" in summary


def _document_mail(archive: bytes, subject: str) -> bytes:
    message = EmailMessage()  # no Message-ID: optional in RFC 5322 (§3.6, "SHOULD"), or unreadable
    message["From"], message["To"], message["Subject"] = "dr@mss.example", "plateforme@mss.example", subject
    message.set_content("Bonjour, ci-joint le document.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes()


def test_two_documents_received_without_message_id_are_both_recorded(world):
    """Before, both were referenced `#SUBSET01/DOC0001.XML`: the second one was taken for a
    duplicate of the first and silently dropped (its message flagged processed all the same)."""
    import datetime as dt

    from tests.conftest import make_plan

    archive = xdm.pack_plan(make_plan(world.plan), now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)).archive
    items = []
    for subject in ("XDM/1.0/DDM+Projet", "XDM/1.0/DDM+Projet révisé"):
        raw = _document_mail(archive, subject)
        reading = read_message(parse(raw), digest=hashlib.sha256(raw).hexdigest(), exchange_of=lambda _: None)
        assert [i.kind for i in reading.items] == ["mss-document"], reading.items
        items += reading.items
    counts = receive(world.store, world.a, items)
    assert "duplicate" not in counts and sum(counts.values()) == 2, counts


# RFC 2047 encoded words decode to CR/LF: `=0D=0A` in a header of the received message.
INJECTED = {  # header name -> encoded value whose decoded form holds a line break
    "Subject": b"=?utf-8?q?XDM/1.0/DDM+a=0D=0AX-Injected:_1?=",
    "Message-ID": b"=?utf-8?q?<z@mss.example>=0D=0AX-Injected:_1?=",
    "Reply-To": b"=?utf-8?q?Dr_A=0D=0AX-Injected:_1?= <dr@mss.example>",
    "Original-Recipient": b"=?utf-8?q?rfc822;dr@mss.example=0D=0AX-Injected:_1?=",
}


def _received_with(name: str) -> bytes:
    fields = {"From": b"dr@mss.example", "To": b"plateforme@mss.example", "Message-ID": b"<z@mss.example>",
              "Subject": b"XDM/1.0/DDM", "Disposition-Notification-To": b"dr@mss.example", name: INJECTED[name]}
    return b"".join(k.encode() + b": " + v + b"\r\n" for k, v in fields.items()) + b"\r\nBonjour\r\n"


@pytest.mark.parametrize("name", sorted(INJECTED))
@pytest.mark.parametrize("build", ["mdn", "error-mail"])
def test_a_line_break_decoded_from_a_received_header_neither_breaks_nor_enters_the_acknowledgement(name, build):
    """Before: a ValueError out of the acknowledgement (hence out of `poll`) for the subject,
    Message-ID and Reply-To; for Original-Recipient, a forged field line in the MDN's
    machine-readable part (e.g. a `Disposition:` or `Error:` of the attacker's choosing)."""
    import datetime as dt

    from connectors.mss.mdn import IntegrationError, build_error_mail, build_mdn

    maker = build_mdn if build == "mdn" else build_error_mail
    raw = maker(parse(_received_with(name)), mailbox="plateforme@mss.example", error=IntegrationError("906"),
                now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), message_id="<ack@mss.example>")
    original_at = raw.index(b"Content-Type: message/rfc822")  # the original, attached whole, may hold it
    assert b"\nX-Injected" not in raw[:original_at]


def _decision(**fields) -> dict:
    from connectors.viatrajectoire import vocab

    return {"resourceType": "DocumentReference", "type": {"coding": [{"code": vocab.DOC_DECISION}]},
            "identifier": [{"use": "usual", "value": "D1"}], **fields}


# Well-formed JSON of the wrong shape from a peer (lists where objects are expected, and so on).
WRONG_SHAPES = {  # name -> (kind, resource)
    "event-contained-not-a-list": ("nde-event", {"resourceType": "CommunicationRequest", "contained": "Patient"}),
    "event-contained-item-not-an-object": ("nde-event", {"resourceType": "CommunicationRequest", "contained": [1]}),
    "event-identifier-not-a-list": ("nde-event", {"resourceType": "CommunicationRequest",
                                                  "contained": [{"resourceType": "Patient", "identifier": "x"}]}),
    "event-extension-item-not-an-object": ("nde-event", {"resourceType": "CommunicationRequest", "extension": ["x"]}),
    "event-payload-not-text": ("nde-event", {"resourceType": "CommunicationRequest",
                                             "payload": [{"contentString": 5}]}),
    "event-meta-not-an-object": ("nde-event", {"resourceType": "CommunicationRequest", "meta": ["x"]}),
    "event-ins-not-a-string": ("nde-event", {"resourceType": "CommunicationRequest", "contained": [
        {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": {"a": 1}}]}]}),
    "decision-type-not-an-object": ("sdo-decision", _decision(type="57830-2")),
    "decision-attachment-not-an-object": ("sdo-decision", _decision(content=[{"attachment": "x"}])),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_a_peer_resource_of_the_wrong_shape_is_quarantined_and_changes_nothing_else(world, case):
    import json

    kind, resource = WRONG_SHAPES[case]
    before = snapshot(world.store)
    item = Inbound("viatrajectoire" if kind.startswith("sdo") else "eparcours", kind, f"peer-{case}",
                   "application/fhir+json", json.dumps(resource).encode(), {})
    assert receive(world.store, world.a, [item]) == {"quarantined": 1}
    after = snapshot(world.store)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"inbound_items", "audit_entries", "audit_head", "audit_tiles", "audit_pseudonyms"}, changed


def test_a_message_id_with_a_nul_character_is_recorded_on_every_backend(world):
    """PostgreSQL text holds no NUL: the reference taken from the Message-ID used to make the
    INSERT fail, a traceback out of the recording (and the mailbox poll) on that backend."""
    raw = (b"From: dr@mss.example\r\nTo: plateforme@mss.example\r\nMessage-ID: <a\x00b@mss.example>\r\n"
           b"Subject: Bonjour\r\n\r\nUne question.\r\n")
    reading = read_message(parse(raw), digest=hashlib.sha256(raw).hexdigest(), exchange_of=lambda _: None)
    counts = receive(world.store, world.a, reading.items)
    assert sum(counts.values()) == 1 and "duplicate" not in counts, counts


def test_an_acknowledgement_whose_error_text_holds_a_nul_character_is_recorded_on_every_backend(world):
    """The error text of an MDN goes into the exchange's last error and event: PostgreSQL text
    holds no NUL, and the INSERT used to fail out of the recording."""
    with world.store.reading() as conn:
        key = conn.execute(sa.text("SELECT idempotency_key FROM exchanges WHERE id = :i"),
                           {"i": world.exchange_id}).scalar()
    item = Inbound("mss", KIND_ACKNOWLEDGEMENT, "<mdn-nul@mss.example>", "message/rfc822", b"", {
        "message_id": "<mdn-nul@mss.example>", "sender": "dr@mss.example", "acknowledgement": "mdn",
        "idempotency_key": key, "ok": "false", "disposition": "processed", "error_code": "906",
        "error_text": "906^Erreur\x00'Autre'"})
    counts = receive(world.store, world.a, [item])
    assert sum(counts.values()) == 1, counts


def test_a_name_that_is_both_a_file_and_a_folder_is_refused_before_anything_is_extracted(tmp_path, capsys):
    """`INDEX.HTM` and `INDEX.HTM/README.TXT` pass every name and XDM check; extracting used to
    write INDEX.HTM, then fail on the folder, leaving a half-extracted package behind."""
    from connectors.mss.xdm import pack_plan
    from gateway.cli.main import main as relais
    from tests.conftest import make_plan, sample_plan_dict
    import datetime as dt

    packed = pack_plan(make_plan(sample_plan_dict()), now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC))
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(packed.archive)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("INDEX.HTM/README.TXT", b"x")
    with pytest.raises(xdm.XdmRefused) as refused:
        xdm.read(buffer.getvalue())
    assert refused.value.rule == "zip-name-file-and-folder"
    archive = tmp_path / "IHE_XDM.zip"
    archive.write_bytes(buffer.getvalue())
    assert relais(["mss", "unpack", str(archive), "--out", str(tmp_path / "out")]) == 1
    assert "zip-name-file-and-folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("container", ["multipart", "message"])
def test_a_message_nested_thousands_of_levels_deep_is_refused_not_a_recursion_error(container):
    """Well under the size limit (a few hundred kB), it blew the stdlib parser's recursion out
    of `parse`: a traceback out of `poll` on every run, the message never flagged."""
    from connectors.mss.message import MessageRefused

    depth = 3000
    if container == "multipart":
        body = (b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
                + b"Content-Type: text/plain\r\n\r\nx\r\n" + b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth))))
    else:
        body = b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: x\r\n\r\nx\r\n"
    with pytest.raises(MessageRefused) as refused:
        parse(b"From: dr@mss.example\r\nMessage-ID: <deep@mss.example>\r\n" + body)
    assert refused.value.rule == "mime-too-deep"


def test_a_malformed_birth_date_in_a_received_cda_is_not_echoed_in_the_quarantine_reason(world):
    """A producer writing `birthTime` as 31/12/1985: the reason used to quote it (`date HL7
    invalide : '31/12/1985'`), a birth date in what every coordinator of the platform reads."""
    ins = world.plan["person"]["ins"]["value"]
    cda = (b'<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole><patient>'
           b'<birthTime value="31/12/1985"/></patient></patientRole></recordTarget></ClinicalDocument>')
    counts = receive(world.store, world.a, [Inbound("mss", "mss-document", "<m-birth@mss.example>#SUBSET01/DOC0001.XML",
                                                    "text/xml", cda, {"message_id": "<m-birth@mss.example>",
                                                                      "ins": ins, "sender": "dr@mss.example"})])
    assert counts == {"quarantined": 1}
    with world.store.reading() as conn:
        summary = conn.execute(sa.text("SELECT summary FROM inbound_items WHERE status = 'quarantined'")).scalar()
    assert "document CDA illisible" in summary and "1985" not in summary, summary


def test_document_entries_pointing_at_one_document_are_an_error_checked_once():
    """Thousands of DocumentEntries of a small METADATA.XML all naming one large CDA made `check`
    hash and parse that CDA once per entry (minutes of CPU for one message, 12 ms per entry for
    4 MB), and every entry became an item. XDM: one DocumentEntry per document (ITI-32)."""
    import copy
    import datetime as dt

    from lxml import etree

    from tests.conftest import make_plan, sample_plan_dict

    packed = xdm.pack_plan(make_plan(sample_plan_dict()), now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC))
    root = etree.fromstring(packed.metadata)
    entry = root.find(".//{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}ExtrinsicObject")
    for n in range(3):
        twin = copy.deepcopy(entry)
        twin.set("id", f"urn:uuid:00000000-0000-4000-8000-00000000000{n}")
        entry.addnext(twin)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(packed.archive)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, etree.tostring(root) if info.filename.endswith(xdm.METADATA) else source.read(info))
    package = xdm.read(buffer.getvalue())
    assert len(package.entries) == 4
    duplicates = [p for p in xdm.check(package) if p.rule == "xdm-uri-duplicate"]
    assert len(duplicates) == 3 and all(p.severity.value == "error" for p in duplicates)


ODD_MESSAGE_IDS = {  # a Message-ID is ASCII without line breaks (RFC 5322 §3.6.4); a sender may not care
    "vertical-tab": b"<a\x0bb@mss.example>",
    "file-separator": b"<a\x1cb@mss.example>",
    "latin-1-byte": b"<caf\xe9@mss.example>",
    "invalid-utf-8": b"<a\xd4b@mss.example>",
}


@pytest.mark.parametrize("case", sorted(ODD_MESSAGE_IDS))
@pytest.mark.parametrize("build", ["mdn", "error-mail"])
def test_an_acknowledgement_can_be_built_for_a_message_id_that_is_not_clean_ascii(case, build):
    """Before: ValueError (a character Python counts as a line break) or UnicodeEncodeError (the
    MDN's fields are written as ASCII) out of the acknowledgement, hence out of `poll`, and the
    sender never told."""
    import datetime as dt

    from connectors.mss.mdn import IntegrationError, build_error_mail, build_mdn

    raw = (b"From: dr@mss.example\r\nTo: plateforme@mss.example\r\nMessage-ID: " + ODD_MESSAGE_IDS[case]
           + b"\r\nSubject: XDM/1.0/DDM\r\nDisposition-Notification-To: dr@mss.example\r\n\r\nBonjour\r\n")
    maker = build_mdn if build == "mdn" else build_error_mail
    built = maker(parse(raw), mailbox="plateforme@mss.example", error=IntegrationError("906"),
                  now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), message_id="<ack@mss.example>")
    assert parse(built).header("In-Reply-To")


UNWRITABLE = {  # originals the stdlib parses but cannot write back
    "multipart-without-boundary-8-bit": (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary\"b\"\r\n\r\n"
                                         b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour \xc3\xa9\r\n--b--\r\n"),
    "group-syntax-in-a-report-field": (b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type="
                                       b"disposition-notification; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: "
                                       b"message/disposition-notification\r\n\r\nReporting-UA: x\r\nReply-To: "
                                       b"Disposition: automatic-action/MDN-sent-automatically; processed/error\r\n--b--\r\n"),
}


@pytest.mark.parametrize("case", sorted(UNWRITABLE))
@pytest.mark.parametrize("build", ["mdn", "error-mail"])
def test_an_acknowledgement_can_be_built_for_an_original_the_stdlib_cannot_write_back(build, case):
    """The original is returned whole in the acknowledgement; these cannot be written back by the
    stdlib (UnicodeEncodeError, AttributeError out of the acknowledgement, hence out of `poll`):
    their header block is returned instead (text/rfc822-headers, RFC 6522 §3)."""
    import datetime as dt

    from connectors.mss.mdn import IntegrationError, build_error_mail, build_mdn

    raw = (b"From: dr@mss.example\r\nTo: plateforme@mss.example\r\nMessage-ID: <nb@mss.example>\r\n"
           b"Subject: XDM/1.0/DDM\r\nDisposition-Notification-To: dr@mss.example\r\n" + UNWRITABLE[case])
    maker = build_mdn if build == "mdn" else build_error_mail
    built = maker(parse(raw), mailbox="plateforme@mss.example", error=IntegrationError("906"),
                  now=dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), message_id="<ack@mss.example>")
    assert b"<nb@mss.example>" in built and b"Bonjour" not in built
