"""FHIR REST over HTTPS shared by the FHIR connectors: OAuth2 client credentials (RFC 6749
§4.4), mutual TLS with the structure's certificate, a configurable trust store, and one
mapping of peer answers to transient / permanent errors that keeps the peer's own words.

Security per the CI-SIS "Sécurisation de la couche transport" volet (specs §3.1, §8): TLS 1.2
minimum, server certificates always verified, client certificate when the service asks for it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from connectors.base import PermanentError, TransientError, refused_client_certificate

FHIR_JSON = "application/fhir+json"
# OperationOutcome issue codes that mean "the content is wrong": resending cannot help.
CONTENT_CODES = {"invalid", "structure", "required", "value", "invariant", "processing",
                 "not-supported", "duplicate", "business-rule", "code-invalid", "extension",
                 "security", "forbidden", "not-found", "conflict", "too-long"}


@dataclass(frozen=True)
class FhirEndpoint:
    base_url: str
    token_url: str | None = None  # OAuth2 token endpoint; None = no OAuth2
    client_id: str | None = None
    client_secret: str | None = None
    ca_file: str | None = None  # trust store (PEM); None = the system's
    client_cert: str | None = None  # mutual TLS
    client_key: str | None = None
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. struct_idnat (SDO)

    @classmethod
    def from_settings(cls, config: Mapping[str, object]) -> "FhirEndpoint":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in config.items() if k in known})


def _ssl_context(endpoint: FhirEndpoint) -> ssl.SSLContext | bool:
    if not endpoint.base_url.startswith("https"):
        return True
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.client_cert:
        context.load_cert_chain(endpoint.client_cert, endpoint.client_key)
    return context


def _transport_error(exc: Exception, what: str) -> Exception:
    """An untrusted server certificate, or our client certificate refused by the server (TLS
    alert), will not fix itself: permanent. Anything else on the wire (refused, reset, TLS
    hiccup) is worth retrying."""
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return PermanentError("certificat du serveur non reconnu par le magasin de confiance", code="tls")
    return refused_client_certificate(exc) or TransientError(f"{what} ({type(exc).__name__})", code="network")


def outcome_text(response: httpx.Response) -> tuple[str, set[str]]:
    """The peer's reason: OperationOutcome diagnostics (and issue codes), or the status line."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"HTTP {response.status_code} {response.reason_phrase}", set()
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue") or []
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "")
                 for i in issues]
        where = [e for i in issues for e in (i.get("expression") or [])]
        reason = "; ".join(t for t in texts if t) or f"HTTP {response.status_code}"
        if where:
            reason += f" ({', '.join(where[:3])})"
        return reason, {i.get("code", "") for i in issues}
    return f"HTTP {response.status_code} {response.reason_phrase}", set()


class _Cookies(httpx.Cookies):
    """httpx's cookie store, minus the work for a response that sets none: http.cookiejar
    reads only Set-Cookie and Set-Cookie2 (CookieJar.make_cookies), so without them it would
    store nothing, but httpx builds two urllib adapters per response to find that out."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _Client(httpx.Client):
    """httpx.Client with the store above (httpx reads the client's store through `cookies`
    only; a peer's cookies are still kept and sent back: tests/test_fhirhttp_wire.py)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._store = _Cookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._store

    @cookies.setter
    def cookies(self, cookies) -> None:
        self._store = _Cookies(cookies)


class FhirClient:
    def __init__(self, endpoint: FhirEndpoint, *, server_error_may_be_content: bool = False):
        """`server_error_may_be_content`: the peer answers 500 for content errors too (the
        cercle de soins guide does, specs §11.13): then a 500 whose OperationOutcome names a
        content problem is permanent."""
        self.endpoint = endpoint
        self.server_error_may_be_content = server_error_may_be_content
        self._http = _Client(base_url=endpoint.base_url.rstrip("/"), timeout=endpoint.timeout,
                                  verify=_ssl_context(endpoint))
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}  # path -> URL merged with base_url, as httpx merges it

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ OAuth2

    def _bearer(self, refused: str | None = None) -> tuple[str | None, dict[str, str]]:
        """The token to send and its header; a new one if `refused` (the token a 401 answered)
        is still the current one. Thread-safe (the worker may send from several threads): one
        fetch under the lock, and requests refused with the same token renew it only once."""
        if not self.endpoint.token_url:
            return None, {}
        with self._lock:
            if (self._token is None or self._token == refused
                    or time.monotonic() > self._token_expires):
                try:
                    response = self._http.post(self.endpoint.token_url, data={
                        "grant_type": "client_credentials", "client_id": self.endpoint.client_id,
                        "client_secret": self.endpoint.client_secret})
                except (httpx.TransportError, ssl.SSLError) as exc:
                    raise _transport_error(exc, "serveur d'autorisation injoignable") from None
                if response.status_code >= 500:
                    raise TransientError(f"serveur d'autorisation : HTTP {response.status_code}")
                if response.status_code != 200:
                    raise PermanentError(f"authentification OAuth2 refusée : HTTP {response.status_code}",
                                         code=str(response.status_code))
                grant = response.json()
                self._token = grant["access_token"]
                self._token_expires = time.monotonic() + max(30, int(grant.get("expires_in", 300)) - 30)
            return self._token, {"Authorization": f"Bearer {self._token}"}

    # --------------------------------------------------------------- requests

    def request(self, method: str, path: str, *, body: bytes | None = None,
                params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request; return the 2xx response or raise Transient/PermanentError."""
        base = {"Accept": FHIR_JSON, **self.endpoint.headers, **(headers or {})}
        if body is not None:
            base["Content-Type"] = FHIR_JSON
        # httpx merges a relative path with base_url per request: once here for the fixed
        # paths (POST /, GET /CommunicationRequest…); others (with ids) go as they are.
        url = self._urls.get(path)
        if url is None:
            url = path
            if len(self._urls) < 32:
                url = self._urls[path] = self._http.build_request("GET", path).url
        refused = None
        for renew in (False, True):
            token, bearer = self._bearer(refused)
            try:
                response = self._http.request(method, url, content=body, params=params,
                                              headers={**base, **bearer})
            except httpx.TimeoutException:
                raise TransientError("délai dépassé en attendant le serveur", code="timeout") from None
            except (httpx.TransportError, ssl.SSLError) as exc:
                raise _transport_error(exc, "connexion interrompue") from None
            if response.status_code == 401 and not renew and self.endpoint.token_url:
                refused = token
                continue  # token expired on the server side: renew once
            break
        return self._judge(response)

    def _judge(self, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        reason, codes = outcome_text(response)
        if status in (408, 425, 429) or status >= 500:
            if status == 500 and self.server_error_may_be_content and codes & CONTENT_CODES:
                raise PermanentError(reason, code=str(status))
            retry_after = response.headers.get("retry-after")
            raise TransientError(reason, code=str(status),
                                 retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
        raise PermanentError(reason, code=str(status))

    def json(self, response: httpx.Response) -> dict:
        """A 2xx body that is not JSON: the outcome is unknown, so retry (resends are idempotent)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientError("réponse illisible du serveur (JSON invalide)", code="malformed") from None
        if not isinstance(body, dict):
            raise TransientError("réponse inattendue du serveur", code="malformed")
        return body
