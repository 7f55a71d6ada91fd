"""The sandbox DMP running on a loopback port (connectors/sandbox/dmp.py) with mutual TLS, a test
CA made at run time, the platform's TLS and seal certificates issued, and a connector factory —
what the tests, the demo, the benchmark and integrators start."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from lxml import etree

from connectors.sandbox.dmp import DmpSandbox


def cda_schema_check() -> Callable[[etree._Element], list[str]] | None:
    """The CDA R2 schema (with the French extensions) of the CDA gate, when its reference set is
    here; None otherwise (the sandbox then checks the header only)."""
    from gateway.conformance.cda.gate import cda_gate

    gate = cda_gate()
    if not gate.available:
        return None

    def check(root: etree._Element) -> list[str]:
        return [f"{p.location} {p.message}" for p in gate.schema().validate(root.getroottree())
                if p.severity.value == "error"]

    return check


def issue_seal(ca, common_name: str, stem: str = "seal"):
    """A structure seal certificate (certificat de cachet, RSA as the VIHF requires) from the
    sandbox's test CA. Returns (cert path, key path, certificate)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Relais sandbox (test only)"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca._cert.subject)  # noqa: SLF001
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(ca._key, hashes.SHA256()))  # noqa: SLF001  (the sandbox CA signs its own certificates)
    cert_path, key_path = ca.dir / f"{stem}.pem", ca.dir / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path, cert


class DmpPeer:
    """The sandbox DMP running on a loopback port with mutual TLS (test CA made at run time), the
    platform's TLS certificate and seal certificate issued, and a connector factory:

        with DmpPeer(tmp_path, finess="510000011", patients={cx}) as peer:
            connector = peer.connector()
    """

    def __init__(self, directory, *, finess: str, platform_name: str = "Plateforme (bac à sable)",
                 patients: set[str] | None = None, schema_check: bool = True):
        from pathlib import Path

        from connectors.sandbox.pki import TestCA

        self.dir = Path(directory)
        self.finess = finess
        self.platform_name = platform_name
        self.ca = TestCA(self.dir)
        self.server_cert = self.ca.issue_server("dmp-server")
        self.client_cert = self.ca.issue_client(f"Plateforme FINESS {finess} (certificat de test)", "dmp-client")
        self.seal_cert, self.seal_key, seal = issue_seal(self.ca, f"Cachet FINESS {finess} (test)")
        self.sandbox = DmpSandbox(trusted_seals=[seal], patients=patients,
                                  cda_check=cda_schema_check() if schema_check else None)
        self.server = None

    def __enter__(self) -> "DmpPeer":
        from connectors.sandbox.server import ThreadedServer, TLSFiles

        tls = TLSFiles(str(self.server_cert.cert), str(self.server_cert.key), client_ca=str(self.ca.cert))
        self.server = ThreadedServer(self.sandbox.app, tls=tls).start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self, **overrides) -> dict:
        config = dict(base_url=self.url if self.server else "http://127.0.0.1:9", finess=self.finess, platform_name=self.platform_name,
                      seal_cert=str(self.seal_cert), seal_key=str(self.seal_key),
                      client_cert=str(self.client_cert.cert), client_key=str(self.client_cert.key),
                      ca_file=str(self.ca.cert), timeout=10.0)
        config["mhd_url"] = f"{config['base_url']}/fhir"
        config.update(overrides)
        return config

    def connector(self, **overrides):
        from connectors.dmp import build

        return build(self.settings(**overrides))
