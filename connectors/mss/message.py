"""MIME messages of MSSanté with the standard `email` package (specs §4.1, §4.2).

Outgoing (Référentiel socle MSSanté #2 ECO.2.1.x and §3.8, as quoted in specs §4.1 and
README "MSSanté" — the PDF itself is not in the sources):

    multipart/mixed
    ├── multipart/alternative: text/plain + text/html (UTF-8, ECO.2.2.3)
    ├── application/zip  IHE_XDM.zip (base64, attachment)
    └── application/pdf  <AAAAMMJJ>_<type>_<NOM>_<prénom>.pdf (ECO.2.1.6)

Subject `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>` (ECO.2.1.3); headers
X-MSS-CODECDA (the CDA codes, comma-separated), X-MSS-INS (`O` when a qualified INS is in the
XDM, `N` otherwise), X-MSS-NIL (the product reference, when configured), X-MSS-MES `FIN` (to a
Mon espace santé mailbox when the person may not reply), Disposition-Notification-To when a
processing MDN is wanted. Message-ID = `<idempotency key@sender domain>`: a resend is the same
message, and acknowledgements lead back to the exchange.

`build` makes the message the delivery spine stores (no From/To: the plan, not the recipient,
is known then); `address` prepends the envelope headers at send time, leaving the stored
bytes untouched. `parse` reads a received message without trusting it.
"""

from __future__ import annotations

import datetime as dt
import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from html import escape

from gateway.model import Plan

XDM_FILENAME = "IHE_XDM.zip"
SUBJECT_PREFIX = "XDM/1.0/DDM"
PATIENT_DOMAIN = "patient.mssante.fr"
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_KEY = re.compile(r"^<?(rls-[0-9a-f]{40}(?:-\d+)?)@[^>]+>?$")


def message_id_for(key: str, sender: str) -> str:
    """`<key@domain of the sending mailbox>` (RFC 5322 §3.6.4)."""
    domain = sender.rpartition("@")[2] or "relais.invalid"
    return f"<{key}@{domain}>"


def key_of(message_id: str | None) -> str | None:
    """The exchange's idempotency key in one of Relais' Message-IDs."""
    match = _KEY.match((message_id or "").strip())
    return match.group(1) if match else None


def patient_address(ins_value: str) -> str:
    """The person's Mon espace santé mailbox: `<matricule INS>@patient.mssante.fr` (ECO.2.2.6:
    built from a qualified INS only — the caller checks the identity)."""
    return f"{ins_value}@{PATIENT_DOMAIN}"


def subject_for(title: str, plan: Plan | None = None) -> str:
    """`XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>` (ECO.2.1.3)."""
    parts = [title]
    if plan is not None:
        person = plan.person
        parts += [person.birth_family_name.upper(), person.birth_given_names[0],
                  person.birth_date.strftime("%d/%m/%Y")]
    return f"{SUBJECT_PREFIX}+" + " ".join(p.strip() for p in parts if p and p.strip())


def pdf_filename(plan: Plan, type_display: str) -> str:
    """ECO.2.1.6: `<date de l'acte>_<type document>_<NOM>_<prenom>.pdf`; the act is the plan's
    start (serviceStartTime), else the day it was established; the type cut to 40 characters."""
    act = plan.period.start or plan.established_on
    person = plan.person

    def clean(text: str) -> str:
        return re.sub(r"[\\/:*?\"<>|_\x00-\x1f]+", " ", text).strip()

    return "_".join([act.strftime("%Y%m%d"), clean(type_display)[:40].strip(),
                     clean(person.birth_family_name.upper()), clean(person.birth_given_names[0])]) + ".pdf"


def bodies(title: str, platform: str) -> tuple[str, str]:
    text = (f"Bonjour,\n\nVeuillez trouver ci-joint le document « {title} » transmis par {platform}.\n\n"
            "Le document structuré (CDA R2) est dans l'archive IHE_XDM.zip ; sa version lisible est "
            "le fichier PDF joint.\n\nCe message a été envoyé automatiquement par la passerelle Relais "
            "de la plateforme. Merci de ne pas répondre à ce message pour d'autres sujets.\n")
    html = ("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"></head><body>"
            f"<p>Bonjour,</p><p>Veuillez trouver ci-joint le document « {escape(title)} » transmis par "
            f"{escape(platform)}.</p><p>Le document structuré (CDA R2) est dans l'archive "
            "<code>IHE_XDM.zip</code> ; sa version lisible est le fichier PDF joint.</p>"
            "<p>Ce message a été envoyé automatiquement par la passerelle Relais de la plateforme.</p>"
            "</body></html>")
    return text, html


def build(*, subject: str, text: str, html: str, xdm: bytes, cda_codes: list[str], qualified_ins: bool,
          pdf: bytes | None, pdf_name: str | None, now: dt.datetime, product_reference: str | None = None) -> bytes:
    """The message stored in the outbox: everything but the envelope headers."""
    message = EmailMessage(policy=policy.SMTP)
    message["Date"] = format_datetime(now)
    message["Subject"] = subject
    if cda_codes:  # §3.8.1: only when the XDM carries CDA documents
        message["X-MSS-CODECDA"] = ",".join(dict.fromkeys(cda_codes))
        message["X-MSS-INS"] = "O" if qualified_ins else "N"
    if product_reference:
        message["X-MSS-NIL"] = product_reference
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.make_mixed()
    message.add_attachment(xdm, maintype="application", subtype="zip", filename=XDM_FILENAME)
    if pdf is not None:
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=pdf_name or "document.pdf")
    return message.as_bytes()


def address(raw: bytes, *, sender: str, to: list[str], message_id: str, mdn_to: str | None = None,
            mes_fin: bool = False) -> bytes:
    """Prepend From, To, Message-ID (and Disposition-Notification-To, X-MSS-MES) to a built message."""
    fields = [("From", sender), ("To", ", ".join(to)), ("Message-ID", message_id)]
    if mdn_to:
        fields.append(("Disposition-Notification-To", mdn_to))
    if mes_fin:
        fields.append(("X-MSS-MES", "FIN"))
    head = "".join(policy.SMTP.fold(name, value) for name, value in fields)
    return head.encode("ascii") + raw


# --------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Received:
    """A received message, read defensively: nothing in it is trusted."""

    raw: bytes
    message: EmailMessage
    message_id: str
    sender: str
    recipients: list[str]
    subject: str
    in_reply_to: str
    references: list[str]
    disposition_notification_to: str | None
    report_type: str | None  # "disposition-notification" | "delivery-status" | None
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def xdm(self) -> Attachment | None:
        """The IHE_XDM.zip attachment (name matched case-insensitively, specs §4.2)."""
        return next((a for a in self.attachments if a.filename.upper() == XDM_FILENAME.upper()), None)

    def header(self, name: str) -> str:
        try:
            return _one_line(str(self.message.get(name, "") or ""))
        except Exception:  # noqa: BLE001 - malformed header (e.g. CR/LF in an address): keep nothing of it
            return ""


def _one_line(value: str) -> str:
    """A header's text on one line: RFC 2047 encoded words may decode to CR/LF (and a raw header
    may hold \\v, \\x1c… which Python splits lines on), never to reach a header Relais writes (the
    acknowledgement's subject, In-Reply-To, MDN fields)."""
    return " ".join(value.splitlines()).strip()


class MessageRefused(ValueError):
    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def parse(raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_parts: int = 64) -> Received:
    if len(raw) > max_bytes:
        raise MessageRefused("mime-too-large", f"message trop volumineux ({len(raw)} octets, maximum {max_bytes})")
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        parts = list(message.walk())
    except RecursionError:  # parts nested thousands deep: the stdlib parser recurses per level
        raise MessageRefused("mime-too-deep", "imbrication de parties MIME trop profonde") from None
    if len(parts) > max_parts:
        raise MessageRefused("mime-too-many-parts", f"trop de parties MIME ({len(parts)}, maximum {max_parts})")
    attachments, defects = [], [type(d).__name__ for d in message.defects]
    for part in parts:
        defects += [type(d).__name__ for d in part.defects]
        if part.is_multipart() or part.get_content_type() in ("message/rfc822", "message/disposition-notification",
                                                             "message/delivery-status"):
            continue
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            try:
                data = part.get_payload(decode=True) or b""
            except Exception:  # noqa: BLE001 - a broken transfer encoding is the sender's defect
                defects.append("UndecodablePayload")
                continue
            attachments.append(Attachment(filename or "", part.get_content_type(), data))
    report = message.get_param("report-type") if message.get_content_type() == "multipart/report" else None

    def text(name: str) -> str:
        try:
            return _one_line(str(message.get(name, "") or ""))
        except Exception:  # noqa: BLE001 - malformed header: keep nothing of it
            defects.append(f"BadHeader:{name}")
            return ""

    dnt = parseaddr(text("Disposition-Notification-To"))[1] or None
    return Received(
        raw=raw, message=message, message_id=text("Message-ID"), sender=parseaddr(text("From"))[1],
        recipients=[a for _, a in getaddresses([text("To"), text("Cc")]) if a], subject=text("Subject"),
        in_reply_to=text("In-Reply-To"), references=text("References").split(),
        disposition_notification_to=dnt, report_type=str(report) if report else None,
        attachments=attachments, defects=defects)


def new_message_id(sender: str) -> str:
    return make_msgid(domain=sender.rpartition("@")[2] or "relais.invalid")
