"""Dependencies: the store and the calling tenant (from its API key)."""

from __future__ import annotations

from fastapi import Request

from gateway.api.problems import ApiProblem
from gateway.storage.store import Store, Tenant


def get_store(request: Request) -> Store:
    return request.app.state.store


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key")


def get_tenant(request: Request) -> Tenant:
    """Every data route depends on this: the tenant comes from the key, never from the URL."""
    token = _token(request)
    tenant = request.app.state.store.authenticate(token) if token else None
    if tenant is None:
        raise ApiProblem(
            "unauthorized",
            "clé d'API absente, inconnue ou révoquée (en-tête Authorization: Bearer <clé>)",
            headers={"WWW-Authenticate": 'Bearer realm="relais"'},
        )
    request.scope.setdefault("state", {})["tenant_slug"] = tenant.slug
    return tenant
