"""The policy decision point: `decide(state, request) -> Decision`, pure and in memory.

Evaluation (consent_audit §2.6): build the context (regime, team membership, what each
directive says), run every rule of `gateway.consent.rules` in order, then combine with
**deny-overrides**: any deny → deny; else any permit → permit; else **default deny** (IHE PCF
without the Implicit option: deny all). Notes explain without deciding. An error inside the
PDP is a deny too (fail closed, rule `pdp-error`). Obligations accompany a permit only.

Deterministic: the same state, request and `now` give the same effect, rule ids, consents
and obligations (only the decision id differs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import orjson

from gateway.consent.matching import build_context
from gateway.consent.model import Decision, DecisionRequest, Effect, PolicyState, Reason
from gateway.consent.rules import DEFAULT_DENY, RULES
from gateway.consent.vocab import (
    ALLOWLIST_VERSION,
    POLICY_TABLE_VERSION,
    PROFILE_VERSION,
)
from gateway.logs import get_logger

log = get_logger("relais.consent")

POLICY_VERSIONS = {
    "rules": "relais-consent-rules-1",
    "allowlist": ALLOWLIST_VERSION,
    "purposes": POLICY_TABLE_VERSION,
    "profile": PROFILE_VERSION,
}


def request_digest(request: DecisionRequest) -> str:
    r = request.recipient
    body = {
        "tenant": request.tenant_id,
        "person": request.person_local_id,
        "recipient": {"kind": r.kind.value, "ids": sorted(map(list, r.identifiers)),
                      "profession": r.profession.value if r.profession else None,
                      "organisation": r.organisation},
        "system": request.system.value,
        "purpose": request.purpose,
        "data": sorted(request.data_categories),
        "requester": [request.requester.actor, request.requester.profession.value],
        "flow": request.flow.value if request.flow else None,
        "names_ins": request.names_ins,
        "labels": sorted(request.labels),
        "urgency": request.urgency,
        "justification": bool(request.justification),
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def decide(state: PolicyState, request: DecisionRequest, *, now: dt.datetime | None = None,
           decision_id: str | None = None) -> Decision:
    now = now or dt.datetime.now(dt.UTC)
    if state.tenant_id != request.tenant_id or state.person.local_id != request.person_local_id:
        raise ValueError("l'état chargé ne concerne pas la personne de la demande")
    decision_id = decision_id or uuid.uuid4().hex
    digest = request_digest(request)
    try:
        ctx = build_context(state, request, now)
        reasons = [reason for r in RULES if (reason := r.check(ctx)) is not None]
    except Exception as exc:  # fail closed (consent_audit §2.6.1)
        log.error("pdp_error", error_type=type(exc).__name__)
        reason = Reason("pdp-error", "deny", "erreur du moteur de décision : refus par précaution",
                        "decision engine error: denied", "consent_audit §2.6.1 (fail closed)")
        return Decision(decision_id, Effect.deny, (reason,), ("pdp-error",), (), (), "erreur",
                        now, digest, POLICY_VERSIONS)
    denies = [r for r in reasons if r.effect == "deny"]
    permits = [r for r in reasons if r.effect == "permit"]
    if denies:
        effect, fired = Effect.deny, denies
    elif permits:
        effect, fired = Effect.permit, permits
    else:
        rid, src = DEFAULT_DENY
        default = Reason(rid, "deny", "aucune règle n'autorise ce flux : refus par défaut",
                         "no rule permits this flow: denied by default", src)
        reasons.append(default)
        effect, fired = Effect.deny, [default]
    consents = []
    for reason in fired:
        for ref in reason.consents:
            if ref not in consents:
                consents.append(ref)
    obligations = tuple(dict.fromkeys(ctx.obligations)) if effect is Effect.permit else ()
    return Decision(
        id=decision_id,
        effect=effect,
        reasons=tuple(reasons),
        rule_ids=tuple(r.rule_id for r in fired),
        consents=tuple(consents),
        obligations=obligations,
        regime=ctx.regime,
        decided_at=now,
        request_digest=digest,
        policy_versions=POLICY_VERSIONS,
    )
