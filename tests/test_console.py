"""The DPO console over HTTP (FastAPI TestClient, SQLite and PostgreSQL): accounts, log-in,
throttling and lock-out, sessions, CSRF, each page, the access report's CSV, tenant
isolation, audited page views, and the integrity alarm after a tampered row."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.console import accounts
from gateway.console.reports import HEADER, Disclosure, to_csv
from gateway.console.routes import console_app
from gateway.storage import Conflict
from tests.test_console_support import (
    NOW,
    OTHER_PASSWORD,
    PASSWORD,
    console_settings,
    csrf_token,
    entry_seq,
    make_accounts,
    seed,
    tamper,
)


class Clock:
    def __init__(self):
        self.now = NOW + dt.timedelta(hours=1)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def platform(store, tmp_path):
    seeded = seed(store)
    config = console_settings(store, tmp_path / "audit-keys")
    make_accounts(store, config)
    return store, config, seeded


@pytest.fixture
def clock():
    return Clock()


def client_for(store, config, clock, base_url="http://testserver") -> TestClient:
    outer = FastAPI()
    outer.mount("/console", console_app(store, config, clock=clock))
    return TestClient(outer, base_url=base_url, follow_redirects=True)


@pytest.fixture
def web(platform, clock):
    store, config, _ = platform
    return client_for(store, config, clock)


def log_in(web: TestClient, tenant="plateforme-a", login="dpo.a", password=PASSWORD, suite="/console/"):
    page = web.get("/console/connexion")
    return web.post("/console/connexion", data={
        "csrf": csrf_token(page.text), "plateforme": tenant, "identifiant": login, "mot_de_passe": password,
        "suite": suite})


def audit_rows(store, action: str) -> list[dict]:
    with store.reading() as conn:
        bodies = conn.execute(sa.text("SELECT body FROM audit_entries WHERE action = :a ORDER BY seq"),
                              {"a": action}).scalars().all()
    return [json.loads(bytes(b)) for b in bodies]


# ------------------------------------------------------------------ accounts and passwords


def test_passwords_are_stored_as_salted_scrypt_hashes_with_their_parameters(platform):
    store, config, _ = platform
    with store.reading() as conn:
        hashes = conn.execute(sa.text("SELECT password_hash FROM console_accounts")).scalars().all()
    assert all(h.startswith("scrypt$ln=12$r=8$p=1$") for h in hashes)
    first = accounts.hash_password(PASSWORD, 12)
    assert first != accounts.hash_password(PASSWORD, 12)  # a fresh salt every time
    assert accounts.check_password(PASSWORD, first) and not accounts.check_password(PASSWORD + "x", first)
    assert accounts.needs_rehash(first, 13) and not accounts.needs_rehash(first, 12)


@pytest.mark.parametrize("password, why", [
    ("court", "trop court"), ("dpo.a-et-la-suite", "identifiant"), ("aaaaaaaaaaaaaaaa", "répétitif")])
def test_weak_passwords_and_taken_logins_are_refused(platform, password, why):
    store, config, _ = platform
    with pytest.raises(ValueError, match=why):
        accounts.create_account(store, "plateforme-a", "dpo.a", password, config=config)
    with pytest.raises(Conflict):
        accounts.create_account(store, "plateforme-a", "dpo.a", PASSWORD + "!", config=config)


def test_a_login_raises_an_old_hash_to_the_configured_cost(platform, clock):
    store, config, _ = platform
    stronger = config.model_copy(update={"console_scrypt_log2_n": 13})
    web = client_for(store, stronger, clock)
    assert log_in(web).status_code == 200
    with store.reading() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM console_accounts WHERE login = 'dpo.a'")).scalar()
    assert stored.startswith("scrypt$ln=13$")


# ------------------------------------------------------------------ log-in, lock-out


def test_a_dpo_logs_in_and_lands_on_the_home_page(web):
    response = log_in(web)
    assert response.status_code == 200 and str(response.url).endswith("/console/")
    assert "Console DPO — PCPE du Val (test)" in response.text and "Se déconnecter" in response.text


def test_pages_need_a_session_and_come_back_after_log_in(web, platform):
    _, _, seeded = platform
    first = web.get(f"/console/personnes/{seeded.sent_person}")
    assert str(first.url).startswith("http://testserver/console/connexion?suite=/console/personnes/")
    response = web.post("/console/connexion", data={
        "csrf": csrf_token(first.text), "plateforme": "plateforme-a", "identifiant": "dpo.a",
        "mot_de_passe": PASSWORD, "suite": f"/console/personnes/{seeded.sent_person}"})
    assert str(response.url).endswith(f"/console/personnes/{seeded.sent_person}")


def test_a_wrong_password_and_an_unknown_login_get_the_same_answer(web, platform):
    store, _, _ = platform
    wrong = log_in(web, password="pas le bon mot de passe")
    unknown = log_in(web, login="personne.inconnue", password="pas le bon mot de passe")
    other_tenant = log_in(web, tenant="plateforme-b", password=PASSWORD)  # dpo.a is not B's DPO
    for response in (wrong, unknown, other_tenant):
        assert response.status_code == 401
        assert "identifiant ou mot de passe incorrect" in response.text
        assert "Se déconnecter" not in response.text
    outcomes = [(e["tenant"], e["actor"], e["outcome"]) for e in audit_rows(store, "console.login")]
    assert outcomes[0][1:] == ("dpo:dpo.a", "failure")
    assert outcomes[1][1:] == ("console", "failure") and "login_sha256" in audit_rows(store, "console.login")[1]["refs"]


def test_repeated_failures_are_slowed_then_locked_and_unlock_clears_them(web, platform, clock):
    store, config, _ = platform
    assert log_in(web, password="essai numéro un!").status_code == 401
    assert log_in(web, password="essai numéro deux").status_code == 401
    throttled = log_in(web, password=PASSWORD)  # even the right password must wait
    assert throttled.status_code == 429 and "réessayez dans 1 s" in throttled.text
    assert throttled.headers["retry-after"] == "1"
    for n in range(3, 6):  # the wait doubles: 1 s, 2 s, 4 s
        clock.advance(seconds=2 ** (n - 2))
        assert log_in(web, password=f"essai numéro {n}!!").status_code in (401, 429)
    locked = log_in(web, password=PASSWORD)
    assert locked.status_code == 429 and "connexion bloquée jusqu" in locked.text
    clock.advance(minutes=config.console_lockout_minutes - 1)
    assert log_in(web, password=PASSWORD).status_code == 429
    assert accounts.unlock(store, "plateforme-a", "dpo.a") is True
    assert log_in(web, password=PASSWORD).status_code == 200
    kinds = [e["outcome"] for e in audit_rows(store, "console.login")]
    assert "throttled" in kinds and "locked" in kinds and kinds[-1] == "success"
    assert audit_rows(store, "console.account.unlocked")[0]["actor"] == "cli"


def test_an_unknown_login_is_locked_like_a_real_one(web, clock, platform):
    _, config, _ = platform
    for n in range(config.console_lockout_failures):
        log_in(web, login="inconnu", password=f"mauvais mot {n}!")
        clock.advance(seconds=60)
    assert "connexion bloquée" in log_in(web, login="inconnu", password="mauvais mot 9!").text


def test_the_lock_out_expires(web, clock, platform):
    _, config, _ = platform
    for n in range(config.console_lockout_failures):
        log_in(web, password=f"mauvais mot {n}!")
        clock.advance(seconds=60)
    clock.advance(minutes=config.console_lockout_minutes)
    assert log_in(web).status_code == 200


# ------------------------------------------------------------------ sessions, cookies, CSRF


def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_console(platform, clock):
    store, config, _ = platform
    web = client_for(store, config, clock, base_url="https://testserver")
    page = web.get("/console/connexion")
    response = web.post("/console/connexion", data={
        "csrf": csrf_token(page.text), "plateforme": "plateforme-a", "identifiant": "dpo.a",
        "mot_de_passe": PASSWORD}, follow_redirects=False)
    cookie = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("relais_console=")][0]
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console", "secure"} <= flags
    assert not any(f.startswith(("max-age", "expires")) for f in flags)
    with store.reading() as conn:
        stored = conn.execute(sa.text("SELECT token_sha256 FROM console_sessions")).scalar()
    assert cookie.split(";")[0].split("=", 1)[1] != stored and len(stored) == 64  # only its digest


def test_the_cookie_is_not_secure_over_plain_http_unless_configured(platform, clock):
    store, config, _ = platform
    web = client_for(store, config, clock)
    page = web.get("/console/connexion")
    assert "secure" not in page.headers["set-cookie"].lower().split("; ")
    response = web.post("/console/connexion", data={
        "csrf": csrf_token(page.text), "plateforme": "plateforme-a", "identifiant": "dpo.a",
        "mot_de_passe": PASSWORD}, follow_redirects=False)
    assert "secure" not in response.headers["set-cookie"].lower().split("; ")
    forced = client_for(store, config.model_copy(update={"console_cookie_secure": True}), clock)
    assert "secure" in forced.get("/console/connexion").headers["set-cookie"].lower().split("; ")


def test_the_log_in_form_needs_its_own_csrf_token(web):
    web.get("/console/connexion")
    response = web.post("/console/connexion", data={"csrf": "forged", "plateforme": "plateforme-a",
                                                     "identifiant": "dpo.a", "mot_de_passe": PASSWORD})
    assert response.status_code == 403 and "CSRF" in response.text


def test_a_post_without_the_session_token_is_refused_and_audited(web, platform):
    store, _, _ = platform
    log_in(web)
    assert web.post("/console/integrite/verifier", data={}).status_code == 403
    assert web.post("/console/deconnexion", data={"csrf": "x" * 43}).status_code == 403
    assert web.get("/console/").status_code == 200  # nothing happened: still signed in
    with store.reading() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM console_verifications")).scalar() == 0
    assert [e["outcome"] for e in audit_rows(store, "console.refused")] == ["csrf", "csrf"]


def test_a_post_from_another_origin_is_refused_even_with_the_token(web):
    log_in(web)
    token = csrf_token(web.get("/console/integrite").text)
    response = web.post("/console/integrite/verifier", data={"csrf": token},
                        headers={"origin": "https://attaquant.example"})
    assert response.status_code == 403


def test_an_idle_session_ends(web, clock, platform):
    _, config, _ = platform
    log_in(web)
    clock.advance(minutes=config.console_session_idle_minutes - 1)
    assert web.get("/console/").url.path == "/console/"  # activity moves the idle deadline on
    clock.advance(minutes=config.console_session_idle_minutes - 1)
    assert web.get("/console/").url.path == "/console/"
    clock.advance(minutes=config.console_session_idle_minutes)
    assert web.get("/console/").url.path == "/console/connexion"


def test_a_session_ends_after_its_absolute_lifetime_even_when_active(web, clock, platform):
    _, config, _ = platform
    log_in(web)
    for _ in range(int(config.console_session_max_hours * 60 / 10)):
        clock.advance(minutes=10)
        web.get("/console/static/console.css")
        if web.get("/console/").url.path != "/console/":
            break
    assert clock.now - (NOW + dt.timedelta(hours=1)) <= dt.timedelta(hours=config.console_session_max_hours)
    assert web.get("/console/").url.path == "/console/connexion"


def test_log_out_ends_the_session_for_good(web, platform):
    store, _, _ = platform
    log_in(web)
    cookie = web.cookies.get("relais_console")
    token = csrf_token(web.get("/console/").text)
    assert web.post("/console/deconnexion", data={"csrf": token}).url.path == "/console/connexion"
    web.cookies.set("relais_console", cookie, path="/console")
    assert web.get("/console/").url.path == "/console/connexion"
    assert audit_rows(store, "console.logout")[0]["actor"] == "dpo:dpo.a"


def test_changing_the_password_closes_open_sessions(web, platform):
    store, config, _ = platform
    log_in(web)
    accounts.set_password(store, "plateforme-a", "dpo.a", "une toute nouvelle phrase", config=config)
    assert web.get("/console/").url.path == "/console/connexion"


def test_a_disabled_account_is_signed_out_and_cannot_log_in_again(web, platform):
    store, _, _ = platform
    log_in(web)
    accounts.disable(store, "plateforme-a", "dpo.a")
    assert web.get("/console/").url.path == "/console/connexion"
    assert log_in(web).status_code == 401
    assert audit_rows(store, "console.account.disabled")[0]["refs"]["login"] == "dpo.a"


def test_after_log_in_only_console_paths_are_followed(web):
    response = log_in(web, suite="//attaquant.example/console/")
    assert str(response.url) == "http://testserver/console/"


def test_pages_forbid_framing_scripts_and_caching(web):
    log_in(web)
    headers = web.get("/console/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none' covers it
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------ pages


def test_finding_a_person_by_local_id_or_pseudonym_opens_their_consents(web, platform):
    store, _, seeded = platform
    log_in(web)
    page = web.get("/console/personnes", params={"q": seeded.sent_person})
    assert page.url.path == f"/console/personnes/{seeded.sent_person}"
    from gateway.audit import pseudonym

    with store.transaction() as conn:
        alias = pseudonym(conn, seeded.tenant.id, seeded.sent_person)
    assert web.get("/console/personnes", params={"q": alias}).url.path == page.url.path
    missing = web.get("/console/personnes", params={"q": "U-personne"})
    assert missing.status_code == 404 and "Aucune personne de votre plateforme" in missing.text


def test_the_person_page_shows_each_consent_its_state_history_and_who_gave_it(web, platform):
    _, _, seeded = platform
    log_in(web)
    page = html.unescape(web.get(f"/console/personnes/{seeded.sent_person}").text)
    assert "opposition à l'échange et au partage (L.1110-4 IV)" in page and "en vigueur" in page
    assert "titulaire de l'autorité parentale" in page  # a minor: a parent signed
    assert "Historique des versions" in page and "coordinatrice-1" in page
    assert "partage au sein de l'équipe de soins" in page  # information record
    assert "la personne (ou son représentant) s'y oppose" in page  # the latest denial


def test_a_withdrawn_consent_shows_its_two_versions(web, platform):
    store, _, seeded = platform
    from gateway.consent import ConsentRegistry

    registry = ConsentRegistry(store)
    [current] = registry.list_consents(seeded.tenant, seeded.sent_person)
    registry.withdraw(seeded.tenant, seeded.sent_person, current.id, actor="coordinatrice-2")
    log_in(web)
    page = web.get(f"/console/personnes/{seeded.sent_person}").text
    assert "retiré / inactif" in page and "coordinatrice-2" in page and page.count("<tr><td>") >= 3


def test_decisions_filter_by_outcome_system_date_and_person_with_each_denial_reason(web, platform):
    _, _, seeded = platform
    log_in(web)
    everything = web.get("/console/decisions").text
    assert everything.count('class="refus"') == 2 and everything.count('class="autorise"') == 1
    denied = web.get("/console/decisions", params={"issue": "deny", "systeme": "mss"}).text
    assert denied.count('class="refus"') == 1 and 'class="autorise"' not in denied
    assert "la personne (ou son représentant) s&#39;y oppose" in denied and "[L7-opposition]" in denied
    assert "CSP L.1110-4 IV" in denied  # the rule's legal source
    spine = web.get("/console/decisions", params={"issue": "deny", "personne": seeded.refused_person}).text
    assert "[L13-ins-qualified]" in spine and "identité non qualifiée (statut VALI)" in spine  # worded at decision time
    assert web.get("/console/decisions", params={"du": "2026-11-27"}).text.count("<tr class=") == 0
    today = web.get("/console/decisions", params={"du": "2026-11-26", "au": "2026-11-26"}).text
    assert today.count("<tr class=") == 3
    assert "date de début illisible" in web.get("/console/decisions", params={"du": "hier"}).text


def test_the_access_report_names_recipients_dates_purposes_and_basis(web, platform):
    _, _, seeded = platform
    log_in(web)
    page = web.get(f"/console/personnes/{seeded.sent_person}/acces").text
    assert "Outil e-parcours régional (GRADeS)" in page and "COC — coordination du parcours" in page
    assert "partage au sein de l&#39;équipe de soins" in page and "CSP L.1110-4 III al. 1" in page
    assert "coordinatrice-1" not in page  # C-579/21: staff not named by default
    response = web.get(f"/console/personnes/{seeded.sent_person}/acces.csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(f'attachment; filename="acces-{seeded.sent_person}-')
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert list(rows[0]) == HEADER
    [row] = rows
    assert row["date_utc"] == "2026-11-26T10:00:02Z" and row["statut"] == "communiqué"
    assert row["destinataire"] == "Outil e-parcours régional (GRADeS)" and row["systeme"].startswith("e-parcours")
    assert row["finalite"] == "COC — coordination du parcours" and row["regime"].startswith("partage au sein")
    assert row["decision"] and row["echange"] == seeded.sent_exchange and len(row["empreinte_sha256"]) == 64
    assert "identité" in row["categories_donnees"] and "projet personnalisé" in row["categories_donnees"]
    with_actors = web.get(f"/console/personnes/{seeded.sent_person}/acces.csv", params={"auteurs": "1"})
    assert next(csv.DictReader(io.StringIO(with_actors.content.decode("utf-8-sig")), delimiter=";"))["auteur"] == "coordinatrice-1"


def test_refused_exchanges_are_not_in_the_access_report(web, platform):
    _, _, seeded = platform
    log_in(web)
    response = web.get(f"/console/personnes/{seeded.refused_person}/acces.csv")
    assert response.content.decode("utf-8-sig").strip().count("\n") == 0  # the header only


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised():
    row = Disclosure(NOW, "communiqué", "=HYPERLINK(\"http://x\")", "professionnel", "+331", "", "MSSanté",
                     "COC", "échange", "CSP", "d1", "", "identité", "cda", 1, "ab", "e1")
    [cells] = list(csv.DictReader(io.StringIO(to_csv([row]).decode("utf-8-sig")), delimiter=";"))
    assert cells["destinataire"] == "'=HYPERLINK(\"http://x\")" and cells["identifiant_destinataire"] == "'+331"


# ------------------------------------------------------------------ tenant isolation


def test_a_dpo_never_sees_another_platforms_persons_decisions_or_reports(web, platform):
    store, _, seeded = platform
    log_in(web)  # DPO of platform A
    for path in (f"/console/personnes/{seeded.other_person}", f"/console/personnes/{seeded.other_person}/acces",
                 f"/console/personnes/{seeded.other_person}/acces.csv"):
        assert web.get(path).status_code == 404
    assert web.get("/console/personnes", params={"q": seeded.other_person}).status_code == 404
    from gateway.audit import pseudonym

    with store.transaction() as conn:
        alias = pseudonym(conn, seeded.other.id, seeded.other_person)
    assert web.get("/console/personnes", params={"q": alias}).status_code == 404
    decisions = web.get("/console/decisions").text
    assert seeded.other_person not in decisions
    assert web.get("/console/decisions", params={"personne": seeded.other_person}).text.count("<tr class=") == 0


def test_the_other_platforms_dpo_sees_only_their_own(platform, clock):
    store, config, seeded = platform
    web = client_for(store, config, clock)
    log_in(web, tenant="plateforme-b", login="dpo.b", password=OTHER_PASSWORD)
    decisions = web.get("/console/decisions").text
    assert decisions.count("<tr class=") == 1 and seeded.other_person in decisions
    assert web.get(f"/console/personnes/{seeded.sent_person}").status_code == 404


# ------------------------------------------------------------------ audit of the console


def test_every_page_view_is_audited_with_the_dpo_the_page_and_the_persons_pseudonym(web, platform):
    store, _, seeded = platform
    log_in(web)
    web.get(f"/console/personnes/{seeded.sent_person}")
    web.get(f"/console/personnes/{seeded.sent_person}/acces.csv")
    web.get("/console/decisions", params={"issue": "deny"})
    web.get("/console/integrite")
    web.get("/console/static/console.css")  # not a page
    from gateway.audit import pseudonym

    with store.transaction() as conn:
        alias = pseudonym(conn, seeded.tenant.id, seeded.sent_person)
    views = audit_rows(store, "console.viewed")
    assert [v["refs"]["page"] for v in views] == ["accueil", "consentements", "acces-csv", "decisions", "integrite"]
    assert {v["actor"] for v in views} == {"dpo:dpo.a"} and {v["tenant"] for v in views} == {seeded.tenant.id}
    assert views[1]["subject"] == views[2]["subject"] == alias
    assert "subject" not in views[3] and views[3]["refs"]["issue"] == "deny"
    assert all(seeded.sent_person not in json.dumps(v) for v in views)  # pseudonyms only


# ------------------------------------------------------------------ integrity


def test_verification_succeeds_then_a_tampered_row_raises_the_alarm_on_every_page(web, platform):
    store, _, _ = platform
    log_in(web)
    page = web.get("/console/integrite")
    assert "Dernier point de contrôle signé" in page.text and 'id="alarme"' not in page.text
    done = web.post("/console/integrite/verifier", data={"csrf": csrf_token(page.text)})
    assert done.url.path == "/console/integrite" and "RÉUSSIE" in done.text and 'id="alarme"' not in done.text
    assert "tirées des clés privées de signature" in done.text  # pinned, not first use
    seq = entry_seq(store, "decision.deny")
    tamper(store, seq)
    done = web.post("/console/integrite/verifier", data={"csrf": csrf_token(done.text)})
    assert 'id="alarme"' in done.text and f"entrée {seq}</strong>" in done.text
    assert "contenu modifié" in done.text
    assert 'id="alarme"' in web.get("/console/decisions").text  # on every page
    results = [e["outcome"] for e in audit_rows(store, "console.verified")]
    assert results == ["success", "failure"]
    assert audit_rows(store, "console.verified")[-1]["refs"]["first_bad_entry"] == str(seq)


def test_a_log_signed_by_a_key_the_console_does_not_trust_fails(web, platform):
    store, config, _ = platform
    log_in(web)
    from gateway.audit import note

    stranger = note.Signer.generate(config.audit_origin).verifier.vkey
    [mount] = [r for r in web.app.routes if getattr(r, "path", None) == "/console"]
    console = mount.app.state.console
    console.config = config.model_copy(update={"console_trusted_keys": [stranger]})
    page = web.get("/console/integrite")
    done = web.post("/console/integrite/verifier", data={"csrf": csrf_token(page.text)})
    assert 'id="alarme"' in done.text and "aucune signature valide d&#39;une clé de confiance" in done.text


def test_the_real_application_serves_the_console_under_console(platform):
    from gateway.api.app import create_app

    store, config, _ = platform
    web = TestClient(create_app(store, config), follow_redirects=True)
    assert web.get("/console").url.path == "/console/connexion"
    assert log_in(web).url.path == "/console/"
    assert "/console" not in json.dumps(web.get("/openapi.json").json()["paths"])


# ------------------------------------------------------------------ command line


def test_the_command_line_creates_lists_and_unlocks_accounts(platform, monkeypatch, capsys):
    store, config, _ = platform
    from gateway.cli.main import main

    url = config.database_url
    monkeypatch.setenv("RELAIS_CONSOLE_SCRYPT_LOG2_N", "12")
    from gateway.settings import settings

    settings.cache_clear()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("une phrase de passe solide\n"))
        assert main(["console", "account", "create", "--tenant", "plateforme-a", "--login", "dpo.c",
                     "--password-stdin", "--database", url]) == 0
        assert "compte DPO créé : dpo.c" in capsys.readouterr().out
        monkeypatch.setattr("sys.stdin", io.StringIO("court\n"))
        assert main(["console", "account", "create", "--tenant", "plateforme-a", "--login", "dpo.d",
                     "--password-stdin", "--database", url]) == 1
        assert "trop court" in capsys.readouterr().err
        assert main(["console", "account", "unlock", "--tenant", "plateforme-a", "--login", "dpo.c",
                     "--database", url]) == 0
        assert main(["console", "account", "unlock", "--tenant", "plateforme-a", "--login", "nobody",
                     "--database", url]) == 3
        assert main(["console", "account", "list", "--tenant", "plateforme-a", "--database", url]) == 0
        assert "dpo.c\tactif" in capsys.readouterr().out
        assert main(["console", "account", "disable", "--tenant", "plateforme-a", "--login", "dpo.c",
                     "--database", url]) == 0
        main(["console", "account", "list", "--tenant", "plateforme-a", "--database", url])
        assert "dpo.c\tdésactivé" in capsys.readouterr().out
    finally:
        settings.cache_clear()


def test_one_address_failing_on_many_logins_is_stopped(web, clock, platform):
    from gateway.console.routes import ADDRESS_FAILURES

    for n in range(ADDRESS_FAILURES):
        assert log_in(web, login=f"essai{n}", password="mot de passe deviné!").status_code == 401
    refused = log_in(web)  # even the right account and password, from this address
    assert refused.status_code == 429 and "depuis cette adresse" in html.unescape(refused.text)
    clock.advance(minutes=11)
    assert log_in(web).status_code == 200


def test_the_activity_page_shows_only_the_platforms_own_activity_and_is_audited(web, platform):
    from tests.test_activity_support import hand_case

    store, config, _ = platform
    hand_case(store, slug="plateforme-activite")  # another platform, with activity in February 2026
    accounts.create_account(store, "plateforme-activite", "dpo.activite", PASSWORD, config=config)
    log_in(web)  # DPO of platform A: no activity recorded
    mine = web.get("/console/activite", params={"du": "2026-02-01", "au": "2026-02-28"})
    assert '<strong id="file-active">0</strong>' in mine.text and mine.text.count('role="img"') == 5
    web.post("/console/deconnexion", data={"csrf": csrf_token(mine.text)})
    log_in(web, tenant="plateforme-activite", login="dpo.activite")
    theirs = web.get("/console/activite", params={"du": "2026-02-01", "au": "2026-02-28"})
    assert '<strong id="file-active">2</strong>' in theirs.text
    bad = web.get("/console/activite", params={"du": "février"})
    assert "période invalide" in html.unescape(bad.text)
    pages = [v["refs"] for v in audit_rows(store, "console.viewed") if v["refs"]["page"] == "activite"]
    assert pages[0] == {"page": "activite", "du": "2026-02-01", "au": "2026-02-28"}


def test_the_decisions_list_pages_backwards_without_gaps_or_repeats(web, platform, monkeypatch):
    import re

    monkeypatch.setattr("gateway.console.routes.PAGE", 1)
    log_in(web)
    seen, page = [], web.get("/console/decisions")
    while True:
        seen += re.findall(r'id="decision-([0-9a-f]+)"', page.text)
        following = re.search(r'href="(/console/decisions\?[^"]*avant=[^"]+)"', page.text)
        if not following:
            break
        page = web.get(html.unescape(following.group(1)))
    assert len(seen) == 3 and len(set(seen)) == 3
