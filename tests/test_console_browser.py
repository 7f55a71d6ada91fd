"""The DPO console end to end in a real headless Chromium driven by Playwright.

The real application (`create_app`, console mounted at /console) runs on loopback
(`ThreadedServer`) over a SQLite store seeded with synthetic persons (tests/test_console_support).
The DPO logs in, finds a person, reads a denial reason, downloads the access report (CSV
checked), runs the verification (OK); then an attacker rewrites one audit row behind the
database's append-only trigger, and the next "Vérifier maintenant" raises the red alarm,
on every page, naming that entry.

The browser is the system Chromium (Debian package `chromium`, /usr/bin/chromium); Playwright
never downloads one. Without it the test is skipped, unless RELAIS_REQUIRE_BROWSER=1 (CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from connectors.sandbox.server import ThreadedServer
from gateway.api.app import create_app
from gateway.storage import Store
from tests.test_console_support import PASSWORD, console_settings, entry_seq, make_accounts, seed, tamper

CHROMIUM = os.environ.get("RELAIS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str):
    if os.environ.get("RELAIS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (RELAIS_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("navigateur : le paquet Python playwright n'est pas installé")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"navigateur : Chromium introuvable en {CHROMIUM} (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="relais-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, accept_downloads=True,
            locale="fr-FR", timezone_id="Europe/Paris")
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def running(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    store.migrate()
    seeded = seed(store)
    config = console_settings(store, tmp_path / "audit-keys")
    make_accounts(store, config)
    with ThreadedServer(create_app(store, config)) as server:
        yield server.url, store, seeded
    store.close()


def test_a_dpo_reads_a_denial_downloads_the_report_verifies_and_sees_tampering(browser, running, tmp_path):
    url, store, seeded = running
    page = browser.new_page()
    page.set_default_timeout(20_000)

    # Log in (the console sends an unauthenticated visitor to the log-in page).
    page.goto(f"{url}/console/")
    assert page.url.startswith(f"{url}/console/connexion")
    page.get_by_label("Plateforme (identifiant court)").fill("plateforme-a")
    page.get_by_label("Identifiant", exact=True).fill("dpo.a")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{url}/console/")
    assert "PCPE du Val (test)" in page.get_by_role("heading", level=1).inner_text()

    # Find a person; read the reason of the denial on their page.
    page.get_by_label("Identifiant local de la personne ou pseudonyme du journal (ps1-…)").fill(seeded.sent_person)
    page.get_by_role("button", name="Rechercher").click()
    page.wait_for_url(f"{url}/console/personnes/{seeded.sent_person}")
    consents = page.locator("#t-consentements").locator("..").inner_text()
    assert "opposition à l'échange et au partage" in consents and "en vigueur" in consents
    denial = page.locator(".decision.refus").first.inner_text()
    assert "la personne (ou son représentant) s'y oppose" in denial and "L7-opposition" in denial

    # The decisions page, filtered on denials: each shows its reasons.
    page.goto(f"{url}/console/decisions")
    page.get_by_label("Issue").select_option("deny")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**/console/decisions?issue=deny*")
    rows = page.locator("tr.refus")
    assert rows.count() == 2 and page.locator("tr.autorise").count() == 0
    assert "identité non qualifiée (statut VALI)" in page.locator("table.decisions").inner_text() or \
        "identité non qualifiée" in page.locator("table.decisions").inner_text()

    # Download the access report (GDPR art. 15) and read it.
    page.goto(f"{url}/console/personnes/{seeded.sent_person}/acces")
    assert "Outil e-parcours régional (GRADeS)" in page.locator("table.acces").inner_text()
    with page.expect_download() as info:
        page.get_by_role("link", name="Télécharger le rapport (CSV)").click()
    download = info.value
    assert download.suggested_filename.startswith(f"acces-{seeded.sent_person}-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    [row] = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert row["destinataire"] == "Outil e-parcours régional (GRADeS)" and row["statut"] == "communiqué"
    assert row["finalite"].startswith("COC") and row["echange"] == seeded.sent_exchange

    # Verify the audit trail: all good, no alarm.
    page.get_by_role("link", name="Intégrité du journal").click()
    page.wait_for_url(f"{url}/console/integrite")
    page.get_by_role("button", name="Vérifier maintenant").click()
    page.wait_for_url(f"{url}/console/integrite")
    assert "RÉUSSIE" in page.locator("#derniere-verification").inner_text()
    assert page.locator("#alarme").count() == 0

    # An attacker rewrites the denial's audit entry into a permit, behind the trigger.
    seq = entry_seq(store, "decision.deny")
    tamper(store, seq)
    page.get_by_role("button", name="Vérifier maintenant").click()
    page.wait_for_url(f"{url}/console/integrite")
    alarm = page.get_by_role("alert")
    assert alarm.is_visible()
    text = alarm.inner_text()
    assert "ALERTE" in text and f"entrée {seq}" in text
    assert "ÉCHEC" in page.locator("#derniere-verification").inner_text()
    page.screenshot(path=str(tmp_path / "alarme.png"), full_page=True)
    shots = os.environ.get("RELAIS_CONSOLE_SCREENSHOTS")
    if shots:
        shutil.copy(tmp_path / "alarme.png", Path(shots) / "console-alarme.png")

    # The alarm stays on every page.
    page.get_by_role("link", name="Accueil").click()
    page.wait_for_url(f"{url}/console/")
    assert f"entrée {seq}" in page.get_by_role("alert").inner_text()
    page.close()


def test_the_activity_page_draws_the_indicators_as_accessible_svg(browser, tmp_path):
    """Issue 10's « Activité » page (gateway.activity.charts), on the hand-computed case of the
    activity tests: February 2026, file active 2."""
    from tests.test_activity_support import hand_case

    store = Store(f"sqlite:///{tmp_path / 'relais.db'}")
    store.migrate()
    hand_case(store, slug="plateforme-activite")
    config = console_settings(store, tmp_path / "audit-keys")
    from gateway.console import accounts

    accounts.create_account(store, "plateforme-activite", "dpo.activite", PASSWORD, config=config)
    with ThreadedServer(create_app(store, config)) as server:
        page = browser.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/console/activite?du=2026-02-01&au=2026-02-28")
        page.get_by_label("Plateforme (identifiant court)").fill("plateforme-activite")
        page.get_by_label("Identifiant", exact=True).fill("dpo.activite")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/console/activite?du=2026-02-01&au=2026-02-28")
        assert page.locator("#file-active").inner_text() == "2"
        charts = page.locator("figure.graphique svg[role=img]")
        assert charts.count() == 5
        assert "File active par mois" in charts.first.get_attribute("aria-labelledby") or \
            "File active par mois" in charts.first.inner_html()
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100  # drawn, not empty
        page.screenshot(path=str(tmp_path / "activite.png"), full_page=True)
        shots = os.environ.get("RELAIS_CONSOLE_SCREENSHOTS")
        if shots:
            shutil.copy(tmp_path / "activite.png", Path(shots) / "console-activite.png")
        page.close()
    store.close()
