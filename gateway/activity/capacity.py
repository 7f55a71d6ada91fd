"""The authorised capacity per modality, from the platform's FINESS authorisation.

A capacity line says: from `valid_from` on, the authorisation of FINESS `finess` allows
`places` places in `modality`, each open `opening_days` days a year (default by modality:
gateway.activity.model.DEFAULT_OPENING_DAYS). It stays in force until the next line of the
same modality; 0 places closes the modality. Setting a line again for the same day replaces it.
The FINESS defaults to the tenant's (`relais tenant create --finess`) and must equal it when
the tenant has one.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.activity.indicators import load_capacities
from gateway.activity.model import DEFAULT_OPENING_DAYS, MODALITIES, Capacity
from gateway.activity.tables import activity_capacities
from gateway.storage import Store, Tenant

_FINESS = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{7}")


class CapacityError(ValueError):
    """French message, safe to show."""


def _checked(tenant: Tenant, modality: str, places: int, opening_days: int | None,
             finess: str | None) -> tuple[int, str]:
    if modality not in MODALITIES:
        raise CapacityError(f"modalité inconnue : {modality} (attendu : {', '.join(MODALITIES)})")
    if not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 100_000:
        raise CapacityError("nombre de places invalide (entier de 0 à 100 000)")
    opening_days = DEFAULT_OPENING_DAYS[modality] if opening_days is None else opening_days
    if not isinstance(opening_days, int) or isinstance(opening_days, bool) or not 1 <= opening_days <= 366:
        raise CapacityError("jours d'ouverture invalides (entier de 1 à 366 par an)")
    finess = finess or tenant.finess
    if finess is None or not _FINESS.fullmatch(finess):
        raise CapacityError("numéro FINESS de l'autorisation manquant ou invalide (9 caractères)")
    if tenant.finess is not None and finess != tenant.finess:
        raise CapacityError(f"le FINESS {finess} n'est pas celui de la plateforme ({tenant.finess})")
    return opening_days, finess


def set_capacities(store: Store, tenant: Tenant, lines: list[tuple[str, int, int | None]], *,
                   valid_from: dt.date, finess: str | None = None, actor: str,
                   now: dt.datetime | None = None) -> list[Capacity]:
    """Record (modality, places, opening days or None) lines from `valid_from`, all or none."""
    if len({modality for modality, _, _ in lines}) != len(lines):
        raise CapacityError("une modalité figure deux fois")
    out = []
    for modality, places, opening_days in lines:
        days, line_finess = _checked(tenant, modality, places, opening_days, finess)
        out.append(Capacity(modality, valid_from, places, days, line_finess))
    dialect = pg_dialect if store.backend == "postgresql" else sqlite_dialect
    recorded_at = now or dt.datetime.now(dt.UTC)
    with store.transaction() as conn:
        for cap in out:
            stmt = dialect.insert(activity_capacities).values(
                tenant_id=tenant.id, modality=cap.modality, valid_from=valid_from, finess=cap.finess,
                places=cap.places, opening_days=cap.opening_days, recorded_at=recorded_at,
                recorded_by=actor[:100])
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["tenant_id", "modality", "valid_from"],
                set_={k: stmt.excluded[k] for k in ("finess", "places", "opening_days", "recorded_at",
                                                    "recorded_by")}))
    return out


def set_capacity(store: Store, tenant: Tenant, modality: str, *, places: int, valid_from: dt.date,
                 opening_days: int | None = None, finess: str | None = None, actor: str,
                 now: dt.datetime | None = None) -> Capacity:
    return set_capacities(store, tenant, [(modality, places, opening_days)], valid_from=valid_from,
                          finess=finess, actor=actor, now=now)[0]


def list_capacities(store: Store, tenant: Tenant) -> list[Capacity]:
    with store.reading() as conn:
        return load_capacities(conn, tenant.id)


def in_force(capacities: list[Capacity], day: dt.date) -> dict[str, Capacity]:
    """The line of each modality in force on `day`."""
    out: dict[str, Capacity] = {}
    for cap in sorted(capacities, key=lambda c: c.valid_from):
        if cap.valid_from <= day:
            out[cap.modality] = cap
    return {m: c for m, c in out.items() if c.places > 0}
