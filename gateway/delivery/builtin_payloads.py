"""The payload kinds Relais ships (registered on first use by `payloads.kind`)."""

from __future__ import annotations

import uuid

import orjson

from gateway.delivery.payloads import BuildContext, PayloadKind, register
from gateway.model import Plan, Problem
from gateway.plans import JsonInputError, loads_object

FHIR_JSON = "application/fhir+json"


def _tddui_bundle(plan: Plan, context: BuildContext) -> bytes:
    """TDDUI flux 1 transaction Bundle (specs §1.1). Bundle.identifier carries the exchange's
    idempotency key, so a resend after a crash is recognised by the peer as the same Bundle."""
    from mappings.fhir.tddui import plan_to_bundle

    bundle = plan_to_bundle(plan, context.now)
    bundle["identifier"] = {"system": "urn:ietf:rfc:3986",
                            "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, context.idempotency_key)}"}
    return orjson.dumps(bundle)


def _tddui_gate(payload: bytes) -> list[Problem]:
    from gateway.conformance.fhir.gate import tddui_gate

    try:
        bundle = loads_object(payload, max_bytes=50 * 1024 * 1024)
    except JsonInputError as exc:
        return [exc.problem]
    return tddui_gate().validate(bundle)


register(PayloadKind(name="tddui-bundle", content_type=FHIR_JSON, build=_tddui_bundle,
                     validate=_tddui_gate))

from gateway.delivery import payload_sdo  # noqa: E402,F401  (registers sdo-status, sdo-consent)
from gateway.delivery import payload_cds  # noqa: E402,F401  (registers cds-careteam)
from gateway.delivery import payload_mss  # noqa: E402,F401  (registers xdm-message)
from gateway.delivery import payload_dmp  # noqa: E402,F401  (registers cda-document)
