"""A session with an MSSanté operator for the `mss` suite: SMTP submission (`--base-url
smtp://HOST[:587]` with STARTTLS, or `smtps://HOST[:465]` with implicit TLS) and IMAP (`--option
imap=imap://HOST[:143]` with STARTTLS or `imaps://HOST[:993]`; default the same host, 143 or 993
as the SMTP URL), the server verified against `--ca-file`, the structure's certificate
(`--client-cert`/`--client-key`) presented, the mailbox's credentials.

Options: `address` (the mailbox tested, an APP mailbox for a platform), `password`, `login`
(default the address), `imap`, `imap-auth` (`login`|`plain`), `correspondent` (a mailbox that
answers with an MDN, for `accuse-mdn`), `unknown-recipient` (default an address of the
mailbox's domain made for the run), `size-limit` (when the server announces no SIZE),
`max-transfer` (largest message the suite really sends to test the limit, default 16 MiB),
`mdn-timeout` (seconds, default 60), `mutual-tls=no` (the operator does not require the
client certificate: the test is skipped), `keep=yes` (leave the test messages in INBOX).

Credentials are only sent inside TLS; the refusals in clear are tested with made-up ones."""

from __future__ import annotations

import email
import imaplib
import smtplib
import socket
import ssl
import time
import uuid
from email import policy
from urllib.parse import urlsplit

from gateway.conformance.runner.suites.base import Endpoint, SessionBase

SOURCE = "MSSanté (specs §4.1 ; Référentiel socle #2 ; RFC 3207, 4954, 1870, 3501)"
FAKE_LOGIN, FAKE_PASSWORD = "relais-conformite@invalid.example", "pas-le-vrai-mot-de-passe"


def _options(endpoint: Endpoint) -> dict[str, str]:
    return {k.strip().lower().replace("_", "-"): v for k, v in endpoint.options.items()}


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "oui", "o")


class MssSession(SessionBase):
    def __init__(self, endpoint: Endpoint):
        self.endpoint, self.source = endpoint, SOURCE
        self.options = _options(endpoint)
        self.state: dict = {}
        self.run_id = uuid.uuid4().hex[:10]
        self.timeout = endpoint.timeout
        self.config_errors: list[str] = []
        smtp = urlsplit(endpoint.base_url)
        self.smtp_tls = smtp.scheme == "smtps"
        if smtp.scheme not in ("smtp", "smtps") or not smtp.hostname:
            self.config_errors.append(f"--base-url {endpoint.base_url!r} : smtp://HÔTE[:587] (STARTTLS) ou "
                                      "smtps://HÔTE[:465] (TLS implicite) attendu")
        self.smtp_host = smtp.hostname or ""
        self.smtp_port = smtp.port or (465 if self.smtp_tls else 587)
        imap = urlsplit(self.options.get("imap") or f"{'imaps' if self.smtp_tls else 'imap'}://{self.smtp_host}")
        if imap.scheme not in ("imap", "imaps") or not imap.hostname:
            self.config_errors.append(f"--option imap={self.options.get('imap')!r} : imap://HÔTE[:143] ou "
                                      "imaps://HÔTE[:993] attendu")
        self.imap_tls = imap.scheme == "imaps"
        self.imap_host = imap.hostname or ""
        self.imap_port = imap.port or (993 if self.imap_tls else 143)
        self.address = self.options.get("address", "")
        self.login = self.options.get("login") or self.address
        self.password = self.options.get("password", "")
        for name, value in (("address", self.address), ("password", self.password)):
            if not value:
                self.config_errors.append(f"--option {name}=… absente")
        try:
            self.context = self.tls_context()
        except (OSError, ValueError, ssl.SSLError) as exc:
            self.config_errors.append(f"certificats illisibles ({type(exc).__name__} : {exc})")
            self.context = None
        self.keep = _yes(self.options.get("keep"))

    # --- TLS ------------------------------------------------------------------------------------
    def check_tls(self, sock, where: str) -> None:
        version = sock.version() if hasattr(sock, "version") else None
        self.check(version in ("TLSv1.2", "TLSv1.3"), "tls-version", f"{where} : {version}, TLS 1.2 ou 1.3 attendu")

    def plain_greeting(self, host: str, port: int, wait: float = 2.0) -> bytes:
        """What a port sends in clear to a client that says nothing (an implicit-TLS port sends nothing)."""
        with socket.create_connection((host, port), self.timeout) as raw:
            raw.settimeout(wait)
            try:
                return raw.recv(512)
            except (socket.timeout, ConnectionError):
                return b""

    # --- SMTP -----------------------------------------------------------------------------------
    def smtp(self, *, secure: bool = True, authenticate: bool = True, client_cert: bool = True) -> smtplib.SMTP:
        """A submission session: TLS (implicit or STARTTLS) when `secure`, then AUTH when asked."""
        context = self.context if client_cert else self.tls_context(with_client_cert=False)
        if self.smtp_tls:
            client = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
        try:
            client.ehlo("relais-conformite.invalid")
            if secure and not self.smtp_tls:
                if not client.has_extn("starttls"):
                    self.fail("smtp-starttls", "STARTTLS non proposé par le serveur SMTP (RFC 3207)")
                client.starttls(context=context)
                client.ehlo("relais-conformite.invalid")
            if authenticate:
                client.login(self.login, self.password)
        except BaseException:
            close(client)
            raise
        return client

    def send(self, recipients: list[str], message: bytes, where: str) -> str:
        """Submit a message (SIZE declared when offered); the server's answer to DATA."""
        client = self.smtp()
        try:
            options = [f"SIZE={len(message)}"] if client.has_extn("size") else []
            code, answer = client.mail(self.address, options)
            self.check(code == 250, "smtp-mail", f"{where} : MAIL FROM → {code} {answer.decode(errors='replace')}")
            for rcpt in recipients:
                code, answer = client.rcpt(rcpt)
                if code not in (250, 251):
                    self.fail("smtp-rcpt", f"{where} : RCPT TO <{rcpt}> → {code} {answer.decode(errors='replace')}")
            code, answer = client.data(message)
            text = f"{code} {answer.decode(errors='replace')}"
            if code != 250:
                self.fail("smtp-data", f"{where} : DATA → {text}")
            return text
        finally:
            close(client)

    # --- IMAP -----------------------------------------------------------------------------------
    def imap(self, *, secure: bool = True, authenticate: bool = True, client_cert: bool = True) -> imaplib.IMAP4:
        context = self.context if client_cert else self.tls_context(with_client_cert=False)
        if self.imap_tls:
            client = imaplib.IMAP4_SSL(self.imap_host, self.imap_port, ssl_context=context, timeout=self.timeout)
        else:
            client = imaplib.IMAP4(self.imap_host, self.imap_port, timeout=self.timeout)
        try:
            if secure and not self.imap_tls:
                if "STARTTLS" not in client.capabilities:
                    self.fail("imap-starttls", "STARTTLS non proposé par le serveur IMAP (RFC 3501 §6.2.1)")
                client.starttls(ssl_context=context)
            if authenticate:
                if self.options.get("imap-auth", "login").lower() == "plain":
                    token = f"\0{self.login}\0{self.password}".encode()
                    client.authenticate("PLAIN", lambda _: token)
                else:
                    client.login(self.login, self.password)
                status, data = client.select("INBOX")
                if status != "OK":
                    self.fail("imap-select", f"SELECT INBOX → {status} {data}")
        except BaseException:
            logout(client)
            raise
        return client

    def uid_next(self) -> int:
        client = self.imap()
        try:
            found = client.response("UIDNEXT")[1]
            if found and found[0]:
                return int(found[0])
            _, data = client.uid("SEARCH", None, "ALL")
            uids = [int(u) for u in (data[0] or b"").split()]
            return max(uids, default=0) + 1
        finally:
            logout(client)

    def fetch_since(self, first_uid: int) -> list[tuple[int, bytes]]:
        """Every message of INBOX with UID ≥ first_uid, read with BODY.PEEK[] (never flagged)."""
        client = self.imap()
        try:
            status, data = client.uid("SEARCH", None, f"UID {first_uid}:*")
            uids = [int(u) for u in (data[0] or b"").split() if int(u) >= first_uid] if status == "OK" else []
            out = []
            for uid in uids:
                status, parts = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), None) if status == "OK" else None
                if raw is not None:
                    out.append((uid, raw))
            return out
        finally:
            logout(client)

    def wait_for(self, first_uid: int, wanted, seconds: float) -> list[tuple[int, bytes]]:
        """Poll INBOX until `wanted(messages)` is true or the time is up; the messages seen."""
        deadline = time.monotonic() + seconds
        while True:
            messages = self.fetch_since(first_uid)
            if wanted(messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.3)

    def delete(self, uids: list[int]) -> None:
        """Remove the suite's own test messages from INBOX (unless `keep=yes`)."""
        if self.keep or not uids:
            return
        client = self.imap()
        try:
            client.uid("STORE", ",".join(map(str, uids)), "+FLAGS.SILENT", r"(\Deleted)")
            client.expunge()
        finally:
            logout(client)


def close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError, ssl.SSLError):
        client.close()


def logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError, ssl.SSLError):
        try:
            client.shutdown()
        except OSError:
            pass


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)
