"""Receiving: poll a connector, interpret each item, match the person, record it once.

Every item is archived as received (`payload`), recorded at most once (a dedupe key on
system, kind, peer reference and peer version: the same message fetched twice is imported
once), matched to a person by identifier — never by name — and audited ("inbound.received").
A person is matched only when exactly one person of the tenant carries the identifier; an
identity duplicate leaves the item unmatched, with the reason.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.base import Connector, Inbound, Recipient
from gateway.audit import AuditEntry, append, pseudonym
from gateway.inbound.interpret import Interpretation, Unreadable, interpret
from gateway.inbound.tables import inbound_items
from gateway.logs import get_logger
from gateway.model.plan import OrientationDecision
from gateway.storage import Store, Tenant
from gateway.storage.store import holders

log = get_logger("relais.inbound")
I = inbound_items.c


def dedupe_key(item: Inbound) -> str:
    version = item.metadata.get("versionId") or item.metadata.get("lastUpdated") or ""
    parts = [item.system, item.kind, item.peer_reference, version]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _storable(text: str) -> str:
    """PostgreSQL text holds no NUL, which a peer's Message-ID or error text may carry: U+FFFD."""
    return text.replace("\x00", "\ufffd")


def _match(conn: Connection, tenant_id: str, identifiers: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(local id, reason when unmatched)."""
    for kind, value in identifiers:
        found = holders(conn, tenant_id, kind, value)
        if len(found) == 1:
            return found[0], None
        if len(found) > 1:
            return None, f"identifiant {kind} porté par {len(found)} personnes (doublon d'identité à résoudre)"
    return None, "aucune personne de la plateforme ne porte ces identifiants"


def _current_plan(conn: Connection, tenant_id: str, local_id: str):
    from gateway.model import Plan
    from gateway.storage.schema import persons, plan_versions

    row = conn.execute(sa.select(plan_versions.c.content).join(
        persons, sa.and_(persons.c.id == plan_versions.c.person_id,
                         persons.c.current_version == plan_versions.c.version)).where(
        persons.c.tenant_id == tenant_id, persons.c.local_id == local_id)).first()
    return Plan.model_validate_json(row.content) if row else None


def _acknowledge(conn: Connection, tenant_id: str, key: str, ok: bool, detail: str,
                 now: dt.datetime) -> tuple[str | None, str | None]:
    """An acknowledgement of our own exchange: sent → acknowledged (or the recipient's
    integration error recorded on it). Returns (person, reason when no exchange matches)."""
    from gateway.delivery import outbox, trail
    from gateway.delivery.model import ExchangeRequest, Status
    from gateway.delivery.tables import exchanges

    X = exchanges.c
    detail = _storable(detail)
    row = conn.execute(sa.select(exchanges).where(
        X.tenant_id == tenant_id, X.idempotency_key == key)).first()
    if row is None:
        return None, "aucun échange de la plateforme ne correspond à cet accusé"
    if ok and row.status == Status.sent.value:
        conn.execute(sa.update(exchanges).where(X.seq == row.seq).values(
            status=Status.acknowledged.value, updated_at=now))
    elif not ok:
        conn.execute(sa.update(exchanges).where(X.seq == row.seq).values(last_error=detail[:1000], updated_at=now))
    outbox.add_event(conn, row.seq, Status.acknowledged if ok else Status(row.status), now, detail=detail[:500])
    request = ExchangeRequest(person_local_id=row.person_local_id, system=row.system,
                              recipient=Recipient(**json.loads(row.recipient)), purpose=row.purpose,
                              payload_kind=row.payload_kind)
    trail.record(conn, tenant_id, f"system:{row.system}", "exchange.acknowledged",
                 "success" if ok else "failure", request, row.id)
    return row.person_local_id, None


def _proposal(interpretation: Interpretation) -> dict | None:
    if not interpretation.proposal:
        return None
    decisions = interpretation.proposal.get("orientation_decisions")
    if decisions is not None:
        return {"orientation_decisions": [OrientationDecision.model_validate(d).model_dump(mode="json")
                                          for d in decisions]}
    return interpretation.proposal


def record(conn: Connection, tenant_id: str, item: Inbound, now: dt.datetime) -> tuple[str, str] | None:
    """Record one inbound item in `conn`'s transaction; None when it was already recorded.
    Returns (item id, status)."""
    key = dedupe_key(item)
    if conn.execute(sa.select(I.id).where(I.tenant_id == tenant_id, I.dedupe_key == key)).first():
        return None
    person, reason, proposal = None, None, None
    try:
        meaning = interpret(item)
        summary = meaning.summary
        if meaning.acknowledges is not None:
            person, reason = _acknowledge(conn, tenant_id, *meaning.acknowledges, now=now)
        elif meaning.about_person:
            person, reason = _match(conn, tenant_id, meaning.identifiers)
        if person and meaning.propose is not None:
            proposal = meaning.propose(_current_plan(conn, tenant_id, person))
        elif person:
            proposal = _proposal(meaning)
        matched = person is not None or not meaning.about_person
        status = ("proposed" if proposal else "recorded") if matched else "unmatched"
    except (Unreadable, ValueError) as exc:
        summary = {"titre": "Message mis en quarantaine", "motif": str(exc)}
        status = "quarantined"
    if reason:
        summary = {**summary, "motif": reason}
    item_id = uuid.uuid4().hex
    conn.execute(sa.insert(inbound_items).values(
        id=item_id, tenant_id=tenant_id, system=item.system, kind=item.kind,
        peer_reference=_storable(item.peer_reference)[:300], dedupe_key=key, person_local_id=person,
        status=status, summary=json.dumps(summary, ensure_ascii=False, default=str),
        proposal=json.dumps(proposal, ensure_ascii=False) if proposal else None,
        content_type=item.content_type, payload=item.payload, received_at=now))
    append(conn, AuditEntry(
        tenant_id=tenant_id, actor=f"system:{item.system}", action="inbound.received",
        outcome="success" if status in ("recorded", "proposed") else "failure",
        subject=pseudonym(conn, tenant_id, person) if person else None, system=item.system,
        refs={"inbound": item_id, "kind": item.kind, "status": status,
              "payload_sha256": hashlib.sha256(item.payload).hexdigest()}))
    return item_id, status


def receive(store: Store, tenant: Tenant, items: Iterable[Inbound],
            now: dt.datetime | None = None) -> collections.Counter:
    """Record each item in its own transaction (one bad item never blocks the others)."""
    counts: collections.Counter = collections.Counter()
    for item in items:
        with store.transaction() as conn:
            result = record(conn, tenant.id, item, now or dt.datetime.now(dt.UTC))
        counts["duplicate" if result is None else result[1]] += 1
    return counts


def poll(store: Store, tenant: Tenant, connector: Connector) -> collections.Counter:
    counts = receive(store, tenant, connector.poll())
    log.info("inbound_polled", system=connector.system, **{k: v for k, v in counts.items()})
    return counts
