"""Submitting an exchange: the steps, in order, each with one responsibility.

    read plan → map → validate the output → [one transaction: consent decision (audited) →
    outbox row + audit "exchange.queued" → supersede older queued versions]

Mapping and validation run before the transaction (they are pure and may take milliseconds;
nothing leaves at this stage), so the write lock is held only for the decision and the
queueing. The decision and the queued row commit together: no payload can be claimed by a
worker unless the audit entry of its consent decision is durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy.engine import Connection

from gateway.delivery import outbox, trail, wake
from gateway.delivery.model import Exchange, ExchangeRequest, Status
from gateway.delivery.payloads import BuildContext, BuildError, kind as payload_kind
from gateway.delivery.scope import default_categories, restrict
from gateway.model import Plan, Severity
from gateway.storage import Store, Tenant


@dataclass(frozen=True)
class DecisionView:
    """What the spine needs of a consent decision."""

    permit: bool
    decision_id: str
    reasons: list[str]  # French, one per rule that decided


class Decider(Protocol):
    def __call__(self, conn: Connection, tenant: Tenant, request: ExchangeRequest, plan: Plan,
                 actor: str, now: dt.datetime) -> DecisionView:
        """Decide and append the decision's audit entry in `conn`'s transaction."""
        ...


@dataclass(frozen=True)
class Submitted:
    exchange: Exchange
    created: bool  # False: the same request (same idempotency key) was already submitted


def submit(store: Store, tenant: Tenant, request: ExchangeRequest, *, actor: str,
           decider: Decider, now: Callable[[], dt.datetime] | None = None) -> Submitted:
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    stored = store.get_plan(tenant, request.person_local_id, request.plan_version)
    plan = Plan.model_validate_json(stored.content)
    kind = payload_kind(request.payload_kind)
    extras = kind.load(store, tenant, request.person_local_id, labels=request.labels) if kind.load else {}
    # What the payload is made of beyond the plan (e.g. the care team's version) is part of
    # the request's identity: a new care team under the same plan version is a new exchange.
    marker = ",".join(f"{k}={v}" for k, v in sorted(extras.items()) if k.endswith("_version"))
    base = outbox.idempotency_key(tenant.id, request, stored.version, marker)
    # No read for an already queued request before the work below: a repeated request is rare,
    # and the transaction looks for it anyway (it may have been queued concurrently).

    if not request.data_categories:
        request = replace(request, data_categories=default_categories(request.system, request.payload_kind, plan))
    context = BuildContext(tenant_slug=tenant.slug, tenant_finess=tenant.finess or plan.platform.finess,
                           plan_version=stored.version, now=clock(), idempotency_key=base, extras=extras)
    try:
        payload = kind.build(restrict(plan, request.data_categories), context)
        problems = kind.validate(payload)
    except BuildError as exc:
        payload, problems = None, exc.problems
    errors = [p for p in problems if p.severity is Severity.error]

    with store.transaction() as conn:
        # The same request already queued (by a repeated call, or concurrently) is answered as is.
        existing, key = outbox.lookup(conn, tenant.id, request.system, base)
        if existing is not None:
            return Submitted(outbox.get(conn, tenant.id, existing), created=False)
        at = clock()
        decision = decider(conn, tenant, request, plan, actor, at)
        common = dict(tenant_id=tenant.id, request=request, plan_version=stored.version, key=key,
                      actor=actor, now=at, decision_id=decision.decision_id,
                      decision_reasons=decision.reasons)
        if not decision.permit:
            exchange = outbox.insert(conn, status=Status.refused, detail="; ".join(decision.reasons), **common)
            trail.record(conn, tenant, actor, "exchange.refused", "deny", request, exchange.id,
                         decision_id=decision.decision_id)
        elif errors:
            exchange = outbox.insert(
                conn, status=Status.invalid, problems=[p.model_dump(mode="json") for p in problems],
                detail=f"{len(errors)} erreur(s) de validation du contenu", **common)
            trail.record(conn, tenant, actor, "exchange.invalid", "failure", request, exchange.id,
                         decision_id=decision.decision_id, rules=",".join(sorted({p.rule for p in errors})))
        else:
            exchange = outbox.insert(
                conn, status=Status.queued, payload=payload, content_type=kind.content_type,
                problems=[p.model_dump(mode="json") for p in problems], **common)
            trail.record(conn, tenant, actor, "exchange.queued", "success", request, exchange.id,
                         decision_id=decision.decision_id, payload_sha256=exchange.payload_sha256)
            for old in outbox.supersede_older(conn, tenant_id=tenant.id, request=request,
                                              newer_id=exchange.id, newer_seq=exchange.seq,
                                              plan_version=stored.version, now=at):
                trail.record(conn, tenant, actor, "exchange.superseded", "success", request, old,
                             superseded_by=exchange.id)
    if exchange.status is Status.queued:  # committed: an idle worker of this process takes it now
        wake.queued(wake.database_of(store))
    return Submitted(exchange, created=True)


def replay(store: Store, tenant: Tenant, exchange_id: str, *, actor: str,
           now: Callable[[], dt.datetime] | None = None) -> Exchange:
    """Queue a dead letter again as a new exchange with `replay_of` set (lineage kept). The
    payload that was validated and consented to is sent as it was."""
    from gateway.storage.store import Conflict, NotFound

    clock = now or (lambda: dt.datetime.now(dt.UTC))
    with store.transaction() as conn:
        dead = outbox.get(conn, tenant.id, exchange_id)
        if dead is None:
            raise NotFound(f"échange {exchange_id} introuvable")
        if dead.status is not Status.dead:
            raise Conflict(f"seul un échange en lettre morte peut être rejoué (statut : {dead.status.value})")
        payload, content_type = outbox.payload_of(conn, tenant.id, exchange_id)
        request = ExchangeRequest(
            person_local_id=dead.person_local_id, system=dead.system,
            recipient=_recipient(dead.recipient), purpose=dead.purpose, payload_kind=dead.payload_kind,
            data_categories=dead.data_categories, plan_version=dead.plan_version, labels=dead.labels)
        base = outbox.idempotency_key(tenant.id, request, dead.plan_version)
        key = outbox.free_key(conn, tenant.id, request.system, base)
        at = clock()
        new = outbox.insert(
            conn, tenant_id=tenant.id, request=request, plan_version=dead.plan_version,
            status=Status.queued, key=key, actor=actor, now=at, decision_id=dead.decision_id,
            payload=payload, content_type=content_type, replay_of=dead.id,
            detail=f"rejeu de {dead.id}")
        trail.record(conn, tenant, actor, "exchange.replayed", "success", request, new.id,
                     replay_of=dead.id)
    wake.queued(wake.database_of(store))
    return new


def _recipient(data: dict):
    from connectors.base import Recipient

    return Recipient(**data)

