"""Hostile JSON through the two other doors: files given to the command line, and what the
national and regional systems send back (SI-SDO decisions, e-parcours event notifications).

A file is refused with a line naming it and the rule, exit code 1, nothing stored. An inbound
item is quarantined with its reason (the original kept for the DPO), no plan changes, and only
the quarantined item and its audit entry are written."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors.base import Inbound
from gateway.cli.main import main as relais
from gateway.inbound.receive import receive
from gateway.settings import settings
from tests.security.conftest import snapshot

HOSTILE = {  # name -> (bytes, rule id, words of the French reason)
    "deep-nesting": (b"[" * 100_000 + b"]" * 100_000, "json-too-deep", ("profonde",)),
    "duplicate-key": (b'{"resourceType": "Bundle", "resourceType": "Patient"}', "json-duplicate-key", ("double",)),
    "huge-number": (b'{"id": 1e400}', "json-non-finite", ("hors limites", "non finie")),
    "integer-beyond-64-bits": (b'{"version": 123456789012345678901234567890}', "json-number-too-large",
                               ("hors limites",)),
    "nan": (b'{"id": NaN}', "json-non-finite", ("non finie",)),
    "nul": (b'{"id": "a\\u0000"}', "json-nul-character", ("NUL",)),
    "invalid-utf8": (b'{"id": "\xc3\x28"}', "json-encoding", ("UTF-8",)),
    "not-json": (b"<Bundle/>", "json-syntax", ("JSON invalide",)),
}

# Commands that read a JSON file: argv (FILE replaced), and whether they write to the database.
COMMANDS = {
    "plan-validate": (["plan", "validate", "FILE"], False),
    "plan-import": (["plan", "import", "FILE", "--tenant", "plateforme-a"], True),
    "fhir-import": (["fhir", "import", "FILE"], False),
    "fhir-validate": (["fhir", "validate", "FILE"], False),
    "fhir-export": (["fhir", "export", "--plan", "FILE"], False),
    "consent-import": (["consent", "import", "FILE", "--tenant", "plateforme-a", "--person", "U000001"], True),
    "activity-import": (["activity", "import", "FILE", "--tenant", "plateforme-a", "--person", "U000001"], True),
    "cda-export": (["cda", "export", "--plan", "FILE"], False),
    "conformance-validate": (["conformance", "validate", "FILE"], False),
}


@pytest.fixture
def cli_database(shared_world, monkeypatch):
    monkeypatch.setenv("RELAIS_DATABASE_URL", shared_world.store.engine.url.render_as_string(hide_password=False))
    settings.cache_clear()
    yield shared_world
    settings.cache_clear()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_json_file_is_refused_by_the_command_naming_the_file_and_rule(cli_database, tmp_path, capsys,
                                                                              command, case):
    data, rule, words = HOSTILE[case]
    path = tmp_path / "hostile.json"
    path.write_bytes(data)
    argv, writes = COMMANDS[command]
    before = snapshot(cli_database.store) if writes else None
    try:
        code = relais([str(path) if a == "FILE" else a for a in argv])
    except SystemExit as exc:
        code = exc.code
    said = "".join(capsys.readouterr())
    assert code == 1, said[-800:]
    if command == "conformance-validate" and "artefact-unknown" in said:
        words = ("artefact-unknown",)  # the runner could not even tell what the file is: refused as such
    assert str(path) in said and (rule in said or any(w in said for w in words)), said[-800:]
    if writes:
        assert snapshot(cli_database.store) == before


@pytest.mark.parametrize("kind", ["sdo-decision", "nde-event"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_from_a_peer_is_quarantined_and_changes_nothing_else(world, kind, case):
    data, _, words = HOSTILE[case]
    before = snapshot(world.store)
    item = Inbound("viatrajectoire" if kind.startswith("sdo") else "eparcours", kind, f"peer-{case}",
                   "application/fhir+json", data, {})
    assert receive(world.store, world.a, [item]) == {"quarantined": 1}
    after = snapshot(world.store)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"inbound_items", "audit_entries", "audit_head", "audit_tiles", "audit_pseudonyms"}, changed
    assert world.store.get_plan(world.a, world.person).version == 1
    with world.store.reading() as conn:
        summary = conn.execute(sa.text("SELECT summary FROM inbound_items WHERE peer_reference = :r"),
                               {"r": f"peer-{case}"}).scalar()
    assert "illisible" in summary or "inattendu" in summary, summary
