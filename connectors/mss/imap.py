"""Reading the platform's MSSanté mailbox over IMAP4rev1 (stdlib imaplib), TLS always: STARTTLS
on 143 (Ref#2, specs §4.1) or implicit TLS (IMAPS, 993), server certificate verified against
the configured trust store (IGC-Santé in production), the structure's certificate when the
operator asks for mutual TLS, then LOGIN or AUTHENTICATE PLAIN.

UID-based (RFC 3501 §2.3.1.1): a message is found by `UID SEARCH UNKEYWORD $RelaisTraite`,
fetched with `BODY.PEEK[]` (never marked read by the fetch itself) and, once handed over,
marked `\\Seen $RelaisTraite`: it is never imported twice.
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl
from dataclasses import dataclass

from connectors.base import PermanentError, TransientError

PROCESSED = "$RelaisTraite"


@dataclass(frozen=True)
class ImapEndpoint:
    host: str
    port: int = 143
    security: str = "starttls"  # "starttls" | "tls"
    username: str = ""
    password: str = ""
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 30.0
    auth: str = "login"  # "login" | "plain"


@dataclass(frozen=True)
class Fetched:
    uid: int
    uidvalidity: int
    flags: frozenset[str]
    data: bytes


def tls_context(ca_file: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


def _network(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return PermanentError("certificat du serveur IMAP non reconnu par le magasin de confiance", code="tls")
    return TransientError(f"{what} ({type(exc).__name__})", code="network")


class ImapMailbox:
    """One session on INBOX; use as a context manager."""

    def __init__(self, endpoint: ImapEndpoint):
        self.endpoint = endpoint
        self.client: imaplib.IMAP4 | None = None
        self.uidvalidity = 0

    def __enter__(self) -> "ImapMailbox":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        e = self.endpoint
        context = tls_context(e.ca_file, e.client_cert, e.client_key)
        try:
            if e.security == "tls":
                self.client = imaplib.IMAP4_SSL(e.host, e.port, ssl_context=context, timeout=e.timeout)
            else:
                self.client = imaplib.IMAP4(e.host, e.port, timeout=e.timeout)
                if "STARTTLS" not in self.client.capabilities:
                    raise PermanentError("le serveur IMAP ne propose pas STARTTLS : connexion refusée", code="tls")
                self.client.starttls(ssl_context=context)
            self._authenticate()
            status, data = self.client.select("INBOX")
            if status != "OK":
                raise TransientError(f"sélection de INBOX refusée : {_text(data)}", code="imap")
            code = self.client.response("UIDVALIDITY")[1]
            self.uidvalidity = int(code[0]) if code and code[0] else 0
        except imaplib.IMAP4.abort as exc:
            self._drop()
            raise TransientError(f"connexion IMAP interrompue : {exc}", code="network") from None
        except imaplib.IMAP4.error as exc:
            self._drop()
            raise _answer(_text(exc.args)) from None
        except (OSError, ssl.SSLError, socket.timeout) as exc:
            self._drop()
            raise _network(exc, "serveur IMAP injoignable") from None
        except (UnicodeError, ValueError) as exc:
            self._drop()
            raise TransientError(f"réponse IMAP illisible ({type(exc).__name__})", code="imap") from None

    def _authenticate(self) -> None:
        e = self.endpoint
        if e.auth == "plain":
            token = f"\0{e.username}\0{e.password}".encode()
            self.client.authenticate("PLAIN", lambda _: token)
        else:
            self.client.login(e.username, e.password)

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.shutdown()
            except OSError:
                pass
        self.client = None

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        self.client = None

    def _call(self, *args) -> list:
        try:
            status, data = self.client.uid(*args)
        except imaplib.IMAP4.abort as exc:
            self._drop()
            raise TransientError(f"connexion IMAP interrompue : {exc}", code="network") from None
        except imaplib.IMAP4.error as exc:
            raise _answer(_text(exc.args)) from None
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            raise _network(exc, "connexion IMAP interrompue") from None
        if status != "OK":
            raise _answer(_text(data))
        return data

    def unprocessed(self) -> list[int]:
        data = self._call("SEARCH", None, "UNKEYWORD", PROCESSED, "UNDELETED")
        return sorted(int(n) for n in (data[0] or b"").split())

    def find(self, message_id: str) -> list[int]:
        data = self._call("SEARCH", None, "HEADER", "Message-ID", f'"{message_id}"')
        return sorted(int(n) for n in (data[0] or b"").split())

    def size(self, uid: int) -> int | None:
        data = self._call("FETCH", str(uid), "(RFC822.SIZE)")
        for item in data:
            found = re.search(rb"RFC822\.SIZE (\d+)", item if isinstance(item, bytes) else item[0])
            if found:
                return int(found.group(1))
        return None

    def fetch(self, uid: int) -> Fetched | None:
        data = self._call("FETCH", str(uid), "(BODY.PEEK[] FLAGS)")
        for item in data:
            if isinstance(item, tuple):
                head, body = item
                flags = re.search(rb"FLAGS \(([^)]*)\)", head)
                return Fetched(uid, self.uidvalidity,
                               frozenset(flags.group(1).decode().split()) if flags else frozenset(), body)
        return None

    def mark_processed(self, uid: int) -> None:
        self._call("STORE", str(uid), "+FLAGS.SILENT", f"(\\Seen {PROCESSED})")

    def delete(self, uid: int) -> None:
        self._call("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        try:
            self.client.expunge()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise TransientError(f"EXPUNGE refusé : {exc}", code="imap") from None


def _text(data) -> str:
    parts = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in (data or []) if d]
    return " ".join(parts) or "réponse vide"


def _answer(text: str) -> Exception:
    """NO/BAD answers: authentication failures cannot fix themselves; the rest may."""
    lowered = text.lower()
    if "authenticationfailed" in lowered or "privacyrequired" in lowered or "login" in lowered and "refus" in lowered:
        return PermanentError(f"authentification IMAP refusée : {text}", code="auth")
    return TransientError(f"le serveur IMAP a répondu : {text}", code="imap")


def plain_token(username: str, password: str) -> str:
    return base64.b64encode(f"\0{username}\0{password}".encode()).decode()
