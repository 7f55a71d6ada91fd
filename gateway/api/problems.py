"""RFC 9457 problem details: one renderer for every error the API returns."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.logs import get_logger
from gateway.model import Problem, json_path
from gateway.plans import JsonInputError
from gateway.storage.store import (
    Conflict,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)

MEDIA_TYPE = "application/problem+json"
log = get_logger("relais.api")

# slug -> (HTTP status, French title). The type URI is /problems/<slug>, documented there.
KINDS: dict[str, tuple[int, str]] = {
    "invalid-plan": (422, "Projet invalide"),
    "invalid-json": (400, "Document JSON refusé"),
    "invalid-request": (400, "Requête invalide"),
    "person-mismatch": (422, "Personne incohérente"),
    "unauthorized": (401, "Authentification requise"),
    "not-found": (404, "Ressource introuvable"),
    "method-not-allowed": (405, "Méthode non autorisée"),
    "conflict": (409, "Conflit"),
    "precondition-failed": (412, "Version périmée"),
    "too-large": (413, "Requête trop volumineuse"),
    "unsupported-media-type": (415, "Type de contenu non pris en charge"),
    "precondition-required": (428, "En-tête If-Match obligatoire"),
    "internal-error": (500, "Erreur interne"),
    "unavailable": (503, "Service momentanément indisponible"),
}


class EscapedJSONResponse(JSONResponse):
    """JSON that still answers when a string holds a lone surrogate: the caller's own escape
    (\\ud800…, valid JSON but no character), quoted back in a message, cannot be UTF-8. It is
    escaped again, the whole answer in ASCII JSON; any other answer is the same bytes."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class ApiProblem(Exception):
    def __init__(
        self,
        kind: str,
        detail: str,
        errors: Iterable[Problem] = (),
        headers: dict[str, str] | None = None,
        **extra: object,
    ):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: ApiProblem, request: Request | None = None) -> JSONResponse:
    status, title = KINDS[problem.kind]
    body: dict = {
        "type": f"/problems/{problem.kind}",
        "title": title,
        "status": status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    if problem.errors:
        body["errors"] = [p.model_dump(mode="json") for p in problem.errors]
    body.update(problem.extra)
    return EscapedJSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=problem.headers)


async def _api_problem(request: Request, exc: ApiProblem):
    return problem_response(exc, request)


async def _json_input(request: Request, exc: JsonInputError):
    kind = "too-large" if exc.problem.rule == "too-large" else "invalid-json"
    return problem_response(ApiProblem(kind, exc.problem.message, [exc.problem]), request)


async def _http(request: Request, exc: StarletteHTTPException):
    kind = {401: "unauthorized", 404: "not-found", 405: "method-not-allowed", 413: "too-large",
            415: "unsupported-media-type"}.get(exc.status_code, "invalid-request")
    detail = exc.detail if isinstance(exc.detail, str) else KINDS[kind][1]
    if exc.status_code == 404 and detail == "Not Found":
        detail = "aucune ressource à cette adresse"
    if exc.status_code == 405:
        detail = "méthode non autorisée sur cette ressource"
    return problem_response(ApiProblem(kind, detail, headers=getattr(exc, "headers", None)), request)


async def _request_validation(request: Request, exc: RequestValidationError):
    errors = [
        Problem(
            location=json_path(tuple(err.get("loc", ()))),
            rule=str(err.get("type", "invalid")).replace("_", "-"),
            message=f"paramètre invalide : {err.get('msg', '')}",
            message_en=str(err.get("msg", "")),
            source="relais-api",
        )
        for err in exc.errors()
    ]
    return problem_response(ApiProblem("invalid-request", "paramètres de requête invalides", errors), request)


async def _not_found(request: Request, exc: NotFound):
    return problem_response(ApiProblem("not-found", str(exc)), request)


async def _conflict(request: Request, exc: Conflict):
    return problem_response(ApiProblem("conflict", str(exc)), request)


async def _precondition_failed(request: Request, exc: PreconditionFailed):
    extra = {"current_etag": exc.current_etag} if exc.current_etag else {}
    return problem_response(ApiProblem("precondition-failed", str(exc), **extra), request)


async def _precondition_required(request: Request, exc: PreconditionRequired):
    return problem_response(
        ApiProblem("precondition-required", str(exc), current_etag=exc.current_etag), request
    )


async def _out_of_range(request: Request, exc: Exception):
    # A number or a date the storage or the calendar cannot hold (an id of 10^30, the year
    # 10000, a NUL character PostgreSQL refuses in text): the caller's value, not a fault here.
    # The transaction it happened in was rolled back; the value itself is never logged.
    log.info("value_out_of_range", error_type=type(exc).__name__, route=_route(request))
    return problem_response(ApiProblem(
        "invalid-request", "valeur hors des limites acceptées (nombre ou date trop grands, "
        "ou caractère NUL)"), request)


async def _statement(request: Request, exc: StatementError):
    # A value SQLAlchemy failed to convert while binding it (an aware date-time of year 1 moved
    # to UTC overflows): the caller's value, as when the overflow happens before the database.
    if isinstance(exc.orig, OverflowError):
        return await _out_of_range(request, exc.orig)
    return await _unexpected(request, exc)


async def _storage_unavailable(request: Request, exc: Exception):
    # The database is restarting or unreachable: nothing was done, the same request can be
    # sent again (POST /exchanges is idempotent). One log line, no traceback: during an
    # outage every request ends here.
    log.warning("storage_unavailable", error_type=type(exc).__name__, route=_route(request))
    return problem_response(ApiProblem(
        "unavailable", "base de données momentanément indisponible : renvoyer la requête",
        headers={"Retry-After": "1"}), request)


async def _unexpected(request: Request, exc: Exception):
    # The traceback goes to the log (no request body is ever logged); the client gets no detail.
    log.error("unhandled_error", error_type=type(exc).__name__, route=_route(request), exc_info=exc)
    return problem_response(ApiProblem("internal-error", "erreur interne ; elle a été journalisée"), request)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "?")


HANDLERS = {
    ApiProblem: _api_problem,
    JsonInputError: _json_input,
    StarletteHTTPException: _http,
    RequestValidationError: _request_validation,
    NotFound: _not_found,
    Conflict: _conflict,
    PreconditionFailed: _precondition_failed,
    PreconditionRequired: _precondition_required,
    OverflowError: _out_of_range,
    DataError: _out_of_range,
    StatementError: _statement,  # its subclasses DataError, OperationalError… keep their own
    OperationalError: _storage_unavailable,  # connection lost or refused, server shutting down
    InterfaceError: _storage_unavailable,  # connection already closed under the request
    Exception: _unexpected,
}
