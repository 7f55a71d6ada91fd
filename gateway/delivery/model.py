"""What an exchange is, and the states it goes through.

requested ─decide─▶ refused                       (consent denies: nothing is mapped or queued)
          ─map/validate─▶ invalid                 (the output does not pass its profile)
          ─queue─▶ queued ─claim─▶ sending ─▶ sent ─▶ acknowledged
                      ▲                 │
                      └── retry ◀───────┤ transient failure (back-off with jitter)
                                        └▶ dead   (permanent failure, or attempts/age exhausted)
queued ─▶ superseded (a newer plan version for the same person and target was queued)
queued/sending ─▶ cancelled (the consent no longer allows it)
dead ─replay─▶ a new exchange with `replay_of` = the dead one (lineage kept)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from connectors.base import Recipient


class Status(StrEnum):
    refused = "refused"
    invalid = "invalid"
    queued = "queued"
    sending = "sending"
    sent = "sent"
    acknowledged = "acknowledged"
    dead = "dead"
    superseded = "superseded"
    cancelled = "cancelled"


PENDING = (Status.queued, Status.sending)
FINAL = (Status.refused, Status.invalid, Status.sent, Status.acknowledged, Status.dead,
         Status.superseded, Status.cancelled)


@dataclass(frozen=True)
class ExchangeRequest:
    """person, target system, recipient, purpose, payload kind (issue 5 §1)."""

    person_local_id: str
    system: str
    recipient: Recipient
    purpose: str  # v3 ActReason-style code: TREAT, COC, HOPERAT…
    payload_kind: str
    data_categories: tuple[str, ...] = ()
    plan_version: int | None = None  # None = the current version
    labels: tuple[str, ...] = ()  # security labels, e.g. "minor-secret" (L.1111-5)


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    status: str
    attempt: int
    detail: str | None


@dataclass(frozen=True)
class Exchange:
    id: str
    seq: int
    tenant_id: str
    person_local_id: str
    system: str
    payload_kind: str
    purpose: str
    recipient: dict
    plan_version: int | None
    status: Status
    decision_id: str | None
    decision_reasons: list[str]
    idempotency_key: str
    payload_sha256: str | None
    problems: list[dict]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    receipt: dict | None
    superseded_by: str | None
    replay_of: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[Event] = field(default_factory=list)
    data_categories: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def summary(self) -> dict:
        """JSON view for the API (no payload: it holds personal data)."""
        return {
            "id": self.id,
            "person": self.person_local_id,
            "system": self.system,
            "payload_kind": self.payload_kind,
            "purpose": self.purpose,
            "data_categories": list(self.data_categories),
            "labels": list(self.labels),
            "recipient": self.recipient,
            "plan_version": self.plan_version,
            "status": self.status.value,
            "decision_id": self.decision_id,
            "decision_reasons": self.decision_reasons,
            "payload_sha256": self.payload_sha256,
            "problems": self.problems,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "last_error": self.last_error,
            "receipt": self.receipt,
            "superseded_by": self.superseded_by,
            "replay_of": self.replay_of,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "history": [
                {"at": e.at.isoformat(), "status": e.status, "attempt": e.attempt, "detail": e.detail}
                for e in self.history
            ],
        }
