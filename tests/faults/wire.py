"""Faults below HTTP, on loopback: a front that resets connections in the TLS handshake (then
forwards to the real peer once it has recovered), and a TLS endpoint that refuses any client
without a certificate it trusts (it sends the TLS alert, as nginx or a hardware front does)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from contextlib import suppress

from connectors.sandbox.server import TLSFiles


class _Listener:
    def __init__(self, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"fault-{self.port}")

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:  # pragma: no cover - overridden
        client.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class HandshakeResetFront(_Listener):
    """`https://127.0.0.1:<port>` in front of `upstream_port`: the first `resets` connections
    are reset as soon as their TLS ClientHello arrives; the next ones are forwarded untouched
    (the peer has recovered)."""

    def __init__(self, upstream_port: int, resets: int):
        super().__init__()
        self.upstream_port = upstream_port
        self.resets_left = resets
        self.reset_count = 0
        self._lock = threading.Lock()

    def handle(self, client: socket.socket) -> None:
        with self._lock:
            reset = self.resets_left > 0
            if reset:
                self.resets_left -= 1
                self.reset_count += 1
        if reset:
            with suppress(OSError):
                client.settimeout(2)
                client.recv(512)  # the ClientHello
            _reset(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            _reset(client)
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        source.settimeout(None)
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class ClientCertificateGate(_Listener):
    """A TLS endpoint that requires a client certificate signed by `tls.client_ca`: without
    one (or with one it does not trust) the handshake fails and the client receives the TLS
    alert (certificate required / unknown CA). Nothing gets past it: it is the refusal."""

    def __init__(self, tls: TLSFiles):
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tls.certfile, tls.keyfile)
        self.context.load_verify_locations(tls.client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.refused = 0

    def handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            with self.context.wrap_socket(client, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            self.refused += 1
        finally:
            client.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"
