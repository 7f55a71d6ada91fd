"""The `mss` suite: an MSSanté operator (specs §4.1) as Relais's MSSanté connector uses it — SMTP
submission and IMAP, TLS only (STARTTLS on 587/143 or implicit TLS), the structure's
certificate, the mailbox's credentials — and what it must refuse: a session in clear, a
sender without authentication, wrong credentials, an unknown recipient, a message over its
size. A message carrying an IHE_XDM.zip (Relais's own, from a fixture plan) is sent to the
mailbox itself and read back over IMAP with its structure intact; with `--option
correspondent=…` the correspondent's processing MDN (RFC 8098) is awaited.

The suite's own messages are removed from INBOX at the end of each test (`keep=yes` to leave
them)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import imaplib
import smtplib
import ssl

from gateway.conformance.runner.suites.base import Check, Endpoint, Failed, Skip, Suite
from gateway.conformance.runner.suites.mss_session import (FAKE_LOGIN, FAKE_PASSWORD, MssSession, close,
                                                           logout, parse)

DISCONNECTED = (smtplib.SMTPServerDisconnected, smtplib.SMTPException, imaplib.IMAP4.error, ssl.SSLError,
                ConnectionError, OSError)


def transport(test):
    """The test, with a connection the server broke or refused reported as a failure of the
    test (what the server did), not as an error of the suite."""

    def run(s: MssSession) -> None:
        try:
            test(s)
        except (Skip, Failed):
            raise
        except (smtplib.SMTPResponseException, imaplib.IMAP4.error) as exc:
            s.fail("mss-refused", f"refus inattendu du serveur : {exc}")
        except DISCONNECTED as exc:
            s.fail("mss-transport", f"échange impossible avec {s.smtp_host or s.imap_host} : {type(exc).__name__} : {exc}")

    run.__name__ = test.__name__
    return run


def _ready(s: MssSession) -> None:
    if s.config_errors:
        raise Skip("configuration incomplète (voir le test « configuration »)")


def _text(answer) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def test_message(s: MssSession, tag: str, to: str, *, mdn: bool = False) -> tuple[str, bytes, dict]:
    """A message as Relais sends it (IHE_XDM.zip + PDF, MSSanté headers) with a Message-ID of
    the run; returns (Message-ID, bytes, the parts sent)."""
    from connectors.mss import message as M
    from connectors.mss import xdm
    from connectors.mss.pdf import cda_to_pdf
    from gateway.conformance.runner.samples import fixture_plan
    from mappings.cda import constants as C

    plan, now = fixture_plan(0), dt.datetime.now(dt.UTC)
    packed = xdm.pack_plan(plan, now=now)
    pdf = cda_to_pdf(packed.cda, now=now)
    text, html = M.bodies(plan.title, "Relais (test de conformité)")
    body = M.build(subject=M.subject_for(plan.title, plan), text=text, html=html, xdm=packed.archive,
                   cda_codes=[C.DOC_TYPE_CODE], qualified_ins=True, pdf=pdf,
                   pdf_name=M.pdf_filename(plan, C.DOC_TYPE_DISPLAY), now=now)
    message_id = f"<relais-conformite-{s.run_id}-{tag}@{s.address.rpartition('@')[2] or 'relais.invalid'}>"
    raw = M.address(body, sender=s.address, to=[to], message_id=message_id, mdn_to=s.address if mdn else None)
    return message_id, raw, {"xdm": packed.archive, "cda": packed.cda, "pdf": pdf}


# --- tests ------------------------------------------------------------------------------------------
def configuration(s: MssSession) -> None:
    if s.config_errors:
        s.fail("mss-options", " ; ".join(s.config_errors))


def smtp_tls(s: MssSession) -> None:
    _ready(s)
    if s.smtp_tls:
        greeting = s.plain_greeting(s.smtp_host, s.smtp_port)
        s.check(not greeting.startswith(b"220"), "smtp-cleartext",
                f"port {s.smtp_port} (TLS implicite) : bannière en clair {greeting[:60]!r}")
        client = s.smtp(authenticate=False)
        s.check_tls(client.sock, "SMTP (TLS implicite)")
        s.check(client.has_extn("auth"), "smtp-auth-offered", "AUTH non annoncé dans la session TLS (RFC 4954)")
        close(client)
        return
    client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout)
    try:
        client.ehlo("relais-conformite.invalid")
        if not client.has_extn("starttls"):
            s.fail("smtp-starttls", "STARTTLS non annoncé (RFC 3207 ; specs §4.1 : soumission SMTP 587 avec STARTTLS)")
        token = base64.b64encode(f"\0{FAKE_LOGIN}\0{FAKE_PASSWORD}".encode()).decode()
        code, answer = client.docmd("AUTH", f"PLAIN {token}")
        s.check(code >= 500 and code != 535, "smtp-auth-cleartext",
                f"AUTH avant STARTTLS → {code} {_text(answer)} ; un refus sans examen des identifiants (530/538/5xx) "
                "est attendu, jamais d'authentification en clair (RFC 4954 §4, specs §4.1)")
        code, answer = client.mail(FAKE_LOGIN)
        s.check(code >= 500, "smtp-mail-cleartext",
                f"MAIL FROM avant STARTTLS → {code} {_text(answer)} ; 530 5.7.0 attendu (RFC 3207 §4)")
        client.rset()
        client.starttls(context=s.context)
        client.ehlo("relais-conformite.invalid")
        s.check_tls(client.sock, "SMTP après STARTTLS")
        s.check(client.has_extn("auth"), "smtp-auth-offered", "AUTH non annoncé après STARTTLS (RFC 4954)")
    finally:
        close(client)


def imap_tls(s: MssSession) -> None:
    _ready(s)
    if s.imap_tls:
        greeting = s.plain_greeting(s.imap_host, s.imap_port)
        s.check(not greeting.startswith(b"* "), "imap-cleartext",
                f"port {s.imap_port} (TLS implicite) : salutation en clair {greeting[:60]!r}")
        client = s.imap(authenticate=False)
        s.check_tls(client.sock, "IMAP (TLS implicite)")
        logout(client)
        return
    client = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=s.timeout)
    try:
        capabilities = set(client.capabilities)
        if "STARTTLS" not in capabilities:
            s.fail("imap-starttls", "STARTTLS non annoncé (RFC 3501 §6.2.1 ; specs §4.1 : IMAP 143 avec STARTTLS)")
        s.check("LOGINDISABLED" in capabilities, "imap-logindisabled",
                "LOGINDISABLED non annoncé avant STARTTLS : le serveur accepte LOGIN en clair (RFC 3501 §6.2.3, §7.2.1)")
        client.starttls(ssl_context=s.context)
        s.check_tls(client.sock, "IMAP après STARTTLS")
    finally:
        logout(client)


def mutual_tls(s: MssSession) -> None:
    _ready(s)
    if not s.endpoint.client_cert:
        raise Skip("aucun certificat client donné (--client-cert/--client-key) : le TLS mutuel ne peut pas être vérifié")
    if s.options.get("mutual-tls", "").lower() in ("no", "non", "false", "0"):
        raise Skip("--option mutual-tls=no : l'opérateur n'exige pas le certificat de la structure")
    for what, connect in (("SMTP", lambda: s.smtp(authenticate=False, client_cert=False)),
                          ("IMAP", lambda: s.imap(authenticate=False, client_cert=False))):
        try:
            client = connect()
        except Failed:
            raise
        except DISCONNECTED:
            continue  # refused during or right after the handshake
        (close if what == "SMTP" else logout)(client)
        s.issue("mutual-tls", f"{what} : session TLS acceptée sans certificat client (TLS mutuel exigé, specs §4.1 "
                f"et §8, Ref#2 ECO.1.1.10)")


def smtp_authentication(s: MssSession) -> None:
    _ready(s)
    client = s.smtp(authenticate=False)
    try:
        code, answer = client.mail(s.address)
        s.check(code >= 500, "smtp-auth-required",
                f"MAIL FROM sans AUTH → {code} {_text(answer)} ; 530 5.7.0 attendu (RFC 4954 §6)")
        client.rset()
        try:
            client.login(s.login, FAKE_PASSWORD)
            s.issue("smtp-bad-credentials", "AUTH avec un mauvais mot de passe acceptée")
        except smtplib.SMTPAuthenticationError as exc:
            s.check(exc.smtp_code >= 500, "smtp-bad-credentials",
                    f"mauvais mot de passe → {exc.smtp_code} ; 535 5.7.8 attendu (RFC 4954 §6)")
    finally:
        close(client)
    try:
        close(s.smtp())
    except smtplib.SMTPAuthenticationError as exc:
        s.fail("smtp-credentials", f"les identifiants donnés sont refusés : {exc.smtp_code} {_text(exc.smtp_error)}")


def imap_authentication(s: MssSession) -> None:
    _ready(s)
    client = s.imap(authenticate=False)
    try:
        try:
            client.login(s.login, FAKE_PASSWORD)
            s.issue("imap-bad-credentials", "LOGIN avec un mauvais mot de passe accepté")
        except imaplib.IMAP4.error:
            pass  # NO [AUTHENTICATIONFAILED] (RFC 3501 §6.2.3)
    finally:
        logout(client)
    try:
        logout(s.imap())
    except imaplib.IMAP4.error as exc:
        s.fail("imap-credentials", f"les identifiants donnés sont refusés ou INBOX inaccessible : {exc}")


def unknown_recipient(s: MssSession) -> None:
    _ready(s)
    unknown = s.options.get("unknown-recipient") or f"relais-conformite-absent-{s.run_id}@{s.address.rpartition('@')[2]}"
    client = s.smtp()
    try:
        code, answer = client.mail(s.address)
        if code != 250:
            s.fail("smtp-mail", f"MAIL FROM → {code} {_text(answer)}")
        code, answer = client.rcpt(unknown)
        s.check(500 <= code < 600, "smtp-unknown-recipient",
                f"RCPT TO <{unknown}> → {code} {_text(answer)} ; 550 5.1.1 attendu (RFC 5321 §4.2.2, RFC 3463)")
        client.rset()
    finally:
        close(client)


def size_limit(s: MssSession) -> None:
    _ready(s)
    client = s.smtp()
    try:
        announced = client.esmtp_features.get("size", "").strip()
        limit = int(announced) if announced.isdigit() and int(announced) else int(s.options.get("size-limit") or 0)
        if not limit:
            raise Skip("le serveur n'annonce pas de taille maximale (SIZE, RFC 1870) : --option size-limit=OCTETS")
        if announced:
            code, answer = client.mail(s.address, [f"SIZE={limit + 1}"])
            s.check(500 <= code < 600, "smtp-size-declared",
                    f"MAIL FROM SIZE={limit + 1} (limite {limit}) → {code} {_text(answer)} ; 552 attendu (RFC 1870 §6)")
            client.rset()
    finally:
        close(client)
    if limit + 1 > int(s.options.get("max-transfer") or 16 * 1024 * 1024):
        return  # the declared size was refused; sending more than max-transfer is not worth it
    message_id = f"<relais-conformite-{s.run_id}-taille@{s.address.rpartition('@')[2]}>"
    head = (f"From: {s.address}\r\nTo: {s.address}\r\nSubject: Relais conformite : limite de taille\r\n"
            f"Message-ID: {message_id}\r\nDate: {dt.datetime.now(dt.UTC):%a, %d %b %Y %H:%M:%S +0000}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = b"X" * 76 + b"\r\n"
    big = head + line * ((limit - len(head)) // len(line) + 2)
    first_uid = s.uid_next()
    client = s.smtp()
    try:
        client.mail(s.address)
        client.rcpt(s.address)
        try:
            code, answer = client.data(big)
        except smtplib.SMTPServerDisconnected:
            s.fail("smtp-size-clean", f"message de {len(big)} octets (limite {limit}) : connexion coupée sans réponse "
                   "5xx (RFC 1870 §6 : 552)")
        s.check(500 <= code < 600, "smtp-size-data",
                f"message de {len(big)} octets (limite {limit}) → {code} {_text(answer)} ; 552 attendu (RFC 1870 §6)")
        s.check(client.noop()[0] == 250, "smtp-size-clean", "la session ne répond plus après le refus (NOOP)")
    finally:
        close(client)
        if not s.keep:
            s.delete([uid for uid, raw in s.fetch_since(first_uid) if message_id.encode() in raw[:4096]])


def xdm_round_trip(s: MssSession) -> None:
    from connectors.mss import message as M
    from connectors.mss import xdm

    _ready(s)
    message_id, raw, parts = test_message(s, "xdm", s.address)
    first_uid = s.uid_next()
    reply = s.send([s.address], raw, "envoi d'un message IHE_XDM.zip à la boîte elle-même")
    timeout = float(s.options.get("delivery-timeout") or 30)
    found = s.wait_for(first_uid, lambda ms: any(_mid(r) == message_id for _, r in ms), timeout)
    mine = [(uid, r) for uid, r in found if _mid(r) == message_id]
    try:
        if not mine:
            s.fail("imap-not-found", f"message accepté ({reply}) mais absent de INBOX après {timeout:.0f} s "
                   f"(recherché par Message-ID {message_id})")
        received = M.parse(mine[0][1])
        sent = M.parse(raw)
        s.check(_structure(received.message) == _structure(sent.message), "mime-structure",
                f"structure MIME relue {_structure(received.message)} ≠ envoyée {_structure(sent.message)}")
        for header in ("Subject", "X-MSS-CODECDA", "X-MSS-INS", "From"):
            s.check(received.header(header) == sent.header(header), "mime-header",
                    f"en-tête {header} relu {received.header(header)!r} ≠ envoyé {sent.header(header)!r}")
        if received.xdm is None:
            s.fail("xdm-missing", "pièce jointe IHE_XDM.zip absente du message relu (specs §4.2)")
        s.check(received.xdm.data == parts["xdm"], "xdm-bytes",
                f"IHE_XDM.zip relu ({hashlib.sha256(received.xdm.data).hexdigest()[:12]}…) ≠ envoyé")
        package = xdm.read(received.xdm.data)
        for problem in xdm.check(package):
            if problem.severity.value == "error":
                s.issue(problem.rule, f"IHE_XDM.zip relu : {problem.message}", location=problem.location)
        s.check(any(e.content == parts["cda"] for e in package.entries), "xdm-cda", "le CDA du paquet relu a changé")
        pdf = next((a for a in received.attachments if a.content_type == "application/pdf"), None)
        s.check(pdf is not None and pdf.data == parts["pdf"], "pdf-bytes", "le PDF relu est absent ou a changé")
    finally:
        s.delete([uid for uid, _ in mine])


def mdn(s: MssSession) -> None:
    from connectors.mss import message as M
    from connectors.mss.mdn import read_acknowledgement

    _ready(s)
    correspondent = s.options.get("correspondent")
    if not correspondent:
        raise Skip("aucun correspondant qui répond par un MDN (--option correspondent=ADRESSE)")
    message_id, raw, _ = test_message(s, "mdn", correspondent, mdn=True)
    first_uid = s.uid_next()
    s.send([correspondent], raw, f"envoi à {correspondent} avec Disposition-Notification-To")
    timeout = float(s.options.get("mdn-timeout") or 60)

    def acknowledgement(item):
        try:
            ack = read_acknowledgement(M.parse(item[1]))
        except M.MessageRefused:
            return None
        return ack if ack is not None and ack.original_message_id.strip() == message_id else None

    found = s.wait_for(first_uid, lambda ms: any(acknowledgement(m) for m in ms), timeout)
    ours = [(uid, r) for uid, r in found if acknowledgement((uid, r)) or _header(r, "In-Reply-To") == message_id]
    try:
        acks = [acknowledgement(m) for m in found if acknowledgement(m)]
        if not acks:
            s.fail("mdn-missing", f"aucun MDN de {correspondent} pour {message_id} en {timeout:.0f} s (RFC 8098 ; "
                   "specs §4.1 accusés)")
        ack = acks[0]
        s.check(ack.kind == "mdn", "mdn-form", f"accusé de forme {ack.kind}, MDN RFC 8098 attendu "
                "(multipart/report; report-type=disposition-notification)")
        s.check(ack.ok, "mdn-disposition", f"disposition {ack.disposition} {ack.error_code} {ack.error_text}".strip()
                + " ; processed attendu")
        s.check(bool(ack.final_recipient), "mdn-final-recipient", "champ Final-Recipient absent (RFC 8098 §3.2.4)")
    finally:
        s.delete([uid for uid, _ in ours])


def _header(raw: bytes, name: str) -> str:
    return str(parse(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n").get(name, "") or "").strip()


def _mid(raw: bytes) -> str:
    return _header(raw, "Message-ID")


def _structure(message) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


class MssSuite(Suite):
    name = "mss"
    title = "opérateur MSSanté (SMTP 587 STARTTLS ou 465, IMAP 143 STARTTLS ou 993, IHE_XDM.zip, MDN)"

    def session(self, endpoint: Endpoint) -> MssSession:
        return MssSession(endpoint)

    def checks(self) -> list[Check]:
        return [
            Check("configuration", "options de la suite : address, password (et imap, correspondent…)", configuration,
                  "specs §4.1"),
            Check("smtp-tls", "SMTP : STARTTLS annoncé (ou TLS implicite), rien en clair (ni AUTH ni MAIL), TLS ≥ 1.2, "
                  "certificat du serveur vérifié", transport(smtp_tls), "specs §4.1 ; RFC 3207"),
            Check("imap-tls", "IMAP : STARTTLS et LOGINDISABLED annoncés (ou TLS implicite), TLS ≥ 1.2, "
                  "certificat vérifié",
                  transport(imap_tls), "specs §4.1 ; RFC 3501 §6.2.1, §6.2.3"),
            Check("tls-mutuel", "SMTP et IMAP : sans le certificat de la structure, la session TLS est refusée",
                  transport(mutual_tls), "specs §4.1, §8 (Ref#2 ECO.1.1.10)"),
            Check("smtp-authentification", "SMTP : MAIL sans AUTH refusé (530), mauvais mot de passe refusé (535), "
                  "les identifiants donnés acceptés", transport(smtp_authentication), "RFC 4954 §6"),
            Check("imap-authentification", "IMAP : mauvais mot de passe refusé (NO), les identifiants donnés acceptés, "
                  "INBOX sélectionnable", transport(imap_authentication), "RFC 3501 §6.2.3"),
            Check("destinataire-inconnu", "RCPT TO d'une BAL inconnue : 5xx (550 5.1.1)", transport(unknown_recipient),
                  "RFC 5321 §4.2.2, RFC 3463"),
            Check("taille", "message au-delà de la taille annoncée (SIZE) : 5xx net (552), la session reste utilisable",
                  transport(size_limit), "RFC 1870 §6"),
            Check("xdm-aller-retour", "message IHE_XDM.zip + PDF accepté (250), relu en IMAP avec sa structure MIME, "
                  "ses en-têtes MSSanté et les mêmes octets", transport(xdm_round_trip), "specs §4.1, §4.2"),
            Check("accuse-mdn", "le correspondant renvoie un MDN « processed » (facultatif : --option correspondent)",
                  transport(mdn), "specs §4.1 (accusés) ; RFC 8098"),
        ]
