"""Planned versus delivered, per person and per planned service, over a window.

Planned: the service's intensity (hours or half-days a week) × the weeks of the window inside
the service's period (its own, else the plan's), for services in progress or completed.
Delivered: the person's finished direct activities linked to the service (hours, half-days
touched, sessions), with the cancelled ones and those where the person was absent beside them.
Activities linked to no planned service (or to one the current plan no longer has) are listed
as outside the plan.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from gateway.activity.indicators import Window
from gateway.activity.record import current_plan
from gateway.activity.tables import activity_records
from gateway.model.plan import IntensityUnit, Service, TaskStatus
from gateway.storage import Store, Tenant
from gateway.storage.schema import persons

COUNTED_STATUSES = (TaskStatus.in_progress, TaskStatus.completed)
MAX_LISTED = 2000


def _planned(service: Service, plan_period, window: Window) -> tuple[float | None, str | None]:
    if service.intensity is None or service.status not in COUNTED_STATUSES:
        return None, None
    start = service.period.start or plan_period.start or window.start
    end = service.period.end or plan_period.end or window.end
    weeks = window.overlap(start, end) / 7
    unit = "hours" if service.intensity.unit is IntensityUnit.hours_per_week else "half_days"
    return float(service.intensity.value) * weeks, unit


def _record(row) -> dict:
    return {
        "id": row.source_id, "code": row.code, "status": row.status, "day": row.day.isoformat(),
        "start": row.start_at.isoformat() if row.start_at else None,
        "end": row.end_at.isoformat() if row.end_at else None, "minutes": row.minutes,
        "modality": row.modality, "place": row.place, "service_id": row.service_id,
        "person_present": row.person_present,
        "provider": ({"kind": row.provider_kind, "name": row.provider_name,
                      "identifier": row.provider_identifier} if row.provider_kind else None),
        "transport_km": None if row.transport_m is None else row.transport_m / 1000,
        "transport_minutes": row.transport_minutes, "source": row.source,
        "received_at": row.received_at.isoformat(),
    }


def planned_vs_delivered(store: Store, tenant: Tenant, local_id: str, window: Window) -> dict:
    plan, version = current_plan(store, tenant, local_id)
    r = activity_records.c
    with store.reading() as conn:
        rows = conn.execute(
            sa.select(activity_records).join(persons, sa.and_(persons.c.id == r.person_id,
                                                              persons.c.tenant_id == r.tenant_id))
            .where(r.tenant_id == tenant.id, persons.c.local_id == local_id,
                   r.day >= window.start, r.day <= window.end)
            .order_by(r.day, r.start_at, r.source_id)).all()
    by_service: dict[str | None, list] = defaultdict(list)
    known = {s.id for s in plan.services}
    for row in rows:
        by_service[row.service_id if row.service_id in known else None].append(row)

    def delivered(items: list) -> dict:
        direct = [x for x in items if x.status == "finished" and x.person_present and x.code.startswith("2.")]
        halves = {(x.day, h) for x in direct for h, touched in ((0, x.morning), (1, x.afternoon)) if touched}
        return {"sessions": len(direct), "hours": round(sum(x.minutes for x in direct) / 60, 4),
                "half_days": len(halves),
                "absent": sum(1 for x in items if x.status == "finished" and not x.person_present),
                "cancelled": sum(1 for x in items if x.status == "cancelled"),
                "transport_km": round(sum(x.transport_m or 0 for x in items if x.status == "finished") / 1000, 3)}

    services = []
    for service in plan.services:
        planned, unit = _planned(service, plan.period, window)
        done = delivered(by_service.get(service.id, []))
        achieved = None
        if planned:
            achieved = round((done["hours"] if unit == "hours" else done["half_days"]) / planned, 4)
        services.append({
            "service_id": service.id, "code": service.code, "title": service.title,
            "modality": service.modality.value, "status": service.status.value,
            "intensity": ({"value": float(service.intensity.value), "unit": service.intensity.unit.value}
                          if service.intensity else None),
            "planned": None if planned is None else {"unit": unit, "value": round(planned, 4)},
            "delivered": done, "achieved": achieved})
    return {
        "person": local_id, "plan_version": version,
        "period": {"from": window.start.isoformat(), "to": window.end.isoformat(), "days": window.days},
        "services": services,
        "outside_plan": delivered(by_service.get(None, [])),
        "activities": [_record(row) for row in rows[:MAX_LISTED]],
        "activities_total": len(rows),
    }
