"""Run an ASGI app on a loopback port in a thread (sandbox peers, the demo's API)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TLSFiles:
    """Server certificate and key; with `client_ca`, clients must present a certificate
    signed by it (mutual TLS)."""

    certfile: str
    keyfile: str
    client_ca: str | None = None


class ThreadedServer:
    def __init__(self, app, *, host: str = "127.0.0.1", port: int | None = None,
                 tls: TLSFiles | None = None):
        self.host = host
        self.port = port or free_port()
        self.tls = tls
        options = dict(host=host, port=self.port, log_config=None, access_log=False,
                       lifespan="off", timeout_keep_alive=5, timeout_graceful_shutdown=1)
        if tls is not None:
            options.update(ssl_certfile=tls.certfile, ssl_keyfile=tls.keyfile)
            if tls.client_ca:
                options.update(ssl_ca_certs=tls.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"sandbox-{self.port}")

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"le serveur bac à sable n'a pas démarré sur le port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
