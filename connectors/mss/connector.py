"""The MSSanté connector (specs §4): `send` submits the stored `xdm-message` over SMTP, `poll`
reads the platform's APP mailbox over IMAP, `acknowledge` answers a received message with the
MDN or the standard mail the rules require.

Recipients: an MSSanté address (several, separated by commas), an RPPS or a FINESS resolved
through the mailbox directory, or — kind `person` — the person's Mon espace santé mailbox,
allowed only when the message's XDM names that person by a qualified INS (ECO.2.2.6: the
address `<INS>@patient.mssante.fr`; the patientId of METADATA.XML carries an INS only for a
qualified identity) and never with a very restricted (`V`) document.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields

from email.utils import parseaddr

from connectors.base import (DeliveryError, Envelope, Inbound, PermanentError, Receipt, RetryPolicy,
                             TransientError)
from connectors.mss import message as M
from connectors.mss import xdm
from connectors.mss.imap import ImapEndpoint, ImapMailbox
from connectors.mss.inbound import SYSTEM, KIND_DOCUMENT, Reading, quarantined, read_message
from connectors.mss.ledger import Ledger
from connectors.mss.mdn import IntegrationError, build_error_mail, build_mdn, needed
from connectors.mss.smtp import SmtpEndpoint, SmtpSubmitter

log = logging.getLogger("relais.mss")
PAYLOAD_KIND = "xdm-message"
CONTENT_TYPE = "message/rfc822"
# person → None (known: positive acknowledgement) or the integration error to send back
Resolver = Callable[[Inbound], IntegrationError | None]


@dataclass(frozen=True)
class MssSettings:
    address: str  # the platform's APP mailbox
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_security: str = "starttls"
    imap_host: str = "127.0.0.1"
    imap_port: int = 143
    imap_security: str = "starttls"
    imap_auth: str = "login"
    username: str = ""  # default: the address
    password: str = ""
    ca_file: str | None = None  # IGC-Santé trust anchors in production
    client_cert: str | None = None  # the structure's certificate (mutual TLS)
    client_key: str | None = None
    timeout: float = 30.0
    request_mdn: bool = True  # Disposition-Notification-To on what Relais sends
    patient_may_reply: bool = False  # False: X-MSS-MES: FIN to Mon espace santé mailboxes
    product_reference: str | None = None  # X-MSS-NIL
    state_dir: str | None = "./var/mss"
    archive_dir: str | None = None
    max_message_bytes: int = M.MAX_MESSAGE_BYTES
    poll_batch: int = 50
    directory_url: str | None = None
    directory_api_key: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, config: Mapping[str, object]) -> "MssSettings":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in known}
        values["extra"] = {k: v for k, v in config.items() if k not in known}
        for name in ("smtp_port", "imap_port", "max_message_bytes", "poll_batch"):
            if name in values:
                values[name] = int(values[name])
        for name in ("request_mdn", "patient_may_reply"):
            if isinstance(values.get(name), str):
                values[name] = values[name].lower() in ("1", "true", "oui", "yes")
        return cls(**values)


class MssConnector:
    system = SYSTEM
    payload_kinds = frozenset({PAYLOAD_KIND})

    def __init__(self, settings: MssSettings, *, retry: RetryPolicy | None = None, directory=None,
                 resolver: Resolver | None = None, clock: Callable[[], dt.datetime] | None = None):
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.directory = directory
        self.resolver = resolver
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        s = settings
        user = s.username or s.address
        self.smtp = SmtpSubmitter(SmtpEndpoint(s.smtp_host, s.smtp_port, s.smtp_security, user, s.password,
                                               s.ca_file, s.client_cert, s.client_key, s.timeout))
        self.imap_endpoint = ImapEndpoint(s.imap_host, s.imap_port, s.imap_security, user, s.password,
                                          s.ca_file, s.client_cert, s.client_key, s.timeout, s.imap_auth)
        self.ledger = Ledger(s.state_dir, s.archive_dir)

    # ------------------------------------------------------------------------ send

    def _recipients(self, envelope: Envelope, package: xdm.XdmPackage | None) -> tuple[list[str], bool]:
        recipient = envelope.recipient
        if recipient.kind == "person":
            entry = package.entries[0] if package and package.entries else None
            ins = entry.ins if entry else None
            if ins is None:
                raise PermanentError("envoi à la BAL Mon espace santé refusé : pas d'INS qualifiée dans le "
                                     "document (ECO.2.2.6)", code="mes-ins")
            address = recipient.identifier if "@" in recipient.identifier else M.patient_address(recipient.identifier)
            if address.lower() != M.patient_address(ins[0]).lower():
                raise PermanentError("envoi à la BAL Mon espace santé refusé : l'adresse ne correspond pas à "
                                     "l'INS de la personne du document", code="mes-ins")
            confidential = package.file(f"{xdm.ROOT}/{entry.subset}/{xdm.METADATA}") or b""
            if b'nodeRepresentation="V"' in confidential:
                raise PermanentError("document très restreint (V) : pas d'envoi à la personne", code="mes-confidentiality")
            return [address], True
        addresses = [a.strip() for a in recipient.identifier.replace(";", ",").split(",") if a.strip()]
        if all("@" in a for a in addresses) and addresses:
            return addresses, False
        if self.directory is None:
            raise PermanentError(f"adresse MSSanté inconnue pour {recipient.identifier} et annuaire non configuré",
                                 code="directory")
        return [self.directory.address_for(recipient)], False

    def send(self, envelope: Envelope) -> Receipt:
        if envelope.payload_kind not in self.payload_kinds:
            raise PermanentError(f"contenu {envelope.payload_kind!r} non pris en charge par MSSanté")
        received = M.parse(envelope.payload, max_bytes=self.settings.max_message_bytes)
        package = None
        if received.xdm is not None:
            try:
                package = xdm.read(received.xdm.data)
            except xdm.XdmRefused as exc:
                raise PermanentError(f"archive IHE_XDM.zip illisible : {exc.reason}", code=exc.rule) from None
        to, to_person = self._recipients(envelope, package)
        message_id = M.message_id_for(envelope.idempotency_key, self.settings.address)
        raw = M.address(envelope.payload, sender=self.settings.address, to=to, message_id=message_id,
                        mdn_to=self.settings.address if self.settings.request_mdn else None,
                        mes_fin=to_person and not self.settings.patient_may_reply)
        submitted = self.smtp.submit(self.settings.address, to, raw)
        self.ledger.record_sent(message_id, envelope.exchange_id)
        detail = submitted.reply
        if submitted.refused:
            detail += " ; refusés : " + "; ".join(f"{k} ({v})" for k, v in submitted.refused.items())
        return Receipt(status="accepted", peer_reference=message_id, detail=detail, received_at=self.clock())

    # ------------------------------------------------------------------------ poll

    def poll(self) -> Iterator[Inbound]:
        """New messages of the mailbox, as Inbound items. A message is flagged processed (and
        recorded in the ledger) once the caller has taken all its items: stopping half-way
        leaves it for the next poll."""
        with ImapMailbox(self.imap_endpoint) as box:
            for uid in box.unprocessed()[: self.settings.poll_batch]:
                size = box.size(uid)
                if size is not None and size > self.settings.max_message_bytes:
                    yield quarantined("", f"uid-{box.uidvalidity}-{uid}", "mime-too-large",
                                      f"message trop volumineux ({size} octets)")
                    box.mark_processed(uid)
                    continue
                fetched = box.fetch(uid)
                if fetched is None:
                    continue
                yield from self._one(fetched.data)
                box.mark_processed(uid)

    def _one(self, raw: bytes) -> Iterator[Inbound]:
        digest = self.ledger.archive(raw)
        try:
            received = M.parse(raw, max_bytes=self.settings.max_message_bytes)
        except M.MessageRefused as exc:
            yield quarantined("", digest, exc.rule, exc.reason)
            self.ledger.record_import("", digest)
            return
        if self.ledger.seen(received.message_id):
            return  # already imported (redelivered or fetched twice): nothing new
        reading = read_message(received, digest=digest, exchange_of=self.ledger.exchange_of)
        yield from reading.items
        self.ledger.record_import(received.message_id, digest)
        if not reading.acknowledgeable:
            return
        error, decided = reading.error, reading.error is not None
        if not decided and self.resolver is not None:
            errors = [self.resolver(i) for i in reading.items if i.kind == KIND_DOCUMENT]
            error, decided = next((e for e in errors if e is not None), None), True
        if decided:
            try:
                self._acknowledge(received, error)
            except DeliveryError as exc:  # the import stands; the acknowledgement can be redone
                log.warning("accusé MSSanté non envoyé : %s", exc.reason)

    # ------------------------------------------------------------- acknowledgements

    def _acknowledge(self, received: M.Received, error: IntegrationError | None) -> str | None:
        how = needed(received, error)
        if how is None or received.header("Auto-Submitted").lower().startswith("auto-"):
            return None  # never answer an automatic message (RFC 3834)
        now = self.clock()
        message_id = M.new_message_id(self.settings.address)
        if how == "mdn":
            raw = build_mdn(received, mailbox=self.settings.address, error=error, now=now,
                            message_id=message_id, reporting_ua=f"relais; Relais ({self.settings.address})")
            to = received.disposition_notification_to
        else:
            raw = build_error_mail(received, mailbox=self.settings.address, error=error, now=now,
                                   message_id=message_id)
            to = received.header("Reply-To") or received.sender
        self.smtp.submit(self.settings.address, [parseaddr(to)[1]], raw)
        return how

    def acknowledge(self, message_id: str, error: IntegrationError | None = None) -> str | None:
        """Tell the sender of an imported message how its integration went (the gateway calls
        this once the coordinator's review queue holds the documents, or with 902… when the
        person is unknown). Returns "mdn", "mail" or None (nothing is due)."""
        digest = self.ledger.imported_archive(message_id)
        raw = self.ledger.original(digest) if digest else None
        if raw is None:
            raise PermanentError(f"message {message_id} inconnu : rien à acquitter")
        return self._acknowledge(M.parse(raw, max_bytes=self.settings.max_message_bytes), error)

    def close(self) -> None:
        if self.directory is not None:
            self.directory.close()


def build(config: Mapping[str, object]) -> MssConnector:
    from connectors.mss.directory import directory_from_settings

    retry = config.get("retry")
    settings = MssSettings.from_mapping({k: v for k, v in config.items() if k != "retry"})
    return MssConnector(settings, retry=retry if isinstance(retry, RetryPolicy) else None,
                        directory=directory_from_settings(config))


__all__ = ["MssConnector", "MssSettings", "Reading", "TransientError", "build"]
