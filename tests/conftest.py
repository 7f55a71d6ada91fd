"""Shared fixtures.

- `postgres_server` (session): a throwaway PostgreSQL server (tests/support/postgres.py), or
  the one named by RELAIS_TEST_POSTGRES_URL. Skipped when PostgreSQL is not installed,
  unless RELAIS_REQUIRE_POSTGRES=1 (then it fails).
- `store`: a migrated, empty `Store`, once on SQLite and once on PostgreSQL (ids `sqlite`,
  `postgres`; the latter marked `postgres`).
- `sample_plan`: a valid `Plan` (test identity, INS test OID).
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import uuid
from pathlib import Path

import pytest

# `tests.support` must import however pytest is launched (`pytest` or `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from gateway.model import Plan  # noqa: E402
from gateway.plans import validate_plan  # noqa: E402
from gateway.storage import Store  # noqa: E402
from tests.support.postgres import PostgresServer, start_or_skip  # noqa: E402

TODAY = dt.date(2026, 11, 26)

# A valid single support plan. Test identity only: the INS uses the test OID (.10).
SAMPLE_PLAN: dict = {
    "id": "PPER-1",
    "title": "Projet personnalisé",
    "status": "agreed",
    "period": {"start": "2026-01-01", "end": "2026-12-31"},
    "established_on": "2026-01-10",
    "person": {
        "local_id": "U000001",
        "ins": {"value": "212035121518974", "oid": "1.2.250.1.213.1.4.10"},
        "identity_status": "QUAL",
        "birth_family_name": "TESTNOM",
        "birth_given_names": ["Camille"],
        "birth_date": "2012-03-15",
        "sex": "female",
        "birthplace_insee": "51215",
        "representatives": [
            {"id": "R1", "role": "parent", "family_name": "TESTNOM", "given_names": ["Alex"]}
        ],
    },
    "platform": {
        "finess": "750000001",
        "name": "Plateforme test",
        "coordinator": {"professional_id": "P1"},
    },
    "professionals": [{"id": "P1", "family_name": "COORD", "role": "coordinatrice de parcours"}],
    "needs": [
        {
            "id": "B1",
            "code": "1.3.3.1",
            "description": "Scolarité",
            "level": "moderate",
            "assessed_on": "2026-01-05",
            "method": "interview",
        }
    ],
    "objectives": [
        {
            "id": "O1",
            "title": "Aller à l'école",
            "description": "…",
            "life_domain": "education",
            "need_ids": ["B1"],
        }
    ],
    "services": [
        {
            "id": "S1",
            "code": "2.3.3.1",
            "title": "Soutien scolaire",
            "modality": "ordinary_environment",
            "place": "school",
            "provider": {"kind": "platform_team", "name": "Équipe"},
            "intensity": {"value": 3, "unit": "hours_per_week"},
            "objective_ids": ["O1"],
        }
    ],
    "agreements": [
        {
            "id": "A1",
            "party": "person",
            "performer_kind": "representative",
            "performer_id": "R1",
            "date": "2026-01-10T10:00:00+01:00",
        },
        {
            "id": "A2",
            "party": "structure",
            "performer_kind": "professional",
            "performer_id": "P1",
            "date": "2026-01-10T10:00:00+01:00",
        },
    ],
}


def sample_plan_dict() -> dict:
    """A fresh deep copy of SAMPLE_PLAN, safe to modify."""
    return copy.deepcopy(SAMPLE_PLAN)


def make_plan(data: dict) -> Plan:
    plan, problems = validate_plan(data, TODAY)
    assert plan is not None, [p.line() for p in problems]
    return plan


@pytest.fixture
def sample_plan() -> Plan:
    return make_plan(sample_plan_dict())


# ------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def postgres_server():
    server = start_or_skip(PostgresServer())
    yield server
    server.stop()


# ------------------------------------------------------------------------ stores


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated, empty SQLite Store in tmp_path (tests that need no other backend)."""
    instance = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    instance.migrate()
    yield instance
    instance.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store(request, tmp_path):
    """A migrated, empty Store: SQLite file in tmp_path, or a fresh PostgreSQL database."""
    dbname = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'relais.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        dbname = f"relais_t_{uuid.uuid4().hex[:12]}"
        url = server.create_database(dbname)
    instance = Store(url)
    instance.migrate()
    yield instance
    instance.close()
    if dbname is not None:
        server.drop_database(dbname)
