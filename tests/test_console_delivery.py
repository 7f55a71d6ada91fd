"""Console pages for what the DPO acts on beyond consents: dead letters replayed with lineage
(issue 5: "dead letters can be replayed (API, CLI, console)") and the annual SERAFIN-PH data set
downloaded from the « Activité » page (issue 10: "the export buttons")."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json

from connectors.base import Recipient
from gateway.delivery import outbox
from gateway.delivery.model import ExchangeRequest, Status
from tests.test_console import audit_rows, client_for, clock, log_in, platform, web  # noqa: F401
from tests.test_console_support import csrf_token

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def dead_letter(store, tenant_slug: str = "plateforme-a") -> str:
    tenant = store.get_tenant(tenant_slug)
    request = ExchangeRequest(person_local_id="U000001", system="eparcours",
                              recipient=Recipient("system", "eparcours"), purpose="COC", payload_kind="tddui-bundle")
    with store.transaction() as conn:
        exchange_id = outbox.insert(conn, tenant_id=tenant.id, request=request, plan_version=1,
                                    status=Status.queued, key=f"k-{tenant_slug}", actor="test", now=T0,
                                    payload=b"{}", content_type="application/fhir+json").id
        [item] = outbox.claim(conn, owner="w", now=T0, lease=dt.timedelta(seconds=30), limit=1)
        outbox.mark_dead(conn, item.seq, "w", 1, "[422] CarePlan.title : élément obligatoire absent", T0)
    return exchange_id


def test_a_dead_letter_shows_the_peers_words_and_replays_with_lineage(web, platform):
    store, _, _ = platform
    exchange_id = dead_letter(store)
    log_in(web)
    page = web.get("/console/lettres-mortes")
    assert page.status_code == 200 and "élément obligatoire absent" in html.unescape(page.text)
    replayed = web.post(f"/console/lettres-mortes/{exchange_id}/rejouer", data={"csrf": csrf_token(page.text)})
    assert replayed.status_code == 200 and "rejouée (échange" in html.unescape(replayed.text)
    assert f"/lettres-mortes/{exchange_id}/rejouer" not in replayed.text  # not twice from here
    tenant = store.get_tenant("plateforme-a")
    with store.reading() as conn:
        [new] = outbox.listing(conn, tenant.id, status="queued")
    assert new.replay_of == exchange_id
    assert [r["refs"]["page"] for r in audit_rows(store, "console.viewed")].count("lettres-mortes") == 2


def test_replaying_needs_the_session_token(web, platform):
    store, _, _ = platform
    exchange_id = dead_letter(store)
    log_in(web)
    refused = web.post(f"/console/lettres-mortes/{exchange_id}/rejouer", data={})
    assert refused.status_code == 403
    with store.reading() as conn:
        assert outbox.get(conn, store.get_tenant("plateforme-a").id, exchange_id).status is Status.dead


def test_another_platforms_dead_letters_are_neither_shown_nor_replayable(web, platform):
    store, _, _ = platform
    store.create_tenant("plateforme-z", "Plateforme Z")
    foreign = dead_letter(store, "plateforme-z")
    log_in(web)
    page = web.get("/console/lettres-mortes")
    assert foreign not in page.text
    answer = web.post(f"/console/lettres-mortes/{foreign}/rejouer", data={"csrf": csrf_token(page.text)})
    assert answer.status_code == 409


def test_the_activity_page_offers_the_annual_data_set(web, platform):
    store, _, _ = platform
    log_in(web)
    page = web.get("/console/activite", params={"du": "2026-01-01", "au": "2026-11-26"})
    assert 'id="export-csv"' in page.text and "jeu-annuel-2026.csv" in page.text
    data = web.get("/console/activite/jeu-annuel-2026.csv")
    assert data.status_code == 200 and "attachment" in data.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(data.text)))
    assert rows and rows[0]["format"] == "relais-serafin-dataset/1" and rows[0]["year"] == "2026"
    as_json = web.get("/console/activite/jeu-annuel-2026.json").json()
    assert as_json["year"] == 2026 and as_json["indicators"]
    assert web.get("/console/activite/jeu-annuel-2026.xml").status_code == 404
    exports = [r["refs"] for r in audit_rows(store, "console.viewed") if r["refs"]["page"] == "activite-export"]
    assert [e["format"] for e in exports] == ["csv", "json"]
