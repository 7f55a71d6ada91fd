"""ITI-18 Registry Stored Query (IHE ITI TF-2a §3.18; DMP TD3.1 list, specs §5.1): FindDocuments
(the person's documents by patientId and status) and GetDocuments (by entryUUID or uniqueId),
answered as LeafClass `ExtrinsicObject`s, read here into `DocumentEntry` summaries."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from connectors.dmp import errors as E
from connectors.dmp import soap
from mappings.xds import metadata as M

ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
RESPONSE_ACTION = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM = M.RIM
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
FIND_SUBMISSION_SETS = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
GET_ALL = "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3"
APPROVED = M.APPROVED
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
NS = {"query": QUERY, "rim": RIM, "rs": E.RS}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _slot(parent, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, f"{{{RIM}}}Slot", name=name)
    holder = etree.SubElement(slot, f"{{{RIM}}}ValueList")
    for value in values:
        etree.SubElement(holder, f"{{{RIM}}}Value").text = value


def _query(query_id: str, slots: list[tuple[str, str]], return_type: str = "LeafClass") -> etree._Element:
    root = etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={"query": QUERY, "rim": RIM})
    etree.SubElement(root, f"{{{QUERY}}}ResponseOption", returnComposedObjects="true", returnType=return_type)
    adhoc = etree.SubElement(root, f"{{{RIM}}}AdhocQuery", id=query_id)
    for name, value in slots:
        _slot(adhoc, name, value)
    return root


def find_documents(patient_cx: str, statuses: tuple[str, ...] = (APPROVED,), type_codes: tuple[str, ...] = ()) -> etree._Element:
    slots = [("$XDSDocumentEntryPatientId", _quote(patient_cx)),
             ("$XDSDocumentEntryStatus", "(" + ",".join(_quote(s) for s in statuses) + ")")]
    if type_codes:
        slots.append(("$XDSDocumentEntryTypeCode", "(" + ",".join(_quote(c) for c in type_codes) + ")"))
    return _query(FIND_DOCUMENTS, slots)


def get_documents(*, entry_uuids: tuple[str, ...] = (), unique_ids: tuple[str, ...] = ()) -> etree._Element:
    if bool(entry_uuids) == bool(unique_ids):
        raise ValueError("GetDocuments : entryUUID ou uniqueId, l'un des deux")
    name, values = (("$XDSDocumentEntryEntryUUID", entry_uuids) if entry_uuids
                    else ("$XDSDocumentEntryUniqueId", unique_ids))
    return _query(GET_DOCUMENTS, [(name, "(" + ",".join(_quote(v) for v in values) + ")")])


@dataclass(frozen=True)
class DocumentEntry:
    entry_uuid: str
    unique_id: str
    status: str
    patient_id: str
    mime_type: str
    hash: str
    size: int
    repository_unique_id: str
    title: str
    creation_time: str
    type_code: str
    confidentiality: tuple[str, ...] = ()
    logical_id: str | None = None
    version: str | None = None
    element: etree._Element | None = field(default=None, compare=False, repr=False)

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    def summary(self) -> dict:
        return {"entryUUID": self.entry_uuid, "uniqueId": self.unique_id, "status": self.status.rsplit(":", 1)[-1],
                "title": self.title, "creationTime": self.creation_time, "typeCode": self.type_code,
                "confidentiality": list(self.confidentiality), "hash": self.hash, "size": self.size,
                "repositoryUniqueId": self.repository_unique_id, "version": self.version}


def _slot_values(node, name: str) -> list[str]:
    return node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)


def _one(node, name: str) -> str:
    values = _slot_values(node, name)
    return values[0] if values else ""


def read_entry(node: etree._Element) -> DocumentEntry:
    def external(scheme):
        found = node.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value", namespaces=NS)
        return found[0] if found else ""

    def codes(scheme):
        return tuple(node.xpath(f"rim:Classification[@classificationScheme='{scheme}']/@nodeRepresentation",
                                namespaces=NS))

    size = _one(node, "size")
    return DocumentEntry(
        entry_uuid=node.get("id", ""), unique_id=external(M.DE_UNIQUE_ID), status=node.get("status", ""),
        patient_id=external(M.DE_PATIENT_ID), mime_type=node.get("mimeType", ""), hash=_one(node, "hash"),
        size=int(size) if size.isdigit() else -1, repository_unique_id=_one(node, "repositoryUniqueId"),
        title=(node.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS) or [""])[0],
        creation_time=_one(node, "creationTime"), type_code=(codes(M.DE_TYPE) or ("",))[0],
        confidentiality=codes(M.DE_CONFIDENTIALITY), logical_id=node.get("lid"),
        version=(node.xpath("rim:VersionInfo/@versionName", namespaces=NS) or [None])[0], element=node)


@dataclass(frozen=True)
class Result:
    status: str
    entries: list[DocumentEntry]
    errors: list[E.PeerError]

    @property
    def ok(self) -> bool:
        return self.status in (E.SUCCESS, E.PARTIAL) and not any(e.severity == "error" for e in self.errors)


def parse_response(message: soap.Message) -> Result:
    node = message.body
    if node is None or node.tag != f"{{{QUERY}}}AdhocQueryResponse":
        raise ValueError(f"réponse ITI-18 inattendue : {node.tag if node is not None else 'corps vide'}")
    entries = [read_entry(e) for e in node.iterfind("rim:RegistryObjectList/rim:ExtrinsicObject", NS)]
    return Result(node.get("status", ""), entries, E.from_registry_errors(node))
