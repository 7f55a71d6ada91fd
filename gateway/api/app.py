"""The FastAPI application: routers per resource, no business logic in routes."""

from __future__ import annotations

import contextlib

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

from gateway import __version__
from gateway.api.middleware import AccessLog, BodyLimit
from gateway.api.problems import HANDLERS, ApiProblem, EscapedJSONResponse
from gateway.api.routers import meta, nomenclature, plans
from gateway.api.routers import consents
from gateway.api.routers import fhir
from gateway.api.routers import audit
from gateway.api.routers import exchanges
from gateway.api.routers import activity
from gateway.api.routers import inbound
from gateway.console import console_app
from gateway.delivery import hooks
from gateway.delivery.consent_step import consent_decider
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
        docs_url=None,  # served below from local assets: no CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_lifespan,
        default_response_class=EscapedJSONResponse,  # messages may quote a caller's lone surrogate
    )
    app.state.store = store
    app.state.settings = config
    app.state.decider = consent_decider
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    _local_docs(app)
    app.include_router(meta.router)
    app.include_router(nomenclature.router)
    app.include_router(plans.router)
    app.include_router(consents.router)
    app.include_router(fhir.router)
    app.include_router(audit.router)
    app.include_router(exchanges.router)
    app.include_router(activity.router)
    app.include_router(inbound.router)
    console = console_app(store, config)
    # BodyLimit refuses a body streamed without Content-Length while a console form is read:
    # the console answers that 413 as the API does (it was an unhandled error there, a 500).
    console.add_exception_handler(ApiProblem, HANDLERS[ApiProblem])
    app.mount("/console", console)  # DPO console (server-rendered, French)
    _match_first(app, exchanges.router)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(AccessLog)
    return app


def _match_first(app: FastAPI, router) -> None:
    """Put `router`'s routes first in matching, leaving the OpenAPI document's order alone.

    Routes are tried in order, each included router through all of its own routes: POST
    /exchanges (the busy route) went through the docs routes and six routers first. A second,
    undocumented inclusion is moved to the front (no other route matches these paths:
    tests/test_api_route_order.py); the first stays in place for the document."""
    routes = app.router.routes
    count = len(routes)
    app.include_router(router, include_in_schema=False)
    routes[:] = routes[count:] + routes[:count]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """While the app runs, consent changes cancel the pending exchanges they forbid."""
    unsubscribe = hooks.subscribe(app.state.store)
    try:
        yield
    finally:
        unsubscribe()


def _local_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the `swagger-ui-bundle` package, so it works offline."""
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="Relais — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="data:,",
        )
