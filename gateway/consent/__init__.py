"""GDPR / CSP consent engine: FHIR Consent storage, care team, policy decision point.

Public API:
    decide(state, request, now=None) -> Decision            # pure PDP (pdp.py)
    decide_and_record(conn, request, now=None) -> Decision  # + decision log + audit entry, in conn's transaction
    ConsentRegistry(store)                                   # consents, care team, information, policy state
    on_consent_change(callback)                              # withdrawal / opposition / care-team events
    DecisionRequest, Recipient, Requester, Decision, Effect  # the request and the answer

Layout: vocab (codes, canonical URLs) · model (dataclasses) · fhir_consent / fhir_careteam
(FHIR in and out) · capacity (who may consent, L17) · matching + rules + pdp (decision) ·
registry (storage, state cache) · record (audit) · events (pub/sub) · tables.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "decide": "gateway.consent.pdp",
    "decide_and_record": "gateway.consent.record",
    "ConsentRegistry": "gateway.consent.registry",
    "ConsentRejected": "gateway.consent.registry",
    "load_state": "gateway.consent.registry",
    "on_consent_change": "gateway.consent.events",
    "ConsentChange": "gateway.consent.events",
    "Decision": "gateway.consent.model",
    "DecisionRequest": "gateway.consent.model",
    "Effect": "gateway.consent.model",
    "Recipient": "gateway.consent.model",
    "Requester": "gateway.consent.model",
    "PolicyState": "gateway.consent.model",
    "FhirInputError": "gateway.consent.fhir_common",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.consent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
