"""Exchanges: ask for one (consent → map → validate → queue), follow it, replay dead letters."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from connectors.base import Recipient
from gateway.api.deps import get_store, get_tenant
from gateway.api.pagination import LIMIT, page
from gateway.api.problems import ApiProblem
from gateway.api.schemas import json_body
from gateway.consent.vocab import System
from gateway.delivery import outbox, pipeline
from gateway.delivery.model import ExchangeRequest
from gateway.delivery.payloads import UnknownPayloadKind
from gateway.model import Problem, json_path
from gateway.plans import loads_object
from gateway.storage import Store, Tenant

router = APIRouter(tags=["échanges"])


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern="^(professional|organisation|person|system)$")
    identifier: str = Field(min_length=1, max_length=200)
    display: str = Field(default="", max_length=200)
    profession: str | None = Field(default=None, pattern="^(health|social|other)$")


class ExchangeIn(BaseModel):
    """Body of POST /exchanges."""

    model_config = ConfigDict(extra="forbid")
    person: str = Field(pattern=r"^[A-Za-z0-9._\-]{1,64}$", description="identifiant local de la personne")
    # Only the systems the consent decision knows (any other one failed there with a 500).
    system: str = Field(pattern=f"^({'|'.join(System)})$", description="eparcours, viatrajectoire, dmp, mss…")
    recipient: RecipientIn
    purpose: str = Field(pattern="^[A-Z]{2,12}$", description="finalité (ActReason : TREAT, COC…)")
    payload_kind: str = Field(pattern="^[a-z][a-z0-9-]{1,39}$", description="tddui-bundle, sdo-status…")
    data_categories: list[str] = Field(default_factory=list, max_length=20)
    plan_version: int | None = Field(default=None, ge=1)
    labels: list[str] = Field(default_factory=list, max_length=5,
                              description="étiquettes de sécurité, ex. minor-secret (secret du mineur, L.1111-5)")


@router.post("/exchanges", status_code=201, summary="Demander un échange (décision de consentement, mise en forme, file d'envoi)",
             openapi_extra=json_body(ExchangeIn), response_model=dict)
async def create_exchange(request: Request) -> Response:
    # One hand-off to a worker thread for the key check, the body's checks and the submission
    # (sync dependencies took one each: three per request). The body is read first; a
    # too-large body is reported after the key check, as when the key was a dependency.
    try:
        raw, too_large = await request.body(), None
    except ApiProblem as exc:
        raw, too_large = b"", exc
    return await run_in_threadpool(_create_exchange, request, raw, too_large)


def _create_exchange(request: Request, raw: bytes, too_large: ApiProblem | None) -> Response:
    tenant = get_tenant(request)
    store = get_store(request)
    if too_large is not None:
        raise too_large
    data = loads_object(raw, max_bytes=64 * 1024)
    try:
        body = ExchangeIn.model_validate(data)
    except ValidationError as exc:
        raise ApiProblem("invalid-request", "demande d'échange invalide", [
            Problem(location=json_path(e["loc"]), rule=str(e["type"]).replace("_", "-"),
                    message=f"valeur invalide : {e['msg']}", message_en=e["msg"], source="relais-api")
            for e in exc.errors(include_url=False)]) from None
    exchange_request = ExchangeRequest(
        person_local_id=body.person, system=body.system, recipient=Recipient(**body.recipient.model_dump()),
        purpose=body.purpose, payload_kind=body.payload_kind, data_categories=tuple(body.data_categories),
        plan_version=body.plan_version, labels=tuple(body.labels))
    try:
        submitted = pipeline.submit(store, tenant, exchange_request, actor=f"key:{tenant.slug}",
                                    decider=request.app.state.decider)
    except UnknownPayloadKind as exc:  # (any other error is a bug: a 500, not the caller's fault)
        raise ApiProblem("invalid-request", str(exc.args[0])) from None
    # The summary is JSON-ready (strings, numbers, lists): written by orjson as it is, without
    # FastAPI's response validation and jsonable_encoder walk (~0.35 ms a request).
    return Response(orjson.dumps(submitted.exchange.summary()), status_code=201 if submitted.created else 200,
                    media_type="application/json",
                    headers={"Location": f"/exchanges/{submitted.exchange.id}"})


@router.get("/exchanges", summary="Échanges de la plateforme (filtres, paginé)")
def list_exchanges(
    request: Request,
    response: Response,
    status: str | None = Query(None, pattern="^[a-z]+$", description="queued, sent, dead…"),
    system: str | None = Query(None, pattern="^[a-z][a-z0-9-]{1,31}$"),
    person: str | None = Query(None, pattern=r"^[A-Za-z0-9._\-]{1,64}$"),
    limit: int = LIMIT,
    before: int | None = Query(None, ge=1, description="curseur (rang) de la page suivante"),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    with store.reading() as conn:
        rows = outbox.listing(conn, tenant.id, status=status, system=system, person=person,
                              limit=limit, before=before)
    items = [dict(e.summary(), history=None) for e in rows]
    return page(request, response, items, limit, "before", rows[-1].seq if rows else None)


@router.get("/exchanges/{exchange_id}", summary="Un échange et son historique")
def get_exchange(exchange_id: str, tenant: Tenant = Depends(get_tenant),
                 store: Store = Depends(get_store)) -> dict:
    with store.reading() as conn:
        exchange = outbox.get(conn, tenant.id, exchange_id)
    if exchange is None:
        raise ApiProblem("not-found", f"échange {exchange_id[:40]!r} introuvable")
    return exchange.summary()


@router.post("/exchanges/{exchange_id}/$replay", status_code=201,
             summary="Rejouer une lettre morte (nouvel échange, lignée conservée)")
def replay(exchange_id: str, tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    return pipeline.replay(store, tenant, exchange_id, actor=f"key:{tenant.slug}").summary()


