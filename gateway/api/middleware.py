"""ASGI middleware: request size limit and one access-log line per request."""

from __future__ import annotations

import time
import uuid

from gateway.api.problems import ApiProblem, problem_response
from gateway.logs import get_logger

log = get_logger("relais.access")


class BodyLimit:
    """Refuse bodies over `max_bytes` (413), by Content-Length up front or while streaming."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = ApiProblem("too-large", f"corps de requête limité à {self.max_bytes} octets")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                declared_size = -1
            if declared_size > self.max_bytes:
                return await problem_response(too_large)(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large
            return message

        return await self.app(scope, limited_receive, send)


class AccessLog:
    """Method, route template (never the raw path: it holds person ids), status, duration."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            log.info(
                "request",
                request_id=request_id,
                method=scope.get("method"),
                route=getattr(route, "path", "unmatched"),
                status=status,
                tenant=scope.get("state", {}).get("tenant_slug"),
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
            )
