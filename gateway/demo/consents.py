"""The consent situation of the synthetic platform: most persons were informed of the sharing
within their care team (R.1110-3, L.1110-4 III); a few were not yet; a few oppose (L.1110-4 IV),
each opposition signed by whoever may sign it (the person, a parent, a guardian)."""

from __future__ import annotations

import datetime as dt
import uuid

from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import (
    CS_CONSENT_CATEGORY,
    CS_CONSENT_SCOPE,
    CS_LOINC,
    InformationMethod,
    InformationTopic,
)
from gateway.model import Plan
from gateway.storage import Store, Tenant

NOT_INFORMED_EVERY = 19  # one person in 19 has not been informed yet
OPPOSING_EVERY = 13  # one person in 13 opposes any sharing


def _performer(plan: Plan, today: dt.date) -> str:
    """Who signs for the person (consent_audit §1.10): a parent for a minor, the guardian for
    an adult under a representation measure, otherwise the person."""
    person = plan.person
    roles = {r.role.value: r.id for r in person.representatives}
    if person.age_on(today) < 18 and "parent" in roles:
        return f"RelatedPerson/{roles['parent']}"
    if person.protection is not None and person.protection.scope.value == "representation" and "guardian" in roles:
        return f"RelatedPerson/{roles['guardian']}"
    return f"Patient/{person.local_id}"


def opposition(plan: Plan, today: dt.date, signed: dt.datetime) -> dict:
    return {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": CS_CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": CS_LOINC, "code": "59284-0"}]},
                     {"coding": [{"system": CS_CONSENT_CATEGORY, "code": "opposition-L1110-4-IV"}]}],
        "patient": {"reference": f"Patient/{plan.person.local_id}"},
        "dateTime": signed.isoformat(),
        "performer": [{"reference": _performer(plan, today)}],
        "policy": [{"uri": "https://relais.example/notices/information-v1"}],
        "sourceReference": {"reference": "DocumentReference/opposition-signee"},
        "provision": {"type": "deny"},
    }


def set_up(store: Store, tenant: Tenant, plans: list[Plan], now: dt.datetime) -> dict[str, str]:
    """Record information and oppositions; returns {local id: situation} for the narrative."""
    registry = ConsentRegistry(store)
    situation = {}
    for n, plan in enumerate(plans, 1):
        local_id = plan.person.local_id
        if n % NOT_INFORMED_EVERY == 0:
            situation[local_id] = "non informée"
            continue
        registry.record_information(tenant, local_id, InformationRecord(
            id=uuid.uuid4().hex, informed_at=now - dt.timedelta(days=40), method=InformationMethod.written,
            informed_by="coordinatrice de parcours", notice_version="notice-plateforme-2026-01",
            topics=frozenset({InformationTopic.care_team_sharing})), actor="demo", now=now)
        situation[local_id] = "informée"
        if n % OPPOSING_EVERY == 0:
            registry.record_consent(tenant, local_id, opposition(plan, now.date(), now - dt.timedelta(days=3)),
                                    actor="demo", now=now)
            situation[local_id] = "opposition"
    return situation
