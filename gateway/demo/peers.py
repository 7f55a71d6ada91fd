"""The sandbox peers the demo talks to, over TLS with a test CA made at run time: the regional
e-parcours tool (TLS + OAuth2) and the SI-SDO ViaTrajectoire (mutual TLS with the platform's
certificate + OAuth2 + struct_idnat), each a real server on a loopback port."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.base import RetryPolicy
from connectors.eparcours import EparcoursConnector
from connectors.fhirhttp import FhirEndpoint
from connectors.sandbox import sdo
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import FhirSandbox
from connectors.sandbox.pki import TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles
from connectors.viatrajectoire import ViaTrajectoireConnector

# Quick retries for a demo that shows a transient outage being ridden out in seconds.
DEMO_RETRY = RetryPolicy(max_attempts=6, base_delay=0.05, max_delay=0.3)


@dataclass
class Peers:
    eparcours: FhirSandbox
    sdo: FhirSandbox
    eparcours_url: str
    sdo_url: str
    connectors: dict

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()


@contextlib.contextmanager
def running_peers(finess: str, plans: list[dict]) -> Iterator[Peers]:
    with tempfile.TemporaryDirectory(prefix="relais-demo-pki-") as tmp:
        ca = TestCA(Path(tmp))
        server_cert = ca.issue_server()
        platform_cert = ca.issue_client(f"Plateforme FINESS {finess} (certificat de test)")
        regional = eparcours_sandbox()
        national = sdo.sdo_sandbox(finess, plans)
        tls = TLSFiles(str(server_cert.cert), str(server_cert.key))
        mtls = TLSFiles(str(server_cert.cert), str(server_cert.key), client_ca=str(ca.cert))
        with ThreadedServer(regional.app, tls=tls) as e_server, ThreadedServer(national.app, tls=mtls) as s_server:
            common = dict(client_id="relais", client_secret="sandbox-secret", ca_file=str(ca.cert), timeout=10.0)
            connectors = {
                "eparcours": EparcoursConnector(
                    FhirEndpoint(base_url=e_server.url, token_url=f"{e_server.url}/oauth/token", **common),
                    DEMO_RETRY),
                "viatrajectoire": ViaTrajectoireConnector(
                    FhirEndpoint(base_url=s_server.url, token_url=f"{s_server.url}/oauth/token",
                                 client_cert=str(platform_cert.cert), client_key=str(platform_cert.key), **common),
                    struct_idnat=finess, retry=DEMO_RETRY),
            }
            peers = Peers(regional, national, e_server.url, s_server.url, connectors)
            try:
                yield peers
            finally:
                peers.close()
