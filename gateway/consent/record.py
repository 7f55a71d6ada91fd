"""Recording: every consent write and every decision goes to the audit trail, inside the
caller's transaction (atomic with what it records).

`decide_and_record(conn, request)` is the only way data may be cleared to leave: it loads
the person's policy state, decides, writes the decision log row (`consent_decisions`) and
appends the `decision.permit` / `decision.deny` audit entry in `conn`'s transaction, and
only then returns the Decision. If the transaction rolls back, neither exists, and the
caller must not send (L18: no egress before its decision entry is durable).

Audit refs carry ids and digests only (consent_audit §4.2): decision id, rule ids, consent
ids with version and hash, system, purpose, regime; the person appears as the audit
trail's pseudonym, never by name or INS.
"""

from __future__ import annotations

import datetime as dt

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import AuditEntry, append, pseudonym
from gateway.consent.model import Decision, DecisionRequest
from gateway.consent.pdp import decide
from gateway.consent.tables import consent_decisions


def audit(conn: Connection, *, tenant_id: str, actor: str, action: str, outcome: str,
          person_local_id: str, system: str | None = None, refs: dict[str, str] | None = None,
          at: dt.datetime | None = None) -> int:
    """Append one audit entry in `conn`'s transaction; returns its leaf index."""
    subject = pseudonym(conn, tenant_id, person_local_id)
    return append(conn, AuditEntry(
        tenant_id=tenant_id, actor=actor, action=action, outcome=outcome, subject=subject,
        system=system, refs=refs or {}, at=at))


def audit_decision(conn: Connection, request: DecisionRequest, decision: Decision) -> int:
    refs = {
        "decision": decision.id,
        "rules": " ".join(decision.rule_ids),
        "consents": " ".join(f"{c.id}/{c.version}/{c.sha256}" for c in decision.consents),
        "purpose": request.purpose,
        "regime": decision.regime,
        "request": decision.request_digest,
    }
    return audit(conn, tenant_id=request.tenant_id, actor=request.requester.actor,
                 action=f"decision.{decision.effect.value}", outcome=decision.effect.value,
                 person_local_id=request.person_local_id, system=request.system.value,
                 refs={k: v for k, v in refs.items() if v})  # the log's own clock (L26)


# Built once, values passed at execution (no new cache key built for each decision).
_INSERT_DECISION = sa.insert(consent_decisions)


def decide_and_record(conn: Connection, request: DecisionRequest, *,
                      now: dt.datetime | None = None) -> Decision:
    """Decide, then log and audit the decision in `conn`'s open transaction."""
    from gateway.consent.registry import load_state

    state = load_state(conn, request.tenant_id, request.person_local_id)
    decision = decide(state, request, now=now)
    conn.execute(_INSERT_DECISION, dict(
        id=decision.id, tenant_id=request.tenant_id, person_id=state.person_id,
        decided_at=decision.decided_at, effect=decision.effect.value, regime=decision.regime,
        system=request.system.value, purpose=request.purpose[:20],
        rule_ids=" ".join(decision.rule_ids)[:500],
        consent_refs=orjson.dumps([c.as_dict() for c in decision.consents]).decode(),
        request_digest=decision.request_digest, actor=request.requester.actor[:100]))
    audit_decision(conn, request, decision)
    return decision
