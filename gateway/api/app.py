"""The FastAPI application: routers per resource, no business logic in routes."""

from __future__ import annotations

from fastapi import FastAPI

from gateway import __version__
from gateway.api.middleware import AccessLog, BodyLimit
from gateway.api.problems import HANDLERS
from gateway.api.routers import meta, nomenclature, plans
from gateway.settings import Settings, settings as default_settings
from gateway.storage import Store

DESCRIPTION = """Passerelle d'interopérabilité des plateformes de services coordonnés.

Authentification : `Authorization: Bearer <clé d'API>` (une clé par plateforme, créée avec
`relais tenant key`). Erreurs : RFC 9457 (`application/problem+json`), avec la liste des
problèmes (`errors[]` : emplacement JSON, règle, message). Écritures concurrentes : `If-Match`
avec l'ETag de la version remplacée."""


def create_app(store: Store | None = None, config: Settings | None = None) -> FastAPI:
    config = config or default_settings()
    if store is None:
        store = Store(config.database_url)
        store.migrate()
    app = FastAPI(
        title="Relais",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.store = store
    app.state.settings = config
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    app.include_router(meta.router)
    app.include_router(nomenclature.router)
    app.include_router(plans.router)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(AccessLog)
    return app
