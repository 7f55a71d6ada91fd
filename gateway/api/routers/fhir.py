"""TDDUI 2.2.0 (FHIR) views of the plan: export the current plan as a transaction Bundle, and
read a Bundle from another DUI or a regional tool into a plan.

`POST /$import-tddui` never stores: it answers the plan and the problems (every element of the
Bundle the plan cannot hold is listed). Storing stays `PUT /persons/{id}/plan` with `If-Match`,
so concurrent writes are controlled in one place."""

from __future__ import annotations

import datetime as dt

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import get_store, get_tenant
from gateway.api.problems import ApiProblem
from gateway.conformance.fhir.structure import read_tddui_bundle
from gateway.model import Plan, Severity
from gateway.plans import JsonInputError, loads_object
from gateway.storage.store import Store, Tenant
from mappings.fhir.tddui import TDDUI_VERSION, plan_to_bundle

router = APIRouter(tags=["fhir"])
FHIR_JSON = "application/fhir+json"
BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {FHIR_JSON: {"schema": {"type": "object", "description": "Bundle TDDUI (transaction)"}},
                    "application/json": {"schema": {"type": "object"}}},
    }
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@router.get(
    "/persons/{person_id}/plan/$tddui",
    summary=f"Projet courant en Bundle FHIR TDDUI {TDDUI_VERSION} (transaction)",
    responses={200: {"content": {FHIR_JSON: {}}}},
)
def export_tddui(person_id: str, tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> Response:
    current = store.get_plan(tenant, person_id)
    plan = Plan.model_validate_json(current.content)
    bundle = plan_to_bundle(plan, _now())
    return Response(content=orjson.dumps(bundle), media_type=FHIR_JSON,
                    headers={"X-Plan-Version": str(current.version), "X-TDDUI-Version": TDDUI_VERSION})


@router.post("/$import-tddui", openapi_extra=BUNDLE_BODY,
             summary="Lire un Bundle TDDUI en projet (sans l'enregistrer)")
async def import_tddui(request: Request, tenant: Tenant = Depends(get_tenant)) -> dict:
    settings = request.app.state.settings
    try:
        bundle = loads_object(await request.body(), max_bytes=settings.max_body_bytes,
                              max_depth=settings.max_json_depth)
    except JsonInputError as exc:
        kind = "too-large" if exc.problem.rule == "too-large" else "invalid-json"
        raise ApiProblem(kind, exc.problem.message, [exc.problem]) from None
    plan, problems = await run_in_threadpool(read_tddui_bundle, bundle, _now().date())
    if plan is None:
        errors = [p for p in problems if p.severity is Severity.error]
        raise ApiProblem("invalid-plan", f"Bundle non représentable en projet : {len(errors)} erreur(s)", problems)
    return {"plan": plan.model_dump(mode="json"), "tddui_version": TDDUI_VERSION,
            "problems": [p.model_dump(mode="json") for p in problems]}
