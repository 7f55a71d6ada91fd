"""Health, schema and the documentation of problem types."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway import __version__
from gateway.api.problems import KINDS, ApiProblem
from gateway.model import Plan

router = APIRouter(tags=["service"])


@router.get("/health", summary="État du service")
def health() -> dict:
    return {"status": "ok", "version": __version__}


@router.get("/schemas/plan", summary="Schéma JSON du projet personnalisé unique")
def plan_schema() -> JSONResponse:
    return JSONResponse(Plan.model_json_schema(), media_type="application/schema+json")


@router.get("/problems/{slug}", summary="Description d'un type de problème (RFC 9457)")
def problem_type(slug: str) -> dict:
    status, title = KINDS.get(slug, (None, None))
    if status is None:  # an error like any other: problem+json
        raise ApiProblem("not-found", f"type de problème inconnu : {slug[:40]!r}")
    return {"type": f"/problems/{slug}", "status": status, "title": title}
