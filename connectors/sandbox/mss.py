"""The sandbox MSSanté operator, for the demo and the tests: SMTP submission (STARTTLS, AUTH,
mutual TLS) and IMAP (STARTTLS) on loopback with a test CA made at run time, one mail store
for both, scripted correspondents that answer with an MDN and a CDA, and the mailbox
directory (Annuaire Santé "API Messagerie Sécurisée de Santé") as a strict FHIR sandbox.

    with MssSandbox(tmp_dir) as sandbox:
        connector = sandbox.connector(resolver=...)
        ...

`demo_round_trip(plans, directory)` runs the whole exchange for the demo (see its docstring).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from connectors.sandbox.fhir_app import FhirSandbox, Personality
from gateway.model import Plan
from connectors.sandbox.fhir_store import FhirError
from connectors.sandbox.imap_server import ImapServer
from connectors.sandbox.mailstore import MailStore
from connectors.sandbox.mss_correspondent import Correspondent, CorrespondentDesk
from connectors.sandbox.pki import TestCA
from connectors.sandbox.server import ThreadedServer, TLSFiles
from connectors.sandbox.smtp_server import SmtpServer

PLATFORM_ADDRESS = "relais@pcpe-val-fictif.sandbox.mssante.fr"
DIRECTORY_API_KEY = "sandbox-esante-api-key"
from connectors.mss.directory import EXT_EMAIL_TYPE, EXT_MAILBOX, TRE_R256, TRE_R257  # noqa: E402


def default_correspondents() -> list[Correspondent]:
    return [
        Correspondent("jeanne.martin@medecin.sandbox.mssante.fr", "Dr Jeanne MARTIN", "professional", "10001234567"),
        Correspondent("sessad@sessad-val-fictif.sandbox.mssante.fr", "SESSAD du Val-Fictif", "organisation",
                      "510000029"),
    ]


# --------------------------------------------------------------------------- directory

def _mailbox_telecom(address: str, kind: str, red_list: bool = False) -> dict:
    return {"system": "email", "value": address, "extension": [
        {"url": EXT_EMAIL_TYPE, "valueCoding": {"system": TRE_R256, "code": "MSSANTE"}},
        {"url": EXT_MAILBOX, "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [{"system": TRE_R257, "code": kind}]}},
            {"url": "listeRouge", "valueBoolean": red_list}]}]}


class DirectorySandbox(FhirSandbox):
    """Annuaire Santé with MSSanté mailboxes: `ESANTE-API-KEY` instead of OAuth2; searches by
    identifier, name, mailbox-mss and mailbox-mss-type (TRE_R257; the TRE_R256 form of the IG's
    examples is accepted too, specs §11.8)."""

    def __init__(self, api_key: str = DIRECTORY_API_KEY):
        super().__init__(Personality(
            name="Annuaire Santé (bac à sable)",
            resource_types=frozenset({"Practitioner", "PractitionerRole", "Organization"}), transaction=False,
            search_params=frozenset({"identifier", "name", "mailbox-mss", "mailbox-mss-type", "_elements", "_count"})))
        self.api_key = api_key

    def _authorise(self, request) -> None:
        if request.headers.get("esante-api-key") != self.api_key:
            raise FhirError(401, "login", "clé ESANTE-API-KEY absente ou invalide")

    def may_see(self, request, resource: dict) -> bool:
        params = request.query_params
        boxes = [t for t in resource.get("telecom", []) or [] if t.get("system") == "email"]
        if "name" in params:
            wanted = params["name"].lower()
            names = [resource.get("name", "")] if isinstance(resource.get("name"), str) else [
                " ".join([*(n.get("given", []) or []), n.get("family", "")]) for n in resource.get("name", []) or []]
            if not any(wanted in n.lower() for n in names):
                return False
        if "mailbox-mss" in params and not any(params["mailbox-mss"].lower() == b.get("value", "").lower() for b in boxes):
            return False
        if "mailbox-mss-type" in params:
            system, _, code = params["mailbox-mss-type"].rpartition("|")
            if system and system not in (TRE_R257, TRE_R256):
                return False
            kinds = {c.get("code") for b in boxes for e in b.get("extension", []) if e.get("url") == EXT_MAILBOX
                     for s in e.get("extension", []) if s.get("url") == "type"
                     for c in (s.get("valueCodeableConcept") or {}).get("coding", [])}
            if code not in kinds:
                return False
        return True

    def publish(self, correspondent: Correspondent, red_list: bool = False) -> dict:
        if correspondent.kind == "organisation":
            resource = {"resourceType": "Organization", "active": True, "name": correspondent.name,
                        "identifier": [{"system": "https://finess.esante.gouv.fr", "value": correspondent.identifier}],
                        "telecom": [_mailbox_telecom(correspondent.address, "ORG", red_list)]}
        else:
            given, _, family = correspondent.name.removeprefix("Dr ").rpartition(" ")
            resource = {"resourceType": "Practitioner", "active": True,
                        "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "use": "official",
                                        "value": f"8{correspondent.identifier}"}],
                        "name": [{"use": "official", "family": family, "given": [given]}],
                        "telecom": [_mailbox_telecom(correspondent.address, "PER", red_list)]}
        stored, _ = self.store.create(resource)
        return stored.resource


# ----------------------------------------------------------------------------- operator

@dataclass
class MssSandbox:
    """Context manager: TLS material, mail store, SMTP, IMAP, directory, correspondents."""

    directory: Path
    platform_address: str = PLATFORM_ADDRESS
    correspondents: list[Correspondent] = field(default_factory=default_correspondents)
    mutual_tls: bool = True
    implicit_tls: bool = False
    size_limit: int = 10 * 1024 * 1024

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.password = secrets.token_urlsafe(12)
        self.ca = TestCA(self.directory / "pki", name="IGC-Santé de test (bac à sable Relais)")
        server = self.ca.issue_server()
        self.client = self.ca.issue_client(self.platform_address)
        self.tls = TLSFiles(str(server.cert), str(server.key), client_ca=str(self.ca.cert) if self.mutual_tls else None)
        self.store = MailStore()
        self.store.add(self.platform_address, self.password, "APP")
        for correspondent in self.correspondents:
            self.store.add(correspondent.address, secrets.token_urlsafe(12),
                           "ORG" if correspondent.kind == "organisation" else "PER")
        self.smtp = SmtpServer(self.store, tls=self.tls, implicit_tls=self.implicit_tls, size_limit=self.size_limit)
        self.imap = ImapServer(self.store, tls=self.tls, implicit_tls=self.implicit_tls)
        self.desk = CorrespondentDesk(self.store, self.correspondents)
        self.annuaire = DirectorySandbox()
        for correspondent in self.correspondents:
            self.annuaire.publish(correspondent)
        self.directory_server = ThreadedServer(self.annuaire.app, tls=TLSFiles(str(server.cert), str(server.key)))

    def start(self) -> "MssSandbox":
        self.smtp.start()
        self.imap.start()
        self.desk.start()
        self.directory_server.start()
        return self

    def stop(self) -> None:
        self.directory_server.stop()
        self.desk.stop()
        self.imap.stop()
        self.smtp.stop()

    def __enter__(self) -> "MssSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def config(self, **overrides) -> dict:
        """The connector's settings (what RELAIS_CONNECTORS__MSS__… would carry)."""
        security = "tls" if self.implicit_tls else "starttls"
        config = {
            "address": self.platform_address, "password": self.password,
            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "smtp_security": security,
            "imap_host": "127.0.0.1", "imap_port": self.imap.port, "imap_security": security,
            "ca_file": str(self.ca.cert), "client_cert": str(self.client.cert), "client_key": str(self.client.key),
            "timeout": 10.0, "state_dir": str(self.directory / "state"),
            "directory_url": self.directory_server.url, "directory_api_key": DIRECTORY_API_KEY,
        }
        config.update(overrides)
        return config

    def connector(self, *, resolver=None, retry=None, **overrides):
        from connectors.mss import build

        connector = build({**self.config(**overrides), **({"retry": retry} if retry else {})})
        connector.resolver = resolver
        return connector

    def inbox(self, address: str | None = None) -> list:
        return self.store.messages(address or self.platform_address)

    def wait(self, timeout: float = 10) -> bool:
        return self.desk.wait(timeout)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------------- demo

@dataclass
class RoundTrip:
    """One plan sent and answered: what the demo shows."""

    person: str  # local id (never the name)
    message_id: str
    receipt: str
    acknowledgement: str  # "processed", "processed/error 902"… or "" when none came
    proposal_lines: list[str]
    problems: list[str]


def demo_round_trip(plans, directory: Path, *, recipient: str | None = None, now: dt.datetime | None = None,
                    tenant_slug: str = "demo") -> list[RoundTrip]:
    """Send each plan (those the demo's consent step allowed) to a sandbox correspondent as an
    XDM message, let it answer (MDN + a CDA of its own), poll the platform's mailbox and turn
    each reply into a proposed update (JSON Patch against the plan sent — never applied).

    The whole exchange goes over the real protocols: SMTP submission with STARTTLS, AUTH and
    mutual TLS, IMAP with STARTTLS, a test CA made in `directory`. The recipient defaults to the
    sandbox doctor, found by RPPS in the sandbox Annuaire Santé."""
    from connectors.base import Envelope, Recipient
    from connectors.mss.inbound import propose
    from gateway.delivery.outbox import idempotency_key
    from gateway.delivery.model import ExchangeRequest
    from gateway.delivery.payload_mss import build_message
    from gateway.delivery.payloads import BuildContext

    moment = now or now_utc()
    results: list[RoundTrip] = []
    with MssSandbox(Path(directory)) as sandbox:
        doctor = sandbox.correspondents[0]
        target = Recipient("professional", recipient or doctor.identifier, doctor.name, "health")
        connector = sandbox.connector(resolver=lambda item: None)
        sent: dict[str, tuple[Plan, str]] = {}
        try:
            for plan in plans:
                request = ExchangeRequest(person_local_id=plan.person.local_id, system="mss", recipient=target,
                                          purpose="COC", payload_kind="xdm-message")
                key = idempotency_key(tenant_slug, request, 1)
                payload = build_message(plan, BuildContext(tenant_slug=tenant_slug, tenant_finess=plan.platform.finess,
                                                           plan_version=1, now=moment, idempotency_key=key))
                receipt = connector.send(Envelope(f"demo-{plan.person.local_id}", key, "mss", "xdm-message",
                                                  "message/rfc822", payload, target))
                sent[key] = (plan, receipt.detail)
            sandbox.wait(30)
            items = list(connector.poll())
        finally:
            connector.close()
    acks = {i.metadata.get("idempotency_key"): i for i in items if i.kind == "mss-acknowledgement"}
    for item in items:
        if item.kind != "mss-document":
            continue
        plan, detail = sent.get(item.metadata.get("idempotency_key"), (None, ""))
        if plan is None:
            continue
        ack = acks.get(item.metadata["idempotency_key"])
        disposition = "" if ack is None else ack.metadata["disposition"] + (
            "" if ack.metadata["ok"] == "true" else f"/error {ack.metadata['error_code']}")
        proposal = propose(item.payload, plan)
        results.append(RoundTrip(plan.person.local_id, item.metadata["in_reply_to"], detail, disposition,
                                 proposal.lines(), [p.line() for p in proposal.problems if p.severity.value == "error"]))
    return results


def describe(results: list[RoundTrip]) -> list[str]:
    """French lines for the demo's output."""
    lines = []
    for trip in results:
        lines.append(f"  {trip.person} : envoyé ({trip.receipt}), accusé MDN « {trip.acknowledgement or 'aucun'} », "
                     f"réponse reçue → mise à jour proposée au coordinateur ({len(trip.proposal_lines)} changement(s)) :")
        lines += [f"      - {line}" for line in trip.proposal_lines]
        lines += [f"      ! {line}" for line in trip.problems]
    return lines
