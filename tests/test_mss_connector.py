"""The MSSanté connector against the sandbox operator, over real SMTP and IMAP with STARTTLS and
mutual TLS on loopback (test CA made at run time): sending, receiving, acknowledgements, the
mailbox directory, and the delivery spine's retries and dead letters."""

from __future__ import annotations

import datetime as dt
import email
import json
import random
from email import policy
from pathlib import Path

import pytest

from connectors.base import Envelope, PermanentError, Recipient, RetryPolicy, TransientError
from connectors.mss import message as M
from connectors.mss import xdm
from connectors.mss.imap import PROCESSED
from connectors.mss.inbound import propose
from connectors.mss.mdn import IntegrationError, build_mdn, read_acknowledgement
from connectors.sandbox.mss import MssSandbox
from connectors.sandbox.smtp_server import SmtpFault
from gateway.delivery.payload_mss import build_message, validate_message
from gateway.delivery.payloads import BuildContext
from gateway.model import IdentityStatus, Plan, Severity

ROOT = Path(__file__).resolve().parent.parent
PLANS = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone.utc)
KEY = "rls-" + "a" * 40
DOCTOR = "jeanne.martin@medecin.sandbox.mssante.fr"
SESSAD = "sessad@sessad-val-fictif.sandbox.mssante.fr"
OFFICIAL = Path("/work/shared/reference/official/mss")
if not OFFICIAL.exists():
    OFFICIAL = ROOT.parent / "shared" / "reference" / "official" / "mss"


def load(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load(PLANS[0])


@pytest.fixture(scope="module")
def payload(plan) -> bytes:
    return build_message(plan, BuildContext(tenant_slug="t", tenant_finess=plan.platform.finess, plan_version=1,
                                            now=NOW, idempotency_key=KEY))


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    with MssSandbox(tmp_path_factory.mktemp("mss")) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(operator):
    with operator.store.lock:
        for box in operator.store.mailboxes.values():
            box.messages.clear()
    operator.smtp.faults.clear()
    operator.imap.faults.clear()
    for correspondent in operator.correspondents:
        correspondent.error, correspondent.reply = None, True
    return operator


@pytest.fixture
def connector(sandbox, tmp_path):
    made = sandbox.connector(state_dir=str(tmp_path / "state"))
    yield made
    made.close()


def envelope(payload: bytes, recipient: Recipient, key: str = KEY, exchange: str = "ex-1") -> Envelope:
    return Envelope(exchange, key, "mss", "xdm-message", "message/rfc822", payload, recipient)


def delivered(sandbox, address: str) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.data, policy=policy.default) for m in sandbox.store.messages(address)]


# ------------------------------------------------------------------------------ payload

def test_the_payload_is_a_valid_mssante_message_with_xdm_and_pdf(payload):
    problems = validate_message(payload, use_cda_gate=False)
    assert [p for p in problems if p.severity is Severity.error] == []
    received = M.parse(payload)
    assert received.subject.startswith("XDM/1.0/DDM+Projet personnalisé")
    assert received.header("X-MSS-CODECDA") == "80788-3" and received.header("X-MSS-INS") == "O"
    assert [a.content_type for a in received.attachments] == ["application/zip", "application/pdf"]
    assert received.attachments[1].data.startswith(b"%PDF-1.4")
    assert received.attachments[1].filename.startswith("20260601_Projet personnalisé d'accompagnement_")


def test_an_unqualified_identity_is_announced_x_mss_ins_n(plan):
    data = plan.model_dump(mode="json")
    data["person"]["identity_status"] = "PROV"
    data["person"].pop("ins")
    unqualified = Plan.model_validate(data)
    raw = build_message(unqualified, BuildContext(tenant_slug="t", tenant_finess=None, plan_version=1, now=NOW,
                                                  idempotency_key=KEY))
    assert M.parse(raw).header("X-MSS-INS") == "N"


# ------------------------------------------------------------------------------ sending

def test_a_message_reaches_a_professional_with_the_headers_the_ans_requires(sandbox, connector, payload):
    receipt = connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    assert receipt.status == "accepted" and receipt.detail.startswith("250")
    assert receipt.peer_reference == f"<{KEY}@pcpe-val-fictif.sandbox.mssante.fr>"
    (message,) = delivered(sandbox, DOCTOR)
    assert message["Message-ID"] == receipt.peer_reference
    assert message["Disposition-Notification-To"] == sandbox.platform_address
    assert message["X-MSS-CODECDA"] == "80788-3" and message["X-MSS-MES"] is None


def test_one_message_to_several_mailboxes(sandbox, connector, payload):
    connector.send(envelope(payload, Recipient("professional", f"{DOCTOR}, {SESSAD}")))
    assert len(delivered(sandbox, DOCTOR)) == 1 and len(delivered(sandbox, SESSAD)) == 1


@pytest.mark.parametrize("recipient, address", [
    (Recipient("professional", "10001234567"), DOCTOR),
    (Recipient("organisation", "510000029"), SESSAD),
])
def test_a_recipient_known_by_rpps_or_finess_is_found_in_the_directory(sandbox, connector, payload, recipient, address):
    connector.send(envelope(payload, recipient))
    assert len(delivered(sandbox, address)) == 1


def test_a_recipient_missing_from_the_directory_is_a_permanent_failure(connector, payload):
    with pytest.raises(PermanentError, match="aucune BAL"):
        connector.send(envelope(payload, Recipient("professional", "19999999999")))


def test_the_persons_own_mailbox_is_written_from_the_qualified_ins_without_reply(sandbox, connector, payload, plan):
    connector.send(envelope(payload, Recipient("person", plan.person.ins.value)))
    (message,) = delivered(sandbox, f"{plan.person.ins.value}@patient.mssante.fr")
    assert message["X-MSS-MES"] == "FIN"


def test_the_persons_mailbox_must_match_the_ins_of_the_document(connector, payload):
    with pytest.raises(PermanentError, match="INS"):
        connector.send(envelope(payload, Recipient("person", "277076322082910@patient.mssante.fr")))


def test_without_qualified_ins_nothing_goes_to_the_persons_mailbox(connector, plan):
    data = plan.model_dump(mode="json")
    data["person"]["identity_status"] = "PROV"
    data["person"].pop("ins")
    raw = build_message(Plan.model_validate(data), BuildContext(tenant_slug="t", tenant_finess=None, plan_version=1,
                                                                now=NOW, idempotency_key=KEY))
    with pytest.raises(PermanentError, match="ECO.2.2.6"):
        connector.send(envelope(raw, Recipient("person", plan.person.ins.value)))


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_a_temporary_smtp_failure_is_transient_with_the_servers_words(sandbox, connector, payload, stage):
    sandbox.smtp.faults.add(SmtpFault(stage, "451 4.3.0 file d'attente saturée"))
    with pytest.raises(TransientError, match="451 4.3.0 file d'attente saturée"):
        connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    assert connector.send(envelope(payload, Recipient("professional", DOCTOR))).status == "accepted"


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_a_permanent_smtp_failure_is_permanent_with_the_servers_words(sandbox, connector, payload, stage):
    sandbox.smtp.faults.add(SmtpFault(stage, "554 5.7.1 contenu refusé par la politique de l'opérateur"))
    with pytest.raises(PermanentError, match="554 5.7.1 contenu refusé"):
        connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    assert delivered(sandbox, DOCTOR) == []


def test_a_dropped_connection_is_transient(sandbox, connector, payload):
    sandbox.smtp.faults.add(SmtpFault("data", None, drop=True))
    with pytest.raises(TransientError):
        connector.send(envelope(payload, Recipient("professional", DOCTOR)))


def test_an_unknown_mailbox_of_the_operator_is_permanent(connector, payload):
    with pytest.raises(PermanentError, match="550 5.1.1"):
        connector.send(envelope(payload, Recipient("professional", "inconnu@medecin.sandbox.mssante.fr")))


def test_wrong_credentials_are_permanent(sandbox, tmp_path, payload):
    wrong = sandbox.connector(password="mauvais", state_dir=str(tmp_path))
    with pytest.raises(PermanentError, match="535"):
        wrong.send(envelope(payload, Recipient("professional", DOCTOR)))


def test_an_untrusted_server_certificate_is_permanent(sandbox, tmp_path, payload):
    from connectors.sandbox.pki import TestCA

    stranger = TestCA(tmp_path / "other")
    untrusting = sandbox.connector(ca_file=str(stranger.cert), state_dir=str(tmp_path))
    with pytest.raises(PermanentError, match="certificat"):
        untrusting.send(envelope(payload, Recipient("professional", DOCTOR)))


def test_a_message_larger_than_the_operator_accepts_is_permanent(tmp_path, payload):
    with MssSandbox(tmp_path / "small", size_limit=4096) as small:
        connector = small.connector(state_dir=str(tmp_path / "s"))
        with pytest.raises(PermanentError, match="trop volumineux"):
            connector.send(envelope(payload, Recipient("professional", DOCTOR)))


def test_implicit_tls_works_too(tmp_path, payload):
    with MssSandbox(tmp_path / "tls", implicit_tls=True) as tls:
        connector = tls.connector(state_dir=str(tmp_path / "s"))
        assert connector.send(envelope(payload, Recipient("professional", DOCTOR))).status == "accepted"
        tls.wait()
        assert {i.kind for i in connector.poll()} == {"mss-document", "mss-acknowledgement"}


# ---------------------------------------------------------------------------- receiving

def test_the_reply_of_a_correspondent_becomes_a_proposed_update_and_its_mdn_an_acknowledgement(
        sandbox, connector, payload, plan):
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    assert sandbox.wait()
    items = list(connector.poll())
    kinds = sorted(i.kind for i in items)
    assert kinds == ["mss-acknowledgement", "mss-document"]
    ack = next(i for i in items if i.kind == "mss-acknowledgement")
    assert ack.metadata["exchange"] == "ex-1" and ack.metadata["idempotency_key"] == KEY
    assert ack.metadata["ok"] == "true" and ack.metadata["disposition"] == "processed"
    document = next(i for i in items if i.kind == "mss-document")
    assert document.metadata["ins"] == plan.person.ins.value and document.metadata["action"] == "C"
    proposal = propose(document.payload, plan)
    assert proposal.plan is not None
    assert {op["path"] for op in proposal.patch} == {"/next_review", "/version_label"}
    assert any("next_review" in line for line in proposal.lines())


def test_the_same_inbound_message_fetched_twice_is_imported_once(sandbox, connector, payload):
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    sandbox.wait()
    reply = next(m.data for m in sandbox.inbox() if b"IHE_XDM" in m.data and b"multipart/report" not in m.data[:2000])
    sandbox.store.deliver(sandbox.platform_address, reply)  # redelivered by the operator
    first = [i.kind for i in connector.poll()]
    with sandbox.store.lock:  # a crash left the IMAP flag unset: the message is served again
        for message in sandbox.store.mailboxes[sandbox.platform_address].messages:
            message.flags.discard(PROCESSED)
    second = list(connector.poll())
    assert first.count("mss-document") == 1 and second == []


def test_a_poll_stopped_half_way_leaves_the_message_for_the_next_one(sandbox, connector, payload):
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    sandbox.wait()
    items = connector.poll()
    next(items)
    items.close()
    assert len(list(connector.poll())) >= 1


def test_an_unknown_person_is_answered_with_error_902_in_the_mdn(sandbox, tmp_path, payload):
    connector = sandbox.connector(state_dir=str(tmp_path), resolver=lambda item: IntegrationError("902"))
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    sandbox.wait()
    list(connector.poll())
    answers = [M.parse(m.data) for m in sandbox.store.messages(DOCTOR)]
    mdn = next(a for a in answers if a.report_type == "disposition-notification")
    ack = read_acknowledgement(mdn)
    assert mdn.subject.startswith("[KO Intégration système !][902] XDM/1.0/DDM+")
    assert ack.error_code == "902" and not ack.ok


def test_a_known_person_is_answered_with_a_positive_mdn(sandbox, tmp_path, payload):
    connector = sandbox.connector(state_dir=str(tmp_path), resolver=lambda item: None)
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    sandbox.wait()
    list(connector.poll())
    mdn = next(M.parse(m.data) for m in sandbox.store.messages(DOCTOR) if b"disposition-notification" in m.data)
    assert read_acknowledgement(mdn).ok


def _incoming(sandbox, sender: str, *, xdm_data: bytes, dnt: bool) -> bytes:
    text, html = M.bodies("Document", "Test")
    body = M.build(subject="XDM/1.0/DDM+Document", text=text, html=html, xdm=xdm_data, cda_codes=["80788-3"],
                   qualified_ins=True, pdf=None, pdf_name=None, now=NOW)
    return M.address(body, sender=sender, to=[sandbox.platform_address], message_id=M.new_message_id(sender),
                     mdn_to=sender if dnt else None)


def test_a_hostile_archive_received_is_quarantined_and_the_sender_told_906(sandbox, connector):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>")
        archive.writestr("../../EVIL.TXT", b"pwned")
    sandbox.store.deliver(sandbox.platform_address, _incoming(sandbox, DOCTOR, xdm_data=buffer.getvalue(), dnt=True))
    (item,) = list(connector.poll())
    assert item.kind == "mss-quarantined" and item.metadata["rule"] == "zip-name-traversal"
    mdn = next(M.parse(m.data) for m in sandbox.store.messages(DOCTOR))
    assert read_acknowledgement(mdn).error_code == "906"


def test_without_mdn_request_an_error_is_told_by_a_standard_mail(sandbox, connector, plan):
    packed = xdm.pack_plan(plan, now=NOW)
    broken = xdm.write_archive([("IHE_XDM/SUBSET01/METADATA.XML", packed.metadata),
                                ("IHE_XDM/SUBSET01/DOC0001.XML", packed.cda + b" ")], (2026, 1, 1, 0, 0, 0))
    sandbox.store.deliver(sandbox.platform_address, _incoming(sandbox, SESSAD, xdm_data=broken, dnt=False))
    (item,) = list(connector.poll())
    assert item.metadata["rule"] == "xdm-hash-mismatch"
    (mail,) = [M.parse(m.data) for m in sandbox.store.messages(SESSAD)]
    assert mail.report_type is None and mail.subject.startswith("[KO Intégration système !][906]")
    assert read_acknowledgement(mail).error_code == "906"


def test_the_gateway_acknowledges_later_with_the_error_it_found(sandbox, connector, payload):
    connector.send(envelope(payload, Recipient("professional", DOCTOR)))
    sandbox.wait()
    document = next(i for i in list(connector.poll()) if i.kind == "mss-document")
    assert connector.acknowledge(document.metadata["message_id"], IntegrationError("904")) == "mdn"
    mdn = next(M.parse(m.data) for m in sandbox.store.messages(DOCTOR) if b"disposition-notification" in m.data)
    assert read_acknowledgement(mdn).error_code == "904"


def test_an_imap_outage_is_transient(sandbox, connector):
    sandbox.imap.faults.add("drop")
    with pytest.raises(TransientError):
        list(connector.poll())
    sandbox.imap.faults.add("no", times=3)
    with pytest.raises(TransientError):
        list(connector.poll())


def test_a_delivery_status_notification_is_matched_to_the_exchange(sandbox, connector):
    dsn = (f"From: MAILER-DAEMON@sandbox.mssante.fr\r\nTo: {sandbox.platform_address}\r\n"
           "Message-ID: <dsn-1@sandbox>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nSubject: Non remis\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nNon remis.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           "Reporting-MTA: dns; sandbox.mssante.fr\r\n\r\nFinal-Recipient: rfc822; x@y.mssante.fr\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 inconnu\r\n\r\n"
           f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{KEY}@pcpe-val-fictif.sandbox.mssante.fr>\r\n"
           "\r\n--b--\r\n").encode()
    sandbox.store.deliver(sandbox.platform_address, dsn)
    (item,) = list(connector.poll())
    assert item.kind == "mss-acknowledgement" and item.metadata["acknowledgement"] == "dsn"
    assert item.metadata["idempotency_key"] == KEY and item.metadata["ok"] == "false"
    assert item.metadata["error_code"] == "5.1.1"


# ------------------------------------------------------------------------ official examples

@pytest.mark.skipif(not (OFFICIAL / "mdn-erreur-integration-example.eml").exists(),
                    reason="exemples officiels MSSanté absents (shared/reference/official/mss)")
def test_the_official_mdn_example_is_read_despite_its_defects():
    """Specs §11.7: em-dash boundaries, `Content-Transfert-Encoding`, legacy `processed/Error:`."""
    ack = read_acknowledgement(M.parse((OFFICIAL / "mdn-erreur-integration-example.eml").read_bytes()))
    assert ack.kind == "mdn" and ack.error_code == "902" and not ack.ok
    assert ack.original_message_id.replace(" ", "") == "<199509192301.23456>"


@pytest.mark.skipif(not (OFFICIAL / "notification-erreur-integration-example.eml").exists(),
                    reason="exemples officiels MSSanté absents (shared/reference/official/mss)")
def test_the_official_standard_error_mail_example_is_read():
    ack = read_acknowledgement(M.parse((OFFICIAL / "notification-erreur-integration-example.eml").read_bytes()))
    assert ack.kind == "error-mail" and ack.error_code == "902"


def test_relais_mdn_follows_rfc_8098_error_field_not_the_legacy_modifier(payload):
    original = M.parse(M.address(payload, sender="a@b.mssante.fr", to=["c@d.mssante.fr"], message_id="<m@b>",
                                 mdn_to="a@b.mssante.fr"))
    raw = build_mdn(original, mailbox="c@d.mssante.fr", error=IntegrationError("902"), now=NOW, message_id="<n@d>")
    text = raw.decode("utf-8", "replace")
    assert "Disposition: automatic-action/MDN-sent-automatically; processed/error\n" in text.replace("\r\n", "\n")
    assert "Error: 902^Identifiant patient inconnu^applicationErrorCondition" in text
    assert "Original-Message-ID: <m@b>" in text


# ----------------------------------------------------------------------------- directory

def test_the_directory_finds_mailboxes_by_name_rpps_finess_and_type(sandbox):
    from connectors.mss.directory import directory_from_settings

    directory = directory_from_settings(sandbox.config())
    try:
        assert [m.address for m in directory.lookup("martin")] == [DOCTOR]
        assert [m.type for m in directory.lookup("10001234567")] == ["PER"]
        assert [m.address for m in directory.lookup("510000029")] == [SESSAD]
        assert directory.lookup("martin", mailbox_type="APP") == []
    finally:
        directory.close()


def test_a_mailbox_on_the_red_list_is_never_returned(sandbox):
    from connectors.mss.directory import directory_from_settings
    from connectors.sandbox.mss_correspondent import Correspondent

    sandbox.annuaire.publish(Correspondent("secret@medecin.sandbox.mssante.fr", "Dr Paul DISCRET",
                                           identifier="10009999999"), red_list=True)
    directory = directory_from_settings(sandbox.config())
    try:
        assert directory.lookup("DISCRET") == []
    finally:
        directory.close()


def test_the_directory_wants_its_api_key(sandbox):
    from connectors.base import PermanentError as Refused
    from connectors.mss.directory import directory_from_settings

    directory = directory_from_settings({**sandbox.config(), "directory_api_key": "faux"})
    try:
        with pytest.raises(Refused, match="ESANTE-API-KEY"):
            directory.lookup("martin")
    finally:
        directory.close()


def test_cli_lookup_prints_the_mailboxes(sandbox, monkeypatch, capsys):
    from gateway.cli.main import main as relais
    from gateway.settings import settings

    monkeypatch.setenv("RELAIS_CONNECTORS__MSS__DIRECTORY_URL", sandbox.directory_server.url)
    monkeypatch.setenv("RELAIS_CONNECTORS__MSS__DIRECTORY_API_KEY", "sandbox-esante-api-key")
    monkeypatch.setenv("RELAIS_CONNECTORS__MSS__DIRECTORY_CA_FILE", str(sandbox.ca.cert))
    settings.cache_clear()
    try:
        assert relais(["mss", "lookup", "MARTIN"]) == 0
        assert DOCTOR in capsys.readouterr().out
        assert relais(["mss", "lookup", "Personne-Inexistante"]) == 3
    finally:
        settings.cache_clear()


# ---------------------------------------------------------------------------------- demo

def test_demo_round_trip_sends_each_plan_and_shows_each_reply_as_a_proposed_update(tmp_path):
    from connectors.sandbox.mss import demo_round_trip, describe

    plans = [load(p) for p in PLANS[:3]]
    results = demo_round_trip(plans, tmp_path / "demo")
    assert [r.person for r in results] == [p.person.local_id for p in plans]
    assert all(r.acknowledgement == "processed" for r in results)
    assert all(any("/next_review" in line for line in r.proposal_lines) for r in results)
    assert "mise à jour proposée au coordinateur" in "\n".join(describe(results))
