"""Builders shared by the console tests (HTTP and browser), and their own checks.

`seed(store)` makes a small synthetic platform: person U-p001 (fixture p001, qualified INS,
informed) whose plan went to the regional e-parcours tool (permit, sent), who then opposed
any sharing, after which a MSSanté exchange to a doctor was denied (opposition); person
p005 (identity not qualified) refused by the spine with the reasons worded at decision time;
a second platform with its own person and denial (tenant isolation).

`tamper(store, seq)` rewrites one audit entry as an attacker holding the database owner's
rights would: the database refuses UPDATE on `audit_entries` (trigger), so the attacker
disables it — SQLite: DROP TRIGGER, UPDATE, CREATE TRIGGER again with the very same SQL;
PostgreSQL: ALTER TABLE … DISABLE TRIGGER, UPDATE, ENABLE TRIGGER — in one transaction on a
raw connection, leaving the schema as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Receipt, Recipient
from gateway.consent import ConsentRegistry, DecisionRequest, Recipient as ConsentRecipient, Requester
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.console import accounts
from gateway.delivery import outbox, pipeline, trail
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest
from gateway.demo.consents import opposition
from gateway.model import Plan
from gateway.settings import Settings
from gateway.storage import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
PASSWORD = "phrase de passe du DPO 2026"
OTHER_PASSWORD = "autre phrase de passe 2026"
TOOL = Recipient(kind="system", identifier="eparcours", display="Outil e-parcours régional (GRADeS)")
DOCTOR = "dr.martin@medecin.mssante.example"


@dataclass(frozen=True)
class Seeded:
    tenant: object
    other: object
    sent_person: str  # p001: one disclosure, then an opposition and a denial
    refused_person: str  # p005: refused by the spine (identity not qualified)
    other_person: str  # the other platform's person
    sent_exchange: str
    deny_decision: str


def console_settings(store: Store, key_dir: Path, **overrides) -> Settings:
    """Settings for tests: the store's URL, a private key directory, a cheap scrypt cost."""
    values = dict(database_url=store.engine.url.render_as_string(hide_password=False),
                  audit_key_dir=key_dir, console_scrypt_log2_n=12)
    values.update(overrides)
    return Settings(**values)


def fixture_plan(name: str) -> Plan:
    return Plan.model_validate_json((FIXTURES / name).read_bytes())


def _store_informed(store: Store, tenant, name: str) -> Plan:
    plan = fixture_plan(name)
    store.put_plan(tenant, plan, if_match=None, actor="coordinatrice-1")
    ConsentRegistry(store).record_information(tenant, plan.person.local_id, InformationRecord(
        id=f"info-{tenant.slug}-{plan.person.local_id}", informed_at=NOW - dt.timedelta(days=30),
        method=InformationMethod.written, informed_by="coordinatrice de parcours",
        notice_version="notice-2026-01", topics=frozenset({InformationTopic.care_team_sharing})),
        actor="coordinatrice-1", now=NOW)
    return plan


def _submit(store: Store, tenant, plan: Plan):
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=plan.person.local_id, system="eparcours", recipient=TOOL, purpose="COC",
        payload_kind="tddui-bundle"), actor="coordinatrice-1", decider=consent_decider,
        now=lambda: NOW).exchange


def _mark_sent(store: Store, tenant) -> None:
    with store.transaction() as conn:
        [claimed] = outbox.claim(conn, owner="test-worker", now=NOW, lease=dt.timedelta(minutes=1), limit=1)
        outbox.mark_sent(conn, claimed.seq, "test-worker", Receipt("accepted", "CarePlan/42"),
                         claimed.attempt, NOW + dt.timedelta(seconds=2))
        request = ExchangeRequest(person_local_id=claimed.person_local_id, system=claimed.system,
                                  recipient=claimed.recipient, purpose=claimed.purpose,
                                  payload_kind=claimed.payload_kind)
        trail.record(conn, tenant, "worker", "exchange.sent", "success", request, claimed.id,
                     peer_reference="CarePlan/42")


def _deny_by_opposition(store: Store, tenant, plan: Plan) -> str:
    registry = ConsentRegistry(store)
    registry.record_consent(tenant, plan.person.local_id,
                            opposition(plan, NOW.date(), NOW - dt.timedelta(hours=1)),
                            actor="coordinatrice-1", now=NOW)
    decision = registry.decide(DecisionRequest(
        tenant_id=tenant.id, person_local_id=plan.person.local_id,
        recipient=ConsentRecipient.from_identifier("professional", DOCTOR, "health"),
        system="mss", purpose="COC", data_categories=frozenset({"plan"}),
        requester=Requester("coordinatrice-1")), now=NOW + dt.timedelta(minutes=5))
    assert not decision.permitted
    return decision.id


def seed(store: Store) -> Seeded:
    tenant = store.create_tenant("plateforme-a", "PCPE du Val (test)", "510000011")
    other = store.create_tenant("plateforme-b", "Plateforme voisine (test)", None)
    p001 = _store_informed(store, tenant, "p001-enfant-tnd.json")
    sent = _submit(store, tenant, p001)
    assert sent.status.value == "queued", sent.decision_reasons
    _mark_sent(store, tenant)
    deny = _deny_by_opposition(store, tenant, p001)
    p005 = _store_informed(store, tenant, "p005-enfant-tnd.json")  # VALI: refused by the spine
    assert _submit(store, tenant, p005).status.value == "refused"
    p002 = _store_informed(store, other, "p002-enfant-tnd.json")
    _deny_by_opposition(store, other, p002)
    return Seeded(tenant, other, p001.person.local_id, p005.person.local_id, p002.person.local_id,
                  sent.id, deny)


def make_accounts(store: Store, config: Settings) -> None:
    accounts.create_account(store, "plateforme-a", "dpo.a", PASSWORD, config=config)
    accounts.create_account(store, "plateforme-b", "dpo.b", OTHER_PASSWORD, config=config)


def entry_seq(store: Store, action: str, outcome: str | None = None) -> int:
    with store.reading() as conn:
        rows = conn.execute(sa.text("SELECT seq, body FROM audit_entries WHERE action = :a ORDER BY seq"),
                            {"a": action}).all()
    for seq, body in rows:
        if outcome is None or json.loads(bytes(body))["outcome"] == outcome:
            return seq
    raise AssertionError(f"aucune entrée {action}")


def tamper(store: Store, seq: int, old: bytes = b'"outcome":"deny"', new: bytes = b'"outcome":"permit"') -> None:
    """Rewrite entry `seq` behind the append-only trigger (see the module docstring)."""
    with store.engine.connect() as conn, conn.begin():
        body = bytes(conn.exec_driver_sql(f"SELECT body FROM audit_entries WHERE seq = {int(seq)}").scalar_one())
        assert old in body
        forged = body.replace(old, new)
        if store.backend == "sqlite":
            ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                       "AND name = 'audit_entries_no_update'").scalar_one()
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
            conn.exec_driver_sql("UPDATE audit_entries SET body = ? WHERE seq = ?", (forged, seq))
            conn.exec_driver_sql(ddl)
        else:
            conn.exec_driver_sql("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only")
            conn.exec_driver_sql("UPDATE audit_entries SET body = %s WHERE seq = %s", (forged, seq))
            conn.exec_driver_sql("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only")


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# ------------------------------------------------------------------ checks of the builders


def test_the_database_refuses_a_plain_update_of_an_audit_entry_but_tamper_gets_through(store):
    seeded = seed(store)
    seq = entry_seq(store, "decision.deny")
    with pytest.raises(sa.exc.DatabaseError):
        with store.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(f"UPDATE audit_entries SET action = 'x.y' WHERE seq = {int(seq)}")
    tamper(store, seq)
    with store.reading() as conn:
        body = bytes(conn.exec_driver_sql(f"SELECT body FROM audit_entries WHERE seq = {int(seq)}").scalar_one())
        triggers = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_entries'"
            if store.backend == "sqlite" else
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_entries'::regclass "
            "AND NOT tgisinternal AND tgenabled <> 'D'").scalar_one()
    assert b'"outcome":"permit"' in body and triggers == 2
    assert seeded.deny_decision
