"""Fixtures of the fault tests (the shared ones — `store`, `postgres_server` — are in tests/conftest.py)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.delivery import payload_mss
from gateway.delivery.payloads import kind as payload_kind, register


@pytest.fixture
def db(sqlite_store):
    """A SQLite store, for tests that do not depend on the database (peer faults)."""
    return sqlite_store


@pytest.fixture
def quick_xdm():
    """The real MSSanté message builder; its check without the CDA schematrons (long to
    compile, and tested with the CDA mapping)."""
    real = payload_kind("xdm-message")
    register(dataclasses.replace(real, validate=lambda p: payload_mss.validate_message(p, use_cda_gate=False)))
    yield
    register(real)
