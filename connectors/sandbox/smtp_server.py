"""The sandbox MSSanté operator's SMTP submission server (aiosmtpd): STARTTLS (or implicit TLS)
with a certificate of the run-time test CA, mutual TLS when asked, AUTH required (only after
TLS), the sender must be the authenticated mailbox, size limit (SIZE), MIME checks of what an
operator checks (well-formed, From = authenticated mailbox, Message-ID and Date present, an
IHE_XDM.zip only with X-MSS-CODECDA), delivery into the shared mailbox store.

It can be told to fail: a temporary 4xx or a permanent 5xx at MAIL, RCPT or DATA, or a
dropped connection at DATA (`faults.add(SmtpFault(...))`).
"""

from __future__ import annotations

import email
import itertools
import secrets
import socket
import ssl
import threading
import warnings
from collections import deque
from dataclasses import dataclass
from email import policy

import logging

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connectors.sandbox.imap_server import server_context
from connectors.sandbox.mailstore import MailStore
from connectors.sandbox.server import TLSFiles, free_port

_QUEUE_IDS = itertools.count(1)
# aiosmtpd warns that a required client certificate "might cause problems": that is the point.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # refused handshakes are expected


@dataclass(frozen=True)
class SmtpFault:
    stage: str = "data"  # "mail" | "rcpt" | "data"
    reply: str | None = "451 4.3.0 panne temporaire simulée"  # None + drop: close the connection
    drop: bool = False


class SmtpFaults:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue: deque[SmtpFault] = deque()

    def add(self, fault: SmtpFault, times: int = 1) -> None:
        with self._lock:
            self._queue.extend([fault] * times)

    def take(self, stage: str) -> SmtpFault | None:
        with self._lock:
            if self._queue and self._queue[0].stage == stage:
                return self._queue.popleft()
            return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


def check_message(data: bytes, sender: str) -> str | None:
    """What the operator refuses in a message (None: acceptable)."""
    message = email.message_from_bytes(data, policy=policy.default)
    if message.defects or any(part.defects for part in message.walk()):
        return "554 5.6.0 message MIME mal formé"
    from_header = email.utils.parseaddr(str(message.get("From", "")))[1].lower()
    if from_header != sender.lower():
        return "554 5.7.1 l'en-tête From doit être la BAL authentifiée"
    if not message.get("Message-ID") or not message.get("Date"):
        return "554 5.6.0 Message-ID et Date sont obligatoires"
    # the message's own attachments only (an MDN carries the original, XDM included, as message/rfc822)
    names = [(part.get_filename() or "").upper() for part in message.iter_attachments()] \
        if message.is_multipart() else []
    if "IHE_XDM.ZIP" in names and not message.get("X-MSS-CODECDA"):
        return "554 5.6.0 X-MSS-CODECDA obligatoire avec une archive IHE_XDM.zip (ECO.2.4.1)"
    return None


class OperatorHandler:
    def __init__(self, store: MailStore, faults: SmtpFaults):
        self.store, self.faults = store, faults
        self.accepted: list[tuple[str, list[str], bytes]] = []

    def _fault(self, server, stage: str) -> str | None:
        fault = self.faults.take(stage)
        if fault is None:
            return None
        if fault.drop:
            server.transport.close()
            return "421 4.4.2 connexion fermée (panne simulée)"
        return fault.reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if (fault := self._fault(server, "mail")) is not None:
            return fault
        login = getattr(session, "auth_data", None)
        user = login.login.decode() if isinstance(login, LoginPassword) else ""
        if address.lower() != user.lower():
            return "553 5.7.1 l'expéditeur doit être la BAL authentifiée"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 expéditeur accepté"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if (fault := self._fault(server, "rcpt")) is not None:
            return fault
        local, _, domain = address.lower().partition("@")
        if self.store.get(address) is None and domain == "patient.mssante.fr" and local.isdigit() and len(local) == 15:
            self.store.add(address, secrets.token_urlsafe(12), "PER")  # Mon espace santé: one per INS
        if self.store.get(address) is None:
            return "550 5.1.1 BAL MSSanté inconnue"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 destinataire accepté"

    async def handle_DATA(self, server, session, envelope):
        if (fault := self._fault(server, "data")) is not None:
            return fault
        data = envelope.original_content or envelope.content
        refusal = check_message(data, envelope.mail_from)
        if refusal:
            return refusal
        for recipient in envelope.rcpt_tos:
            self.store.deliver(recipient, data)
        self.accepted.append((envelope.mail_from, list(envelope.rcpt_tos), data))
        return f"250 2.0.0 Ok: queued as SBX{next(_QUEUE_IDS):06d}"


class _Controller(Controller):
    def _trigger_server(self):
        """Wake the server with a bare TCP connection: with implicit and mutual TLS, aiosmtpd's
        own trigger (a TLS client without certificate) would be refused."""
        with socket.create_connection((self.hostname, self.port), 1.0):
            pass


class SmtpServer:
    """`SmtpServer(store, tls=TLSFiles(...))` → `.start()`, `.port`, `.faults`, `.stop()`."""

    def __init__(self, store: MailStore, *, host: str = "127.0.0.1", port: int | None = None,
                 tls: TLSFiles, implicit_tls: bool = False, size_limit: int = 10 * 1024 * 1024):
        self.store, self.host, self.port = store, host, port or free_port()
        self.faults = SmtpFaults()
        self.handler = OperatorHandler(store, self.faults)
        self.auth_failures = 0
        context = server_context(tls)
        options = dict(hostname=host, port=self.port, server_hostname="sandbox.mssante.invalid",
                       authenticator=self._authenticate, auth_required=True, auth_require_tls=True,
                       data_size_limit=size_limit, ready_timeout=10)
        if implicit_tls:  # TLS from the first byte: aiosmtpd does not see it, AUTH is safe all the same
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
        with warnings.catch_warnings():  # "AUTH without requiring TLS": TLS is the transport itself
            warnings.simplefilter("ignore", UserWarning)
            self.controller = _Controller(self.handler, **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.store.authenticate(
                auth_data.login.decode("utf-8", "replace"), auth_data.password.decode("utf-8", "replace")):
            return AuthResult(success=True, auth_data=auth_data)
        self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["SmtpFault", "SmtpServer", "check_message", "ssl"]
