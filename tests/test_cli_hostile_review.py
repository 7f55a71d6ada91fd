"""Hostile input to the `relais` command, found in a defect hunt: each case exits with its code
and a French message naming the place and the reason (never a Python traceback), and leaves
nothing half-written."""

from __future__ import annotations

import json
import os

import pytest

from gateway.cli.main import main
from gateway.storage import Store
from tests.test_consent_store import ADULT, PLANS

TENANT = ["--tenant", "plateforme-a"]


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    with Store(url) as store:
        store.migrate()
        tenant = store.create_tenant("plateforme-a", "Plateforme A")
        store.put_plan(tenant, PLANS[ADULT], if_match=None, actor="test")
    return url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, name: str, data: bytes | dict) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return str(path)


# ------------------------------------------------------------------ --database


@pytest.mark.parametrize("url", ["garbage://", "not a url", "mysql://host/base"])
def test_an_unusable_database_url_is_a_usage_error_in_french(capsys, url):
    code, out, err = run(capsys, "tenant", "list", "--database", url)
    assert code == 2
    assert "base de données" in err and "Traceback" not in err


def test_a_database_file_that_is_not_a_database_exits_5_in_french(capsys, tmp_path):
    path = tmp_path / "pas-une-base.db"
    path.write_bytes(os.urandom(4096))
    code, _, err = run(capsys, "tenant", "list", "--database", f"sqlite:///{path}")
    assert code == 5
    assert err.startswith("base de données")
