"""Consent-change events: a tiny in-process publish/subscribe.

A withdrawal, a new opposition (any new deny directive) or a care-team change that removes
members can forbid flows that were allowed a moment ago. After the write has committed,
the registry publishes a `ConsentChange` saying what is now forbidden; the delivery spine
subscribes (`on_consent_change(callback)`) and cancels the pending outbound items the
change forbids — re-deciding each pending item is the exact test (`still_permitted`).

Callbacks run synchronously in the publishing thread, after commit; an exception in one is
logged and does not stop the others (the write itself has already happened).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from gateway.consent.model import ConsentRef, Token
from gateway.logs import get_logger

log = get_logger("relais.consent")


@dataclass(frozen=True)
class Forbidden:
    """The scope a change now forbids; None in a field means "any"."""

    systems: frozenset[str] | None = None
    recipients: frozenset[Token] | None = None  # identifiers/categories the change names
    purposes: frozenset[str] | None = None
    data_categories: frozenset[str] | None = None


@dataclass(frozen=True)
class ConsentChange:
    tenant_id: str
    person_local_id: str
    cause: str  # "withdrawal" | "opposition" | "care-team"
    consent: ConsentRef | None
    forbidden: tuple[Forbidden, ...]
    stamp: str  # the person's policy stamp after the change


Callback = Callable[[ConsentChange], None]
_subscribers: list[Callback] = []
_lock = threading.Lock()


def on_consent_change(callback: Callback) -> Callable[[], None]:
    """Subscribe; returns a function that unsubscribes."""
    with _lock:
        _subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def publish(change: ConsentChange) -> None:
    with _lock:
        subscribers = list(_subscribers)
    for callback in subscribers:
        try:
            callback(change)
        except Exception as exc:  # one subscriber must not starve the others
            log.error("consent_change_subscriber_failed", cause=change.cause,
                      error_type=type(exc).__name__)
