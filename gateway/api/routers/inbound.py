"""What the national and regional systems sent back, for the coordinator's review."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ValidationError, field_validator

from gateway.api.deps import get_store, get_tenant
from gateway.api.pagination import LIMIT, page
from gateway.api.problems import ApiProblem
from gateway.inbound import review
from gateway.model import Problem, json_path
from gateway.plans import loads_object
from gateway.storage import Store, Tenant

router = APIRouter(tags=["réceptions"])


class RejectIn(BaseModel):
    """Body of $reject: text only (a list was stored as its repr, a lone surrogate failed the write)."""

    reason: str | None = None

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("lone surrogate (\\ud800-\\udfff): not a Unicode character") from None
        return value


@router.get("/inbound", summary="Éléments reçus (décisions, notifications, documents), paginé")
def list_inbound(
    request: Request,
    response: Response,
    status: str | None = Query(None, pattern="^(recorded|proposed|applied|rejected|unmatched|quarantined)$"),
    person: str | None = Query(None, pattern=r"^[A-Za-z0-9._\-]{1,64}$"),
    system: str | None = Query(None, pattern="^[a-z][a-z0-9-]{1,31}$"),
    limit: int = LIMIT,
    before: int | None = Query(None, ge=1),
    tenant: Tenant = Depends(get_tenant),
    store: Store = Depends(get_store),
) -> dict:
    items = review.listing(store, tenant, status=status, person=person, system=system, limit=limit, before=before)
    return page(request, response, [i.as_dict() for i in items], limit, "before", items[-1].seq if items else None)


@router.get("/inbound/{item_id}", summary="Un élément reçu et sa proposition")
def get_inbound(item_id: str, tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    return review.get(store, tenant, item_id).as_dict()


@router.post(
    "/inbound/{item_id}/$apply",
    summary="Appliquer la proposition (nouvelle version du projet)",
    description="Une seule transaction : la nouvelle version, le statut « applied » de l'élément et "
                "l'entrée d'audit, ensemble ou rien. Un élément s'applique une fois : 409 s'il n'a plus "
                "de proposition en attente (déjà appliqué ou rejeté, même par un autre coordinateur au "
                "même instant). Sans If-Match, la proposition s'applique à la version courante ; 412 si "
                "le projet change pendant l'application (ou si If-Match ne désigne pas la version courante).",
    responses={409: {"description": "Plus de proposition en attente, ou proposition inapplicable"},
               412: {"description": "If-Match périmé, ou projet modifié pendant l'application"}},
)
def apply(item_id: str,
          if_match: str | None = Header(None, description="ETag de la version sur laquelle appliquer (facultatif)"),
          tenant: Tenant = Depends(get_tenant), store: Store = Depends(get_store)) -> dict:
    version = review.apply(store, tenant, item_id, if_match=if_match, actor=f"key:{tenant.slug}")
    return {"id": item_id, "status": "applied", "version": version}


@router.post("/inbound/{item_id}/$reject", summary="Rejeter l'élément (motif obligatoire)",
             responses={409: {"description": "Élément déjà appliqué ou rejeté"}})
async def reject(item_id: str, request: Request, tenant: Tenant = Depends(get_tenant),
                 store: Store = Depends(get_store)) -> dict:
    data = loads_object(await request.body() or b"{}", max_bytes=16 * 1024)
    try:
        body = RejectIn.model_validate(data)
    except ValidationError as exc:
        raise ApiProblem("invalid-request", "motif de rejet invalide", [
            Problem(location=json_path(e["loc"]), rule=str(e["type"]).replace("_", "-"),
                    message=f"valeur invalide : {e['msg']}", message_en=e["msg"], source="relais-api")
            for e in exc.errors(include_url=False)]) from None
    reason = (body.reason or "").strip() or "rejeté sans motif précisé"
    review.reject(store, tenant, item_id, actor=f"key:{tenant.slug}", reason=reason)
    return {"id": item_id, "status": "rejected"}
