"""ITI-43 Retrieve Document Set (IHE ITI TF-2b §3.43; DMP TD3.2, specs §5.1): documents by
repository and uniqueId, request and response in MTOM; each returned document is an MTOM part
(or inline base64, which the standard also allows)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lxml import etree

from connectors.dmp import errors as E
from connectors.dmp import soap

ACTION = "urn:ihe:iti:2007:RetrieveDocumentSet"
RESPONSE_ACTION = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
XDSB = "urn:ihe:iti:xds-b:2007"
NS = {"xdsb": XDSB, "rs": E.RS, "xop": soap.XOP}


def request(repository_unique_id: str, unique_ids: list[str]) -> etree._Element:
    root = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetRequest", nsmap={"xdsb": XDSB})
    for unique_id in unique_ids:
        item = etree.SubElement(root, f"{{{XDSB}}}DocumentRequest")
        etree.SubElement(item, f"{{{XDSB}}}RepositoryUniqueId").text = repository_unique_id
        etree.SubElement(item, f"{{{XDSB}}}DocumentUniqueId").text = unique_id
    return root


def requested(body: etree._Element) -> list[tuple[str, str]]:
    """(repositoryUniqueId, documentUniqueId) pairs of a request (sandbox side)."""
    return [(r.findtext("xdsb:RepositoryUniqueId", "", NS).strip(), r.findtext("xdsb:DocumentUniqueId", "", NS).strip())
            for r in body.iterfind("xdsb:DocumentRequest", NS)]


@dataclass(frozen=True)
class Retrieved:
    repository_unique_id: str
    unique_id: str
    mime_type: str
    content: bytes


def response(status: str, documents: list[Retrieved], errors: etree._Element | None = None
             ) -> tuple[etree._Element, list[tuple[str, str, bytes]]]:
    root = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetResponse", nsmap={"xdsb": XDSB, "rs": E.RS})
    registry = etree.SubElement(root, f"{{{E.RS}}}RegistryResponse", status=status)
    if errors is not None:
        registry.append(errors)
    attachments = []
    for n, doc in enumerate(documents, start=1):
        item = etree.SubElement(root, f"{{{XDSB}}}DocumentResponse")
        etree.SubElement(item, f"{{{XDSB}}}RepositoryUniqueId").text = doc.repository_unique_id
        etree.SubElement(item, f"{{{XDSB}}}DocumentUniqueId").text = doc.unique_id
        etree.SubElement(item, f"{{{XDSB}}}mimeType").text = doc.mime_type
        cid = f"retrieved{n}@dmp"
        soap.xop_include(etree.SubElement(item, f"{{{XDSB}}}Document"), cid)
        attachments.append((cid, doc.mime_type, doc.content))
    return root, attachments


@dataclass(frozen=True)
class Result:
    status: str
    documents: list[Retrieved]
    errors: list[E.PeerError]


def parse_response(message: soap.Message) -> Result:
    node = message.body
    if node is None or node.tag != f"{{{XDSB}}}RetrieveDocumentSetResponse":
        raise ValueError(f"réponse ITI-43 inattendue : {node.tag if node is not None else 'corps vide'}")
    registry = node.find("rs:RegistryResponse", NS)
    documents = []
    for item in node.iterfind("xdsb:DocumentResponse", NS):
        holder = item.find("xdsb:Document", NS)
        include = holder.find("xop:Include", NS) if holder is not None else None
        content = message.resolve(include) if include is not None else base64.b64decode(holder.text or "")
        documents.append(Retrieved(item.findtext("xdsb:RepositoryUniqueId", "", NS).strip(),
                                   item.findtext("xdsb:DocumentUniqueId", "", NS).strip(),
                                   item.findtext("xdsb:mimeType", "", NS).strip(), content))
    return Result(registry.get("status", "") if registry is not None else "", documents,
                  E.from_registry_errors(registry))
