"""Consent changes reach the outbox: a withdrawal or a new opposition cancels every pending
item it now forbids (issue 3 §1 / issue 5 §1). Each pending item of the person is decided
again against the new policy state; a deny cancels it, with the decision and the
cancellation audited in one transaction."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import sqlalchemy as sa

from connectors.base import Recipient
from gateway.delivery import outbox, trail
from gateway.delivery.consent_step import consent_recipient
from gateway.delivery.scope import KIND_CATEGORIES
from gateway.delivery.model import PENDING, ExchangeRequest, Status
from gateway.delivery.tables import exchanges
from gateway.storage import Store

X = exchanges.c


def cancel_forbidden(store: Store, tenant_id: str, person_local_id: str,
                     now: dt.datetime | None = None) -> list[str]:
    """Re-decide the person's pending items; cancel those now denied. Returns their ids."""
    from gateway.consent import DecisionRequest, Requester, decide_and_record
    from gateway.consent.vocab import System

    now = now or dt.datetime.now(dt.UTC)
    cancelled = []
    with store.transaction() as conn:
        rows = conn.execute(sa.select(exchanges).where(
            X.tenant_id == tenant_id, X.person_local_id == person_local_id,
            X.status.in_([s.value for s in PENDING])).order_by(X.seq)).all()
        for row in rows:
            recipient = Recipient(**json.loads(row.recipient))
            request = ExchangeRequest(person_local_id=person_local_id, system=row.system,
                                      recipient=recipient, purpose=row.purpose,
                                      payload_kind=row.payload_kind, plan_version=row.plan_version)
            decision = decide_and_record(conn, DecisionRequest(
                tenant_id=tenant_id, person_local_id=person_local_id,
                recipient=consent_recipient(recipient),
                system=System(row.system), purpose=row.purpose,
                data_categories=frozenset(KIND_CATEGORIES.get(row.payload_kind, ())),
                requester=Requester(actor="system:consent-change"), names_ins=True), now=now)
            if decision.permitted:
                continue
            reasons = "; ".join(r.message for r in decision.reasons if r.effect == "deny")
            conn.execute(sa.update(exchanges).where(X.seq == row.seq).values(
                status="cancelled", lease_owner=None, lease_until=None, next_attempt_at=None,
                updated_at=now))
            outbox.add_event(conn, row.seq, Status.cancelled, now,
                             detail=f"consentement : {reasons}")
            trail.record(conn, tenant_id, "system:consent-change", "exchange.cancelled", "success",
                         request, row.id, decision_id=decision.id)
            cancelled.append(row.id)
    return cancelled


def subscribe(store: Store) -> Callable[[], None]:
    """Wire the consent engine's change events to this store's outbox; returns unsubscribe."""
    from gateway.consent import on_consent_change

    def on_change(change) -> None:
        cancel_forbidden(store, change.tenant_id, change.person_local_id)

    return on_consent_change(on_change)
