"""Outbound TLS of every connector: the server certificate is always verified against the
configured trust store (`ca_file`), the client certificate is presented when configured, and
a server that requires one refuses a client without it. The PKI is made at run time: a test
CA (standing in for IGC-Santé), a second CA nobody trusts, and certificates that are expired,
issued for another host name, or issued by the unknown CA.

Connectors: FHIR REST (e-parcours, ViaTrajectoire: `connectors/fhirhttp.py`), the DMP
(SOAP/MTOM over HTTPS), MSSanté SMTP submission (implicit TLS and STARTTLS) and IMAP.
A verification failure is a `PermanentError` with code `tls` (it will not fix itself: the
exchange goes to the dead letters with that reason instead of being retried forever).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors.base import DeliveryError, PermanentError
from connectors.sandbox.pki import Issued, TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles

PATIENT = "122100810511315^^^&1.2.250.1.213.1.4.10&ISO^NH"


def _issue(ca: TestCA, stem: str, *, hosts=("localhost",), ips=("127.0.0.1",), usage=ExtendedKeyUsageOID.SERVER_AUTH,
           not_before: dt.timedelta = dt.timedelta(minutes=-5), not_after: dt.timedelta = dt.timedelta(days=1)) -> Issued:
    """A certificate from the test CA with chosen names and validity (the CA's own key signs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else stem)]))
               .issuer_name(ca._cert.subject)  # noqa: SLF001 - the test CA signs its test certificates
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + not_before).not_valid_after(now + not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca._key, hashes.SHA256())  # noqa: SLF001
    issued = Issued(ca.dir / f"{stem}.pem", ca.dir / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return issued


@dataclass
class Pki:
    ca: TestCA  # the trust anchor configured as ca_file
    good: Issued  # server certificate for localhost / 127.0.0.1
    expired: Issued
    other_host: Issued  # valid, for another host name only
    untrusted: Issued  # server certificate from a CA nobody configured
    client: Issued  # the structure's certificate
    rogue_client: Issued  # a client certificate from the unknown CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca = TestCA(base / "trusted", name="IGC-Santé de test")
    rogue = TestCA(base / "rogue", name="Autorité inconnue")
    return Pki(ca=ca, good=ca.issue_server("good"),
               expired=_issue(ca, "expired", not_before=dt.timedelta(days=-3), not_after=dt.timedelta(days=-1)),
               other_host=_issue(ca, "other-host", hosts=("peer.example.invalid",), ips=()),
               untrusted=rogue.issue_server("untrusted"),
               client=ca.issue_client("Plateforme FINESS 510000011 (test)"),
               rogue_client=rogue.issue_client("Imposteur", "rogue-client"))


# ------------------------------------------------------------------------------ targets
# Each target starts a server with given TLS files and makes one real call with the connector,
# configured with (ca_file, client certificate). `call` raises DeliveryError on failure.


class FhirTarget:
    name = "fhir"

    @contextlib.contextmanager
    def serve(self, tls: TLSFiles):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.hits = 0

        async def metadata(request):
            self.hits += 1
            return JSONResponse({"resourceType": "CapabilityStatement"})

        app = Starlette(routes=[Route("/metadata", metadata)])
        with ThreadedServer(app, tls=tls) as server:
            yield server.port

    def call(self, port: int, ca_file, client: Issued | None, pki: Pki) -> None:
        from connectors.fhirhttp import FhirClient, FhirEndpoint

        client_ = FhirClient(FhirEndpoint(base_url=f"https://localhost:{port}", ca_file=ca_file, timeout=5,
                                          client_cert=str(client.cert) if client else None,
                                          client_key=str(client.key) if client else None))
        try:
            client_.request("GET", "/metadata")
        finally:
            client_.close()

    def reached(self) -> bool:
        return self.hits > 0


class DmpTarget(FhirTarget):
    name = "dmp"

    def call(self, port: int, ca_file, client: Issued | None, pki: Pki) -> None:
        from connectors.dmp import DmpConnector, DmpSettings
        from connectors.sandbox.dmp_peer import issue_seal

        seal_cert, seal_key, _ = issue_seal(pki.ca, "Cachet test", stem="tls-seal")
        connector = DmpConnector(DmpSettings(
            base_url=f"https://localhost:{port}", finess="510000011", seal_cert=str(seal_cert), seal_key=str(seal_key),
            ca_file=ca_file, client_cert=str(client.cert) if client else None,
            client_key=str(client.key) if client else None, timeout=5))
        try:
            connector.find_documents(PATIENT)
        finally:
            connector.close()

    @contextlib.contextmanager
    def serve(self, tls: TLSFiles):
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        self.hits = 0

        async def soap(request):
            self.hits += 1
            return Response(b"not soap", status_code=500, media_type="text/plain")

        app = Starlette(routes=[Route("/registry", soap, methods=["POST"]),
                                Route("/repository", soap, methods=["POST"])])
        with ThreadedServer(app, tls=tls) as server:
            yield server.port


class SmtpTarget:
    name = "smtp"
    implicit = True

    @contextlib.contextmanager
    def serve(self, tls: TLSFiles):
        from connectors.sandbox.mailstore import MailStore
        from connectors.sandbox.smtp_server import SmtpServer

        self.store = MailStore()
        self.store.add("plateforme@mss.example", "mot-de-passe-boite", "APP")
        self.store.add("dr@mss.example", "x", "PER")
        with SmtpServer(self.store, tls=tls, implicit_tls=self.implicit) as server:
            yield server.port

    def call(self, port: int, ca_file, client: Issued | None, pki: Pki) -> None:
        from connectors.mss.smtp import SmtpEndpoint, SmtpSubmitter

        submitter = SmtpSubmitter(SmtpEndpoint(
            host="localhost", port=port, security="tls" if self.implicit else "starttls",
            username="plateforme@mss.example", password="mot-de-passe-boite", ca_file=ca_file,
            client_cert=str(client.cert) if client else None, client_key=str(client.key) if client else None,
            timeout=5))
        message = (b"From: plateforme@mss.example\r\nTo: dr@mss.example\r\nSubject: test\r\n"
                   b"Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n"
                   b"Message-ID: <tls-test@mss.example>\r\n\r\nbonjour\r\n")
        submitter.submit("plateforme@mss.example", ["dr@mss.example"], message)

    def reached(self) -> bool:
        return bool(self.store.messages("dr@mss.example"))


class StartTlsSmtpTarget(SmtpTarget):
    name = "smtp-starttls"
    implicit = False


class ImapTarget:
    name = "imap"

    @contextlib.contextmanager
    def serve(self, tls: TLSFiles):
        from connectors.sandbox.imap_server import ImapServer
        from connectors.sandbox.mailstore import MailStore

        self.store = MailStore()
        self.store.add("plateforme@mss.example", "mot-de-passe-boite", "APP")
        self.opened = False
        with ImapServer(self.store, tls=tls, implicit_tls=True) as server:
            yield server.port

    def call(self, port: int, ca_file, client: Issued | None, pki: Pki) -> None:
        from connectors.mss.imap import ImapEndpoint, ImapMailbox

        with ImapMailbox(ImapEndpoint(host="localhost", port=port, security="tls", username="plateforme@mss.example",
                                      password="mot-de-passe-boite", ca_file=ca_file, timeout=5,
                                      client_cert=str(client.cert) if client else None,
                                      client_key=str(client.key) if client else None)) as box:
            box.unprocessed()
            self.opened = True

    def reached(self) -> bool:
        return self.opened


TARGETS = [FhirTarget, DmpTarget, SmtpTarget, StartTlsSmtpTarget, ImapTarget]


def _attempt(target, pki: Pki, server: Issued, *, mutual: bool, ca_file, client: Issued | None):
    tls = TLSFiles(str(server.cert), str(server.key), client_ca=str(pki.ca.cert) if mutual else None)
    with target.serve(tls) as port:
        try:
            target.call(port, ca_file, client, pki)
        except DeliveryError as exc:
            return exc
    return None


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_a_trusted_server_with_mutual_tls_is_reached_with_the_configured_trust_store_and_certificate(target, pki):
    t = target()
    error = _attempt(t, pki, pki.good, mutual=True, ca_file=str(pki.ca.cert), client=pki.client)
    assert error is None or error.code not in ("tls", "network"), error
    assert t.reached()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
@pytest.mark.parametrize("server, why", [("untrusted", "unknown CA"), ("expired", "expired"),
                                         ("other_host", "host name mismatch")])
def test_a_server_certificate_that_does_not_verify_is_refused_for_good(target, pki, server, why):
    t = target()
    error = _attempt(t, pki, getattr(pki, server), mutual=False, ca_file=str(pki.ca.cert), client=pki.client)
    assert isinstance(error, PermanentError) and error.code == "tls", (why, error)
    assert "certificat" in str(error)
    assert not t.reached()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_without_the_configured_trust_store_the_test_ca_is_not_trusted(target, pki):
    """ca_file=None means the system's anchors: a private CA is trusted only when configured."""
    t = target()
    error = _attempt(t, pki, pki.good, mutual=False, ca_file=None, client=None)
    assert isinstance(error, PermanentError) and error.code == "tls", error
    assert not t.reached()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
@pytest.mark.parametrize("client", [None, "rogue_client"], ids=["no-client-certificate", "client-from-unknown-ca"])
def test_a_server_requiring_a_client_certificate_refuses_a_client_without_a_valid_one(target, pki, client):
    t = target()
    error = _attempt(t, pki, pki.good, mutual=True, ca_file=str(pki.ca.cert),
                     client=getattr(pki, client) if client else None)
    assert error is not None, "the mutual TLS server accepted a client without a valid certificate"
    assert not t.reached()


def test_a_client_certificate_and_key_that_do_not_exist_fail_at_configuration(pki, tmp_path):
    from connectors.fhirhttp import FhirClient, FhirEndpoint

    with pytest.raises(OSError):
        FhirClient(FhirEndpoint(base_url="https://localhost:9", ca_file=str(pki.ca.cert),
                                client_cert=str(tmp_path / "absent.pem"), client_key=str(tmp_path / "absent.key")))


def test_tls_below_1_2_is_never_offered():
    from connectors.dmp.connector import DmpSettings, _ssl_context
    from connectors.mss.imap import tls_context

    import ssl

    for context in (tls_context(None, None, None), _ssl_context(DmpSettings(base_url="https://x", finess="1"))):
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_the_demo_pki_files_are_private(pki):
    assert Path(pki.client.key).stat().st_mode & 0o077 == 0
