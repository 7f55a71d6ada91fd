"""What kind of artefact a file is, from its bytes (never from its name alone).

- a ZIP (`PK\\x03\\x04`) → IHE XDM archive;
- a MIME multipart message (MTOM/XOP) or a SOAP envelope → ITI-41 Provide and Register;
- XML: `ClinicalDocument` (urn:hl7-org:v3) → CDA R2, `SubmitObjectsRequest` (ebRIM lcm 3.0) →
  XDS metadata, `ProvideAndRegisterDocumentSetRequest` → ITI-41 body, any element in the FHIR
  namespace → FHIR XML;
- JSON with `resourceType` → FHIR JSON.
"""

from __future__ import annotations

import re

from gateway.conformance.runner.results import CDA, FHIR_JSON, FHIR_XML, ITI41, UNKNOWN, XDM, XDS

FHIR_NS = "http://hl7.org/fhir"
CDA_NS = "urn:hl7-org:v3"
LCM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDSB_NS = "urn:ihe:iti:xds-b:2007"
SOAP_NS = ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/")
_ROOT = re.compile(rb"<\s*(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)([^>]*)>", re.S)
_SKIP = re.compile(rb"<\?.*?\?>|<!--.*?-->", re.S)


def _root_element(head: bytes) -> tuple[str, str] | None:
    """(namespace, local name) of the first element, read from the first bytes only."""
    text = _SKIP.sub(b"", head)
    found = _ROOT.search(text)
    if not found:
        return None
    prefix, local, attrs = found.group(1), found.group(2), found.group(3)
    wanted = b"xmlns:" + prefix if prefix else b"xmlns"
    ns = re.search(re.escape(wanted) + rb"""\s*=\s*["']([^"']*)["']""", attrs)
    return (ns.group(1).decode("utf-8", "replace") if ns else ""), local.decode("ascii", "replace")


def detect(data: bytes) -> str:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return XDM
    if head.startswith(b"{"):
        return FHIR_JSON if b'"resourceType"' in data[:1_000_000] else UNKNOWN
    if head.startswith(b"--") or re.match(rb"(?i)(mime-version|content-type)\s*:", head):
        return ITI41 if b"xop" in data.lower() or b"multipart/related" in head.lower() else UNKNOWN
    if head.startswith(b"<"):
        root = _root_element(head)
        if root is None:
            return UNKNOWN
        ns, local = root
        if ns == CDA_NS and local == "ClinicalDocument":
            return CDA
        if ns == LCM_NS and local == "SubmitObjectsRequest":
            return XDS
        if ns in SOAP_NS and local == "Envelope":
            return ITI41
        if ns == XDSB_NS and local == "ProvideAndRegisterDocumentSetRequest":
            return ITI41
        if ns == FHIR_NS:
            return FHIR_XML
    return UNKNOWN
