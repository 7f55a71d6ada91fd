"""A strict FHIR R4 REST server for the sandbox: what a real regional or national server checks,
it checks — media type, OAuth2 bearer token, extra headers a guide requires, strict JSON, base
R4 structure (fhir.resources R4B), the guide's profiles (a validator given by the personality),
references inside a transaction — and it rejects with an OperationOutcome. It can be told to
fail (status codes, delays, resets, malformed bodies) for the reliability tests.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections import deque
from urllib.parse import parse_qs
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from connectors.sandbox.fhir_json import loads_strict_object
from connectors.sandbox.fhir_store import FhirError, ResourceStore, Stored, identifier_matches, references

FHIR_JSON = "application/fhir+json"


@dataclass
class Personality:
    """What one sandboxed system accepts."""

    name: str
    resource_types: frozenset[str]
    transaction: bool = True
    transaction_error_status: int | None = None  # CDS answers 500 on error (specs §11.13)
    validate: Callable[[dict], list[dict]] | None = None  # resource → OperationOutcome issues
    # Whole transaction → issues, or None when it judged nothing. A list means a gate judged the
    # Bundle, its entries' base structure included (the TDDUI and CDS gates do): the entries'
    # own structure checks, which could then find nothing, are left out (~0.6 ms a TDDUI Bundle).
    validate_bundle: Callable[[dict], list[dict] | None] | None = None
    required_headers: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=lambda: {"relais": "sandbox-secret"})
    search_params: frozenset[str] = frozenset({"identifier", "_lastUpdated", "_count", "_elements",
                                               "patient", "subject", "type", "status"})
    # (store, request headers, resource) → may this caller see it? Searches leave out what it
    # may not see, reads answer 403 (a server filtering by token, as the SDO guide's does).
    visible: Callable[[ResourceStore, Mapping[str, str], dict], bool] | None = None


@dataclass
class Fault:
    status: int | None = None  # answer this HTTP status with an OperationOutcome
    delay: float = 0.0  # seconds before answering (past the client timeout = a stall)
    reset: bool = False  # drop the connection mid-response
    malformed: bool = False  # 200 with a body that is not JSON


class Faults:
    """A queue of faults for the next requests, or one fault for a period."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._until = 0.0
        self._standing: Fault | None = None

    def add(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queue.extend(fault for _ in range(times))

    def down_for(self, seconds: float, fault: Fault | None = None) -> None:
        with self._lock:
            self._standing = fault or Fault(status=503)
            self._until = time.monotonic() + seconds

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._standing = None

    def next(self) -> Fault | None:
        with self._lock:
            if self._standing and time.monotonic() < self._until:
                return self._standing
            return self._queue.popleft() if self._queue else None


def transaction_response(response: dict) -> Response:
    """The transaction-response as JSONResponse writes it (json.dumps, ensure_ascii=False, no
    spaces), by orjson: the same bytes and headers for the store's answer, whose values are all
    strings (tests/test_sandbox_response_bytes.py)."""
    return Response(orjson.dumps(response), media_type=FHIR_JSON)


def outcome_response(error: FhirError, status: int | None = None) -> JSONResponse:
    return JSONResponse(error.outcome(), status_code=status or error.status, media_type=FHIR_JSON)


def _structure_issues(resource: dict, where: str) -> list[dict]:
    """Base FHIR R4 structure: the compiled check the gate uses (structure.py), which says what
    the fhir.resources R4B models say (tests/test_fhir_structure_equivalence.py) — stricter where
    they are wrong for R4 — at a fraction of their cost (they took ~45 % of a TDDUI transaction
    here, bench_delivery.py). Without the shipped data it validates with the models themselves."""
    from gateway.conformance.fhir.structure import check_structure

    return [{"severity": "error", "code": "structure", "expression": [p.location], "diagnostics": p.message}
            for p in check_structure(resource, where)[:20]]


class FaultInjection:
    """Counts the FHIR requests and plays the faults the tests queued (`FhirSandbox.faults`). A
    plain ASGI middleware: Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`) cost
    ~0.4 ms a request."""

    def __init__(self, app, sandbox: "FhirSandbox"):
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(("/_sandbox", "/oauth")):
            return await self.app(scope, receive, send)
        self.sandbox.requests += 1
        fault = self.sandbox.faults.next()
        response = None
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                response = StreamingResponse(_broken_body(), media_type=FHIR_JSON)
            elif fault.malformed:
                response = Response(b'{"resourceType": "Bundle", "entry": [', media_type=FHIR_JSON)
            elif fault.status:
                response = outcome_response(FhirError(fault.status, "transient", f"panne simulée ({fault.status})"))
        if response is not None:
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


class FhirSandbox:
    """`FhirSandbox(personality).app` is the ASGI app; `.store` and `.faults` are for tests."""

    def __init__(self, personality: Personality, store: ResourceStore | None = None):
        self.personality = personality
        self.store = store or ResourceStore()
        self.faults = Faults()
        self.tokens: set[str] = set()
        self.requests = 0
        self.app = self._build()

    # ---------------------------------------------------------------------- checks

    def _authorise(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise FhirError(401, "login", "jeton OAuth2 absent ou invalide (Authorization: Bearer)")
        for name, expected in self.personality.required_headers.items():
            if request.headers.get(name) != expected:
                raise FhirError(403, "forbidden", f"en-tête {name} absent ou incorrect")

    def may_see(self, request: Request, resource: dict) -> bool:
        rule = self.personality.visible
        return rule is None or rule(self.store, request.headers, resource)

    def check_resource(self, resource: dict, index: int | None = None, *, structure: bool = True) -> None:
        where = f"Bundle.entry[{index}].resource" if index is not None else resource.get("resourceType", "?")
        if resource.get("resourceType") not in self.personality.resource_types:
            raise FhirError(400, "not-supported",
                            f"{self.personality.name} n'accepte pas {resource.get('resourceType')!r}", [where])
        issues = _structure_issues(resource, where) if structure else []
        if not issues and self.personality.validate is not None:
            issues = [dict(i, expression=[f"{where}.{e}" if index is not None else e
                                          for e in i.get("expression", [])])
                      for i in self.personality.validate(resource)]
        errors = [i for i in issues if i.get("severity") in ("error", "fatal")]
        if errors:
            raise FhirError(422, "processing", errors[0].get("diagnostics", "profil non respecté"),
                            issues=errors)

    def check_gated_entry(self, resource: dict, index: int) -> None:
        """`check_resource` for an entry of a Bundle a gate accepted: its structure was judged."""
        self.check_resource(resource, index, structure=False)

    async def _body(self, request: Request) -> dict:
        media = request.headers.get("content-type", "").split(";")[0].strip()
        if media != FHIR_JSON:
            raise FhirError(415, "not-supported", f"type de contenu {media!r} refusé : {FHIR_JSON} attendu")
        from gateway.plans.jsoninput import JsonInputError

        try:
            return loads_strict_object(await request.body())
        except JsonInputError as exc:
            raise FhirError(400, "structure", exc.problem.message) from None

    # ------------------------------------------------------------------------- app

    def _build(self) -> FastAPI:
        app = FastAPI(title=f"Sandbox {self.personality.name}", docs_url=None, redoc_url=None,
                      openapi_url=None)
        sandbox = self

        app.add_middleware(FaultInjection, sandbox=sandbox)

        @app.exception_handler(FhirError)
        async def fhir_error(_request: Request, exc: FhirError):
            return outcome_response(exc)

        @app.post("/oauth/token")
        async def token(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
            client_id, secret = form.get("client_id"), form.get("client_secret")
            basic = request.headers.get("authorization", "")
            if basic.lower().startswith("basic "):
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            if sandbox.personality.clients.get(client_id or "") != secret:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            issued = secrets.token_urlsafe(24)
            sandbox.tokens.add(issued)
            return {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}

        @app.get("/metadata")
        async def metadata():
            return JSONResponse({
                "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                "fhirVersion": "4.0.1", "format": [FHIR_JSON], "date": "2026-11-26",
                "rest": [{"mode": "server",
                          "resource": [{"type": t, "interaction": [{"code": c} for c in
                                                                   ("create", "read", "update", "search-type")],
                                        "conditionalCreate": True}
                                       for t in sorted(sandbox.personality.resource_types)],
                          "interaction": [{"code": "transaction"}] if sandbox.personality.transaction else []}],
            }, media_type=FHIR_JSON)

        @app.post("/")
        async def transaction(request: Request):
            sandbox._authorise(request)
            if not sandbox.personality.transaction:
                raise FhirError(405, "not-supported", "pas d'interaction transaction sur ce serveur")
            bundle = await sandbox._body(request)
            try:
                if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
                    raise FhirError(400, "invalid", "un Bundle de type transaction est attendu")
                _check_references(bundle)
                issues = None
                if sandbox.personality.validate_bundle is not None:
                    issues = sandbox.personality.validate_bundle(bundle)
                    errors = [i for i in issues or () if i.get("severity") in ("error", "fatal")]
                    if errors:
                        raise FhirError(422, "processing", errors[0].get("diagnostics", "profil non respecté"),
                                        issues=errors)
                check = sandbox.check_resource if issues is None else sandbox.check_gated_entry
                response = sandbox.store.transaction(bundle, check, owned=True)
            except FhirError as exc:
                return outcome_response(exc, sandbox.personality.transaction_error_status)
            return transaction_response(response)

        @app.post("/{rtype}")
        async def create(rtype: str, request: Request):
            sandbox._authorise(request)
            resource = await sandbox._body(request)
            if resource.get("resourceType") != rtype:
                raise FhirError(400, "invalid", f"le corps est un {resource.get('resourceType')!r}, pas un {rtype}")
            sandbox.check_resource(resource)
            stored, created = sandbox.store.create(resource, request.headers.get("if-none-exist"))
            return _resource_response(stored, 201 if created else 200)

        @app.put("/{rtype}/{rid}")
        async def update(rtype: str, rid: str, request: Request):
            sandbox._authorise(request)
            resource = await sandbox._body(request)
            if resource.get("resourceType") != rtype:
                raise FhirError(400, "invalid", f"le corps est un {resource.get('resourceType')!r}, pas un {rtype}")
            sandbox.check_resource(resource)
            stored = sandbox.store.update(rtype, rid, resource)
            return _resource_response(stored, 201 if stored.version == 1 else 200)

        @app.get("/{rtype}/{rid}")
        async def read(rtype: str, rid: str, request: Request):
            sandbox._authorise(request)
            stored = sandbox.store.read(rtype, rid)
            if not sandbox.may_see(request, stored.resource):
                raise FhirError(403, "forbidden", f"accès à {rtype}/{rid} non autorisé pour cette structure")
            return _resource_response(stored, 200)

        @app.get("/{rtype}")
        async def search(rtype: str, request: Request):
            sandbox._authorise(request)
            params = dict(request.query_params)
            unknown = set(params) - sandbox.personality.search_params
            if unknown:
                raise FhirError(400, "not-supported", f"paramètre(s) de recherche inconnu(s) : {', '.join(sorted(unknown))}")
            found = sandbox.store.search(rtype, lambda s: _matches(s, params) and sandbox.may_see(request, s.resource))
            found.sort(key=lambda s: s.last_updated)
            elements = params.get("_elements")
            entries = [{"fullUrl": f"{rtype}/{s.resource['id']}",
                        "resource": _only(s.resource, elements), "search": {"mode": "match"}} for s in found]
            return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                                 "entry": entries}, media_type=FHIR_JSON)

        @app.get("/_sandbox/stats")
        async def stats():
            return {"requests": sandbox.requests, "stored": sandbox.store.count()}

        @app.post("/_sandbox/faults")
        async def set_faults(request: Request):
            body = await request.json()
            fault = Fault(status=body.get("status"), delay=body.get("delay", 0.0),
                          reset=body.get("reset", False), malformed=body.get("malformed", False))
            if body.get("down_for"):
                sandbox.faults.down_for(float(body["down_for"]), fault)
            else:
                sandbox.faults.add(fault, int(body.get("times", 1)))
            return {"ok": True}

        return app


async def _broken_body():
    """Headers, a first chunk, then the connection drops: the client sees a reset mid-body."""
    yield b'{"resourceType": "Bundle",'
    raise ConnectionResetError("sandbox: connection reset on purpose")


def _resource_response(stored: Stored, status: int) -> JSONResponse:
    rtype, rid = stored.resource["resourceType"], stored.resource["id"]
    return JSONResponse(stored.resource, status_code=status, media_type=FHIR_JSON, headers={
        "Location": f"{rtype}/{rid}/_history/{stored.version}", "ETag": f'W/"{stored.version}"'})


def _matches(stored: Stored, params: dict[str, str]) -> bool:
    resource = stored.resource
    for name, value in params.items():
        if name in ("_count", "_elements"):
            continue
        if name == "identifier" and not identifier_matches(resource, value):
            return False
        if name == "_lastUpdated":
            op, stamp = value[:2], value[2:]
            if op == "gt" and not stored.last_updated > stamp:
                return False
            if op == "ge" and not stored.last_updated >= stamp:
                return False
        if name in ("patient", "subject"):
            if (resource.get("subject") or resource.get("patient") or {}).get("reference") != value:
                return False
        if name == "status" and resource.get("status") != value:
            return False
        if name == "type":
            codes = [c.get("code") for c in (resource.get("type") or {}).get("coding", [])]
            if value.split("|")[-1] not in codes:
                return False
    return True


def _only(resource: dict, elements: str | None) -> dict:
    if not elements:
        return resource
    keep = {"resourceType", "id", "meta", *elements.split(",")}
    return {k: v for k, v in resource.items() if k in keep}


def _check_references(bundle: dict) -> None:
    """Every reference inside a transaction resolves to an entry of the Bundle (the TDDUI flow
    carries the whole graph) — or is a logical reference by identifier/display."""
    try:
        if _references_resolve(bundle):
            return
    except Exception:  # whatever it was, the walk below meets it again and raises it
        pass
    _first_unresolved(bundle)


def _references_resolve(bundle: dict) -> bool:
    """True when `_first_unresolved` would find nothing: the same walk without building a path
    for every element (~⅓ less); on False that one builds them, for its message."""
    entries = bundle.get("entry", [])
    full_urls = {e.get("fullUrl") for e in entries if e.get("fullUrl")}
    return all(_resolved(entry.get("resource", {}), full_urls) for entry in entries)


def _resolved(node, full_urls: set) -> bool:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                if v.startswith("urn:uuid:") and v not in full_urls:
                    return False
            elif not _resolved(v, full_urls):
                return False
    elif isinstance(node, list):
        for v in node:
            if not _resolved(v, full_urls):
                return False
    return True


def _first_unresolved(bundle: dict) -> None:
    full_urls = {e.get("fullUrl") for e in bundle.get("entry", []) if e.get("fullUrl")}
    for i, entry in enumerate(bundle.get("entry", [])):
        for path, ref in references(entry.get("resource", {})):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                raise FhirError(400, "invalid", f"référence non résolue dans le Bundle : {ref}",
                                [f"Bundle.entry[{i}].resource.{path}"])
