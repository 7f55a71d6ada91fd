"""One error model for what the DMP answers, whichever the transport: an XDS `RegistryError`
(in a `RegistryResponse`, an `AdhocQueryResponse` or a `RetrieveDocumentSetResponse`), a SOAP
fault (WS-Security, WS-Addressing, MTOM), a FHIR `OperationOutcome` (PDSm / MHD), or a bare HTTP
status. Each becomes a `PeerError` keeping the peer's code and text, and a failed exchange
raises `TransientError` (busy, unavailable, 5xx, 429, 408) or `PermanentError` (the rest) with
`code` = the first error's code and `reason` = "[code] text; …" in the peer's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from connectors.base import DeliveryError, PermanentError, TransientError

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
# IHE ITI TF-3 Table 4.2.4.1-2: the codes that say "try again later".
TRANSIENT_CODES = frozenset({
    "XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources", "XDSRepositoryOutOfResources",
    "XDSRegistryNotAvailable", "XDSRepositoryNotAvailable", "transient", "throttled", "timeout",
})


@dataclass(frozen=True)
class PeerError:
    code: str  # XDS errorCode, SOAP fault subcode, OperationOutcome issue code, or "HTTP 503"
    text: str  # the peer's own words (codeContext, fault reason, diagnostics)
    transport: str  # "xds" | "soap" | "fhir" | "http"
    severity: str = "error"  # "error" | "warning"
    location: str | None = None
    transient: bool = False

    def line(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"[{self.code}] {self.text}{where}"


def from_registry_errors(node: etree._Element | None) -> list[PeerError]:
    """The RegistryError elements under `node` (any response carrying a RegistryErrorList)."""
    if node is None:
        return []
    out = []
    for error in node.iter(f"{{{RS}}}RegistryError"):
        code = error.get("errorCode", "XDSRegistryError")
        severity = "warning" if error.get("severity", SEVERITY_ERROR) == SEVERITY_WARNING else "error"
        out.append(PeerError(code=code, text=error.get("codeContext") or (error.text or "").strip(),
                             transport="xds", severity=severity, location=error.get("location") or None,
                             transient=code in TRANSIENT_CODES))
    return out


def response_status(node: etree._Element | None) -> str | None:
    return node.get("status") if node is not None else None


def from_soap_fault(code: str, reason: str, *, receiver: bool = False) -> PeerError:
    return PeerError(code=code, text=reason, transport="soap",
                     transient=code in TRANSIENT_CODES or (receiver and code in ("soap:Receiver", "Receiver")))


def from_operation_outcome(outcome: dict, status: int | None = None) -> list[PeerError]:
    transient = status is not None and (status >= 500 or status in (408, 429))
    out = []
    for issue in (outcome or {}).get("issue", []) or []:
        severity = issue.get("severity", "error")
        text = issue.get("diagnostics") or ((issue.get("details") or {}).get("text")) or ""
        codings = (issue.get("details") or {}).get("coding") or []
        code = codings[0].get("code") if codings and codings[0].get("code") else issue.get("code", "processing")
        where = issue.get("expression") or issue.get("location") or []
        out.append(PeerError(code=code, text=text, transport="fhir",
                             severity="warning" if severity in ("warning", "information") else "error",
                             location=where[0] if where else None,
                             transient=transient or code in TRANSIENT_CODES))
    return out or [PeerError(code=f"HTTP {status}", text="réponse sans OperationOutcome", transport="http",
                             transient=transient)]


def from_http(status: int, text: str) -> PeerError:
    return PeerError(code=f"HTTP {status}", text=text.strip()[:300] or "(corps vide)", transport="http",
                     transient=status >= 500 or status in (408, 429))


def failure(errors: list[PeerError], what: str = "") -> DeliveryError:
    """The exception for a failed exchange: transient when every error is, permanent otherwise."""
    errors = [e for e in errors if e.severity == "error"] or errors
    if not errors:
        errors = [PeerError(code="XDSRegistryError", text="échec sans erreur détaillée", transport="xds")]
    reason = (f"{what} : " if what else "") + "; ".join(e.line() for e in errors)
    if all(e.transient for e in errors):
        return TransientError(reason, code=errors[0].code)
    return PermanentError(reason, code=errors[0].code)
