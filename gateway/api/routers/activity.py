"""Delivered activity and the SERAFIN-PH activity indicators (issue 10).

No business logic here: routes call `gateway.activity`. Refused activity is problem+json
`/problems/invalid-activity` (422) listing each problem with its JSON path (or FHIRPath for a
TDDUI Bundle) and rule. Every route is scoped to the calling key's platform.
"""

from __future__ import annotations

import datetime as dt

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from gateway.activity import capacity as capacities
from gateway.activity import dataset, measure_report
from gateway.activity.indicators import Window, report
from gateway.activity.model import Modality, parse_week
from gateway.activity.planned import planned_vs_delivered
from gateway.activity.record import ActivityRejected, record_activities
from gateway.activity.tddui import record_bundle
from gateway.api.deps import get_store, get_tenant
from gateway.api.problems import MEDIA_TYPE, ApiProblem, EscapedJSONResponse
from gateway.api.schemas import json_body
from gateway.logs import get_logger
from gateway.model import Problem, json_path
from gateway.plans import loads_object, loads_strict
from gateway.storage import Store, Tenant

router = APIRouter(tags=["activité"])
log = get_logger("relais.activity")
FHIR_JSON = "application/fhir+json"
ACTIVITY_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description":
                                    "une activité, ou {\"activities\": [...]} (voir README « Activity indicators »)"}},
    FHIR_JSON: {"schema": {"type": "object", "description": "Bundle TDDUI : Encounter tddui-encounter-evenement"}}}}}
FROM = Query(None, alias="from", description="Premier jour (AAAA-MM-JJ ; défaut : 1er janvier)")
TO = Query(None, alias="to", description="Dernier jour inclus (AAAA-MM-JJ ; défaut : aujourd'hui)")


def _actor(tenant: Tenant) -> str:
    return f"key:{tenant.slug}"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _window(start: dt.date | None, end: dt.date | None) -> Window:
    end = end or _today()
    start = start or dt.date(end.year, 1, 1)
    if end < start:
        raise ApiProblem("invalid-request", "« to » précède « from »")
    if (end - start).days > 3 * 366:
        raise ApiProblem("invalid-request", "période de plus de trois ans : la découper")
    return Window(start, end)


def _rejected(request: Request, exc: ActivityRejected) -> JSONResponse:
    errors = [p for p in exc.problems if p.severity.value == "error"]
    body = {"type": "/problems/invalid-activity", "title": "Activité refusée", "status": 422,
            "detail": f"{len(errors)} problème(s) : rien n'a été enregistré", "instance": request.url.path,
            "errors": [p.model_dump(mode="json") for p in exc.problems]}
    return EscapedJSONResponse(body, status_code=422, media_type=MEDIA_TYPE)


@router.post("/persons/{person_id}/activity", openapi_extra=ACTIVITY_BODY,
             summary="Enregistrer l'activité réalisée (JSON, ou Bundle TDDUI d'évènements)",
             responses={200: {"description": "Rien de nouveau (activités identiques)"},
                        201: {"description": "Activité enregistrée"}, 422: {}})
async def post_activity(person_id: str, request: Request, response: Response,
                        tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)):
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", FHIR_JSON):
        raise ApiProblem("unsupported-media-type",
                         f"type {media!r} refusé : envoyer application/json ou application/fhir+json")
    settings = request.app.state.settings
    raw = await request.body()
    if media == FHIR_JSON:
        body = loads_object(raw, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
        call, what = record_bundle, "tddui"
    else:
        body = loads_strict(raw, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            call, what = record_bundle, "tddui"
        else:
            call, what = record_activities, "api"
    try:
        result = await run_in_threadpool(call, store, tenant, person_id, body, actor=_actor(tenant))
    except ActivityRejected as exc:
        log.info("activity_rejected", tenant=tenant.slug, errors=len(exc.problems), source=what)
        return _rejected(request, exc)
    log.info("activity_recorded", tenant=tenant.slug, source=what, created=result.created,
             replaced=result.replaced, unchanged=result.unchanged)
    response.status_code = 201 if result.created or result.replaced else 200
    return result.as_dict()


@router.get("/persons/{person_id}/activity", summary="Activité de la personne : prévu et réalisé par prestation")
def get_activity(person_id: str, start: dt.date | None = FROM, end: dt.date | None = TO,
                 tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    return planned_vs_delivered(store, tenant, person_id, _window(start, end))


def _week(text: str | None) -> tuple[dt.date, dt.date] | None:
    if text is None:
        return None
    try:
        return parse_week(text)
    except ValueError as exc:
        raise ApiProblem("invalid-request", str(exc), [Problem(
            location="reference_week", rule="reference-week", message=str(exc),
            message_en="unreadable reference week (2026-W42 or a date)", source="relais-api")]) from None


@router.get("/activity/indicators", summary="Indicateurs d'activité SERAFIN-PH de la plateforme")
def get_indicators(start: dt.date | None = FROM, end: dt.date | None = TO,
                   reference_week: str | None = Query(None, description="2026-W42, ou une date de la semaine"),
                   by: str | None = Query(None, pattern="^(modality|specialisation)$",
                                          description="modality (toujours donné) ou specialisation"),
                   tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    return report(store, tenant, _window(start, end), reference_week=_week(reference_week), by=by)


def _year(year: int) -> int:
    if not 2000 <= year <= 2100:
        raise ApiProblem("invalid-request", "année hors limites (2000 à 2100)")
    return year


@router.get("/activity/dataset/{year}.json", summary="Jeu de données annuel SERAFIN-PH (relais-serafin-dataset/1)")
def get_dataset_json(year: int, reference_week: str | None = Query(None),
                     tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> Response:
    data = dataset.annual_dataset(store, tenant, _year(year), reference_week=_week(reference_week))
    return Response(orjson.dumps(data), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="serafin-{tenant.slug}-{year}.json"'})


@router.get("/activity/dataset/{year}.csv", summary="Jeu de données annuel SERAFIN-PH, en CSV")
def get_dataset_csv(year: int, reference_week: str | None = Query(None),
                    tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> Response:
    data = dataset.annual_dataset(store, tenant, _year(year), reference_week=_week(reference_week))
    return Response(dataset.to_csv(data).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="serafin-{tenant.slug}-{year}.csv"'})


@router.get("/activity/measure-reports", summary="Jeu de données annuel en MeasureReport FHIR R4 (Bundle)")
def get_measure_reports(year: int = Query(..., description="Année civile"),
                        reference_week: str | None = Query(None),
                        tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> Response:
    data = dataset.annual_dataset(store, tenant, _year(year), reference_week=_week(reference_week))
    return Response(orjson.dumps(measure_report.bundle(data)), media_type=FHIR_JSON)


class CapacityLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modality: Modality
    places: int = Field(ge=0, le=100_000)
    opening_days: int | None = Field(default=None, ge=1, le=366,
                                     description="Jours d'ouverture par an (défaut selon la modalité)")


class CapacityIn(BaseModel):
    """Body of PUT /activity/capacity: the authorisation's places per modality from a date."""

    model_config = ConfigDict(extra="forbid")
    valid_from: dt.date = Field(description="Date d'effet de l'autorisation")
    finess: str | None = Field(default=None, description="FINESS de l'autorisation (défaut : celui de la plateforme)")
    capacities: list[CapacityLine] = Field(min_length=1, max_length=len(Modality))


def _capacity_list(store: Store, tenant: Tenant) -> dict:
    return {"capacities": [{"modality": c.modality, "valid_from": c.valid_from.isoformat(), "places": c.places,
                            "opening_days": c.opening_days, "finess": c.finess}
                           for c in capacities.list_capacities(store, tenant)]}


@router.put("/activity/capacity", summary="Capacité autorisée par modalité (autorisation FINESS)",
            openapi_extra=json_body(CapacityIn))
async def put_capacity(request: Request, tenant: Tenant = Depends(get_tenant),
                       store: Store = Depends(get_store)) -> dict:
    data = loads_object(await request.body(), max_bytes=64 * 1024)
    try:
        body = CapacityIn.model_validate(data)
    except ValidationError as exc:
        raise ApiProblem("invalid-request", "capacité invalide", [
            Problem(location=json_path(e["loc"]), rule=str(e["type"]).replace("_", "-"),
                    message=f"valeur invalide : {e['msg']}", message_en=e["msg"], source="relais-api")
            for e in exc.errors(include_url=False)]) from None
    try:
        capacities.set_capacities(store, tenant, [(line.modality.value, line.places, line.opening_days)
                                                  for line in body.capacities],
                                  valid_from=body.valid_from, finess=body.finess, actor=_actor(tenant))
    except capacities.CapacityError as exc:
        raise ApiProblem("invalid-request", str(exc)) from None
    log.info("capacity_set", tenant=tenant.slug, modalities=len(body.capacities))
    return _capacity_list(store, tenant)


@router.get("/activity/capacity", summary="Capacités autorisées enregistrées")
def get_capacity(tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    return _capacity_list(store, tenant)
