"""`relais dmp query|retrieve|deprecate` against a sandbox DMP configured through the RELAIS_
environment, on a stored plan (French messages, exit codes of the README)."""

from __future__ import annotations

import pytest

from connectors.sandbox.dmp_peer import DmpPeer
from gateway.cli.main import main
from gateway.settings import settings
from gateway.storage import Store
from tests import dmp_support as S

PLAN = S.plan("p008-enfant-tnd.json")


@pytest.fixture
def configured(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'relais.db'}"
    store = Store(url)
    store.migrate()
    tenant = store.create_tenant("plateforme-a", "Plateforme A", PLAN.platform.finess)
    store.put_plan(tenant, PLAN, if_match=None, actor="test")
    store.close()
    sub = S.submission(PLAN)
    with DmpPeer(tmp_path / "dmp", finess=PLAN.platform.finess, patients={sub.patient}, schema_check=False) as peer:
        for key, value in peer.settings().items():
            monkeypatch.setenv(f"RELAIS_CONNECTORS__DMP__{key.upper()}", str(value))
        settings.cache_clear()
        connector = peer.connector()
        connector.provide(sub)
        connector.close()
        yield url, sub
    settings.cache_clear()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_lists_the_persons_documents(configured, capsys):
    url, sub = configured
    code, out, _ = run(capsys, "dmp", "query", PLAN.person.local_id, "--tenant", "plateforme-a", "--database", url)
    assert code == 0 and sub.unique_id in out and "Approved" in out and "80788-3" in out


def test_retrieve_writes_the_same_bytes(configured, capsys, tmp_path):
    url, sub = configured
    target = tmp_path / "doc.xml"
    code, out, _ = run(capsys, "dmp", "retrieve", PLAN.person.local_id, sub.unique_id, "--tenant", "plateforme-a",
                       "--database", url, "--out", str(target))
    assert code == 0 and target.read_bytes() == sub.content


def test_deprecate_then_query_finds_nothing(configured, capsys):
    url, sub = configured
    assert run(capsys, "dmp", "deprecate", PLAN.person.local_id, sub.unique_id, "--tenant", "plateforme-a",
               "--database", url)[0] == 0
    code, out, _ = run(capsys, "dmp", "query", PLAN.person.local_id, "--tenant", "plateforme-a", "--database", url)
    assert code == 0 and sub.unique_id not in out and "E1762" in out  # only the submission's signature is left


def test_an_unknown_document_is_not_found(configured, capsys):
    url, _ = configured
    code, _, err = run(capsys, "dmp", "retrieve", PLAN.person.local_id, "2.25.1", "--tenant", "plateforme-a",
                       "--database", url, "--out", "/dev/null")
    assert code == 3 and "introuvable" in err
