"""Persons and their plan: put a new version, get one, history, diff, validate."""

from __future__ import annotations

import datetime as dt

import jsonpatch
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import get_store, get_tenant
from gateway.api.pagination import LIMIT, page
from gateway.api.problems import ApiProblem
from gateway.logs import get_logger
from gateway.model import Plan, Severity
from gateway.plans import validate_plan_json
from gateway.storage.store import PersonRow, PlanVersion, Store, Tenant

router = APIRouter(tags=["projets"])
log = get_logger("relais.plans")

PLAN_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Plan"}}},
    }
}
PERSON_ID = r"^[A-Za-z0-9._\-]{1,64}$"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _version_summary(v: PlanVersion) -> dict:
    return {
        "version": v.version,
        "etag": v.etag,
        "content_hash": v.content_hash,
        "status": v.status,
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
    }


def _person_summary(p: PersonRow) -> dict:
    return {
        "local_id": p.local_id,
        "current_version": p.current_version,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "plan": f"/persons/{p.local_id}/plan",
    }


async def _read_plan(request: Request) -> tuple[Plan, list]:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", "application/fhir+json") and not media.endswith("+json"):
        raise ApiProblem("unsupported-media-type", f"type {media!r} refusé : envoyer application/json")
    settings = request.app.state.settings
    plan, problems = validate_plan_json(
        await request.body(), _today(), max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    if plan is None:
        errors = [p for p in problems if p.severity is Severity.error]
        json_level = errors and errors[0].source == "relais-json"
        kind = ("too-large" if errors[0].rule == "too-large" else "invalid-json") if json_level else "invalid-plan"
        raise ApiProblem(kind, f"{len(errors)} problème(s) dans le projet", problems)
    return plan, problems


@router.post("/plans/$validate", openapi_extra=PLAN_BODY, summary="Valider un projet sans l'enregistrer")
async def validate(request: Request, tenant: Tenant = Depends(get_tenant)) -> dict:
    settings = request.app.state.settings
    plan, problems = validate_plan_json(
        await request.body(), _today(), max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    return {"valid": plan is not None, "problems": [p.model_dump(mode="json") for p in problems]}


@router.get("/persons", summary="Personnes accompagnées (paginé)")
def list_persons(
    request: Request,
    response: Response,
    limit: int = LIMIT,
    after: str | None = Query(None, pattern=PERSON_ID, description="Dernier identifiant vu"),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    rows = store.list_persons(tenant, limit=limit, after=after)
    items = [_person_summary(p) for p in rows]
    return page(request, response, items, limit, "after", rows[-1].local_id if rows else None)


@router.get("/persons/{person_id}", summary="Une personne et la version courante de son projet")
def get_person(
    person_id: str, tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)
) -> dict:
    current = store.get_plan(tenant, person_id)
    return {"local_id": person_id, "current": _version_summary(current),
            "plan": f"/persons/{person_id}/plan", "versions": f"/persons/{person_id}/plan/versions"}


@router.put(
    "/persons/{person_id}/plan",
    openapi_extra=PLAN_BODY,
    status_code=200,
    summary="Enregistrer une nouvelle version du projet (If-Match obligatoire s'il existe déjà)",
    responses={201: {"description": "Première version"}, 412: {}, 422: {}, 428: {}},
)
async def put_plan(
    person_id: str,
    request: Request,
    response: Response,
    if_match: str | None = Header(None, description="ETag de la version que l'on remplace, ou *"),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    plan, problems = await _read_plan(request)
    if plan.person.local_id != person_id:
        raise ApiProblem(
            "person-mismatch",
            f"l'adresse désigne la personne {person_id!r} mais le projet porte {plan.person.local_id!r}",
        )
    result = await run_in_threadpool(
        store.put_plan, tenant, plan, if_match=if_match, actor=f"key:{tenant.slug}"
    )
    version = result.version
    if result.created:
        response.status_code = 201
    response.headers["ETag"] = version.etag
    response.headers["Location"] = f"/persons/{person_id}/plan/versions/{version.version}"
    log.info("plan_stored", tenant=tenant.slug, version=version.version, created=result.created,
             unchanged=result.unchanged, warnings=len(problems))
    return {
        **_version_summary(version),
        "created": result.created,
        "unchanged": result.unchanged,
        "warnings": [p.model_dump(mode="json") for p in problems],
    }


def _plan_response(version: PlanVersion) -> Response:
    return Response(
        content=version.content,
        media_type="application/json",
        headers={"ETag": version.etag, "X-Plan-Version": str(version.version)},
    )


@router.get("/persons/{person_id}/plan", responses={200: {"model": Plan}}, summary="Projet courant")
def get_plan(
    person_id: str,
    request: Request,
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> Response:
    current = store.get_plan(tenant, person_id)
    if request.headers.get("if-none-match") == current.etag:
        return Response(status_code=304, headers={"ETag": current.etag})
    return _plan_response(current)


@router.get("/persons/{person_id}/plan/versions", summary="Historique des versions (paginé)")
def list_versions(
    person_id: str,
    request: Request,
    response: Response,
    limit: int = LIMIT,
    before: int | None = Query(None, ge=1, description="Versions antérieures à celle-ci"),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    versions = store.list_versions(tenant, person_id, limit=limit, before=before)
    items = [_version_summary(v) for v in versions]
    return page(request, response, items, limit, "before", versions[-1].version if versions else None)


@router.get(
    "/persons/{person_id}/plan/versions/{version}",
    responses={200: {"model": Plan}},
    summary="Une version du projet",
)
def get_version(
    person_id: str,
    version: int,
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> Response:
    return _plan_response(store.get_plan(tenant, person_id, version))


@router.get("/persons/{person_id}/plan/diff", summary="Différences entre deux versions (JSON Patch, RFC 6902)")
def diff(
    person_id: str,
    from_version: int = Query(..., alias="from", ge=1),
    to_version: int = Query(..., alias="to", ge=1),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    old = store.get_plan(tenant, person_id, from_version)
    new = store.get_plan(tenant, person_id, to_version)
    patch = jsonpatch.make_patch(orjson.loads(old.content), orjson.loads(new.content))
    return {"from": from_version, "to": to_version, "patch": patch.patch}
