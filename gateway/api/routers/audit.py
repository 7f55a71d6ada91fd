"""The audit log as a transparency log: newest checkpoint, verifier keys, inclusion and
consistency proofs (RFC 9162 §2.1.3-4), and a tenant's own entries.

Proofs are served for sizes up to the newest signed checkpoint. A tenant only gets the entries
(and inclusion proofs) of its own platform; hashes and checkpoints reveal no entry content.
"""

from __future__ import annotations

import base64

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response

from gateway.api.deps import get_store, get_tenant
from gateway.api.problems import ApiProblem
from gateway.audit import checkpoint, merkle, tree
from gateway.audit.keys import all_keys
from gateway.audit.tables import audit_checkpoints, audit_entries
from gateway.storage.store import Store, Tenant

router = APIRouter(prefix="/audit", tags=["journal d'audit"])
NOTE = "text/plain; charset=utf-8"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _checkpoint_at(conn, size: int) -> str | None:
    note = conn.execute(sa.select(audit_checkpoints.c.note).where(audit_checkpoints.c.size == size)).scalar()
    return None if note is None else checkpoint.with_cosignatures(conn, size, note)


@router.get("/checkpoint", summary="Dernier point de contrôle signé (C2SP tlog-checkpoint)",
            response_class=PlainTextResponse)
def latest_checkpoint(store: Store = Depends(get_store), tenant: Tenant = Depends(get_tenant)) -> Response:
    with store.engine.connect() as conn:
        found = checkpoint.latest(conn)
    if found is None:
        raise ApiProblem("not-found", "aucun point de contrôle signé pour l'instant")
    return Response(found[1], media_type=NOTE, headers={"Cache-Control": "no-cache"})


@router.get("/keys", summary="Clés de vérification du journal (vkeys C2SP)", response_class=PlainTextResponse)
def verifier_keys(store: Store = Depends(get_store), tenant: Tenant = Depends(get_tenant)) -> Response:
    with store.engine.connect() as conn:
        keys = all_keys(conn)
    return Response("".join(k.vkey + "\n" for k in keys), media_type=NOTE)


def _signed(conn) -> int:
    size, _ = tree.signed_size(conn)
    return size


def _own_entry(conn, tenant: Tenant, index: int) -> bytes:
    body = conn.execute(
        sa.select(audit_entries.c.body).where(audit_entries.c.seq == index, audit_entries.c.tenant_id == tenant.id)
    ).scalar()
    if body is None:
        raise ApiProblem("not-found", f"aucune entrée {index} pour cette plateforme")
    return bytes(body)


@router.get("/entries/{index}", summary="Une entrée du journal (octets exacts de la feuille)")
def entry(index: int, store: Store = Depends(get_store), tenant: Tenant = Depends(get_tenant)) -> Response:
    with store.engine.connect() as conn:
        body = _own_entry(conn, tenant, index)
    return Response(body, media_type="application/json")


@router.get("/proof/inclusion", summary="Preuve d'inclusion d'une entrée (RFC 9162 §2.1.3)")
def inclusion(
    index: int = Query(ge=0, description="numéro de l'entrée"),
    size: int | None = Query(default=None, ge=1, description="taille de l'arbre (défaut : dernier point de contrôle)"),
    store: Store = Depends(get_store),
    tenant: Tenant = Depends(get_tenant),
) -> dict:
    with store.engine.connect() as conn:
        signed = _signed(conn)
        size = signed if size is None else size
        if not index < size <= signed:
            raise ApiProblem("invalid-request", f"il faut index < taille ≤ {signed} (dernier point de contrôle signé)")
        body = _own_entry(conn, tenant, index)
        leaf, proof = tree.inclusion_proof(conn, index, size, signed)
        note = _checkpoint_at(conn, size)
    if leaf != merkle.leaf_hash(body):  # stored entry and tree disagree: never serve it
        raise ApiProblem("internal-error", "entrée et arbre du journal en désaccord")
    return {"index": index, "size": size, "leaf_hash": _b64(leaf), "hashes": [_b64(h) for h in proof],
            "entry": body.decode("utf-8"), "checkpoint": note}


@router.get("/proof/consistency", summary="Preuve de cohérence entre deux tailles (RFC 9162 §2.1.4)")
def consistency(
    old: int = Query(alias="from", ge=1, description="taille la plus ancienne"),
    new: int | None = Query(default=None, alias="to", ge=1, description="taille récente (défaut : dernier point de contrôle)"),
    store: Store = Depends(get_store),
    tenant: Tenant = Depends(get_tenant),
) -> dict:
    with store.engine.connect() as conn:
        signed = _signed(conn)
        new = signed if new is None else new
        if not old <= new <= signed:
            raise ApiProblem("invalid-request", f"il faut from ≤ to ≤ {signed} (dernier point de contrôle signé)")
        proof = tree.consistency_proof(conn, old, new, signed)
    return {"from": old, "to": new, "hashes": [_b64(h) for h in proof]}
