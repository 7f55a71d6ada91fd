"""The exchanges routes are matched first (gateway/api/app.py `_match_first`) without changing
what any request reaches: every route of the app as declared (and paths near them, wrong
methods, mounts, unknown paths) resolves to the same route and endpoint, with the same status
and body, in the app with and without the reordering; the OpenAPI document is the same."""

from __future__ import annotations

import asyncio
import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from gateway.api import app as app_module
from gateway.api.app import create_app
from gateway.api.routers import exchanges
from gateway.settings import Settings

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _declared(app):
    """(methods, path template) of every route, included routers opened, in declaration order."""
    out = []

    def walk(routes):
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif isinstance(route, APIRoute):
                out.append((tuple(sorted(route.methods)), route.path))
            elif isinstance(route, Mount):
                out.append((("GET",), route.path + "/"))
                out.append((("GET",), route.path + "/anything/else"))
            else:
                out.append((tuple(sorted(getattr(route, "methods", None) or ("GET",))), route.path))
    walk(app.router.routes)
    return out


def _probes(app):
    probes = set()
    for methods, template in _declared(app):
        for value in ("x1", "2026"):
            path = re.sub(r"\{[^}]+\}", value, template)
            for method in METHODS:  # the route's own methods and the others (405 vs a later route)
                probes.add((method, path))
                probes.add((method, path.rstrip("/") + "/"))  # redirect_slashes
                probes.add((method, path + "/extra"))
    probes |= {("GET", "/"), ("GET", "/nope"), ("POST", "/exchanges/x1/$replay/more"), ("GET", "/exchangesx")}
    return sorted(probes)


_EXPIRES = re.compile(rb"expires=[^;]*;")


def _call(app, method, path):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), (b"content-length", b"0")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    route = scope.get("route")
    endpoint = scope.get("endpoint")
    start = next(m for m in sent if m["type"] == "http.response.start")
    # a cookie's deletion expires "now", to the second: two calls a second apart differ there alone
    headers = [(k, _EXPIRES.sub(b"expires=<now>;", v) if k == b"set-cookie" else v)
               for k, v in start.get("headers", []) if k != b"x-request-id"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (getattr(route, "path", None), type(route).__name__, getattr(endpoint, "__qualname__", type(endpoint).__qualname__),
            start["status"], headers, body)


@pytest.fixture
def apps(store, monkeypatch):
    new = create_app(store, Settings())
    monkeypatch.setattr(app_module, "_match_first", lambda app, router: None)
    old = create_app(store, Settings())
    return old, new


def test_every_route_reaches_the_same_endpoint(apps):
    old, new = apps
    assert getattr(new.router.routes[0], "original_router", None) is exchanges.router
    assert getattr(old.router.routes[0], "original_router", None) is not exchanges.router
    probes = _probes(old)
    assert len(probes) > 300
    reached = set()
    for method, path in probes:
        before, after = _call(old, method, path), _call(new, method, path)
        assert after == before, (method, path)
        reached.add(before[0])
    # The probes reach the exchanges routes and the others.
    assert {"/exchanges", "/exchanges/{exchange_id}", "/exchanges/{exchange_id}/$replay", "/persons/{person_id}/activity"} <= reached


def test_the_openapi_document_is_unchanged(apps):
    old, new = apps
    import json
    assert json.dumps(new.openapi()).encode() == json.dumps(old.openapi()).encode()
