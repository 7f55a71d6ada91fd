"""Persistence: tenants, API keys, persons and immutable plan versions."""

from gateway.storage.store import (
    ApiKey,
    Conflict,
    NotFound,
    PersonRow,
    PlanVersion,
    PreconditionFailed,
    PreconditionRequired,
    PutResult,
    StorageError,
    Store,
    Tenant,
)

__all__ = [
    "ApiKey",
    "Conflict",
    "NotFound",
    "PersonRow",
    "PlanVersion",
    "PreconditionFailed",
    "PreconditionRequired",
    "PutResult",
    "StorageError",
    "Store",
    "Tenant",
]
