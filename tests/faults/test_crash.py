"""Crash: worker processes killed with SIGKILL at any point of a delivery — just before the
send, after the peer answered but before the receipt is stored, inside the audit append (head
row locked, entries inserted, nothing committed), or at a random moment — in a loop of at
least 200 runs (on PostgreSQL), with coordinators killed while storing a new plan version too. Afterwards a
clean worker drains the queue, and: every queued item was delivered exactly once as the peer
sees it (it recognises resends by Bundle.identifier and conditional creates), in order per
person with each person's newest version last; the audit trail verifies offline with no hole;
no plan version is missing. On SQLite and on PostgreSQL.

RELAIS_FAULT_CRASH_RUNS changes the number of runs on PostgreSQL, the production store (default
200); SQLite runs half as many (the same code paths, to keep the suite short).
"""

from __future__ import annotations

import collections
import datetime as dt
import email
import email.policy
import os
import random
import time

import pytest
import sqlalchemy as sa

from connectors.base import Recipient
from connectors.sandbox.server import ThreadedServer
from gateway.delivery import pipeline
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.tables import exchanges
from gateway.delivery.worker import Worker
from tests.faults.harness import (CrashingConnector, CrashPlan, arm_audit_crash, audit_actions, audit_verifies,
                                  connector,
                                  delivered_exactly_once, fork, in_child, local_id, new_version,
                                  plan_of, plan_versions_contiguous, platform, reap, recording_peer, rows,
                                  share_plain_http_tls_context, submit)

RUNS = int(os.environ.get("RELAIS_FAULT_CRASH_RUNS", "200"))


def runs_on(store) -> int:
    return RUNS if store.backend == "postgresql" else max(1, RUNS // 2)
X = exchanges.c
PERSONS = 24
LEASE = dt.timedelta(milliseconds=20)  # children run one after the other: a dead one's items are free at once
# Where a worker dies, and how often: (point, weight, highest occurrence to die at).
POINTS = [("before-send", 20, 1), ("after-send", 25, 2), ("audit-append", 25, 3), ("random", 20, 1),
          ("none", 10, 1)]


def pending(store, tenant) -> int:
    with store.reading() as conn:
        return conn.execute(sa.select(sa.func.count()).where(
            X.tenant_id == tenant.id, X.status.in_(["queued", "sending"]))).scalar_one()


def worker_child(store, url: str, crash: CrashPlan) -> None:
    in_child(store)
    if crash.point == "audit-append":
        arm_audit_crash(crash)  # appends: the claim's consent decisions, then each exchange.sent
    worker = Worker(store, {"eparcours": CrashingConnector(connector(url), crash)}, lease=LEASE, batch=2)
    worker.drain(max_rounds=2)


def coordinator_child(store, tenant, i: int, version: int, crash: CrashPlan) -> None:
    """Store person i's next version and ask for its sync (what PUT /plan then POST /exchanges do)."""
    in_child(store)
    arm_audit_crash(crash)  # 1: plan.version.stored; 2, 3: the decision and exchange.queued entries
    store.put_plan(tenant, plan_of(i, version), if_match="*", actor="test")
    submit(store, tenant, i)


def test_workers_killed_at_any_point_lose_nothing_and_send_nothing_twice(store, tmp_path, monkeypatch):
    share_plain_http_tls_context(monkeypatch)
    rng = random.Random(20261126)
    runs = runs_on(store)
    tenant = platform(store, PERSONS)
    peer = recording_peer(gate=False)  # the peer's TDDUI profile check adds nothing to this test but time
    outcomes: collections.Counter[str] = collections.Counter()
    with ThreadedServer(peer.app) as server:
        for i in range(PERSONS):
            submit(store, tenant, i)
        for run in range(runs):
            if run % 2 == 0 or pending(store, tenant) < 4:  # a worker always finds work to die in
                i = rng.randrange(PERSONS)
                version = store.get_plan(tenant, local_id(i)).version + 1
                crash = CrashPlan(rng.choice(["none", "audit-append"]), rng.randint(1, 3))
                pid = fork(lambda: coordinator_child(store, tenant, i, version, crash))
                outcomes[f"coordinator {crash.point}: {reap(pid, 120)}"] += 1
                # The client did not get its answer: it sends the version again (If-Match: *
                # here) and asks again for the sync, which is idempotent.
                if store.get_plan(tenant, local_id(i)).version < version:
                    new_version(store, tenant, i)
                submit(store, tenant, i)
            point = rng.choices([p for p, _, _ in POINTS], [w for _, w, _ in POINTS])[0]
            crash = CrashPlan(point, rng.randint(1, dict((p, n) for p, _, n in POINTS)[point]))
            pid = fork(lambda: worker_child(store, server.url, crash))
            outcome = reap(pid, 120, kill_after=rng.uniform(0.0, 0.25) if point == "random" else None)
            outcomes[f"worker {point}: {outcome}"] += 1
        time.sleep(LEASE.total_seconds())
        clean = Worker(store, {"eparcours": connector(server.url)}, lease=dt.timedelta(seconds=30))
        clean.drain()
        clean.connectors["eparcours"].close()

    assert not [o for o in outcomes if o.endswith(("hung", "exit:1"))], outcomes
    killed = sum(n for o, n in outcomes.items() if o.startswith("worker") and o.endswith("killed"))
    meant = sum(n for o, n in outcomes.items() if o.startswith("worker") and "none" not in o)
    # Most runs meant to die did: a random delay may end after the worker finished, and a
    # worker meant to die at its 2nd or 3rd send may find fewer items (on PostgreSQL about 1
    # run in 5 ends so).
    assert killed >= meant * 0.7, dict(outcomes)
    for point in ("before-send", "after-send", "audit-append"):
        assert outcomes[f"worker {point}: killed"] >= runs // 8, outcomes
    figures = delivered_exactly_once(store, tenant, peer)
    currents = plan_versions_contiguous(store, tenant, range(PERSONS))
    assert figures["newest_sent"] == currents  # each person's newest version reached the peer, last
    assert figures["resends_recognised"] > 0  # crashes after the send did happen, and were absorbed
    assert peer.store.count("Patient") == PERSONS  # conditional creates: one Patient per person, ever
    audit_verifies(store, tmp_path)
    print(f"\n{store.backend}: {runs} runs, {dict(sorted(outcomes.items()))}, {figures | {'newest_sent': None}}")


# --------------------------------------------------------------------------- MSSanté

MSS_RUNS = int(os.environ.get("RELAIS_FAULT_MSS_RUNS", "40"))
MSS_PERSONS = 10
DOCTOR = "jeanne.martin@medecin.sandbox.mssante.fr"


def permit(conn, tenant, request, plan, actor, now):
    """Consent is not what this test is about (the e-parcours loop above re-decides at claim)."""
    return pipeline.DecisionView(permit=True, decision_id="test-permit", reasons=["test"])


def mss_worker_child(store, sandbox, state_dir: str, crash: CrashPlan) -> None:
    in_child(store)
    if crash.point == "audit-append":
        arm_audit_crash(crash)  # the exchange.sent entry of the first or second message
    mss = sandbox.connector(state_dir=state_dir)
    worker = Worker(store, {"mss": CrashingConnector(mss, crash)}, lease=LEASE, batch=2, recheck=None)
    worker.drain(max_rounds=1)


@pytest.mark.postgres
def test_mssante_resends_after_crashes_carry_the_same_message_id(postgres_server, tmp_path, quick_xdm):
    """The operator delivers what it is given: a message whose sender died after the SMTP
    DATA reply is sent again, and reaches the mailbox twice — with the same Message-ID and the
    same content, so the recipient's software (which deduplicates on Message-ID) sees it once.
    Every exchange's message is there, and no other. (PostgreSQL only: the e-parcours loop
    above runs on both stores, and Message-IDs do not depend on the store.)"""
    from connectors.mss import message as M
    from connectors.sandbox.mss import PLATFORM_ADDRESS, MssSandbox
    from gateway.storage import Store

    store = Store(postgres_server.create_database("relais_crash_mss"))
    store.migrate()
    rng = random.Random(7)
    tenant = platform(store, MSS_PERSONS, slug="plateforme-m")
    state = str(tmp_path / "mss-state")
    outcomes: collections.Counter[str] = collections.Counter()
    with MssSandbox(tmp_path / "mss") as sandbox:
        def queue(i: int) -> None:
            pipeline.submit(store, tenant, ExchangeRequest(
                person_local_id=local_id(i), system="mss", recipient=Recipient("professional", DOCTOR),
                purpose="COC", payload_kind="xdm-message"), actor="test", decider=permit)

        for i in range(MSS_PERSONS):
            queue(i)
        for run in range(MSS_RUNS):
            i = rng.randrange(MSS_PERSONS)  # a new version to send, each run
            new_version(store, tenant, i)
            queue(i)
            point = rng.choices([p for p, _, _ in POINTS], [w for _, w, _ in POINTS])[0]
            crash = CrashPlan(point, rng.randint(1, 2))
            pid = fork(lambda: mss_worker_child(store, sandbox, state, crash))
            outcome = reap(pid, 120, kill_after=rng.uniform(0.0, 0.5) if point == "random" else None)
            outcomes[f"{point}: {outcome}"] += 1
        time.sleep(LEASE.total_seconds())
        clean = Worker(store, {"mss": sandbox.connector(state_dir=state)}, lease=dt.timedelta(seconds=30),
                       recheck=None)
        clean.drain()
        received = [m.data for m in sandbox.inbox(DOCTOR)]

    assert not [o for o in outcomes if o.endswith(("hung", "exit:1"))], outcomes
    everything = rows(store, tenant)
    assert {r.status for r in everything} <= {Status.sent.value, Status.superseded.value}
    sent = {M.message_id_for(r.idempotency_key, PLATFORM_ADDRESS) for r in everything if r.status == Status.sent.value}
    by_id: dict[str, set[bytes]] = collections.defaultdict(set)
    for raw in received:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        attachment = next(p for p in message.iter_attachments() if p.get_filename() == "IHE_XDM.zip")
        by_id[str(message["Message-ID"])].add(attachment.get_content())
    assert set(by_id) == sent  # every sent exchange's message arrived, and nothing else
    assert all(len(contents) == 1 for contents in by_id.values())  # a resend is the same message
    duplicates = len(received) - len(by_id)
    assert outcomes["after-send: killed"] == 0 or duplicates > 0
    actions = audit_actions(store)
    assert all(actions[("exchange.sent", r.id)] == 1 for r in everything if r.status == Status.sent.value)
    audit_verifies(store, tmp_path)
    print(f"\n{store.backend} MSSanté: {MSS_RUNS} runs, {dict(sorted(outcomes.items()))}, "
          f"{len(sent)} messages, {duplicates} resent copies with the same Message-ID")
    store.close()
    postgres_server.drop_database("relais_crash_mss")
