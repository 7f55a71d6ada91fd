"""Acknowledgements of MSSanté messages (specs §4.1; HL7MSS volet "Transmission au LPS de
documents CDA provenant d'un courriel MSSanté" 1.1.3, pages struct-msg-mdn, struct-email-standard
and error-codes).

Sending, for each message received (`needed`): a processing MDN (RFC 8098, multipart/report
with the human text, the machine-readable `message/disposition-notification` and the original
message whole) only when the message carried `Disposition-Notification-To`; without it, a
"standard" mail, and only when integration failed. Errors use the volet's form — on error
`Disposition: automatic-action/MDN-sent-automatically; processed/error` with the code in the
`Error:` field (volet 1.1.3: the older `processed/Error: 902^…` modifier is not RFC 8098
grammar, specs §11.7) — and the subject `[KO Intégration système !][<code>] <subject>`.

Reading (`read_acknowledgement`): MDNs (both forms, and the malformed official example),
delivery status notifications (RFC 3464) and the standard error mails, each led back to the
original Message-ID, hence to Relais' exchange (`message.key_of`).
"""

from __future__ import annotations

import datetime as dt
import email
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime

from connectors.mss.message import SUBJECT_PREFIX, Received, key_of

KO_PREFIX = "[KO Intégration système !]"
# applicationErrorCondition (HL7MSS error-codes.md, "à titre indicatif")
APPLICATION_ERRORS = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Erreur 'Autre'",
}


@dataclass(frozen=True)
class IntegrationError:
    code: str  # 900…906
    detail: str = ""  # French, no personal data

    @property
    def label(self) -> str:
        return APPLICATION_ERRORS.get(self.code, APPLICATION_ERRORS["906"])

    @property
    def hl7(self) -> str:
        """`code^libellé^applicationErrorCondition| E^Error^errorSeverity` (ERR of the volet)."""
        return f"{self.code}^{self.label}^applicationErrorCondition| E^Error^errorSeverity"


def needed(original: Received, error: IntegrationError | None) -> str | None:
    """"mdn" when the sender asked for one, "mail" for an error without MDN request, else None."""
    if original.disposition_notification_to:
        return "mdn"
    return "mail" if error is not None else None


def _subject(original: Received, error: IntegrationError | None) -> str:
    subject = original.subject if original.subject.startswith(SUBJECT_PREFIX) else f"{SUBJECT_PREFIX}+{original.subject}"
    return f"{KO_PREFIX}[{error.code}] {subject}" if error else subject


def _original(original: Received) -> Message:
    message = email.message_from_bytes(original.raw, policy=policy.compat32)
    try:
        message.as_bytes(policy=policy.SMTP)  # as the report writes it
    except Exception:  # noqa: BLE001 - e.g. a multipart without boundary holding 8-bit text: the
        # stdlib cannot write it back; its header block is returned instead (RFC 6522 §3)
        head = re.split(rb"\r?\n\r?\n", original.raw, maxsplit=1)[0].decode("utf-8", "replace")
        return MIMEText(head + "\n", "rfc822-headers", "utf-8")
    return MIMEMessage(message, "rfc822")


def _envelope(message: Message, *, sender: str, to: str, subject: str, original: Received, now: dt.datetime,
              message_id: str) -> None:
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Subject"] = subject
    if original.message_id:
        message["In-Reply-To"] = original.message_id
        message["References"] = original.message_id
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: never answered automatically


def _ascii(text: str) -> str:
    """The MDN's fields are written as ASCII (RFC 8098 §3.1): a received value that is not is
    kept with `?` for what is not (else `as_bytes` fails)."""
    return text.encode("ascii", "replace").decode("ascii")


def build_mdn(original: Received, *, mailbox: str, error: IntegrationError | None, now: dt.datetime,
              message_id: str, reporting_ua: str = "Relais") -> bytes:
    """RFC 8098 processing MDN for `original`, sent by `mailbox` (the APP mailbox that received it)."""
    report = MIMEMultipart("report", report_type="disposition-notification", policy=policy.SMTP)
    _envelope(report, sender=mailbox, to=original.disposition_notification_to or original.sender,
              subject=_subject(original, error), original=original, now=now, message_id=message_id)
    if error:
        human = ("Le document n’a pas pu être intégré automatiquement pour la raison suivante : "
                 f"{error.label} (code {error.code}).\n" + (f"Détail : {error.detail}\n" if error.detail else "")
                 + f"Le système a retourné l'erreur {error.hl7}\n")
    else:
        human = "Le document a été reçu et intégré pour revue par le coordinateur de parcours.\n"
    report.attach(MIMEText(human, "plain", "utf-8"))
    fields = Message(policy=policy.compat32)
    fields["Reporting-UA"] = reporting_ua
    original_recipient = original.header("Original-Recipient")
    if original_recipient:
        fields["Original-Recipient"] = _ascii(original_recipient)
    fields["Final-Recipient"] = f"rfc822;{mailbox}"
    if original.message_id:
        fields["Original-Message-ID"] = _ascii(original.message_id)
    fields["Disposition"] = ("automatic-action/MDN-sent-automatically; processed/error" if error
                             else "automatic-action/MDN-sent-automatically; processed")
    if error:
        fields["Error"] = error.hl7
    report.attach(MIMEMessage(fields, "disposition-notification"))
    report.attach(_original(original))
    return report.as_bytes()


def build_error_mail(original: Received, *, mailbox: str, error: IntegrationError, now: dt.datetime,
                     message_id: str) -> bytes:
    """The "standard" mail telling an integration error when no MDN was asked for."""
    mail = MIMEMultipart("mixed", policy=policy.SMTP)
    reply_to = original.header("Reply-To") or original.sender
    _envelope(mail, sender=mailbox, to=reply_to, subject=_subject(original, error), original=original,
              now=now, message_id=message_id)
    text = ("Bonjour,\n\nLe document envoyé n’a pas pu être intégré correctement dans le système.\n"
            "Voici les détails de l’erreur rencontrée :\n\n"
            f"- Erreur détectée : {error.label}\n- Code d’erreur : {error.code}\n"
            + (f"- Détail : {error.detail}\n" if error.detail else "")
            + "\nVous trouverez en pièce jointe le courriel d'origine, avec son contenu et ses fichiers.\n"
            "Veuillez vérifier les informations fournies et soumettre à nouveau les documents après "
            "correction.\n\nCordialement,\nLa passerelle Relais de la plateforme\n")
    mail.attach(MIMEText(text, "plain", "utf-8"))
    attached = _original(original)
    attached.add_header("Content-Disposition", "attachment", filename="message_original.eml")
    mail.attach(attached)
    return mail.as_bytes()


# ---------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Acknowledgement:
    kind: str  # "mdn" | "dsn" | "error-mail"
    original_message_id: str
    ok: bool
    disposition: str  # MDN disposition type, DSN action, or "error"
    error_code: str = ""
    error_text: str = ""
    final_recipient: str = ""

    @property
    def idempotency_key(self) -> str | None:
        return key_of(self.original_message_id)


_FIELD = re.compile(r"^(Original-Message-ID|Disposition|Error|Final-Recipient|Original-Envelope-Id|Action|Status|"
                    r"Diagnostic-Code)\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_KO = re.compile(r"^\s*\[(?:KO Int[ée]gration syst[èe]me !|Erreur d[’']int[ée]gration !)\]\s*\[(\d+)\]")


def _fields(part: Message) -> dict[str, str]:
    """MDN/DSN fields: in the part's body (RFC form) or, when the blank line is missing (the
    official example, specs §11.7), among the part's own headers."""
    out: dict[str, str] = {}
    sources = [part]
    payload = part.get_payload()
    if isinstance(payload, list):
        sources += [p for p in payload if isinstance(p, Message)]
    elif isinstance(payload, str):
        out.update({k.lower(): v.strip() for k, v in _FIELD.findall(payload)})
    for source in sources:
        for name, raw in source.raw_items():
            value = _read(source, name, raw)
            if value is not None:
                out.setdefault(name.lower(), " ".join(value.split()))
    return out


def _read(message: Message, name: str, raw: str) -> str | None:
    """A header's value as the message's policy reads it, or None when the stdlib's header
    parser fails on a malformed value (IndexError, HeaderParseError… on e.g. `Message-ID: <`)."""
    try:
        return str(message.policy.header_fetch_parse(name, raw))
    except Exception:  # noqa: BLE001 - an unreadable header of an untrusted message: ignored
        return None


def _error_of(fields: dict[str, str]) -> tuple[str, str]:
    text = fields.get("error", "")
    disposition = fields.get("disposition", "")
    if not text and "/error:" in disposition.lower():  # legacy `processed/Error: 902^…`
        text = disposition[disposition.lower().index("/error:") + 7:].strip()
    code = re.match(r"\s*(\d{1,4})\^", text)
    return (code.group(1) if code else ""), text


def _original_id_from_attachment(received: Received) -> str:
    for part in received.message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                raw = next((v for n, v in inner.raw_items() if n.lower() == "message-id"), None)
                found = _read(inner, "Message-ID", raw) if raw is not None else None
                if found:
                    return found.strip()
            if isinstance(inner, str):
                found = re.search(r"^Message-ID:\s*(\S+)", inner, re.IGNORECASE | re.MULTILINE)
                if found:
                    return found.group(1)
    return ""


def read_acknowledgement(received: Received) -> Acknowledgement | None:
    """An MDN, a DSN or a standard error mail, or None when the message is none of them."""
    message = received.message
    if received.report_type == "disposition-notification" or "disposition-notification" in \
            message.get("Content-Type", "").lower():
        part = next((p for p in message.walk() if p.get_content_type() == "message/disposition-notification"), None)
        fields = _fields(part) if part is not None else {}
        if not fields.get("disposition"):  # structure unreadable: read the fields from the raw text
            text = received.raw.decode("utf-8", "replace")
            fields = {k.lower(): v.strip() for k, v in _FIELD.findall(text)}
        disposition = fields.get("disposition", "")
        code, error = _error_of(fields)
        kind = disposition.split(";")[-1].strip().split("/")[0].strip().lower() if disposition else ""
        return Acknowledgement(
            "mdn", fields.get("original-message-id", "").strip() or received.in_reply_to,
            ok=not error and "/error" not in disposition.lower() and kind in ("processed", "displayed", "dispatched"),
            disposition=kind or "unknown", error_code=code, error_text=error,
            final_recipient=fields.get("final-recipient", "").split(";")[-1].strip())
    if received.report_type == "delivery-status":
        part = next((p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None)
        fields = _fields(part) if part is not None else {}
        action = fields.get("action", "").lower()
        envelope_id = fields.get("original-envelope-id", "").strip()  # ENVID = the idempotency key
        by_envelope = f"<{envelope_id}@envid.invalid>" if key_of(f"<{envelope_id}@envid.invalid>") else ""
        original = _original_id_from_attachment(received) or by_envelope or received.in_reply_to
        return Acknowledgement("dsn", original, ok=action in ("delivered", "relayed", "expanded"),
                               disposition=action or "unknown", error_code=fields.get("status", ""),
                               error_text=fields.get("diagnostic-code", ""),
                               final_recipient=fields.get("final-recipient", "").split(";")[-1].strip())
    ko = _KO.match(received.subject)
    if ko:
        original = _original_id_from_attachment(received) or received.in_reply_to
        body = received.message.get_body(("plain",))
        try:
            text = body.get_content() if body is not None else ""
        except (LookupError, ValueError):  # unknown or malformed charset: read as UTF-8
            text = (body.get_payload(decode=True) or b"").decode("utf-8", "replace")
        label = re.search(r"Erreur détectée\s*:\s*(.+)", text)
        return Acknowledgement("error-mail", original, ok=False, disposition="error", error_code=ko.group(1),
                               error_text=label.group(1).strip() if label else "")
    return None
