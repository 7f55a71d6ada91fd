"""An HTTP session with a FHIR R4 server for the suites: OAuth2 client_credentials when a client
is given, TLS (server CA, client certificate), extra headers the guide requires, and the checks
every FHIR suite repeats (status, media type, resource type, OperationOutcome on errors)."""

from __future__ import annotations

import uuid

import httpx
import orjson

from gateway.conformance.runner.suites.base import Endpoint, SessionBase, Skip

FHIR_JSON = "application/fhir+json"


class FhirSession(SessionBase):
    def __init__(self, endpoint: Endpoint, source: str):
        self.endpoint = endpoint
        self.source = source
        self.base = endpoint.base_url.rstrip("/")
        verify = endpoint.ca_file or True
        cert = (endpoint.client_cert, endpoint.client_key) if endpoint.client_cert else None
        self.http = httpx.Client(timeout=endpoint.timeout, verify=verify, cert=cert)
        self._token: str | None = None
        self.state: dict = {}
        self.run_id = uuid.uuid4().hex[:12]  # makes this run's identifiers unique on the server

    def close(self) -> None:
        self.http.close()

    # --- auth -----------------------------------------------------------------------------------
    @property
    def has_client(self) -> bool:
        return bool(self.endpoint.client_id)

    def token(self) -> str | None:
        if not self.has_client:
            return None
        if self._token is None:
            url = self.endpoint.token_url or f"{self.base}/oauth/token"
            response = self.http.post(url, data={"grant_type": "client_credentials",
                                                 "client_id": self.endpoint.client_id,
                                                 "client_secret": self.endpoint.client_secret or ""})
            if response.status_code != 200 or "access_token" not in response.text:
                self.fail("oauth2-token", f"jeton OAuth2 refusé par {url} (HTTP {response.status_code})")
            self._token = response.json()["access_token"]
        return self._token

    def headers(self, *, auth: bool = True, extra: dict | None = None, content_type: str | None = FHIR_JSON) -> dict:
        out = {"Accept": FHIR_JSON, **self.endpoint.headers}
        if content_type:
            out["Content-Type"] = content_type
        token = self.token() if auth else None
        if token:
            out["Authorization"] = f"Bearer {token}"
        out.update(extra or {})
        return out

    # --- requests -------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, *, auth: bool = True, headers: dict | None = None,
                content_type: str | None = FHIR_JSON, drop: tuple[str, ...] = ()) -> httpx.Response:
        url = path if path.startswith("http") else f"{self.base}/{path.lstrip('/')}"
        data = body if isinstance(body, (bytes, type(None))) else orjson.dumps(body)
        h = self.headers(auth=auth, extra=headers, content_type=content_type if data is not None else None)
        for name in drop:
            h = {k: v for k, v in h.items() if k.lower() != name.lower()}
        return self.http.request(method, url, content=data, headers=h)

    def json(self, response: httpx.Response, where: str) -> dict | None:
        try:
            body = response.json()
        except ValueError:
            self.issue("response-not-json", f"{where} : réponse HTTP {response.status_code} qui n'est pas du JSON")
            return None
        if not isinstance(body, dict):
            self.issue("response-not-json", f"{where} : un objet JSON est attendu")
            return None
        return body

    def expect(self, response: httpx.Response, statuses: tuple[int, ...], resource_type: str | None, where: str) -> dict | None:
        ok = self.check(response.status_code in statuses, "http-status",
                        f"{where} : HTTP {response.status_code}, attendu {' ou '.join(map(str, statuses))}"
                        + _diagnostics(response))
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if response.content:
            self.check(media in (FHIR_JSON, "application/json"), "media-type",
                       f"{where} : type de contenu {media!r}, {FHIR_JSON} attendu")
        body = self.json(response, where) if response.content else None
        if ok and body is not None and resource_type:
            self.check(body.get("resourceType") == resource_type, "resource-type",
                       f"{where} : {body.get('resourceType')!r} reçu, {resource_type} attendu")
        return body if ok else None

    def expect_outcome(self, response: httpx.Response, statuses: tuple[int, ...], where: str) -> dict | None:
        """An error answered as the guides require: the HTTP status and an OperationOutcome with
        at least one issue of severity error or fatal."""
        self.check(response.status_code in statuses, "error-status",
                   f"{where} : HTTP {response.status_code}, attendu {' ou '.join(map(str, statuses))}")
        body = self.json(response, where)
        if body is None:
            return None
        if not self.check(body.get("resourceType") == "OperationOutcome", "operation-outcome",
                          f"{where} : erreur sans OperationOutcome ({body.get('resourceType')!r})"):
            return None
        issues = body.get("issue") or []
        self.check(any(i.get("severity") in ("error", "fatal") and i.get("code") for i in issues), "operation-outcome",
                   f"{where} : OperationOutcome sans issue de gravité error/fatal avec un code")
        return body

    def require_client(self) -> None:
        if not self.has_client:
            raise Skip("aucun client OAuth2 donné (--client-id) : le contrôle d'accès ne peut pas être testé")


def _diagnostics(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [i.get("diagnostics", "") for i in body.get("issue") or [] if i.get("diagnostics")]
        return f" — {texts[0][:200]}" if texts else ""
    return ""
