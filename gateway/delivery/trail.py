"""Audit entries of the spine: one per step, in the same transaction as the step."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from gateway.audit import AuditEntry, append, pseudonym
from gateway.delivery.model import ExchangeRequest
from gateway.storage import Tenant


def record(conn: Connection, tenant: Tenant | str, actor: str, action: str, outcome: str,
           request: ExchangeRequest, exchange_id: str, **refs: str | None) -> int:
    """`refs` hold ids and digests only (decision id, payload sha256, rule ids…)."""
    tenant_id = tenant if isinstance(tenant, str) else tenant.id
    return append(conn, AuditEntry(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        outcome=outcome,
        subject=pseudonym(conn, tenant_id, request.person_local_id),
        system=request.system,
        refs={"exchange": exchange_id, "purpose": request.purpose,
              "payload_kind": request.payload_kind,
              **{k: str(v) for k, v in refs.items() if v is not None}},
    ))
