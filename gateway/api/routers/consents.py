"""Consents (FHIR Consent), care team (FHIR CareTeam), information records, decisions.

No business logic here: routes call `gateway.consent.ConsentRegistry`. Refusals are
problem+json: `/problems/invalid-consent` (and `invalid-care-team`) list each problem with
its FHIRPath location and rule; `/problems/consent-rejected` gives the capacity reasons.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import get_store, get_tenant
from gateway.api.problems import MEDIA_TYPE, ApiProblem, EscapedJSONResponse
from gateway.api.schemas import json_body
from gateway.consent.fhir_common import FhirInputError
from gateway.consent.fhir_consent import consent_full_url
from gateway.consent.inputs import DecisionInput, InformationInput
from gateway.consent.registry import ConsentRegistry, ConsentRejected, StoredConsent
from gateway.logs import get_logger
from gateway.model import Problem, json_path
from gateway.plans import loads_object
from gateway.storage.store import Store, Tenant

router = APIRouter(tags=["consentements"])
log = get_logger("relais.consents")
FHIR_JSON = "application/fhir+json"
FHIR_BODY = {"requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}},
                                                            "application/json": {"schema": {"type": "object"}}}}}


def _registry(request: Request, store: Store = Depends(get_store)) -> ConsentRegistry:
    registry = getattr(request.app.state, "consent_registry", None)
    if registry is None or registry.store is not store:
        registry = request.app.state.consent_registry = ConsentRegistry(store)
    return registry


def _actor(tenant: Tenant) -> str:
    return f"key:{tenant.slug}"


def _problem(request: Request, kind: str, status: int, title: str, detail: str,
             errors: list[Problem]) -> JSONResponse:
    body = {"type": f"/problems/{kind}", "title": title, "status": status, "detail": detail,
            "instance": request.url.path, "errors": [p.model_dump(mode="json") for p in errors]}
    return EscapedJSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _invalid(request: Request, exc: FhirInputError, what: str) -> JSONResponse:
    errors = [p for p in exc.problems if p.severity.value == "error"]
    return _problem(request, f"invalid-{what}", 422, "Ressource FHIR refusée",
                    f"{len(errors)} problème(s) dans la ressource", exc.problems)


def _rejected(request: Request, exc: ConsentRejected) -> JSONResponse:
    errors = [Problem(location="Consent.performer", rule=r.rule_id, message=r.message,
                      message_en=r.message_en, source="relais-consent capacity (L17)")
              for r in exc.refusals]
    return _problem(request, "consent-rejected", 422, "Consentement refusé",
                    "la personne qui consent n'a pas qualité pour le faire", errors)


async def _body(request: Request) -> dict:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", FHIR_JSON):
        raise ApiProblem("unsupported-media-type",
                         f"type {media!r} refusé : envoyer application/fhir+json ou application/json")
    settings = request.app.state.settings
    return loads_object(await request.body(), max_bytes=settings.max_body_bytes,
                        max_depth=settings.max_json_depth)


def _fhir(resource: bytes, status: int = 200, headers: dict | None = None) -> Response:
    return Response(content=resource, status_code=status, media_type=FHIR_JSON, headers=headers)


def _consent_headers(person_id: str, stored: StoredConsent) -> dict:
    return {"ETag": f'W/"{stored.version}"',
            "Location": f"/persons/{person_id}/consents/{stored.id}/_history/{stored.version}"}


# ------------------------------------------------------------------ consents


@router.get("/persons/{person_id}/consents", summary="Consentements de la personne (Bundle FHIR)")
def list_consents(person_id: str, tenant: Tenant = Depends(get_tenant),
                  registry: ConsentRegistry = Depends(_registry)) -> Response:
    items = registry.list_consents(tenant, person_id)
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(items)}
    if items:  # FHIR arrays are never empty
        bundle["entry"] = [{"fullUrl": consent_full_url(c.id), "resource": c.resource, "search": {"mode": "match"}}
                           for c in items]
    return _fhir(orjson.dumps(bundle))


@router.post("/persons/{person_id}/consents", openapi_extra=FHIR_BODY, status_code=201,
             summary="Enregistrer un consentement ou une opposition (FHIR Consent)",
             responses={201: {"description": "Consentement enregistré"}, 422: {}})
async def post_consent(person_id: str, request: Request, tenant: Tenant = Depends(get_tenant),
                       registry: ConsentRegistry = Depends(_registry)) -> Response:
    resource = await _body(request)
    try:
        stored = await run_in_threadpool(registry.record_consent, tenant, person_id, resource,
                                         actor=_actor(tenant))
    except FhirInputError as exc:
        return _invalid(request, exc, "consent")
    except ConsentRejected as exc:
        log.info("consent_rejected", tenant=tenant.slug, rules=[r.rule_id for r in exc.refusals])
        return _rejected(request, exc)
    log.info("consent_recorded", tenant=tenant.slug, kind=stored.kind)
    headers = _consent_headers(person_id, stored)
    if stored.warnings:
        headers["X-Relais-Warnings"] = " ".join(sorted({w.rule for w in stored.warnings}))
    return _fhir(stored.content, 201, headers)


@router.get("/persons/{person_id}/consents/{consent_id}", summary="Version courante d'un consentement")
def get_consent(person_id: str, consent_id: str, tenant: Tenant = Depends(get_tenant),
                registry: ConsentRegistry = Depends(_registry)) -> Response:
    stored = registry.get_consent(tenant, person_id, consent_id)
    return _fhir(stored.content, headers={"ETag": f'W/"{stored.version}"'})


@router.get("/persons/{person_id}/consents/{consent_id}/_history/{version}",
            summary="Une version d'un consentement")
def get_consent_version(person_id: str, consent_id: str, version: int,
                        tenant: Tenant = Depends(get_tenant),
                        registry: ConsentRegistry = Depends(_registry)) -> Response:
    stored = registry.get_consent(tenant, person_id, consent_id, version)
    return _fhir(stored.content, headers={"ETag": f'W/"{stored.version}"'})


@router.post("/persons/{person_id}/consents/{consent_id}/$withdraw",
             summary="Retirer un consentement (nouvelle version inactive, effet immédiat)")
def withdraw_consent(person_id: str, consent_id: str, tenant: Tenant = Depends(get_tenant),
                     registry: ConsentRegistry = Depends(_registry)) -> Response:
    stored = registry.withdraw(tenant, person_id, consent_id, actor=_actor(tenant))
    log.info("consent_withdrawn", tenant=tenant.slug, version=stored.version)
    return _fhir(stored.content, 200, _consent_headers(person_id, stored))


# ------------------------------------------------------------------ care team


@router.get("/persons/{person_id}/care-team", summary="Équipe de soins de la personne (FHIR CareTeam)")
def get_care_team(person_id: str, tenant: Tenant = Depends(get_tenant),
                  registry: ConsentRegistry = Depends(_registry)) -> Response:
    stored = registry.get_care_team(tenant, person_id)
    if stored is None:
        raise ApiProblem("not-found", f"aucune équipe de soins enregistrée pour l'usager {person_id}")
    return _fhir(stored.content, headers={"ETag": f'W/"{stored.version}"'})


@router.put("/persons/{person_id}/care-team", openapi_extra=FHIR_BODY,
            summary="Remplacer l'équipe de soins (nouvelle version)",
            responses={201: {"description": "Première version"}, 422: {}})
async def put_care_team(person_id: str, request: Request, tenant: Tenant = Depends(get_tenant),
                        registry: ConsentRegistry = Depends(_registry)) -> Response:
    resource = await _body(request)
    try:
        stored = await run_in_threadpool(registry.put_care_team, tenant, person_id, resource,
                                         actor=_actor(tenant))
    except FhirInputError as exc:
        return _invalid(request, exc, "care-team")
    log.info("care_team_stored", tenant=tenant.slug, version=stored.version)
    return _fhir(stored.content, 201 if stored.version == 1 else 200,
                 {"ETag": f'W/"{stored.version}"'})


# ------------------------------------------------------------------ information


def _information_dict(record) -> dict:
    return {"id": record.id, "informed_at": record.informed_at.isoformat(),
            "method": record.method.value, "informed_by": record.informed_by,
            "notice_version": record.notice_version, "topics": sorted(t.value for t in record.topics),
            "recipient": ({"system": record.recipient[0], "value": record.recipient[1]}
                          if record.recipient else None),
            "data_categories": sorted(record.data_categories)}


def _validated(model, data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [Problem(location=json_path(tuple(e.get("loc", ()))),
                          rule=str(e.get("type", "invalid")).replace("_", "-"),
                          message=f"valeur refusée : {e.get('msg', '')}", message_en=str(e.get("msg", "")),
                          source="relais-api") for e in exc.errors()]
        raise ApiProblem("invalid-request", f"{len(errors)} problème(s) dans la requête", errors) from None


@router.post("/persons/{person_id}/information", status_code=201, openapi_extra=json_body(InformationInput),
             summary="Enregistrer que la personne a été informée (R.1110-3, L.1110-4 IV, DMP)")
async def post_information(person_id: str, request: Request, response: Response,
                           tenant: Tenant = Depends(get_tenant),
                           registry: ConsentRegistry = Depends(_registry)) -> dict:
    data = _validated(InformationInput, await _body(request))
    try:
        record = await run_in_threadpool(registry.record_information, tenant, person_id,
                                         data.to_record(), actor=_actor(tenant))
    except ValueError as exc:
        raise ApiProblem("invalid-request", str(exc)) from None
    response.headers["Location"] = f"/persons/{person_id}/information"
    return _information_dict(record)


@router.get("/persons/{person_id}/information", summary="Informations délivrées à la personne")
def list_information(person_id: str, tenant: Tenant = Depends(get_tenant),
                     registry: ConsentRegistry = Depends(_registry)) -> dict:
    return {"items": [_information_dict(r) for r in registry.list_information(tenant, person_id)]}


# ------------------------------------------------------------------ decisions


@router.post("/decisions", openapi_extra=json_body(DecisionInput), summary="Demander une décision (consentement, secret partagé) — tracée")
async def post_decision(request: Request, tenant: Tenant = Depends(get_tenant),
                        registry: ConsentRegistry = Depends(_registry)) -> dict:
    data = _validated(DecisionInput, await _body(request))
    decision = await run_in_threadpool(registry.decide, data.to_request(tenant.id, _actor(tenant)))
    log.info("decision", tenant=tenant.slug, effect=decision.effect.value, system=data.system.value,
             rules=list(decision.rule_ids))
    return decision.as_dict()
