"""What the console's pages show, read from the database — always within one tenant.

Every function takes the tenant id from the DPO's session and filters on it: a DPO of one
platform never reads another platform's persons, consents, decisions or exchanges. Reads
only; the page views themselves are audited by routes.py.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit import resolve_pseudonym
from gateway.audit.entry import PSEUDONYM
from gateway.console.reasons import RuleReason, explain, regime
from gateway.consent.tables import care_team_versions, consent_decisions, consent_versions, information_records
from gateway.delivery.tables import exchanges
from gateway.storage.schema import persons, plan_versions

SYSTEM_LABEL = {
    "eparcours": "e-parcours (outil régional)", "viatrajectoire": "ViaTrajectoire (SI-SDO)",
    "dmp": "DMP", "mss": "MSSanté", "tddui": "export TDDUI",
}
ROLE_LABEL = {"parent": "titulaire de l'autorité parentale", "guardian": "représentant (mesure avec représentation)",
              "curator": "curateur (mesure d'assistance)", "other_legal": "autre représentant désigné par le juge"}
METHOD_LABEL = {"oral": "orale", "written": "écrite", "electronic": "électronique"}
TOPIC_LABEL = {"care-team-sharing": "partage au sein de l'équipe de soins",
               "cross-category-exchange": "échange entre professionnels de santé et du social",
               "dmp": "alimentation du DMP"}


# ------------------------------------------------------------------ person


@dataclass(frozen=True)
class Person:
    id: str  # internal
    local_id: str
    current_version: int
    plan: dict  # current plan (canonical JSON parsed)

    @property
    def representatives(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.plan.get("person", {}).get("representatives") or []}

    @property
    def label(self) -> str:
        p = self.plan.get("person", {})
        given = " ".join(p.get("birth_given_names") or [])
        return f"{p.get('birth_family_name', '')} {given}".strip() or self.local_id


def find_person(conn: Connection, tenant_id: str, query: str) -> str | None:
    """A person's local id from what the DPO typed: the platform's local id, or a pseudonym
    read in the audit trail (resolved for this tenant only)."""
    query = (query or "").strip()
    if not query or len(query) > 64:
        return None
    if PSEUDONYM.fullmatch(query):
        return resolve_pseudonym(conn, tenant_id, query)
    found = conn.execute(sa.select(persons.c.local_id).where(
        persons.c.tenant_id == tenant_id, persons.c.local_id == query)).scalar()
    return found


def person(conn: Connection, tenant_id: str, local_id: str) -> Person | None:
    row = conn.execute(sa.select(persons).where(
        persons.c.tenant_id == tenant_id, persons.c.local_id == local_id)).first()
    if row is None or row.current_version < 1:
        return None
    content = conn.execute(sa.select(plan_versions.c.content).where(
        plan_versions.c.tenant_id == tenant_id, plan_versions.c.person_id == row.id,
        plan_versions.c.version == row.current_version)).scalar_one()
    return Person(row.id, row.local_id, row.current_version, orjson.loads(content))


# ------------------------------------------------------------------ consents


@dataclass(frozen=True)
class ConsentVersion:
    version: int
    status: str
    recorded_at: dt.datetime
    recorded_by: str
    given_at: dt.datetime | None
    given_by: list[str]  # who consented (the person, a representative with their role)
    effect: str | None  # permit | deny (root rule)
    scope: list[str]  # what the provisions name (recipients, purposes, data, period)
    sha256: str


@dataclass
class ConsentHistory:
    id: str
    kind: str
    kind_label: str
    versions: list[ConsentVersion] = field(default_factory=list)

    @property
    def current(self) -> ConsentVersion:
        return self.versions[-1]

    @property
    def active(self) -> bool:
        return self.current.status == "active"


def _performer_label(perf, who: Person) -> str:
    if perf.kind == "person":
        return "la personne elle-même"
    if perf.kind == "representative":
        rep = who.representatives.get(perf.ref)
        if rep is None:
            return f"représentant {perf.ref} (absent du projet actuel)"
        name = f"{rep.get('family_name', '')} {' '.join(rep.get('given_names') or [])}".strip()
        return f"{name} — {ROLE_LABEL.get(rep.get('role'), rep.get('role', ''))} ({perf.ref})"
    return f"autre : {perf.ref}"


def _scope(root) -> list[str]:
    from gateway.consent.vocab import DATA_LABEL, PURPOSE_LABEL, DataCategory

    out = []

    def walk(node, depth: int) -> None:
        parts = []
        if node.actors:
            parts.append("destinataires : " + ", ".join(sorted(":".join(t) for t in node.actors)))
        if node.purposes:
            parts.append("finalités : " + ", ".join(f"{p} ({PURPOSE_LABEL.get(p, '?')})" for p in sorted(node.purposes)))
        if node.classes:
            parts.append("données : " + ", ".join(
                DATA_LABEL.get(DataCategory(c), c) if c in DataCategory.__members__ else c for c in sorted(node.classes)))
        if node.start or node.end:
            start = f"{node.start:%d/%m/%Y}" if node.start else "…"
            end = f"{node.end:%d/%m/%Y}" if node.end else "…"
            parts.append(f"période : {start} → {end}")
        if parts or depth:
            verb = "autorise" if node.effect.value == "permit" else "refuse"
            out.append(f"{verb} — " + " ; ".join(parts or ["tout"]))
        for child in node.children:
            walk(child, depth + 1)

    if root is not None:
        walk(root, 0)
    return out


def consents(conn: Connection, tenant_id: str, who: Person) -> list[ConsentHistory]:
    """Every consent of the person with all its versions (oldest first): current state and history."""
    from gateway.consent.fhir_consent import compile_directive
    from gateway.consent.vocab import CONSENT_KIND_LABEL, ConsentKind

    rows = conn.execute(sa.select(consent_versions).where(
        consent_versions.c.tenant_id == tenant_id, consent_versions.c.person_id == who.id)
        .order_by(consent_versions.c.consent_id, consent_versions.c.version)).all()
    histories: dict[str, ConsentHistory] = {}
    for row in rows:
        kind = ConsentKind(row.kind) if row.kind in {k.value for k in ConsentKind} else None
        history = histories.setdefault(row.consent_id, ConsentHistory(
            row.consent_id, row.kind, CONSENT_KIND_LABEL.get(kind, row.kind)))
        resource = orjson.loads(row.content)
        try:
            directive = compile_directive(resource, consent_id=row.consent_id, version=row.version,
                                          sha256=row.content_hash, person_local_id=who.local_id)
            given_at, performers, root = directive.date_time, directive.performers, directive.root
        except Exception:  # an old version the current reader no longer accepts: still shown
            given_at, performers, root = None, (), None
        history.versions.append(ConsentVersion(
            version=row.version, status=row.status, recorded_at=row.recorded_at,
            recorded_by=row.recorded_by, given_at=given_at,
            given_by=[_performer_label(p, who) for p in performers],
            effect=root.effect.value if root is not None else None, scope=_scope(root),
            sha256=row.content_hash))
    return sorted(histories.values(), key=lambda h: (h.versions[0].recorded_at, h.id))


@dataclass(frozen=True)
class Information:
    informed_at: dt.datetime
    method: str
    informed_by: str
    notice_version: str
    topics: list[str]


def information(conn: Connection, tenant_id: str, who: Person) -> list[Information]:
    rows = conn.execute(sa.select(information_records).where(
        information_records.c.tenant_id == tenant_id, information_records.c.person_id == who.id)
        .order_by(information_records.c.informed_at)).all()
    return [Information(r.informed_at, METHOD_LABEL.get(r.method, r.method), r.informed_by, r.notice_version,
                        [TOPIC_LABEL.get(t, t) for t in r.topics.split()]) for r in rows]


def care_team(conn: Connection, tenant_id: str, who: Person) -> tuple[int, dt.datetime, int] | None:
    """(version, recorded at, number of participants) of the current care team, if any."""
    row = conn.execute(sa.select(care_team_versions).where(
        care_team_versions.c.tenant_id == tenant_id, care_team_versions.c.person_id == who.id)
        .order_by(care_team_versions.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return row.version, row.recorded_at, len(orjson.loads(row.content).get("participant") or [])


# ------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class DecisionFilter:
    effect: str | None = None  # permit | deny
    system: str | None = None
    start: dt.date | None = None  # inclusive (Paris days)
    end: dt.date | None = None  # inclusive
    person: str | None = None  # local id

    def query(self) -> dict[str, str]:
        out = {"issue": self.effect, "systeme": self.system, "du": self.start and self.start.isoformat(),
               "au": self.end and self.end.isoformat(), "personne": self.person}
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class DecisionRow:
    id: str
    decided_at: dt.datetime
    effect: str
    person: str
    system: str
    purpose: str
    regime: str
    regime_text: str
    rule_reasons: list[RuleReason]
    worded: list[str]  # the reasons as worded at decision time (exchanges only)
    consents: list[str]
    exchange: str | None


def _paris_midnight(day: dt.date) -> dt.datetime:
    from gateway.consent.fhir_common import PARIS

    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=PARIS).astimezone(dt.UTC)


def decisions(conn: Connection, tenant_id: str, flt: DecisionFilter, *, limit: int = 50,
              before: tuple[dt.datetime, str] | None = None) -> list[DecisionRow]:
    D = consent_decisions.c
    query = (sa.select(consent_decisions, persons.c.local_id)
             .join(persons, (persons.c.id == D.person_id) & (persons.c.tenant_id == D.tenant_id))
             .where(D.tenant_id == tenant_id))
    if flt.effect:
        query = query.where(D.effect == flt.effect)
    if flt.system:
        query = query.where(D.system == flt.system)
    if flt.start:
        query = query.where(D.decided_at >= _paris_midnight(flt.start))
    if flt.end:
        query = query.where(D.decided_at < _paris_midnight(flt.end + dt.timedelta(days=1)))
    if flt.person:
        query = query.where(persons.c.local_id == flt.person)
    if before is not None:
        at, ident = before
        query = query.where(sa.or_(D.decided_at < at, sa.and_(D.decided_at == at, D.id < ident)))
    rows = conn.execute(query.order_by(D.decided_at.desc(), D.id.desc()).limit(limit)).all()
    ids = [r.id for r in rows]
    worded: dict[str, tuple[str, list[str]]] = {}
    if ids:
        for ex in conn.execute(sa.select(exchanges.c.id, exchanges.c.decision_id, exchanges.c.decision_reasons)
                               .where(exchanges.c.tenant_id == tenant_id, exchanges.c.decision_id.in_(ids))):
            worded.setdefault(ex.decision_id, (ex.id, json.loads(ex.decision_reasons or "[]")))
    out = []
    for r in rows:
        exchange_id, texts = worded.get(r.id, (None, []))
        out.append(DecisionRow(
            id=r.id, decided_at=r.decided_at, effect=r.effect, person=r.local_id, system=r.system,
            purpose=r.purpose, regime=r.regime, regime_text=regime(r.regime)[0],
            rule_reasons=explain(r.rule_ids.split()), worded=texts,
            consents=[f"{c['id']} v{c.get('version', '?')}" for c in json.loads(r.consent_refs or "[]")],
            exchange=exchange_id))
    return out
