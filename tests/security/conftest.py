"""Shared pieces of the hostile-input and authentication tests (issue 9).

- `snapshot(store)`: a digest of every row of every table, to prove that a refused input left
  no half-written state behind (compare before and after).
- `world`: two platforms with their API keys on the parametrised store (SQLite and PostgreSQL),
  platform A holding a person with a plan, a consent, a care team, an information record, an
  exchange and an inbound item; a TestClient on the real application.
- `assert_problem`: an RFC 9457 answer with its type, title, status and detail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from connectors.base import Inbound, Recipient
from gateway.api.app import create_app
from gateway.consent import ConsentRegistry
from gateway.consent.fhir_careteam import care_team_resource
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest
from gateway.inbound.receive import receive
from gateway.settings import Settings
from gateway.storage import Store, Tenant
from tests.conftest import make_plan, sample_plan_dict
from tests.test_consent_support import DR_HEALTH, consent, member

PROBLEM = "application/problem+json"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
MAX_BODY = 256 * 1024


_TABLES: dict[int, sa.MetaData] = {}


def snapshot(store: Store) -> dict[str, str]:
    """Table name -> SHA-256 of its rows (sorted): equal snapshots, identical database."""
    meta = _TABLES.get(id(store.engine))
    if meta is None:
        meta = _TABLES[id(store.engine)] = sa.MetaData()
        meta.reflect(store.engine)
    out = {}
    with store.engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name == "alembic_version":
                continue
            rows = sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16] + f":{len(rows)}"
    return out


def assert_problem(response, status: int | None = None, kind: str | None = None) -> dict:
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith(PROBLEM), response.headers.get("content-type")
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("/problems/") and body["title"] and body["detail"], body
    if kind is not None:
        assert body["type"] == f"/problems/{kind}", body
    return body


@dataclass
class World:
    store: Store
    client: TestClient
    a: Tenant
    b: Tenant
    token_a: str
    token_b: str
    person: str
    plan: dict
    consent_id: str
    exchange_id: str
    inbound_id: str

    def auth(self, token: str | None = None, **extra: str) -> dict:
        return {"Authorization": f"Bearer {token or self.token_a}", **extra}


def seed_platform(store: Store, slug: str = "plateforme-a") -> tuple[Tenant, str, dict, str, str, str]:
    """A platform with one person and something of every kind; returns its ids."""
    data = sample_plan_dict()
    tenant = store.create_tenant(slug, "Plateforme A", data["platform"]["finess"])
    _, token = store.create_api_key(slug, "test")
    plan = make_plan(data)
    person = plan.person.local_id
    store.put_plan(tenant, plan, if_match=None, actor="test")
    registry = ConsentRegistry(store)
    registry.put_care_team(tenant, person, care_team_resource(person, [member(DR_HEALTH)]), actor="test", now=NOW)
    registry.record_information(tenant, person, InformationRecord(
        id="info-1", informed_at=NOW - dt.timedelta(days=5), method=InformationMethod.written,
        informed_by="PRO-1", notice_version="v1",
        topics=frozenset({InformationTopic.care_team_sharing, InformationTopic.cross_category_exchange})),
        actor="test", now=NOW)
    # The person is a minor: she may oppose on her own (an opposition to one professional).
    stored = registry.record_consent(tenant, person, consent("deny", person=person, actors=[("rpps", "10000000009")]),
                                     actor="test", now=NOW)
    exchange = pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=person, system="eparcours", recipient=Recipient("system", "eparcours"),
        purpose="COC", payload_kind="tddui-bundle"), actor="test", decider=consent_decider).exchange
    receive(store, tenant, [Inbound("mss", "mss-message", "<m1@mss.example>", "message/rfc822", b"",
                                    {"message_id": "<m1@mss.example>", "sender": "dr@mss.example"})])
    with store.reading() as conn:
        inbound_id = conn.execute(sa.text("SELECT id FROM inbound_items")).scalar()
    return tenant, token, data, stored.id, exchange.id, inbound_id


def _world(store: Store, tmp_path):
    a, token_a, data, consent_id, exchange_id, inbound_id = seed_platform(store)
    b = store.create_tenant("plateforme-b", "Plateforme B", "510000029")
    _, token_b = store.create_api_key("plateforme-b", "test")
    config = Settings(max_body_bytes=MAX_BODY, audit_key_dir=tmp_path / "audit-keys")
    with TestClient(create_app(store, config), raise_server_exceptions=False) as client:
        yield World(store, client, a, b, token_a, token_b, data["person"]["local_id"], data,
                    consent_id, exchange_id, inbound_id)


@pytest.fixture
def world(store, tmp_path) -> World:
    """A fresh world per test (for tests that write)."""
    yield from _world(store, tmp_path)


@pytest.fixture(scope="module", params=[pytest.param("sqlite", id="sqlite"),
                                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def shared_world(request, tmp_path_factory) -> World:
    """One world per module and backend, for tests that must leave it unchanged (refusals);
    each such test checks `snapshot` before and after."""
    tmp_path = tmp_path_factory.mktemp("world")
    dbname = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'relais.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        dbname = f"relais_s_{uuid.uuid4().hex[:12]}"
        url = server.create_database(dbname)
    store = Store(url)
    store.migrate()
    yield from _world(store, tmp_path)
    store.close()
    if dbname is not None:
        server.drop_database(dbname)


def dumps(data) -> bytes:
    return json.dumps(data).encode()
