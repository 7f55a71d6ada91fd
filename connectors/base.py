"""The one small interface every external system sits behind (style guide: like httpx's
transports). The delivery spine calls `send`; connectors know no API, console or delivery code.

A connector declares its system, the payload kinds it carries, its retry policy and how it
makes a resend recognisable (idempotency), and does `send(envelope) -> Receipt`; for inbound
traffic it may also `poll()`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Recipient:
    """Who receives: a professional, an organisation, the person's own mailbox, or a system."""

    kind: str  # "professional" | "organisation" | "person" | "system"
    identifier: str  # RPPS, FINESS, MSSanté address, or the system's base URL name
    display: str = ""
    profession: str | None = None  # R.1110-2 category: "health" | "social" | "other"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "identifier": self.identifier, "display": self.display,
                "profession": self.profession}


@dataclass(frozen=True)
class Envelope:
    """What leaves: one validated payload for one recipient, with a stable idempotency key."""

    exchange_id: str
    idempotency_key: str  # stable across retries and crashes: the peer recognises a resend
    system: str
    payload_kind: str
    content_type: str
    payload: bytes
    recipient: Recipient
    attempt: int = 1
    metadata: Mapping[str, str] = field(default_factory=dict)  # business ids, never personal data


@dataclass(frozen=True)
class Receipt:
    """What the peer answered: its id for what it stored, and what it said."""

    status: str  # "accepted" | "duplicate" (a resend recognised by the peer) | "queued"
    peer_reference: str | None = None
    detail: str = ""
    received_at: dt.datetime | None = None


@dataclass(frozen=True)
class Inbound:
    """Something a peer sent us (a decision, a notification, a message)."""

    system: str
    kind: str
    peer_reference: str
    content_type: str
    payload: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """A failed send; `reason` is the peer's own words (status line, OperationOutcome text)."""

    def __init__(self, reason: str, *, code: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientError(DeliveryError):
    """Worth retrying: timeouts, resets, 408/429/5xx, TLS hiccups."""

    def __init__(self, reason: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(reason, code=code)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help (the peer rejected the content): straight to dead letters."""


# TLS alerts by which a server refuses the client certificate it was given (or the lack of
# one; RFC 8446 §6.2): sending again with the same certificate cannot succeed.
_CERTIFICATE_ALERTS = ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
                       "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE",
                       "ACCESS_DENIED")


def refused_client_certificate(exc: BaseException) -> PermanentError | None:
    """The permanent error for a server that refused our client certificate with a TLS alert
    (OpenSSL names it, e.g. `TLSV13_ALERT_CERTIFICATE_REQUIRED`); None for any other failure —
    a reset or a dropped handshake stays transient."""
    text = str(exc)
    alert = next((a for a in _CERTIFICATE_ALERTS if f"ALERT_{a}" in text), None)
    if alert is None:
        return None
    return PermanentError(f"certificat client refusé par le serveur (alerte TLS {alert.lower().replace('_', ' ')})",
                          code="tls")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter (AWS architecture blog, "Exponential Backoff And
    Jitter"), bounded by a number of attempts and a maximum age.

    The defaults ride out a peer down for hours: waits reach the 5-minute ceiling after 9
    attempts and average 2.5 minutes from then on, so 100 attempts last about 4 hours (8,
    the former default, gave up after about one minute of outage on average)."""

    max_attempts: int = 100
    base_delay: float = 1.0  # seconds
    max_delay: float = 300.0
    max_age: dt.timedelta = dt.timedelta(days=2)

    def delay(self, attempt: int, rng: random.Random | None = None,
              retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = (rng or random).uniform(0, ceiling)
        return max(wait, retry_after or 0.0)

    def gives_up(self, attempt: int, first_queued: dt.datetime, now: dt.datetime) -> bool:
        return attempt >= self.max_attempts or now - first_queued >= self.max_age


@runtime_checkable
class Connector(Protocol):
    system: str
    payload_kinds: frozenset[str]
    retry: RetryPolicy
    # How many `send` calls the worker may make at once (from several threads); more than 1
    # only where `send` is thread-safe. Optional: read with `max_in_flight(connector)`.
    max_in_flight: int = 1

    def send(self, envelope: Envelope) -> Receipt:
        """Deliver one envelope or raise TransientError / PermanentError."""
        ...

    def poll(self) -> Iterable[Inbound]:
        """New inbound items since the last poll (may be empty)."""
        ...

    def close(self) -> None: ...


def max_in_flight(connector: object) -> int:
    """The sends a connector accepts at once; 1 when it does not say (one after the other)."""
    return max(1, int(getattr(connector, "max_in_flight", 1)))
