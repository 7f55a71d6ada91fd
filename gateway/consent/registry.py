"""The consent registry: stores Consents, care teams and information records, and loads a
person's policy state for the PDP.

Writes (each one transaction, serialised per person on the `consent_heads` row):
- a Consent is stored as an immutable version (canonical JSON + SHA-256, `meta.versionId`);
  a withdrawal writes a new version with status `inactive`, never an update in place;
- a consent whose performer has no capacity (capacity.py) is not stored: the refusal is
  audited (`consent.rejected`) and `ConsentRejected` raised with the reasons;
- every write audits (`consent.recorded`, `consent.withdrawn`, `careteam.changed`,
  `information.recorded`) in its own transaction, and writes a fresh policy stamp;
- after commit, changes that forbid something publish a `ConsentChange` (events.py).

Reads: `load_state(conn, tenant_id, local_id)` returns the person's `PolicyState` from an
in-process cache validated by one indexed query (the plan's content hash + the policy stamp),
so a withdrawal takes effect for the very next decision, in every process sharing the
database. Stamps are random, never reused, so a rolled-back write cannot alias a cached state.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from gateway.consent import events
from gateway.consent.capacity import Refusal, consent_refusals
from gateway.consent.fhir_careteam import read_care_team
from gateway.consent.fhir_common import canonical_bytes, fhir_instant, sha256_hex
from gateway.consent.fhir_consent import check_structure, compile_directive, read_consent, with_profile
from gateway.consent.model import (
    ConsentRef,
    Directive,
    Effect,
    InformationRecord,
    PersonFacts,
    PolicyState,
    Provision,
    TeamMember,
)
from gateway.consent.record import audit
from gateway.consent.tables import (
    care_team_versions,
    consent_heads,
    consent_versions,
    information_records,
)
from gateway.consent.vocab import ConsentKind, InformationMethod, InformationTopic
from gateway.model import Problem
from gateway.storage.engine import WRITE
from gateway.storage.schema import persons, plan_versions
from gateway.storage.store import Conflict, NotFound, Store, Tenant


class ConsentRejected(Exception):
    """The performer may not give this consent (L17); `refusals` say why (French)."""

    def __init__(self, refusals: list[Refusal]):
        self.refusals = refusals
        super().__init__("; ".join(r.message for r in refusals))


@dataclass(frozen=True)
class StoredConsent:
    id: str
    version: int
    kind: str
    status: str
    content: bytes
    content_hash: str
    recorded_at: dt.datetime
    recorded_by: str
    warnings: tuple[Problem, ...] = ()

    @property
    def resource(self) -> dict:
        return orjson.loads(self.content)

    @property
    def ref(self) -> ConsentRef:
        return ConsentRef(self.id, self.version, self.content_hash)


@dataclass(frozen=True)
class StoredCareTeam:
    version: int
    content: bytes
    content_hash: str
    recorded_at: dt.datetime
    recorded_by: str

    @property
    def resource(self) -> dict:
        return orjson.loads(self.content)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------ plan facts and state


def person_facts(plan: dict, version: int) -> PersonFacts:
    person = plan["person"]
    protection = person.get("protection") or None
    period = (protection or {}).get("period") or {}
    reps = tuple((r["id"], r["role"]) for r in person.get("representatives") or [])
    rep_tokens = frozenset(
        ("mssante", t["value"].lower())
        for r in person.get("representatives") or []
        for t in r.get("telecom") or [] if t.get("system") in ("mssante", "email"))
    day = dt.date.fromisoformat
    periods = tuple(
        (r["id"], day(p["start"]) if (p := r.get("period") or {}).get("start") else None,
         day(p["end"]) if p.get("end") else None)
        for r in person.get("representatives") or [])
    return PersonFacts(
        local_id=person["local_id"],
        identity_status=person["identity_status"],
        birth_date=day(person["birth_date"]),
        platform_finess=plan["platform"]["finess"],
        protection_scope=protection["scope"] if protection else None,
        protection_start=day(period["start"]) if period.get("start") else None,
        protection_end=day(period["end"]) if period.get("end") else None,
        representatives=reps,
        representative_tokens=rep_tokens,
        representative_periods=periods,
        plan_version=version,
    )


_HEAD = (
    sa.select(persons.c.id, persons.c.current_version, plan_versions.c.content_hash,
              consent_heads.c.stamp)
    .select_from(
        persons.join(plan_versions, sa.and_(plan_versions.c.person_id == persons.c.id,
                                            plan_versions.c.version == persons.c.current_version))
        .outerjoin(consent_heads, sa.and_(consent_heads.c.tenant_id == persons.c.tenant_id,
                                          consent_heads.c.person_id == persons.c.id)))
    .where(persons.c.tenant_id == sa.bindparam("b_tenant"),
           persons.c.local_id == sa.bindparam("b_local"))
)


class _StateCache:
    """(database, tenant, person) -> (plan hash, stamp, state); bounded LRU."""

    def __init__(self, size: int = 10_000):
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key, plan_hash: str, stamp: str) -> PolicyState | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] != plan_hash or hit[1] != stamp:
                return None
            self._data.move_to_end(key)
            return hit[2]

    def put(self, key, plan_hash: str, stamp: str, state: PolicyState) -> None:
        with self._lock:
            self._data[key] = (plan_hash, stamp, state)
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


CACHE = _StateCache()


def _person_head(conn: Connection, tenant_id: str, local_id: str):
    row = conn.execute(_HEAD, {"b_tenant": tenant_id, "b_local": local_id}).first()
    if row is None:
        raise NotFound(f"aucun projet pour l'usager {local_id}")
    return row


def load_state(conn: Connection, tenant_id: str, local_id: str) -> PolicyState:
    """The person's policy state, from the cache when the plan and the stamp are unchanged."""
    head = _person_head(conn, tenant_id, local_id)
    key = (str(conn.engine.url), tenant_id, local_id)
    stamp = head.stamp or ""
    cached = CACHE.get(key, head.content_hash, stamp)
    if cached is not None:
        return cached
    state = _load(conn, tenant_id, local_id, head.id, head.current_version, stamp)
    CACHE.put(key, head.content_hash, stamp, state)
    return state


# The state's queries, built once and given their values at execution: building each again
# (where clauses, cache key) cost more than running it (~0.5 ms of a 1.4 ms load).
def _by_person(table: sa.Table):
    return (table.c.tenant_id == sa.bindparam("b_tenant"), table.c.person_id == sa.bindparam("b_person"))


_PLAN_CONTENT = sa.select(plan_versions.c.content).where(
    *_by_person(plan_versions), plan_versions.c.version == sa.bindparam("b_version"))
# Not ordered in SQL: with ORDER BY consent_id, version SQLite walks the primary key, i.e. every
# consent of the tenant, rather than the person's index (ix_consent_versions_person).
_CONSENT_VERSIONS = sa.select(consent_versions).where(*_by_person(consent_versions))
_CARE_TEAM = sa.select(care_team_versions).where(*_by_person(care_team_versions)).order_by(
    care_team_versions.c.version.desc()).limit(1)
_INFORMATION = sa.select(information_records).where(*_by_person(information_records)).order_by(
    information_records.c.informed_at, information_records.c.id)


def _load(conn: Connection, tenant_id: str, local_id: str, person_id: str, version: int,
          stamp: str) -> PolicyState:
    person = {"b_tenant": tenant_id, "b_person": person_id}
    content = conn.execute(_PLAN_CONTENT, {**person, "b_version": version}).scalar_one()
    facts = person_facts(orjson.loads(content), version)
    latest: dict[str, sa.Row] = {}
    for row in sorted(conn.execute(_CONSENT_VERSIONS, person), key=lambda r: (r.consent_id, r.version)):
        latest[row.consent_id] = row
    directives = tuple(
        compile_directive(orjson.loads(row.content), consent_id=row.consent_id, version=row.version,
                          sha256=row.content_hash, person_local_id=local_id,
                          changed_at=row.recorded_at)
        for row in sorted(latest.values(), key=lambda r: r.consent_id))
    team: tuple[TeamMember, ...] = ()
    care = _care_team_row(conn, tenant_id, person_id)
    if care is not None:
        _, team = read_care_team(orjson.loads(care.content), person_local_id=local_id, validate=False)
    information = tuple(_information(r) for r in conn.execute(_INFORMATION, person))
    return PolicyState(tenant_id=tenant_id, person=facts, directives=directives, team=team,
                       information=information, person_id=person_id, stamp=stamp)


def _information(row) -> InformationRecord:
    recipient = tuple(row.recipient.split(":", 1)) if row.recipient else None
    return InformationRecord(
        id=row.id, informed_at=row.informed_at, method=InformationMethod(row.method),
        informed_by=row.informed_by, notice_version=row.notice_version,
        topics=frozenset(InformationTopic(t) for t in row.topics.split()),
        recipient=recipient, data_categories=frozenset(row.data_categories.split()))


def _care_team_row(conn: Connection, tenant_id: str, person_id: str):
    return conn.execute(_CARE_TEAM, {"b_tenant": tenant_id, "b_person": person_id}).first()


# ------------------------------------------------------------------ what a change forbids


def _forbidden_of(p: Provision) -> events.Forbidden:
    systems = frozenset(v for k, v in p.actors or () if k == "system") or None
    recipients = frozenset(t for t in p.actors or () if t[0] != "system") or None
    return events.Forbidden(systems=systems, recipients=recipients, purposes=p.purposes,
                            data_categories=p.classes)


def forbidden_by(directive: Directive, effect: Effect) -> tuple[events.Forbidden, ...]:
    """Scopes of the provisions of `directive` with this effect (deny: what a new
    opposition forbids; permit: what a withdrawal stops allowing)."""
    root = directive.root
    if root is None:
        return ()
    nodes = [root] if root.effect is effect else []
    nodes += [c for c in root.children if c.effect is effect]
    return tuple(_forbidden_of(n) for n in nodes)


# ------------------------------------------------------------------ the registry


class ConsentRegistry:
    """Consents, care team and information records of the persons of each tenant."""

    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine
        dialect = pg_dialect if store.backend == "postgresql" else sqlite_dialect
        self._insert_head = dialect.insert(consent_heads).on_conflict_do_nothing(
            index_elements=["tenant_id", "person_id"])

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _lock(self, conn: Connection, tenant: Tenant, local_id: str, now: dt.datetime):
        """Lock the person's head row (created on first use); returns (person id, plan dict)."""
        head = _person_head(conn, tenant.id, local_id)
        conn.execute(self._insert_head.values(tenant_id=tenant.id, person_id=head.id,
                                              stamp=uuid.uuid4().hex, updated_at=now))
        conn.execute(sa.select(consent_heads.c.stamp).where(
            consent_heads.c.tenant_id == tenant.id, consent_heads.c.person_id == head.id)
            .with_for_update()).one()
        content = conn.execute(sa.select(plan_versions.c.content).where(
            plan_versions.c.tenant_id == tenant.id, plan_versions.c.person_id == head.id,
            plan_versions.c.version == head.current_version)).scalar_one()
        return head.id, person_facts(orjson.loads(content), head.current_version)

    def _restamp(self, conn: Connection, tenant: Tenant, person_id: str, now: dt.datetime) -> str:
        stamp = uuid.uuid4().hex
        conn.execute(sa.update(consent_heads).where(
            consent_heads.c.tenant_id == tenant.id, consent_heads.c.person_id == person_id)
            .values(stamp=stamp, updated_at=now))
        return stamp

    # -------------------------------------------------------------- consents

    def record_consent(self, tenant: Tenant, local_id: str, resource: object, *, actor: str,
                       now: dt.datetime | None = None) -> StoredConsent:
        """Check, judge capacity, store version 1. Raises FhirInputError (bad input),
        ConsentRejected (performer without capacity; audited), NotFound (no plan)."""
        now = now or _now()
        check_structure(resource)
        refusals: list[Refusal] = []
        with self._write() as conn:
            person_id, facts = self._lock(conn, tenant, local_id, now)
            parsed = read_consent(resource, person_local_id=local_id, now=now)
            effect = parsed.root.effect if parsed.root else None
            if parsed.kind is not ConsentKind.agreement:
                refusals = consent_refusals(facts, parsed.performers, effect=effect,
                                            kind=parsed.kind, day=parsed.date_time.date(),
                                            can_express_will=parsed.person_can_express_will)
            if refusals:
                audit(conn, tenant_id=tenant.id, actor=actor, action="consent.rejected",
                      outcome="failure", person_local_id=local_id,
                      refs={"rules": " ".join(r.rule_id for r in refusals), "kind": parsed.kind.value})
            else:
                consent_id = uuid.uuid4().hex
                body = with_profile(dict(resource), parsed.kind)
                body["id"] = consent_id
                body["meta"] = {**body.get("meta", {}), "versionId": "1", "lastUpdated": fhir_instant(now)}
                stored = self._insert_version(conn, tenant, person_id, consent_id, 1, parsed.kind,
                                              body, now, actor)
                stamp = self._restamp(conn, tenant, person_id, now)
                audit(conn, tenant_id=tenant.id, actor=actor, action="consent.recorded",
                      outcome="success", person_local_id=local_id,
                      refs={"consent": consent_id, "version": "1", "sha256": stored.content_hash,
                            "kind": parsed.kind.value})
        if refusals:
            raise ConsentRejected(refusals)
        if effect is not None and parsed.kind is not ConsentKind.agreement:
            directive = compile_directive(stored.resource, consent_id=stored.id, version=1,
                                          sha256=stored.content_hash, person_local_id=local_id)
            forbidden = forbidden_by(directive, Effect.deny)
            if forbidden:
                events.publish(events.ConsentChange(tenant.id, local_id, "opposition", stored.ref,
                                                    forbidden, stamp))
        return StoredConsent(**{**stored.__dict__, "warnings": parsed.warnings})

    def _insert_version(self, conn: Connection, tenant: Tenant, person_id: str, consent_id: str,
                        version: int, kind: ConsentKind, body: dict, now: dt.datetime,
                        actor: str) -> StoredConsent:
        content = canonical_bytes(body)
        stored = StoredConsent(id=consent_id, version=version, kind=kind.value, status=body["status"],
                               content=content, content_hash=sha256_hex(content), recorded_at=now,
                               recorded_by=actor)
        conn.execute(sa.insert(consent_versions).values(
            tenant_id=tenant.id, consent_id=consent_id, version=version, person_id=person_id,
            kind=kind.value, status=stored.status, content=content, content_hash=stored.content_hash,
            recorded_at=now, recorded_by=actor))
        return stored

    def withdraw(self, tenant: Tenant, local_id: str, consent_id: str, *, actor: str,
                 now: dt.datetime | None = None) -> StoredConsent:
        """New version with status inactive; effective for the very next decision."""
        now = now or _now()
        with self._write() as conn:
            person_id, _ = self._lock(conn, tenant, local_id, now)
            current = self._latest(conn, tenant.id, person_id, consent_id)
            if current is None:
                raise NotFound(f"consentement inconnu : {consent_id}")
            if current.status != "active":
                raise Conflict(f"le consentement {consent_id} n'est plus actif (statut {current.status})")
            body = orjson.loads(current.content)
            body["status"] = "inactive"
            version = current.version + 1
            body["meta"] = {**body.get("meta", {}), "versionId": str(version),
                            "lastUpdated": fhir_instant(now)}
            stored = self._insert_version(conn, tenant, person_id, consent_id, version,
                                          ConsentKind(current.kind), body, now, actor)
            stamp = self._restamp(conn, tenant, person_id, now)
            audit(conn, tenant_id=tenant.id, actor=actor, action="consent.withdrawn",
                  outcome="success", person_local_id=local_id,
                  refs={"consent": consent_id, "version": str(version), "sha256": stored.content_hash,
                        "kind": current.kind})
        if current.kind != ConsentKind.agreement.value:
            directive = compile_directive(orjson.loads(current.content), consent_id=consent_id,
                                          version=current.version, sha256=current.content_hash,
                                          person_local_id=local_id)
            forbidden = forbidden_by(directive, Effect.permit)
            if forbidden:
                events.publish(events.ConsentChange(tenant.id, local_id, "withdrawal", stored.ref,
                                                    forbidden, stamp))
        return stored

    def _latest(self, conn: Connection, tenant_id: str, person_id: str, consent_id: str):
        return conn.execute(sa.select(consent_versions).where(
            consent_versions.c.tenant_id == tenant_id, consent_versions.c.person_id == person_id,
            consent_versions.c.consent_id == consent_id)
            .order_by(consent_versions.c.version.desc()).limit(1)).first()

    def list_consents(self, tenant: Tenant, local_id: str) -> list[StoredConsent]:
        """The current version of each consent of the person (active or not), oldest first."""
        with self._read() as conn:
            head = _person_head(conn, tenant.id, local_id)
            rows = conn.execute(sa.select(consent_versions).where(
                consent_versions.c.tenant_id == tenant.id, consent_versions.c.person_id == head.id)
                .order_by(consent_versions.c.recorded_at, consent_versions.c.consent_id,
                          consent_versions.c.version)).all()
        latest: dict[str, sa.Row] = {}
        first_seen: list[str] = []
        for row in rows:
            if row.consent_id not in latest:
                first_seen.append(row.consent_id)
            latest[row.consent_id] = row
        return [_stored(latest[cid]) for cid in first_seen]

    def get_consent(self, tenant: Tenant, local_id: str, consent_id: str,
                    version: int | None = None) -> StoredConsent:
        with self._read() as conn:
            head = _person_head(conn, tenant.id, local_id)
            query = sa.select(consent_versions).where(
                consent_versions.c.tenant_id == tenant.id, consent_versions.c.person_id == head.id,
                consent_versions.c.consent_id == consent_id)
            if version is not None:
                query = query.where(consent_versions.c.version == version)
            row = conn.execute(query.order_by(consent_versions.c.version.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"consentement inconnu : {consent_id}"
                           + (f" (version {version})" if version is not None else ""))
        return _stored(row)

    # -------------------------------------------------------------- care team

    def put_care_team(self, tenant: Tenant, local_id: str, resource: object, *, actor: str,
                      now: dt.datetime | None = None) -> StoredCareTeam:
        now = now or _now()
        normalised, members = read_care_team(resource, person_local_id=local_id)
        with self._write() as conn:
            person_id, _ = self._lock(conn, tenant, local_id, now)
            previous = _care_team_row(conn, tenant.id, person_id)
            before: tuple[TeamMember, ...] = ()
            if previous is not None:
                old = orjson.loads(previous.content)
                normalised["id"] = old.get("id") or uuid.uuid4().hex
                if not (isinstance(resource, dict) and resource.get("identifier")) and old.get("identifier"):
                    # A new version without an identifier is the same care team: it keeps the
                    # business identifier read_care_team gave the first one.
                    normalised["identifier"] = old["identifier"]
                _, before = read_care_team(old, person_local_id=local_id, validate=False)
            else:
                normalised["id"] = uuid.uuid4().hex
            version = (previous.version if previous is not None else 0) + 1
            normalised["meta"] = {**normalised.get("meta", {}), "versionId": str(version),
                                  "lastUpdated": fhir_instant(now)}
            content = canonical_bytes(normalised)
            stored = StoredCareTeam(version, content, sha256_hex(content), now, actor)
            conn.execute(sa.insert(care_team_versions).values(
                tenant_id=tenant.id, person_id=person_id, version=version, content=content,
                content_hash=stored.content_hash, recorded_at=now, recorded_by=actor))
            stamp = self._restamp(conn, tenant, person_id, now)
            audit(conn, tenant_id=tenant.id, actor=actor, action="careteam.changed",
                  outcome="success", person_local_id=local_id,
                  refs={"version": str(version), "sha256": stored.content_hash,
                        "members": str(len(members))})
        kept = set().union(*(m.tokens for m in members)) if members else set()
        removed = frozenset(t for m in before for t in m.tokens if t not in kept)
        if removed:
            events.publish(events.ConsentChange(
                tenant.id, local_id, "care-team", None,
                (events.Forbidden(recipients=removed),), stamp))
        return stored

    def get_care_team(self, tenant: Tenant, local_id: str) -> StoredCareTeam | None:
        with self._read() as conn:
            head = _person_head(conn, tenant.id, local_id)
            row = _care_team_row(conn, tenant.id, head.id)
        if row is None:
            return None
        return StoredCareTeam(row.version, bytes(row.content), row.content_hash, row.recorded_at,
                              row.recorded_by)

    # -------------------------------------------------------------- information

    def record_information(self, tenant: Tenant, local_id: str, record: InformationRecord, *,
                           actor: str, now: dt.datetime | None = None) -> InformationRecord:
        now = now or _now()
        if record.informed_at > now + dt.timedelta(minutes=5):
            raise ValueError("la date de l'information est dans le futur")
        with self._write() as conn:
            person_id, _ = self._lock(conn, tenant, local_id, now)
            conn.execute(sa.insert(information_records).values(
                id=record.id, tenant_id=tenant.id, person_id=person_id,
                informed_at=record.informed_at, method=record.method.value,
                informed_by=record.informed_by, notice_version=record.notice_version,
                topics=" ".join(sorted(t.value for t in record.topics)),
                recipient=":".join(record.recipient) if record.recipient else None,
                data_categories=" ".join(sorted(record.data_categories)),
                recorded_at=now, recorded_by=actor))
            self._restamp(conn, tenant, person_id, now)
            audit(conn, tenant_id=tenant.id, actor=actor, action="information.recorded",
                  outcome="success", person_local_id=local_id,
                  refs={"information": record.id, "method": record.method.value,
                        "topics": " ".join(sorted(t.value for t in record.topics)),
                        "notice": record.notice_version})
        return record

    def list_information(self, tenant: Tenant, local_id: str) -> list[InformationRecord]:
        with self._read() as conn:
            head = _person_head(conn, tenant.id, local_id)
            rows = conn.execute(sa.select(information_records).where(
                information_records.c.tenant_id == tenant.id,
                information_records.c.person_id == head.id)
                .order_by(information_records.c.informed_at, information_records.c.id)).all()
        return [_information(r) for r in rows]

    # -------------------------------------------------------------- state and decisions

    def policy_state(self, tenant_id: str, local_id: str) -> PolicyState:
        with self._read() as conn:
            return load_state(conn, tenant_id, local_id)

    def decide(self, request, *, now: dt.datetime | None = None):
        """Decide and record (decision log + audit entry) in one committed transaction."""
        from gateway.consent.record import decide_and_record

        with self._write() as conn:
            return decide_and_record(conn, request, now=now)


def _stored(row) -> StoredConsent:
    return StoredConsent(id=row.consent_id, version=row.version, kind=row.kind, status=row.status,
                         content=bytes(row.content), content_hash=row.content_hash,
                         recorded_at=row.recorded_at, recorded_by=row.recorded_by)
