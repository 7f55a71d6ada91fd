"""Tables of gateway.consent, declared on the shared metadata (see gateway/storage/registry.py)."""

from __future__ import annotations

from gateway.storage.schema import metadata  # noqa: F401
