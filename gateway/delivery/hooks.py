"""Consent is decided again when it matters: a withdrawal or a new opposition cancels every
pending item it now forbids (issue 3 §1 / issue 5 §1), and the worker re-decides each item
when it claims it, so a change the engine publishes no event for (a consent period ending, the
person coming of age, an INS no longer qualified in a new plan version) still stops the send.
Each re-decision and cancellation is audited in the transaction that makes it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.base import Recipient
from gateway.delivery import outbox, trail
from gateway.delivery.consent_step import consent_recipient
from gateway.delivery.model import PENDING, ExchangeRequest, Status
from gateway.delivery.tables import exchanges
from gateway.storage import Store

X = exchanges.c


def redecide(conn: Connection, tenant_id: str, request: ExchangeRequest, *, actor: str,
             now: dt.datetime):
    """The consent engine's decision for this pending item, now (recorded and audited)."""
    from gateway.consent import DecisionRequest, Requester, decide_and_record
    from gateway.consent.vocab import System

    return decide_and_record(conn, DecisionRequest(
        tenant_id=tenant_id, person_local_id=request.person_local_id,
        recipient=consent_recipient(request.recipient), system=System(request.system),
        purpose=request.purpose, data_categories=frozenset(request.data_categories),
        requester=Requester(actor=actor), names_ins=True, labels=frozenset(request.labels)), now=now)


def cancel(conn: Connection, tenant_id: str, seq: int, exchange_id: str, request: ExchangeRequest,
           decision, *, actor: str, now: dt.datetime) -> None:
    reasons = "; ".join(r.message for r in decision.reasons if r.effect == "deny")
    conn.execute(sa.update(exchanges).where(X.seq == seq).values(
        status=Status.cancelled.value, lease_owner=None, lease_until=None, next_attempt_at=None,
        updated_at=now))
    outbox.add_event(conn, seq, Status.cancelled, now, detail=f"consentement : {reasons}")
    trail.record(conn, tenant_id, actor, "exchange.cancelled", "success", request, exchange_id,
                 decision_id=decision.id)


def _request(row) -> ExchangeRequest:
    return ExchangeRequest(person_local_id=row.person_local_id, system=row.system,
                           recipient=Recipient(**json.loads(row.recipient)), purpose=row.purpose,
                           payload_kind=row.payload_kind, plan_version=row.plan_version,
                           data_categories=tuple((row.data_categories or "").split()),
                           labels=tuple((row.labels or "").split()))


def cancel_forbidden(store: Store, tenant_id: str, person_local_id: str,
                     now: dt.datetime | None = None) -> list[str]:
    """Re-decide the person's pending items; cancel those now denied. Returns their ids."""
    now = now or dt.datetime.now(dt.UTC)
    actor = "system:consent-change"
    cancelled = []
    with store.transaction() as conn:
        rows = conn.execute(sa.select(exchanges).where(
            X.tenant_id == tenant_id, X.person_local_id == person_local_id,
            X.status.in_([s.value for s in PENDING])).order_by(X.seq)).all()
        for row in rows:
            request = _request(row)
            decision = redecide(conn, tenant_id, request, actor=actor, now=now)
            if not decision.permitted:
                cancel(conn, tenant_id, row.seq, row.id, request, decision, actor=actor, now=now)
                cancelled.append(row.id)
    return cancelled


def recheck_claimed(conn: Connection, items: list, now: dt.datetime) -> list:
    """Inside the claim transaction: keep the items the consent engine still permits; cancel
    the others. Nothing leaves on a decision older than its send."""
    kept = []
    for item in items:
        request = ExchangeRequest(person_local_id=item.person_local_id, system=item.system,
                                  recipient=item.recipient, purpose=item.purpose,
                                  payload_kind=item.payload_kind, plan_version=item.plan_version,
                                  data_categories=item.data_categories, labels=item.labels)
        decision = redecide(conn, item.tenant_id, request, actor="worker", now=now)
        if decision.permitted:
            kept.append(item)
        else:
            cancel(conn, item.tenant_id, item.seq, item.id, request, decision, actor="worker", now=now)
    return kept


def subscribe(store: Store) -> Callable[[], None]:
    """Wire the consent engine's change events to this store's outbox; returns unsubscribe."""
    from gateway.consent import on_consent_change

    def on_change(change) -> None:
        cancel_forbidden(store, change.tenant_id, change.person_local_id)

    return on_consent_change(on_change)
