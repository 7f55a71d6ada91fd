"""Plan-level services: strict reading, validation, canonical form."""

from gateway.plans.canonical import canonical_json, content_hash, etag
from gateway.plans.jsoninput import JsonInputError, loads_object, loads_strict
from gateway.plans.validate import validate_plan, validate_plan_json

__all__ = [
    "JsonInputError",
    "canonical_json",
    "content_hash",
    "etag",
    "loads_object",
    "loads_strict",
    "validate_plan",
    "validate_plan_json",
]
