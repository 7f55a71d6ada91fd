"""SERAFIN-PH look-ups."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query

from gateway.api.problems import ApiProblem
from mappings.serafin import nomenclature

router = APIRouter(prefix="/nomenclature/serafin", tags=["nomenclature"])
FAMILY = Query(None, pattern="^(besoin|prestation_directe|prestation_indirecte)$")


@router.get("", summary="Rechercher un code SERAFIN-PH (libellé sans accents ni casse, ou préfixe de code)")
def search(
    q: str = Query("", max_length=100),
    family: str | None = FAMILY,
    limit: int = Query(50, ge=1, le=200),
) -> dict:
    terms = nomenclature()
    hits = terms.search(q, family=family, limit=limit) if q else [
        c for c in terms if family is None or c.family == family
    ][:limit]
    return {
        "system": terms.fhir_system,
        "version": terms.code_system_version,
        "items": [asdict(c) for c in hits],
    }


@router.get("/{code}", summary="Un code, ses ancêtres et ses enfants")
def show(code: str) -> dict:
    terms = nomenclature()
    concept = terms.get(code)
    if concept is None:
        raise ApiProblem("not-found", f"code SERAFIN-PH inconnu : {code[:20]!r}")
    return {
        **asdict(concept),
        "system": terms.fhir_system,
        "ancestors": [asdict(c) for c in terms.ancestors(code)],
        "children": [asdict(c) for c in terms.children(code)],
    }
