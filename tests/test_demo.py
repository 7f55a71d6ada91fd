"""`make demo` is a README contract: the main job runs on a fresh SQLite base and tells what
happened — stored plans, consent refusals with their reasons, deliveries to both sandbox
peers after an outage, decisions received, and a verified audit trail."""

from __future__ import annotations

from gateway.demo import run
from gateway.settings import Settings


def test_the_demo_runs_the_main_job_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RELAIS_AUDIT_KEY_DIR", str(tmp_path / "keys"))
    config = Settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}", audit_key_dir=tmp_path / "keys")
    assert run(config) == 0
    out = capsys.readouterr().out
    assert "60/60 projets valides" in out
    assert "60 créé" in out
    assert "412 Version périmée" in out
    assert "refusé (14) : identité non qualifiée" in out
    assert "la personne s'y oppose" in out
    table = {line.split()[0]: line.split()[-6:] for line in out.splitlines()
             if line.strip().startswith(("e-parcours", "ViaTrajectoire"))}
    sent, refused, invalid, dead = (int(x) for x in table["e-parcours"][:4])
    assert sent > 0 and refused > 0 and dead == 0  # the outage was ridden out
    assert int(table["ViaTrajectoire"][0]) > 0 and int(table["ViaTrajectoire"][4]) > 0
    assert "vérification hors ligne de l'export : intègre" in out
    assert "file active : 36 personnes" in out and "taux d'occupation" in out  # a month of activity
    assert "identiques octet pour octet" in out  # DMP: what was deposited reads back the same
