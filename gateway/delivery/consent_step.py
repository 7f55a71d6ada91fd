"""The spine's consent step: the consent engine decides and audits, in the queueing transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from gateway.consent.vocab import System
from gateway.delivery.model import ExchangeRequest
from gateway.delivery.pipeline import DecisionView
from gateway.model import Plan
from gateway.storage import Tenant


def consent_decider(conn: Connection, tenant: Tenant, request: ExchangeRequest, plan: Plan,
                    actor: str, now: dt.datetime) -> DecisionView:
    from gateway.consent import DecisionRequest, Requester, decide_and_record

    recipient = consent_recipient(request.recipient)
    decision = decide_and_record(conn, DecisionRequest(
        tenant_id=tenant.id,
        person_local_id=request.person_local_id,
        recipient=recipient,
        system=System(request.system),
        purpose=request.purpose,
        data_categories=frozenset(request.data_categories),
        requester=Requester(actor=actor),
        # Relais names the person by INS in everything it sends (health data is referenced
        # with the INS since 2021): the engine's INS rule then requires a qualified identity.
        names_ins=True,
        labels=frozenset(request.labels),
    ), now=now)
    reasons = [r.message for r in decision.reasons if r.effect != "note"]
    return DecisionView(permit=decision.permitted, decision_id=decision.id, reasons=reasons)


def consent_recipient(recipient):
    """connectors.base.Recipient → the consent engine's Recipient (its enums)."""
    from gateway.consent import Recipient
    from gateway.consent.vocab import Profession, RecipientKind

    profession = Profession(recipient.profession) if recipient.profession else None
    return Recipient.from_identifier(RecipientKind(recipient.kind), recipient.identifier, profession)
