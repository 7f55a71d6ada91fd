"""Storage of tenants, API keys, persons and immutable plan versions (SQLAlchemy 2).

INTERFACE STUB — to be implemented (see the docstrings); the API and CLI call exactly this.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


class StorageError(Exception):
    """Base class; `message` is French, safe to show (no personal data)."""


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """Unique constraint (tenant slug taken, …)."""


class PreconditionFailed(StorageError):
    """If-Match does not name the current version (RFC 9110 §13.1.1) → HTTP 412."""

    def __init__(self, message: str, current_etag: str | None):
        super().__init__(message)
        self.current_etag = current_etag


class PreconditionRequired(StorageError):
    """A plan already exists and the write carries no If-Match (RFC 6585 §3) → HTTP 428."""

    def __init__(self, message: str, current_etag: str):
        super().__init__(message)
        self.current_etag = current_etag


@dataclass(frozen=True)
class Tenant:
    id: str  # uuid4 hex
    slug: str  # [a-z0-9-]{2,40}
    name: str
    finess: str | None  # when set, every plan's platform.finess must equal it
    created_at: dt.datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    label: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class PersonRow:
    id: str  # uuid4 hex, internal
    tenant_id: str
    local_id: str  # the platform's own id of the person (plan.person.local_id)
    current_version: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class PlanVersion:
    person_local_id: str
    version: int  # 1, 2, 3… per person
    content: bytes  # canonical JSON (gateway.plans.canonical)
    content_hash: str  # sha256 hex of content
    etag: str  # gateway.plans.canonical.etag(version, content_hash)
    status: str  # plan.status at that version
    created_at: dt.datetime
    created_by: str  # actor (api key id, "cli", "demo")


@dataclass(frozen=True)
class PutResult:
    version: PlanVersion
    created: bool  # True when the person had no plan before
    unchanged: bool  # True when content equals the current version: no new version written
