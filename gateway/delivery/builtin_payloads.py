"""The payload kinds Relais ships (registered on first use by `payloads.kind`)."""

from __future__ import annotations

import uuid

import orjson

from gateway.delivery.payloads import BuildContext, PayloadKind, register
from gateway.model import Plan, Problem

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
    """The gate on the bytes that will be sent. They are Relais's own `orjson` output (no
    duplicate key, no NaN, bounded depth): read back with orjson, not with the strict reader
    meant for untrusted input, which cost ~18 % of this stage for nothing (bench_load.py)."""
    from gateway.conformance.fhir.gate import tddui_gate

    try:
        bundle = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return [Problem(location="$", rule="json-syntax", message=f"contenu JSON illisible : {exc}",
                        message_en=str(exc), source="relais-delivery")]
    if not isinstance(bundle, dict):
        return [Problem(location="$", rule="json-not-object", message="un Bundle (objet JSON) est attendu",
                        message_en="expected a Bundle (JSON object)", source="relais-delivery")]
    return tddui_gate().validate(bundle)


register(PayloadKind(name="tddui-bundle", content_type=FHIR_JSON, build=_tddui_bundle,
                     validate=_tddui_gate))

from gateway.delivery import payload_sdo  # noqa: E402,F401  (registers sdo-status, sdo-consent)
from gateway.delivery import payload_cds  # noqa: E402,F401  (registers cds-careteam)
from gateway.delivery import payload_mss  # noqa: E402,F401  (registers xdm-message)
from gateway.delivery import payload_dmp  # noqa: E402,F401  (registers cda-document)
