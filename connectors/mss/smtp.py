"""Submitting a message to the MSSanté operator (stdlib smtplib): SMTP submission with STARTTLS
on 587 (Ref#2, specs §4.1) or implicit TLS (465), server certificate verified against the
configured trust store (IGC-Santé in production), the structure's certificate for mutual TLS,
then AUTH with the APP mailbox's credentials.

Answers map to the delivery spine's errors with the server's own words: 4xx (and a dropped
connection, a timeout) → TransientError, worth retrying; 5xx → PermanentError, dead letter.
An untrusted server certificate is permanent too: it will not fix itself.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass

from connectors.base import PermanentError, TransientError, refused_client_certificate
from connectors.mss.imap import tls_context


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int = 587
    security: str = "starttls"  # "starttls" | "tls"
    username: str = ""
    password: str = ""
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Submitted:
    reply: str  # the server's answer to DATA, e.g. "250 2.0.0 Ok: queued as 1A2B"
    refused: dict[str, str]  # recipients the server refused while accepting others


def _words(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


def _judge(code: int, message, what: str) -> Exception:
    reason = f"{what} : {_words(code, message)}"
    if 400 <= code < 500:
        return TransientError(reason, code=str(code))
    return PermanentError(reason, code=str(code))


class SmtpSubmitter:
    def __init__(self, endpoint: SmtpEndpoint):
        self.endpoint = endpoint

    def _connect(self) -> smtplib.SMTP:
        e = self.endpoint
        context = tls_context(e.ca_file, e.client_cert, e.client_key)
        if e.security == "tls":
            client = smtplib.SMTP_SSL(e.host, e.port, timeout=e.timeout, context=context)
            client.ehlo()
        else:
            client = smtplib.SMTP(e.host, e.port, timeout=e.timeout)
            client.ehlo()
            if not client.has_extn("starttls"):
                client.close()
                raise PermanentError("le serveur SMTP ne propose pas STARTTLS : envoi refusé", code="tls")
            client.starttls(context=context)
            client.ehlo()
        if e.username:
            client.login(e.username, e.password)
        return client

    def submit(self, sender: str, recipients: list[str], message: bytes) -> Submitted:
        try:
            client = self._connect()
        except (PermanentError, TransientError):
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _judge(exc.smtp_code, exc.smtp_error, "authentification refusée par l'opérateur") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"le serveur ne propose pas l'authentification attendue ({exc})", code="auth") from None
        except smtplib.SMTPResponseException as exc:
            raise _judge(exc.smtp_code, exc.smtp_error, "le serveur SMTP a refusé la session") from None
        except ssl.SSLCertVerificationError:
            raise PermanentError("certificat du serveur SMTP non reconnu par le magasin de confiance",
                                 code="tls") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError, socket.timeout) as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise PermanentError("certificat du serveur SMTP non reconnu par le magasin de confiance",
                                     code="tls") from None
            refused = refused_client_certificate(exc)  # the operator refused our certificate (TLS alert)
            if refused is not None:
                raise refused from None
            raise TransientError(f"serveur SMTP injoignable ({type(exc).__name__})", code="network") from None
        try:
            limit = client.esmtp_features.get("size")
            if limit and limit.isdigit() and int(limit) and len(message) > int(limit):
                raise PermanentError(f"message trop volumineux pour l'opérateur ({len(message)} octets, "
                                     f"maximum annoncé {limit})", code="552")
            options = [f"SIZE={len(message)}"] if client.has_extn("size") else []
            code, answer = client.mail(sender, options)
            if code != 250:
                raise _judge(code, answer, "expéditeur refusé")
            refused: dict[str, tuple[int, bytes]] = {}
            for recipient in recipients:
                code, answer = client.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, answer)
            if len(refused) == len(recipients):
                words = "; ".join(f"{rcpt} : {_words(*answer)}" for rcpt, answer in refused.items())
                codes = [c for c, _ in refused.values()]
                client.rset()
                if any(400 <= c < 500 for c in codes):
                    raise TransientError(f"destinataire(s) refusé(s) temporairement : {words}", code=str(min(codes)))
                raise PermanentError(f"destinataire(s) refusé(s) : {words}", code=str(min(codes)))
            code, answer = client.data(message)
            if code != 250:
                raise _judge(code, answer, "message refusé")
            return Submitted(reply=_words(code, answer), refused={k: _words(*v) for k, v in refused.items()})
        except (PermanentError, TransientError):
            raise
        except smtplib.SMTPResponseException as exc:
            raise _judge(exc.smtp_code, exc.smtp_error, "le serveur SMTP a refusé l'envoi") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError, ssl.SSLError, socket.timeout) as exc:
            raise TransientError(f"connexion SMTP interrompue pendant l'envoi ({type(exc).__name__})",
                                 code="network") from None
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError, ssl.SSLError):
                client.close()

