"""The coordinator's review of what was received: read, apply a proposal (a new plan version,
guarded by If-Match like any write), or reject it. Nothing changes a plan without this step.
Each review is one transaction with its audit entry, and an item is reviewed once."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import sqlalchemy as sa

from gateway.audit import AuditEntry, append, pseudonym
from gateway.inbound.tables import inbound_items
from gateway.model import Plan
from gateway.plans import validate_plan
from gateway.storage import Store, Tenant
from gateway.storage.store import Conflict, NotFound

I = inbound_items.c


@dataclass(frozen=True)
class Item:
    id: str
    seq: int
    system: str
    kind: str
    peer_reference: str
    person: str | None
    status: str
    summary: dict
    proposal: dict | None
    received_at: dt.datetime
    reviewed_by: str | None
    applied_version: int | None

    def as_dict(self) -> dict:
        return {"id": self.id, "system": self.system, "kind": self.kind,
                "peer_reference": self.peer_reference, "person": self.person, "status": self.status,
                "summary": self.summary, "proposal": self.proposal,
                "received_at": self.received_at.isoformat(), "reviewed_by": self.reviewed_by,
                "applied_version": self.applied_version}


def _item(row) -> Item:
    return Item(row.id, row.seq, row.system, row.kind, row.peer_reference, row.person_local_id,
                row.status, json.loads(row.summary), json.loads(row.proposal) if row.proposal else None,
                row.received_at, row.reviewed_by, row.applied_version)


def listing(store: Store, tenant: Tenant, *, status: str | None = None, person: str | None = None,
            system: str | None = None, limit: int = 50, before: int | None = None) -> list[Item]:
    query = sa.select(inbound_items).where(I.tenant_id == tenant.id)
    for column, value in ((I.status, status), (I.person_local_id, person), (I.system, system)):
        if value:
            query = query.where(column == value)
    if before:
        query = query.where(I.seq < before)
    with store.reading() as conn:
        return [_item(r) for r in conn.execute(query.order_by(I.seq.desc()).limit(limit))]


def get(store: Store, tenant: Tenant, item_id: str) -> Item:
    with store.reading() as conn:
        row = conn.execute(sa.select(inbound_items).where(I.tenant_id == tenant.id, I.id == item_id)).first()
    if row is None:
        raise NotFound(f"élément reçu {item_id[:40]!r} introuvable")
    return _item(row)


def merged(plan: Plan, proposal: dict) -> dict:
    """The plan with the proposal applied: a JSON Patch (RFC 6902) computed against the plan
    when the item was received, or orientation decisions to merge."""
    if "patch" in proposal:
        import jsonpatch

        try:
            return jsonpatch.apply_patch(plan.model_dump(mode="json", exclude_none=True), proposal["patch"])
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise Conflict(f"la proposition ne s'applique plus au projet actuel ({exc}) : "
                           "elle date d'une version antérieure") from None
    return _merge_decisions(plan, proposal)


def _merge_decisions(plan: Plan, proposal: dict) -> dict:
    """The plan with the proposal merged: the decision received replaces the plan's records of
    the same CDAPH decision number (the SI-SDO's version is authoritative), others are kept."""
    data = plan.model_dump(mode="json")
    incoming = proposal.get("orientation_decisions") or []
    numbers = {d["decision_number"] for d in incoming}
    kept = [d for d in data["orientation_decisions"] if d["decision_number"] not in numbers]
    taken = {d["id"] for d in kept}
    for decision in incoming:
        if decision["id"] in taken:  # keep ids unique inside the plan
            decision = {**decision, "id": f"{decision['id'][:58]}-{len(taken) + 1}"}
        taken.add(decision["id"])
        kept.append(decision)
    data["orientation_decisions"] = kept
    return data


_NOT_PENDING = "cet élément n'a pas de proposition en attente"
_REJECTABLE = ("proposed", "unmatched", "recorded")
_NOT_REJECTABLE = "cet élément ne peut plus être rejeté"


def _lock_reviewable(conn, tenant: Tenant, item_id: str, statuses: tuple[str, ...], refusal: str) -> None:
    """Lock the item's row for this review (PostgreSQL: FOR UPDATE; SQLite: the transaction's
    write lock) and check it is still in one of `statuses`: a concurrent review that committed
    first makes this one a Conflict, never a second review of the same item."""
    status = conn.execute(sa.select(I.status).where(I.tenant_id == tenant.id, I.id == item_id)
                          .with_for_update()).scalar()
    if status is None:
        raise NotFound(f"élément reçu {item_id[:40]!r} introuvable")
    if status not in statuses:
        raise Conflict(f"{refusal} (statut : {status})")


def apply(store: Store, tenant: Tenant, item_id: str, *, if_match: str | None, actor: str,
          today: dt.date | None = None) -> int:
    """Apply the proposal as a new plan version; returns the version number.

    One transaction: the version, the item's "applied" status and its audit entry commit
    together or not at all, and the item is applied once (a second apply, even a concurrent
    one, is a Conflict). The proposal is merged onto the version read here: `if_match` (when
    given) must name it, and without it that version must still be current when written —
    PreconditionFailed otherwise, never a merge onto a version it did not see."""
    item = get(store, tenant, item_id)
    if item.status != "proposed" or not item.proposal or not item.person:
        raise Conflict(f"{_NOT_PENDING} (statut : {item.status})")
    current = store.get_plan(tenant, item.person)
    plan = Plan.model_validate_json(current.content)
    candidate, problems = validate_plan(merged(plan, item.proposal), today or dt.date.today())
    if candidate is None:
        first = next(p for p in problems if p.severity.value == "error")
        raise Conflict(f"la proposition rendrait le projet invalide : {first.location} {first.message}")
    # Lock order, as every review: the item, then the person (put_plan), then the audit head.
    with store.transaction() as conn:
        _lock_reviewable(conn, tenant, item_id, ("proposed",), _NOT_PENDING)
        result = store.put_plan(tenant, candidate, if_match=if_match or current.etag, actor=actor, conn=conn)
        version = result.version.version
        conn.execute(sa.update(inbound_items).where(I.tenant_id == tenant.id, I.id == item_id).values(
            status="applied", reviewed_by=actor, reviewed_at=dt.datetime.now(dt.UTC), applied_version=version))
        append(conn, AuditEntry(tenant_id=tenant.id, actor=actor, action="inbound.applied",
                                outcome="success", subject=pseudonym(conn, tenant.id, item.person),
                                system=item.system, refs={"inbound": item_id, "version": str(version)}))
    return version


def reject(store: Store, tenant: Tenant, item_id: str, *, actor: str, reason: str) -> None:
    """Reject the item once: its status, the reason and the audit entry in one transaction."""
    item = get(store, tenant, item_id)
    if item.status not in _REJECTABLE:
        raise Conflict(f"{_NOT_REJECTABLE} (statut : {item.status})")
    with store.transaction() as conn:
        _lock_reviewable(conn, tenant, item_id, _REJECTABLE, _NOT_REJECTABLE)
        conn.execute(sa.update(inbound_items).where(I.tenant_id == tenant.id, I.id == item_id).values(
            status="rejected", reviewed_by=actor, reviewed_at=dt.datetime.now(dt.UTC),
            summary=json.dumps({**item.summary, "rejet": reason[:500]}, ensure_ascii=False)))
        append(conn, AuditEntry(tenant_id=tenant.id, actor=actor, action="inbound.rejected",
                                outcome="success",
                                subject=pseudonym(conn, tenant.id, item.person) if item.person else None,
                                system=item.system, refs={"inbound": item_id}))


def counts(store: Store, tenant: Tenant) -> dict[tuple[str, str], int]:
    """(system, status) → number of items received."""
    with store.reading() as conn:
        rows = conn.execute(sa.select(I.system, I.status, sa.func.count()).where(I.tenant_id == tenant.id)
                            .group_by(I.system, I.status)).all()
    return {(system, status): n for system, status, n in rows}
