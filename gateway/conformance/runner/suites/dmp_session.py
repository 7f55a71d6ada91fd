"""A session with a DMP XDS.b endpoint for the `dmp` suite: mutual TLS (`--ca-file`,
`--client-cert`, `--client-key`), a VIHF signed with the structure's seal certificate, and SOAP
exchanges the tests can bend (no VIHF, a tampered VIHF, an unknown WS-Addressing action) whose
answers are read without raising: `Answer` keeps the HTTP status, the SOAP fault or the
`RegistryResponse`, so each test judges what the endpoint said.

Options (`--option NAME=VALUE`): `finess` (the structure), `ins` (a test patient with an open
DMP: CX `matricule^^^&OID&ISO^NH` or a 15-character matricule, OID `ins-oid`, default the test
OID 1.2.250.1.213.1.4.10), `seal-cert` / `seal-key` (certificat de cachet, PEM), and as the DMP
connector names them: `repository-path`, `registry-path`, `platform-name`, `structure-id`,
`responsible-id`, `sector`, `lps-id`, `lps-name`, `lps-version`, `lps-homologation`,
`vihf-version`, `sign-submission`; `unknown-ins` (a person without a DMP, default a test INS
made for the run)."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import uuid
from dataclasses import dataclass, fields

import httpx
from lxml import etree

from gateway.conformance.runner.suites.base import Endpoint, SessionBase

SOURCE = "DMP XDS.b (specs §5.1 ; IHE ITI TF-2b, TF-3)"
TEST_INS_OID = "1.2.250.1.213.1.4.10"
REQUIRED = ("finess", "ins", "seal-cert", "seal-key")
# WS-Security 1.1 SOAP Message Security §12, fault subcodes (local names)
WSS_FAULTS = frozenset({"UnsupportedSecurityToken", "UnsupportedAlgorithm", "InvalidSecurity", "InvalidSecurityToken",
                        "FailedAuthentication", "FailedCheck", "SecurityTokenUnavailable", "MessageExpired"})


@dataclass
class Answer:
    """What the endpoint said to one request, read without raising."""

    status: int
    message: object | None = None  # connectors.dmp.soap.Message
    unreadable: str | None = None  # why the answer is not a SOAP 1.2 message
    message_id: str = ""  # the request's wsa:MessageID

    @property
    def fault(self) -> tuple[str, str] | None:
        return self.message.fault() if self.message is not None else None

    @property
    def fault_code(self) -> str:
        """The fault's subcode, local name (prefixes differ between servers)."""
        return self.fault[0].rpartition(":")[2] if self.fault else ""

    def registry(self) -> etree._Element | None:
        """The RegistryResponse of the answer (ITI-41/57 body, or inside ITI-43/ITI-18)."""
        from connectors.dmp import errors as E

        body = self.message.body if self.message is not None else None
        if body is None:
            return None
        if body.tag == f"{{{E.RS}}}RegistryResponse":
            return body
        return body if body.tag.endswith("}AdhocQueryResponse") else body.find(f"{{{E.RS}}}RegistryResponse")

    @property
    def registry_status(self) -> str:
        node = self.registry()
        return (node.get("status") or "").rpartition(":")[2] if node is not None else ""

    def errors(self):
        from connectors.dmp import errors as E

        return E.from_registry_errors(self.registry())

    def said(self) -> str:
        """The answer in a few words, for the report."""
        if self.unreadable:
            return f"HTTP {self.status}, {self.unreadable}"
        if self.fault:
            return f"HTTP {self.status}, faute SOAP {self.fault[0]} « {self.fault[1][:160]} »"
        errors = "; ".join(e.line()[:160] for e in self.errors())
        return f"HTTP {self.status}, statut {self.registry_status or 'absent'}" + (f", {errors}" if errors else "")


def _options(endpoint: Endpoint) -> dict[str, str]:
    return {k.strip().lower().replace("_", "-"): v for k, v in endpoint.options.items()}


class DmpSession(SessionBase):
    def __init__(self, endpoint: Endpoint):
        from connectors.dmp.connector import DmpSettings

        self.endpoint, self.source = endpoint, SOURCE
        self.options = _options(endpoint)
        self.base = endpoint.base_url.rstrip("/")
        self.state: dict = {}
        self.run_id = uuid.uuid4().hex[:10]
        self.missing = [name for name in REQUIRED if not self.options.get(name)]
        known = {f.name for f in fields(DmpSettings)}
        values = {k.replace("-", "_"): v for k, v in self.options.items() if k.replace("-", "_") in known}
        values.update(base_url=self.base, finess=self.options.get("finess", "000000000"),
                      client_cert=endpoint.client_cert, client_key=endpoint.client_key, ca_file=endpoint.ca_file)
        self._seal = None
        self.patient, self.unknown_patient, self.config_error = self._patients()
        if self.options.get("finess") and not re.fullmatch(r"(?:[0-9]{2}|2[AB])[0-9]{7}", self.options["finess"]):
            self.config_error = f"option finess={self.options['finess']!r} : numéro FINESS de 9 caractères attendu"
            values["finess"] = "000000000"
        try:
            self.settings = DmpSettings.from_mapping(values)
            context = self.tls_context()
        except (OSError, ValueError, TypeError, ssl.SSLError) as exc:  # unreadable files or values: said, not raised
            self.settings = DmpSettings(base_url=self.base, finess=values["finess"])
            self.config_error = f"configuration TLS ou options illisibles ({type(exc).__name__} : {exc})"
            context = None
        self.http = httpx.Client(verify=context or True, timeout=endpoint.timeout)

    def close(self) -> None:
        self.http.close()

    # --- configuration ------------------------------------------------------------------------
    def _patients(self) -> tuple[str, str, str | None]:
        from pydantic import ValidationError

        from gateway.model.identity import Ins, ins_check_key

        raw = self.options.get("ins", "")
        value, _, rest = raw.partition("^^^&")
        oid = rest.partition("&")[0] if rest else self.options.get("ins-oid", TEST_INS_OID)
        error = None
        if raw:
            try:
                Ins(value=value, oid=oid)
            except ValidationError as exc:
                error = f"option ins={raw!r} : {exc.errors()[0]['msg']}"
        patient = f"{value}^^^&{oid}&ISO^NH"
        unknown = self.options.get("unknown-ins")
        if not unknown:  # a test INS made for the run: nobody has a DMP for it
            base = "2" + str(int(uuid.uuid4().int % 10**12)).zfill(12)
            unknown = f"{base}{ins_check_key(base):02d}"
        if "^" not in unknown:
            unknown = f"{unknown}^^^&{TEST_INS_OID}&ISO^NH"
        return patient, unknown, error

    def seal(self):
        from connectors.dmp import vihf

        if self._seal is None:
            self._seal = vihf.Seal.from_files(self.options["seal-cert"], self.options["seal-key"])
        return self._seal

    def claims(self, patient: str, secret: bool = False):
        """The VIHF claims Relais's DMP connector sends (an automaton of the structure)."""
        from connectors.dmp import vihf

        s = self.settings
        return vihf.Claims(structure_id=s.structure_id or f"1{s.finess}",
                           subject_name_id=s.responsible_id or f"3{s.finess}/RELAIS",
                           subject_id=f"{s.lps_name}, Relais passerelle (conformité), {s.platform_name}",
                           patient=patient, sector=s.sector, secret_connection=secret, lps_id=s.lps_id,
                           lps_name=s.lps_name, lps_version=s.lps_version, lps_homologation=s.lps_homologation,
                           version=s.vihf_version)

    # --- exchanges ------------------------------------------------------------------------------
    def post(self, path: str, action: str, body: etree._Element, *, patient: str, attachments: list | None = None,
             vihf_mode: str = "signed", where: str = "") -> Answer:
        """One SOAP 1.2 request; `vihf_mode` "signed" (normal), "none" (no wsse:Security) or
        "tampered" (an attribute changed after signing). A transport failure fails the test."""
        from connectors.dmp import soap, vihf

        url = self.base + path
        security = None
        if vihf_mode != "none":
            security = vihf.build(self.claims(patient), self.seal(), now=dt.datetime.now(dt.UTC))
            if vihf_mode == "tampered":
                for value in security.iter(f"{{{vihf.SAML}}}AttributeValue"):
                    if value.getparent().get("Name") == "LPS_Nom":
                        value.text = (value.text or "") + " (modifié après signature)"
        message_id = soap.new_message_id()
        raw = soap.envelope(action, body, to=url, message_id=message_id, security=security)
        if attachments is not None:
            content_type, data = soap.mtom(raw, attachments, action=action)
        else:
            content_type, data = soap.soap_content_type(action), raw
        try:
            response = self.http.post(url, content=data, headers={"Content-Type": content_type})
        except httpx.HTTPError as exc:
            self.fail("dmp-transport", f"{where or path} : échange impossible ({type(exc).__name__} : {exc})")
        answer = Answer(response.status_code, message_id=message_id)
        try:
            answer.message = soap.read_message(response.headers.get("content-type", ""), response.content)
        except soap.SoapRefused as exc:
            answer.unreadable = f"réponse qui n'est pas un message SOAP 1.2 ({exc.reason[:160]})"
        return answer

    # --- judging answers --------------------------------------------------------------------------
    def expect_success(self, answer: Answer, response_action: str, where: str) -> bool:
        """HTTP 200, a SOAP 1.2 answer with the response action and RelatesTo our MessageID,
        status Success and no RegistryError of severity error."""
        if not self.check(answer.message is not None and answer.fault is None and answer.status == 200,
                          "dmp-success", f"{where} : {answer.said()}, succès attendu"):
            return False
        message = answer.message
        self.check(message.action == response_action, "wsa-response-action",
                   f"{where} : wsa:Action de la réponse {message.action!r}, {response_action} attendue "
                   "(WS-Addressing 1.0 ; IHE ITI TF-2x annexe V)")
        relates = message.header("wsa:RelatesTo")
        self.check(relates is not None and (relates.text or "").strip() == answer.message_id, "wsa-relates-to",
                   f"{where} : wsa:RelatesTo {(relates.text or '').strip() if relates is not None else 'absent'}, "
                   f"{answer.message_id} attendu (WS-Addressing 1.0 §3.4)")
        errors = [e for e in answer.errors() if e.severity == "error"]
        return self.check(answer.registry_status == "Success" and not errors, "registry-status",
                          f"{where} : {answer.said()}, Success attendu")

    def expect_registry_error(self, answer: Answer, codes: tuple[str, ...], where: str, requirement: str) -> None:
        """A RegistryResponse with status Failure and a RegistryError of one of `codes`."""
        if answer.message is None or answer.fault is not None:
            self.fail("registry-error-expected", f"{where} : {answer.said()} ; attendu : RegistryResponse Failure "
                      f"avec {' ou '.join(codes)} — {requirement}")
        found = [e.code for e in answer.errors() if e.severity == "error"]
        if answer.registry_status != "Failure" or not set(found) & set(codes):
            self.fail("registry-error-code", f"{where} : {answer.said()} ; attendu : Failure avec "
                      f"{' ou '.join(codes)} — {requirement}")

    def expect_fault(self, answer: Answer, codes: frozenset[str] | tuple[str, ...], where: str, requirement: str) -> None:
        """A SOAP 1.2 fault whose subcode is one of `codes` (local names), HTTP 400 or 500
        (SOAP 1.2 Part 2 §7.5.2: env:Sender → 400, otherwise 500)."""
        if answer.fault is None:
            self.fail("soap-fault-expected", f"{where} : {answer.said()} ; attendu : faute SOAP "
                      f"({', '.join(sorted(codes))}) — {requirement}")
        self.check(answer.fault_code in codes, "soap-fault-code",
                   f"{where} : faute SOAP {answer.fault[0]} ; attendu : {' ou '.join(sorted(codes))} — {requirement}")
        self.check(answer.status in (400, 500), "soap-fault-status",
                   f"{where} : faute SOAP en HTTP {answer.status}, 400 ou 500 attendu (SOAP 1.2 partie 2 §7.5.2)")
