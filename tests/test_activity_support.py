"""Shared material of the activity tests: plans, activities, and the hand-computed case.

THE HAND CASE (February 2026, 28 days = 4 weeks, times Europe/Paris = UTC+1; authorisation
FINESS 750000001 from 2026-01-01: ordinary environment 2 places × 210 days, day care 1 place ×
365 days):

| person | activity | counts as |
|---|---|---|
| A | a1 Mon 02/02 09:00–10:30 ordinary env., 10 km / 20 min | direct, morning, 1.5 h |
| A | a2 Mon 02/02 14:00–15:00 ordinary env. | direct, afternoon, 1 h (same day) |
| A | a3 Tue 03/02 09:00–16:00 day care (2.2.1) | direct, both halves, 7 h |
| A | a4 Wed 04/02 10:00–11:00 ordinary env., cancelled, 5 km | nothing |
| A | a5 Thu 05/02 10:00–11:00 ordinary env., person absent, 8 km / 15 min | transport only |
| A | a6 Fri 06/02 08:00–08:30 transport 3.2.4.1, 12 km / 30 min | indirect, transport |
| B | b1 Mon 02/02 09:00–12:00 day care | direct, morning, 3 h |
| B | b2 Mon 09/02 09:00–12:00 day care | direct, morning, 3 h |
| B | b3 Mon 16/02 13:00–14:00 ordinary env. | direct, afternoon only, 1 h |
| C | c1 Fri 30/01 09:00–11:00 day care | outside the window |

A is neurodevelopmental; B psychiatric; C psychiatric and sensory.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid

import pytest

from gateway.activity.capacity import set_capacities
from gateway.activity.record import record_activities
from gateway.storage import Store
from tests.conftest import SAMPLE_PLAN, make_plan

FINESS = "750000001"
NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
FEBRUARY = (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
WEEK = (dt.date(2026, 2, 2), dt.date(2026, 2, 8))

SERVICES = [
    {"id": "S1", "code": "2.3.3.1", "title": "Soutien scolaire", "modality": "ordinary_environment",
     "place": "school", "provider": {"kind": "platform_team", "name": "Équipe"},
     "intensity": {"value": 3, "unit": "hours_per_week"}, "objective_ids": ["O1"], "status": "in_progress"},
    {"id": "S2", "code": "2.2.1", "title": "Accueil de jour", "modality": "day_care",
     "place": "platform_premises", "provider": {"kind": "platform_team", "name": "Équipe"},
     "intensity": {"value": 4, "unit": "half_days_per_week"}, "objective_ids": ["O1"], "status": "in_progress"},
    {"id": "S3", "code": "3.2.4.1", "title": "Transport", "modality": "ordinary_environment",
     "place": "community", "provider": {"kind": "platform_team", "name": "Équipe"},
     "objective_ids": ["O1"], "status": "in_progress"},
]


def plan_dict(local_id: str, specialisations: list[str] | None = None) -> dict:
    data = copy.deepcopy(SAMPLE_PLAN)
    data["person"]["local_id"] = local_id
    data["platform"]["finess"] = FINESS
    data["specialisations"] = specialisations or []
    data["services"] = copy.deepcopy(SERVICES)
    return data


def plan_for(local_id: str, specialisations: list[str] | None = None):
    return make_plan(plan_dict(local_id, specialisations))


def act(ident: str, day: str, start: str, end: str, *, code: str = "2.3.3.1", service: str | None = "S1",
        **extra) -> dict:
    """An activity input on `day` (2026-MM-DD) from `start` to `end` (HH:MM, UTC+1)."""
    item = {"id": ident, "code": code, "start": f"{day}T{start}:00+01:00", "end": f"{day}T{end}:00+01:00"}
    if service:
        item["service_id"] = service
    item.update(extra)
    return item


HAND_CASE = {
    "A": (["neurodevelopmental"], [
        act("a1", "2026-02-02", "09:00", "10:30", transport_km=10, transport_minutes=20),
        act("a2", "2026-02-02", "14:00", "15:00"),
        act("a3", "2026-02-03", "09:00", "16:00", code="2.2.1", service="S2"),
        act("a4", "2026-02-04", "10:00", "11:00", status="cancelled", transport_km=5),
        act("a5", "2026-02-05", "10:00", "11:00", person_present=False, transport_km=8, transport_minutes=15),
        act("a6", "2026-02-06", "08:00", "08:30", code="3.2.4.1", service="S3", transport_km=12,
            transport_minutes=30),
    ]),
    "B": (["psychiatric"], [
        act("b1", "2026-02-02", "09:00", "12:00", code="2.2.1", service="S2"),
        act("b2", "2026-02-09", "09:00", "12:00", code="2.2.1", service="S2"),
        act("b3", "2026-02-16", "13:00", "14:00"),
    ]),
    "C": (["psychiatric", "sensory"], [
        act("c1", "2026-01-30", "09:00", "11:00", code="2.2.1", service="S2"),
    ]),
}


def hand_case(store: Store, slug: str = "plateforme-a"):
    """The tenant of the hand case, its plans, capacity and activities stored."""
    tenant = store.create_tenant(slug, "Plateforme du cas calculé à la main", FINESS)
    for person, (families, items) in HAND_CASE.items():
        store.put_plan(tenant, plan_for(person, families), if_match=None, actor="test")
        record_activities(store, tenant, person, {"activities": items}, actor="test", now=NOW)
    set_capacities(store, tenant, [("ordinary_environment", 2, 210), ("day_care", 1, 365)],
                   valid_from=dt.date(2026, 1, 1), actor="test")
    return tenant


@pytest.fixture(scope="module", params=[pytest.param("sqlite", id="sqlite"),
                                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def shared_store(request, tmp_path_factory):
    """One migrated store per backend for a whole module (tests use their own tenants)."""
    dbname = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('activite') / 'relais.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        dbname = f"relais_t_{uuid.uuid4().hex[:12]}"
        url = server.create_database(dbname)
    store = Store(url)
    store.migrate()
    yield store
    store.close()
    if dbname is not None:
        server.drop_database(dbname)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
