"""FhirClient's bytes on the wire: the same as the plain httpx.Client calls it replaced.

FhirClient merges each fixed path with base_url once (not per request) and skips httpx's cookie
extraction for responses without Set-Cookie. A recording HTTP/1.1 server takes every request;
the same sequence is sent by FhirClient and by the former code (`httpx.Client.request` with the
path and the headers dict) and the recorded bytes (request line, headers, body) must be equal,
including a peer's cookie sent back and paths beyond the cache.
"""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from connectors.fhirhttp import FHIR_JSON, FhirClient, FhirEndpoint


class Recorder:
    """Keep-alive HTTP/1.1 server: records each request's raw bytes; answers a small JSON body,
    with a Set-Cookie on the requests whose path contains 'cookie'."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                extra = b""
                if b"cookie" in head.split(b"\r\n")[0]:
                    extra = b"Set-Cookie: route=peer-a; Path=/\r\nset-cookie: other=1; Path=/fhir\r\n"
                payload = b'{"resourceType":"Bundle","type":"transaction-response","entry":[]}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n" + extra
                             + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)

    def close(self):
        self.sock.close()


def _old_request(http: httpx.Client, endpoint: FhirEndpoint, method, path, *, body=None, params=None,
                 headers=None):
    """FhirClient.request before: the path merged by httpx per request, cookies extracted always."""
    base = {"Accept": FHIR_JSON, **endpoint.headers, **(headers or {})}
    if body is not None:
        base["Content-Type"] = FHIR_JSON
    return http.request(method, path, content=body, params=params, headers=base)


SEQUENCE = [
    ("POST", "/", {"body": b'{"resourceType":"Bundle","type":"transaction"}'}),
    ("POST", "/", {"body": b'{"resourceType":"Bundle","type":"transaction","x":"\xc3\xa9"}'}),
    ("GET", "/CommunicationRequest", {}),
    ("GET", "/CommunicationRequest", {"params": {"_lastUpdated": "gt2026-11-27T01:00:00+01:00"}}),
    ("GET", "/CommunicationRequest", {"params": {}}),
    ("GET", "/cookie/set", {}),  # the peer sets two cookies: both clients send them back from here on
    ("POST", "/Task", {"body": b"{}", "headers": {"If-None-Exist": "identifier=urn:x|1"}}),
    ("GET", "Task/t-1", {}),
    ("GET", "/", {}),
    ("PUT", "/Task/t-1", {"body": b'{"id":"t-1"}'}),
    ("GET", "/cookie/set?x=1", {"params": {"y": "2"}}),
    *[("GET", f"/Task/t-{i}", {}) for i in range(40)],  # beyond the 32 cached paths
    ("POST", "/", {"body": b"[]"}),
    ("GET", "/CommunicationRequest", {}),
]


@pytest.mark.parametrize("base_path", ["", "/fhir", "/fhir/"])
def test_same_bytes_on_the_wire_as_plain_httpx(base_path):
    server = Recorder()
    try:
        endpoint = FhirEndpoint(base_url=f"http://127.0.0.1:{server.port}{base_path}",
                                headers={"X-Struct-Idnat": "1234567890"})
        client = FhirClient(endpoint)
        for method, path, kwargs in SEQUENCE:
            client.request(method, path, **kwargs)
        client.close()
        new = list(server.requests)
        server.requests.clear()
        with httpx.Client(base_url=endpoint.base_url.rstrip("/"), timeout=endpoint.timeout) as http:
            for method, path, kwargs in SEQUENCE:
                _old_request(http, endpoint, method, path, **kwargs)
        old = list(server.requests)
    finally:
        server.close()
    assert len(new) == len(old) == len(SEQUENCE)
    assert new == old
    # The test can fail: the cookies were really sent back, and the paths differ.
    assert any(b"\r\nCookie: " in r and b"route=peer-a" in r for r in new)
    assert new[0].startswith(b"POST " + base_path.rstrip("/").encode() + b"/ HTTP/1.1\r\n")


def test_cookie_store_still_keeps_cookies():
    server = Recorder()
    try:
        client = FhirClient(FhirEndpoint(base_url=f"http://127.0.0.1:{server.port}"))
        client.request("GET", "/")
        assert not client._http.cookies
        client.request("GET", "/cookie")
        assert dict(client._http.cookies)["route"] == "peer-a"
        client._http.cookies = {"a": "b"}
        client.request("GET", "/")
        assert b"\r\nCookie: a=b\r\n" in server.requests[-1]  # the setter keeps the store's class
        client.request("GET", "/cookie")
        assert dict(client._http.cookies)["route"] == "peer-a"
        client.close()
    finally:
        server.close()
