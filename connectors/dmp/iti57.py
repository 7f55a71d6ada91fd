"""ITI-57 Update Document Set (IHE ITI TF-2b §3.57; DMP TD3.3a-d attribute changes, specs §5.1):
deprecate (or approve again) a document, and change its visibility (masking to professionals,
invisible to the patient / to the legal representatives) by submitting a new version of its
DocumentEntry metadata — the previous version becomes Deprecated. The SubmissionSet comes from
mappings.xds (`metadata_update`); the answer is a `RegistryResponse`, read as ITI-41's."""

from __future__ import annotations

import copy
import datetime as dt
import uuid

from lxml import etree

from connectors.dmp.iti18 import APPROVED, DEPRECATED, DocumentEntry
from connectors.dmp.iti41 import parse_response  # noqa: F401  (same RegistryResponse)
from mappings.xds import metadata as M

ACTION = "urn:ihe:iti:2010:UpdateDocumentSet"
RESPONSE_ACTION = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
STATUSES = {"approved": APPROVED, "deprecated": DEPRECATED}


def status_update(entry: DocumentEntry, new_status: str, *, finess: str, platform_name: str,
                  now: dt.datetime) -> bytes:
    if new_status not in STATUSES.values():
        raise ValueError(f"statut inconnu : {new_status}")
    return M.metadata_update(patient=entry.patient_id, finess=finess, platform_name=platform_name, now=now,
                             seed=f"status|{entry.entry_uuid}|{new_status}|{now.isoformat()}",
                             status_change=(entry.entry_uuid, entry.status, new_status))


def visibility_update(entry: DocumentEntry, visibility: tuple[str, ...], *, finess: str, platform_name: str,
                      now: dt.datetime) -> bytes:
    """A new version of `entry`'s metadata whose TRE_A07 confidentiality classifications are
    exactly `visibility` (the HL7 N/R/V code is kept)."""
    unknown = [v for v in visibility if v not in M.VISIBILITY]
    if unknown or entry.element is None:
        raise ValueError(f"code de visibilité DMP inconnu : {', '.join(unknown)}" if unknown
                         else "métadonnées complètes du document requises (ITI-18 LeafClass)")
    node = copy.deepcopy(entry.element)
    new_id = f"urn:uuid:{uuid.uuid4()}"
    old_id = node.get("id")
    node.set("id", new_id)
    node.set("lid", entry.logical_id or old_id)
    for tag in ("VersionInfo", "ContentVersionInfo"):
        for found in node.findall(f"{{{M.RIM}}}{tag}"):
            node.remove(found)
    for child in node:
        for attr in ("classifiedObject", "registryObject"):
            if child.get(attr) == old_id:
                child.set(attr, new_id)
        if child.get("id", "").startswith("urn:uuid:"):
            child.set("id", f"urn:uuid:{uuid.uuid4()}")
    scheme = M.DE_CONFIDENTIALITY
    for found in node.xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces={"rim": M.RIM}):
        if found.xpath("rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value/text()",
                       namespaces={"rim": M.RIM}) == [M.TRE_A07]:
            node.remove(found)
    anchor = node.xpath(f"rim:Classification[@classificationScheme='{scheme}']", namespaces={"rim": M.RIM})
    position = node.index(anchor[-1]) + 1 if anchor else len(node)
    for offset, code in enumerate(visibility):
        holder = etree.Element("holder")
        M._classification(holder, new_id, scheme, (code, M.VISIBILITY[code], M.TRE_A07), offset + 100)
        node.insert(position + offset, holder[0])
    return M.metadata_update(patient=entry.patient_id, finess=finess, platform_name=platform_name, now=now,
                             seed=f"version|{new_id}", new_version=node, previous_version=entry.version or "1")
