"""ITI-41 Provide and Register Document Set-b (IHE ITI TF-2b §3.41; DMP TD2.1/TD2.2 feeding and
replacement, specs §5.1): the `SubmitObjectsRequest` (mappings.xds) and the documents, each an
MTOM part referenced by `xop:Include` from its `xdsb:Document`. The answer is a
`RegistryResponse` (Success, or Failure with `RegistryError`s)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from connectors.dmp import errors as E
from connectors.dmp import soap

ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
RESPONSE_ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
XDSB = "urn:ihe:iti:xds-b:2007"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"


@dataclass(frozen=True)
class Document:
    entry_uuid: str  # the ExtrinsicObject id it belongs to
    content: bytes
    mime_type: str = "text/xml"


def request(metadata: bytes, documents: list[Document]) -> tuple[etree._Element, list[tuple[str, str, bytes]]]:
    """The SOAP body and the MTOM attachments (Content-ID, media type, bytes)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    submit = etree.fromstring(metadata, parser)
    if submit.tag != f"{{{LCM}}}SubmitObjectsRequest":
        raise ValueError("métadonnées XDS : lcm:SubmitObjectsRequest attendu")
    body = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDSB})
    body.append(submit)
    attachments = []
    for n, document in enumerate(documents, start=1):
        cid = f"document{n}@relais"
        holder = etree.SubElement(body, f"{{{XDSB}}}Document", id=document.entry_uuid)
        soap.xop_include(holder, cid)
        attachments.append((cid, document.mime_type, document.content))
    return body, attachments


@dataclass(frozen=True)
class Result:
    status: str
    errors: list[E.PeerError]

    @property
    def ok(self) -> bool:
        return self.status in (E.SUCCESS, E.PARTIAL) and not any(e.severity == "error" for e in self.errors)


def parse_response(message: soap.Message) -> Result:
    node = message.body
    if node is None or node.tag != f"{{{E.RS}}}RegistryResponse":
        raise ValueError(f"réponse ITI-41 inattendue : {node.tag if node is not None else 'corps vide'}")
    return Result(node.get("status", ""), E.from_registry_errors(node))
