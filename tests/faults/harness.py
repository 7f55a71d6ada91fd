"""What the fault tests share: a platform of persons with distinct qualified identities, an
e-parcours sandbox peer that records what it holds and in what order, worker processes forked
after the imports that die (SIGKILL) at chosen points, and the invariants checked afterwards.

Forked children must never return into pytest: they leave with `os._exit` (no atexit, so the
session's PostgreSQL is not stopped by a child) and drop the connections inherited from the
parent (`engine.dispose(close=False)`) before touching the database.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from connectors.base import Envelope, Receipt, Recipient, RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox.cds import ConditionalStore
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import FhirSandbox
from connectors.sandbox.fhir_store import _bundle_key
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import outbox, pipeline
from gateway.delivery.consent_step import consent_decider
from gateway.delivery.model import ExchangeRequest, Status
from gateway.delivery.payloads import BuildContext, kind as payload_kind
from gateway.delivery.tables import exchange_events, exchanges
from gateway.model import Plan
from gateway.model.identity import ins_check_key
from gateway.storage import Store, Tenant
from tests.conftest import make_plan, sample_plan_dict

NOW = dt.datetime.now(dt.UTC)
TOOL = Recipient(kind="system", identifier="eparcours", display="Outil e-parcours régional")
FINESS = "750000001"  # the sample plan's platform
X = exchanges.c


# ------------------------------------------------------------------------------ persons


def local_id(i: int) -> str:
    return f"F{i:05d}"


def ins_of(i: int) -> str:
    """A valid test INS (NIR with its key) per person, so the peer's conditional creates on
    the INS keep persons apart."""
    nir = f"21203512{i % 100_000:05d}"
    return f"{nir}{ins_check_key(nir):02d}"


def plan_of(i: int, version: int) -> Plan:
    """Person i's plan as it stands at `version` (the title names both: the peer's CarePlan
    then says which person and version it received)."""
    data = sample_plan_dict()
    data["person"]["local_id"] = local_id(i)
    data["person"]["ins"]["value"] = ins_of(i)
    data["title"] = f"{local_id(i)} v{version}"
    return make_plan(data)


def title_parts(title: str) -> tuple[str, int]:
    person, _, version = title.rpartition(" v")
    return person, int(version)


def inform(store: Store, tenant: Tenant, person: str) -> None:
    ConsentRegistry(store).record_information(tenant, person, InformationRecord(
        id=f"info-{person}", informed_at=NOW - dt.timedelta(days=30), method=InformationMethod.written,
        informed_by="coordinatrice", notice_version="notice-2026-01",
        topics=frozenset({InformationTopic.care_team_sharing})), actor="test", now=NOW)


def platform(store: Store, persons: int, slug: str = "plateforme-f") -> Tenant:
    """A tenant and `persons` persons, each with plan version 1 and informed of the sharing."""
    tenant = store.create_tenant(slug, "Plateforme (pannes)", FINESS)
    for i in range(persons):
        store.put_plan(tenant, plan_of(i, 1), if_match=None, actor="test")
        inform(store, tenant, local_id(i))
    return tenant


def new_version(store: Store, tenant: Tenant, i: int) -> int:
    """Store the next version of person i's plan; returns its number."""
    current = store.get_plan(tenant, local_id(i)).version
    store.put_plan(tenant, plan_of(i, current + 1), if_match="*", actor="test")
    return current + 1


def submit(store: Store, tenant: Tenant, i: int, version: int | None = None):
    return pipeline.submit(store, tenant, ExchangeRequest(
        person_local_id=local_id(i), system="eparcours", recipient=TOOL, purpose="COC",
        payload_kind="tddui-bundle", plan_version=version), actor="test", decider=consent_decider)


def queue_direct(store: Store, tenant: Tenant, i: int, version: int, *, at: dt.datetime | None = None) -> str:
    """Queue person i's plan `version` as its own outbox row, without superseding what is
    already queued for that person: several pending items on one person's line (as happens
    with one item sending and the next queued, or two payload kinds for one system)."""
    from gateway.delivery.scope import default_categories, restrict

    plan = plan_of(i, version)
    categories = default_categories("eparcours", "tddui-bundle", plan)
    request = ExchangeRequest(person_local_id=local_id(i), system="eparcours", recipient=TOOL,
                              purpose="COC", payload_kind="tddui-bundle", plan_version=version,
                              data_categories=categories)
    key = outbox.idempotency_key(tenant.id, request, version, marker=f"direct={version}")
    when = at or dt.datetime.now(dt.UTC)
    tddui = payload_kind("tddui-bundle")
    payload = tddui.build(restrict(plan, categories), BuildContext(
        tenant_slug=tenant.slug, tenant_finess=FINESS, plan_version=version, now=when, idempotency_key=key))
    with store.transaction() as conn:
        return outbox.insert(conn, tenant_id=tenant.id, request=request, plan_version=version,
                             status=Status.queued, key=key, actor="test", now=when,
                             payload=payload, content_type=tddui.content_type).id


# --------------------------------------------------------------------------------- peer


class RecordingStore(ConditionalStore):
    """The e-parcours sandbox's store, also noting every transaction Bundle it is sent: how
    many times each Bundle identifier arrived (`posts`) and, in order, the Bundles it applied
    (`applied`: identifier, CarePlan title) — a resend it recognises is not applied again."""

    def __init__(self):
        super().__init__()
        self.posts: collections.Counter[str] = collections.Counter()
        self.applied: list[tuple[str, str]] = []
        # Seconds to hang *after* applying the next transactions (the peer's event loop
        # with it): the client times out not knowing its Bundle was stored.
        self.stall_after_apply: collections.deque[float] = collections.deque()

    def transaction(self, bundle: dict, check=None, *, owned: bool = False) -> dict:
        key = _bundle_key(bundle) or ""
        with self._lock:
            fresh = key not in self._bundles
            response = super().transaction(bundle, check, owned=owned)
            self.posts[key] += 1
            if fresh:
                titles = [e["resource"].get("title", "") for e in bundle.get("entry", [])
                          if e.get("resource", {}).get("resourceType") == "CarePlan"]
                self.applied.append((key, titles[0] if titles else ""))
            if self.stall_after_apply:
                time.sleep(self.stall_after_apply.popleft())
            return response

    def order_by_person(self) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = collections.defaultdict(list)
        for _, title in self.applied:
            person, version = title_parts(title)
            seen[person].append(version)
        return dict(seen)


def recording_peer(*, gate: bool = True) -> FhirSandbox:
    """The e-parcours sandbox with a RecordingStore. `gate=False` leaves out the TDDUI 2.2.0
    profile check of the whole Bundle (the base R4 structure of every resource is still
    checked): for loops where the peer's validation time would only slow the test down."""
    sandbox = eparcours_sandbox()
    sandbox.store = RecordingStore()
    if not gate:
        sandbox.personality.validate_bundle = None
    return sandbox


def share_plain_http_tls_context(monkeypatch) -> None:
    """httpx loads the whole system trust store for every client it makes, even one that
    only ever speaks plain HTTP on loopback (~90 ms on this machine): the crash loop makes a
    client per forked worker, so plain-HTTP endpoints share one context made here. Endpoints
    on https are untouched."""
    from connectors import fhirhttp

    real = fhirhttp._ssl_context
    shared = real(FhirEndpoint(base_url="https://127.0.0.1"))

    def context(endpoint: FhirEndpoint):
        if endpoint.base_url.startswith("https") or (endpoint.token_url or "").startswith("https"):
            return real(endpoint)
        return shared

    monkeypatch.setattr(fhirhttp, "_ssl_context", context)


def connector(url: str, *, retry: RetryPolicy | None = None, timeout: float = 5.0, **endpoint) -> EparcoursConnector:
    return EparcoursConnector(FhirEndpoint(
        base_url=url, token_url=f"{url}/oauth/token", client_id="relais", client_secret="sandbox-secret",
        timeout=timeout, **endpoint), retry or RetryPolicy(max_attempts=50, base_delay=0.0, max_delay=0.0))


# ------------------------------------------------------------------------- forked work


class Crash(BaseException):
    """Never raised: the process is killed. (Named so the intent reads in the code.)"""


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # not reached


@dataclass
class CrashPlan:
    """Where a forked worker dies: `point` in before-send | after-send | audit-append | none,
    at its `nth` occurrence in the child."""

    point: str = "none"
    nth: int = 1
    seen: collections.Counter = field(default_factory=collections.Counter)

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.seen[point] += 1
        if self.seen[point] == self.nth:
            die()


class CrashingConnector:
    """Wraps a connector; dies just before the send or just after the peer answered (before
    the receipt is stored), as the crash plan says."""

    def __init__(self, inner, plan: CrashPlan):
        self.inner, self.plan = inner, plan
        self.system, self.payload_kinds, self.retry = inner.system, inner.payload_kinds, inner.retry

    def send(self, envelope: Envelope) -> Receipt:
        self.plan.reached("before-send")
        receipt = self.inner.send(envelope)
        self.plan.reached("after-send")
        return receipt

    def poll(self):
        return self.inner.poll()

    def close(self) -> None:
        self.inner.close()


def arm_audit_crash(plan: CrashPlan) -> None:
    """In a child only: die inside `gateway.audit.log.append_many`, once the entries are
    inserted and the head row locked but before the head moves and the transaction commits."""
    from gateway.audit import log, merkle

    real = merkle.pack

    def pack(frontier):
        plan.reached("audit-append")
        return real(frontier)

    log.merkle = _Proxy(merkle, pack=pack)


class _Proxy:
    def __init__(self, module, **overrides):
        self._module, self._overrides = module, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._module, name)


def in_child(store: Store) -> None:
    """First thing a forked child does: forget the parent's pooled connections."""
    store.engine.dispose(close=False)
    random.seed(os.getpid() ^ time.monotonic_ns())


def fork(work: Callable[[], None]) -> int:
    """Run `work` in a forked child; returns its pid. The child never returns into pytest."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            work()
        except BaseException:  # noqa: BLE001 - report and leave
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap(pid: int, timeout: float, *, kill_after: float | None = None) -> str:
    """Wait for a child: 'exit:N', 'killed' (SIGKILL, by itself or by us after `kill_after`
    seconds) or 'hung' (still alive after `timeout`: killed, and reported)."""
    start = time.monotonic()
    killed_by_us = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal:{os.WTERMSIG(status)}"
            return f"exit:{os.WEXITSTATUS(status)}"
        elapsed = time.monotonic() - start
        if kill_after is not None and not killed_by_us and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.002)


# --------------------------------------------------------------------------- invariants


def rows(store: Store, tenant: Tenant) -> list:
    with store.reading() as conn:
        return conn.execute(sa.select(X.id, X.seq, X.person_local_id, X.plan_version, X.status,
                                      X.idempotency_key, X.attempts, X.payload)
                            .where(X.tenant_id == tenant.id).order_by(X.seq)).all()


def bundle_key_of(payload: bytes) -> str:
    return _bundle_key(json.loads(payload)) or ""


def audit_actions(store: Store) -> collections.Counter:
    with store.reading() as conn:
        bodies = conn.execute(sa.text("SELECT body FROM audit_entries ORDER BY seq")).scalars().all()
    records = [json.loads(bytes(b)) for b in bodies]
    return collections.Counter((r["action"], r.get("refs", {}).get("exchange")) for r in records)


def audit_verifies(store: Store, directory: Path) -> None:
    """Export the audit trail and verify it offline: every entry, no hole, signed."""
    from gateway.audit.export import export
    from gateway.audit.verify import render, verify_export
    from gateway.settings import settings

    config = settings().model_copy(update={"audit_key_dir": directory / "keys",
                                           "audit_origin": "relais.test/faults"})
    summary = export(store.engine, directory / "export", config)
    report = verify_export(directory / "export")
    assert report.ok, render(report)
    with store.reading() as conn:
        size = conn.execute(sa.text("SELECT size FROM audit_head")).scalar_one()
        count = conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
        top = conn.execute(sa.text("SELECT max(seq) FROM audit_entries")).scalar_one()
    assert count == size == top + 1 == summary.entries, (count, size, top, summary.entries)


def plan_versions_contiguous(store: Store, tenant: Tenant, persons: Iterable[int]) -> dict[str, int]:
    """Every person's versions are 1..current with no hole, each with its audit entry."""
    from gateway.audit import pseudonym

    currents = {}
    with store.reading() as conn:
        stored = conn.execute(sa.text(
            "SELECT p.local_id, v.version FROM plan_versions v JOIN persons p ON p.id = v.person_id "
            "WHERE v.tenant_id = :t ORDER BY p.local_id, v.version"), {"t": tenant.id}).all()
        bodies = [json.loads(bytes(b)) for b in conn.execute(sa.text(
            "SELECT body FROM audit_entries WHERE action = 'plan.version.stored'")).scalars()]
        subjects = {local_id(i): pseudonym(conn, tenant.id, local_id(i)) for i in persons}
    by_person: dict[str, list[int]] = collections.defaultdict(list)
    for person, version in stored:
        by_person[person].append(version)
    audited = collections.Counter((b["subject"], b["refs"]["version"]) for b in bodies)
    for person, subject in subjects.items():
        versions = by_person[person]
        assert versions == list(range(1, len(versions) + 1)), (person, versions)
        for v in versions:
            assert audited[(subject, str(v))] == 1, (person, v, audited[(subject, str(v))])
        currents[person] = versions[-1]
    return currents


def delivered_exactly_once(store: Store, tenant: Tenant, peer: FhirSandbox) -> dict:
    """Nothing lost, nothing twice, in order: every exchange ended sent or superseded; the
    peer applied each sent Bundle once and none other; each person's versions reached it in
    increasing order, the newest last; one `exchange.sent` audit entry per sent exchange.
    Returns figures for the test's report."""
    recording: RecordingStore = peer.store
    everything = rows(store, tenant)
    statuses = collections.Counter(r.status for r in everything)
    assert set(statuses) <= {Status.sent.value, Status.superseded.value}, statuses
    sent = [r for r in everything if r.status == Status.sent.value]
    sent_keys = [bundle_key_of(r.payload) for r in sent]
    applied_keys = [key for key, _ in recording.applied]
    assert len(set(applied_keys)) == len(applied_keys)  # the peer never applied a Bundle twice
    assert sorted(applied_keys) == sorted(sent_keys), "the peer holds exactly the sent Bundles"
    assert peer.store.count("CarePlan") == len(sent)
    for person, versions in recording.order_by_person().items():
        assert versions == sorted(versions) and len(set(versions)) == len(versions), (person, versions)
    newest = {}
    for r in sent:
        newest[r.person_local_id] = max(newest.get(r.person_local_id, 0), r.plan_version)
    actions = audit_actions(store)
    for r in sent:
        assert actions[("exchange.sent", r.id)] == 1, (r.id, actions[("exchange.sent", r.id)])
    resends = sum(n - 1 for n in recording.posts.values())
    return {"exchanges": len(everything), "sent": len(sent), "superseded": statuses[Status.superseded.value],
            "resends_recognised": resends, "newest_sent": newest}


def history(store: Store, tenant: Tenant, exchange_id: str):
    with store.reading() as conn:
        return outbox.get(conn, tenant.id, exchange_id)


def claim_owners(store: Store) -> collections.Counter:
    """Which worker claimed how many items (the claim event's detail is the lease owner)."""
    E = exchange_events.c
    with store.reading() as conn:
        details = conn.execute(sa.select(E.detail).where(E.status == Status.sending.value)).scalars().all()
    return collections.Counter(d.split(":")[1] if d and d.count(":") >= 2 else d for d in details)


class FakeClock:
    """The worker's clock, moved by the test (retry schedules of minutes run in no time)."""

    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime.now(dt.UTC)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance_to(self, when: dt.datetime) -> None:
        with self._lock:
            self.now = max(self.now, when)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)
