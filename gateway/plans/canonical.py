"""Canonical form of a plan: the bytes that are stored, hashed and compared."""

from __future__ import annotations

import hashlib

import orjson

from gateway.model import Plan


def canonical_json(plan: Plan) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: equal plans give equal bytes."""
    return orjson.dumps(plan.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def content_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def etag(version: int, digest: str) -> str:
    """Strong ETag naming the version and its content (RFC 9110 §8.8.3)."""
    return f'"v{version}-{digest[:16]}"'
