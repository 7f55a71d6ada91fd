"""IHE XDM package (ITI TF-1 §16, ITI-32 "Distribute Document Set on Media", TF-2b §3.32) as the
CI-SIS "Echange de documents de santé" volet uses it for MSSanté (specs §4.2):

    INDEX.HTM                  human-readable index linking every document
    README.TXT                 who made the medium (software, version, contact)
    IHE_XDM/SUBSET01/          one folder per submission set
        METADATA.XML           ebRIM SubmitObjectsRequest (mappings.xds, with the `URI` slot)
        DOC0001.XML            the CDA R2 document

8.3 upper-case names; every DocumentEntry carries `hash` (SHA-1), `size` and `URI`. When the
document replaces an earlier version the ANS extra slot `action` = `C` is added (`D` for a
deletion) — slot name and form decided in README "MSSanté" (specs §4.2, §12).

`pack_plan` writes the archive (deterministic: same plan, time and ids → same bytes);
`read` opens an untrusted one (zipsafe limits first, nothing written); `check` compares
METADATA.XML with the documents (hash, size, ids, layout) and returns problems.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from html import escape

from lxml import etree

from connectors.mss.zipsafe import ArchiveRefused, Limits, Member, read_archive
from gateway.model import Plan, Problem, Severity
from mappings.cda import constants as C
from mappings.cda.xmlsafe import UnsafeXml, parse_xml
from mappings.xds import metadata as M

SOURCE = "relais-xdm"
ROOT = "IHE_XDM"
INDEX, README, METADATA = "INDEX.HTM", "README.TXT", "METADATA.XML"
ACTION_SLOT = "action"  # ANS extra metadata (HL7CDA exemples.md): C = change, D = deleted
ACTIONS = ("C", "D")
INS_OIDS = set(C.INS_ROOTS)
_NAME_83 = re.compile(r"^[A-Z0-9_$~!#%&'(){}^@`-]{1,8}(\.[A-Z0-9_$~!#%&'(){}^@`-]{1,3})?$")
_NS = {"rim": M.RIM, "lcm": M.LCM}
_DOS_EPOCH = (1980, 1, 1, 0, 0, 0)


class XdmRefused(ValueError):
    """The archive cannot be read safely or is not an XDM package at all."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True)
class DocumentEntry:
    """One DocumentEntry of METADATA.XML with the file it points at."""

    subset: str
    entry_uuid: str
    unique_id: str
    uri: str
    mime_type: str
    hash: str
    size: str
    patient_id: str
    title: str
    type_code: str
    action: str | None
    content: bytes | None  # None when `uri` names no file of the subset

    @property
    def ins(self) -> tuple[str, str] | None:
        """(matricule, OID) when patientId is an INS (CX `value^^^&OID&ISO^NH`)."""
        return ins_of(self.patient_id)


@dataclass(frozen=True)
class XdmPackage:
    members: tuple[Member, ...]
    entries: tuple[DocumentEntry, ...] = ()
    metadata_problems: tuple[Problem, ...] = field(default=())

    def file(self, name: str) -> bytes | None:
        for member in self.members:
            if member.name.upper() == name.upper() and not member.is_dir:
                return member.data
        return None

    @property
    def subsets(self) -> list[str]:
        found = {m.name.split("/")[1] for m in self.members
                 if m.name.upper().startswith(ROOT + "/") and len(m.name.strip("/").split("/")) >= 2}
        return sorted(found)


@dataclass(frozen=True)
class Packed:
    archive: bytes  # IHE_XDM.zip
    cda: bytes
    metadata: bytes
    document_id: str


def ins_of(patient_id: str) -> tuple[str, str] | None:
    value, _, rest = patient_id.partition("^^^&")
    oid = rest.split("&", 1)[0]
    return (value, oid) if value and oid in INS_OIDS else None


def _problem(rule: str, message: str, location: str = "/", severity=Severity.error) -> Problem:
    return Problem(location=location, rule=rule, message=message, severity=severity, source=SOURCE)


# ------------------------------------------------------------------------------------ writing

def _zip_time(now: dt.datetime) -> tuple[int, int, int, int, int, int]:
    local = now.astimezone(dt.timezone.utc)
    return max((local.year, local.month, local.day, local.hour, local.minute, local.second & ~1),
               _DOS_EPOCH)


def write_archive(files: list[tuple[str, bytes]], date_time: tuple[int, int, int, int, int, int]) -> bytes:
    """A deterministic ZIP: directory entries first, fixed times and attributes (MS-DOS)."""
    buffer = io.BytesIO()
    directories: list[str] = []
    for name, _ in files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth]) + "/"
            if folder not in directories:
                directories.append(folder)
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder in directories:
            info = zipfile.ZipInfo(folder, date_time)
            info.create_system = 0
            info.external_attr = 0x10  # MS-DOS directory attribute
            archive.writestr(info, b"")
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time)
            info.create_system = 0
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0x20  # MS-DOS archive attribute
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()


def _with_action(metadata: bytes, action: str) -> bytes:
    """METADATA.XML of mappings.xds plus the ANS `action` slot on the DocumentEntry."""
    if action not in ACTIONS:
        raise ValueError(f"action XDM inconnue : {action} (C ou D)")
    root = etree.fromstring(metadata)
    entry = root.find("rim:RegistryObjectList/rim:ExtrinsicObject", _NS)
    slots = entry.findall("rim:Slot", _NS)
    slot = etree.Element(f"{{{M.RIM}}}Slot", name=ACTION_SLOT)
    etree.SubElement(etree.SubElement(slot, f"{{{M.RIM}}}ValueList"), f"{{{M.RIM}}}Value").text = action
    slots[-1].addnext(slot)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def index_htm(entries: list[tuple[str, str]]) -> bytes:
    """INDEX.HTM: one link per document (relative path, title)."""
    rows = "\n".join(f'<li><a href="{escape(path)}">{escape(title)}</a> ({escape(path)})</li>'
                     for path, title in entries)
    return ("<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">"
            "<title>Documents de santé (IHE XDM)</title></head><body>\n"
            "<h1>Documents de santé</h1>\n<p>Support d'échange IHE XDM produit par Relais. "
            "Chaque document est un document CDA R2 ; ses métadonnées sont dans METADATA.XML.</p>\n"
            f"<ul>\n{rows}\n</ul>\n</body></html>\n").encode("utf-8")


def readme_txt(now: dt.datetime) -> bytes:
    from gateway import __version__ as version

    return ("Support IHE XDM (ITI-32) - echange de documents de sante (CI-SIS)\r\n"
            f"Logiciel : {C.SOFTWARE_NAME} {version} ({C.SOFTWARE_MANUFACTURER})\r\n"
            "Contact : l'editeur du DUI de la plateforme emettrice\r\n"
            f"Cree le : {now.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}\r\n"
            "Contenu : INDEX.HTM (index), IHE_XDM/SUBSET01/METADATA.XML (metadonnees XDS),\r\n"
            "          IHE_XDM/SUBSET01/DOC0001.XML (document CDA R2)\r\n").encode("ascii")


def pack_plan(plan: Plan, *, now: dt.datetime, ids=None, confidentiality: str = "N",
              require_ins: bool = False, action: str | None = None) -> Packed:
    """The plan as a CDA R2 document in an IHE_XDM.zip (one subset, one document)."""
    from mappings.cda import document_ids, plan_to_cda
    from mappings.xds import Destination, submit_objects_request

    ids = ids or document_ids(plan)
    name = "DOC0001.XML"
    cda = plan_to_cda(plan, now=now, ids=ids, confidentiality=confidentiality)
    metadata = submit_objects_request(plan, cda, ids, now=now, confidentiality=confidentiality,
                                      destination=Destination(uri=name, require_ins=require_ins))
    action = action or ("C" if ids.replaces else None)
    if action:
        metadata = _with_action(metadata, action)
    subset = f"{ROOT}/SUBSET01"
    files = [(INDEX, index_htm([(f"{subset}/{name}", plan.title)])), (README, readme_txt(now)),
             (f"{subset}/{METADATA}", metadata), (f"{subset}/{name}", cda)]
    return Packed(write_archive(files, _zip_time(now)), cda, metadata, ids.document_id)


def repack(package: XdmPackage) -> bytes:
    """Write a read package again (same names, order and times): the round-trip check."""
    files = [(m.name, m.data) for m in package.members if not m.is_dir]
    stamp = next((m.date_time for m in package.members), _DOS_EPOCH)
    return write_archive(files, stamp)


# ------------------------------------------------------------------------------------ reading

def read(data: bytes, limits: Limits = Limits()) -> XdmPackage:
    """Open an untrusted IHE_XDM.zip: `XdmRefused` when hostile or not XDM at all."""
    try:
        members = tuple(read_archive(data, limits))
    except ArchiveRefused as exc:
        raise XdmRefused(exc.rule, exc.reason) from None
    if not any(m.name.upper().startswith(ROOT + "/") for m in members):
        raise XdmRefused("xdm-no-ihe-xdm-folder", "pas de répertoire IHE_XDM/ : ce n'est pas un paquet XDM")
    package = XdmPackage(members)
    entries: list[DocumentEntry] = []
    problems: list[Problem] = []
    for subset in package.subsets:
        raw = package.file(f"{ROOT}/{subset}/{METADATA}")
        if raw is None:
            problems.append(_problem("xdm-metadata-missing", f"{METADATA} absent du lot {subset}",
                                     f"{ROOT}/{subset}"))
            continue
        try:
            tree = parse_xml(raw)
        except UnsafeXml as exc:
            problems.append(_problem("xdm-metadata-unreadable", f"{METADATA} du lot {subset} illisible : "
                                     f"{exc.problem.message}", f"{ROOT}/{subset}/{METADATA}"))
            continue
        entries.extend(_entries(package, subset, tree.getroot()))
    return XdmPackage(members, tuple(entries), tuple(problems))


def _slot(node, name: str) -> str:
    values = node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=_NS)
    return values[0].strip() if values else ""


def _external(node, scheme: str) -> str:
    found = node.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value", namespaces=_NS)
    return found[0] if found else ""


def _entries(package: XdmPackage, subset: str, root) -> list[DocumentEntry]:
    out = []
    for node in root.xpath("//rim:ExtrinsicObject", namespaces=_NS):
        uri = _slot(node, "URI")
        title = node.xpath("rim:Name/rim:LocalizedString/@value", namespaces=_NS)
        type_code = node.xpath(f"rim:Classification[@classificationScheme='{M.DE_TYPE}']/@nodeRepresentation",
                               namespaces=_NS)
        out.append(DocumentEntry(
            subset=subset, entry_uuid=node.get("id", ""), unique_id=_external(node, M.DE_UNIQUE_ID),
            uri=uri, mime_type=node.get("mimeType", ""), hash=_slot(node, "hash").lower(),
            size=_slot(node, "size"), patient_id=_external(node, M.DE_PATIENT_ID),
            title=title[0] if title else "", type_code=type_code[0] if type_code else "",
            action=_slot(node, ACTION_SLOT) or None,
            content=package.file(f"{ROOT}/{subset}/{uri}") if uri and "/" not in uri else None))
    return out


def cda_unique_id(cda: bytes) -> str | None:
    """ClinicalDocument/id as an XDS uniqueId: `root` or `root^extension`."""
    try:
        root = parse_xml(cda).getroot()
    except UnsafeXml:
        return None
    node = root.find(f"{{{C.NS}}}id")
    if node is None or not node.get("root"):
        return None
    return node.get("root") + (f"^{node.get('extension')}" if node.get("extension") else "")


def cda_code(cda: bytes) -> str | None:
    try:
        root = parse_xml(cda).getroot()
    except UnsafeXml:
        return None
    node = root.find(f"{{{C.NS}}}code")
    return node.get("code") if node is not None else None


def check(package: XdmPackage) -> list[Problem]:
    """The XDM checks: layout and 8.3 names, METADATA.XML against the documents (hash, size,
    uniqueId = the CDA's id, URI), patientId present, the `action` slot's value."""
    problems = list(package.metadata_problems)
    names = [m.name.rstrip("/") for m in package.members]
    for name in names:
        for part in name.split("/"):
            if not _NAME_83.match(part):
                rule = "xdm-name-case" if _NAME_83.match(part.upper()) else "xdm-name-not-8.3"
                severity = Severity.warning if rule == "xdm-name-case" else Severity.error
                problems.append(_problem(rule, f"nom « {name} » : les noms XDM sont au format 8.3 en "
                                         "majuscules", name, severity))
                break
    upper = {n.upper() for n in names}
    for required in (INDEX, README):
        if required not in upper:
            problems.append(_problem("xdm-root-file-missing", f"{required} absent de la racine du paquet",
                                     required, Severity.warning))
    if not package.subsets:
        problems.append(_problem("xdm-no-subset", "aucun lot IHE_XDM/SUBSETnn dans le paquet", ROOT))
    referenced = set()
    for entry in package.entries:
        where = f"{ROOT}/{entry.subset}/{METADATA}#{entry.entry_uuid}"
        if not entry.uri:
            problems.append(_problem("xdm-uri-missing", "DocumentEntry sans slot URI", where))
            continue
        path = f"{ROOT}/{entry.subset}/{entry.uri}"
        if path.upper() in referenced:  # before hashing: thousands of entries may name one large file
            problems.append(_problem("xdm-uri-duplicate", f"le document {entry.uri} est décrit par plusieurs "
                                     f"DocumentEntry de {METADATA}", where))
            continue
        referenced.add(path.upper())
        if entry.content is None:
            problems.append(_problem("xdm-document-missing", f"le document {entry.uri} annoncé par "
                                     f"{METADATA} est absent du lot {entry.subset}", where))
            continue
        if not entry.hash:
            problems.append(_problem("xdm-hash-missing", f"slot hash absent pour {entry.uri}", where))
        elif hashlib.sha1(entry.content).hexdigest() != entry.hash:
            problems.append(_problem("xdm-hash-mismatch", f"empreinte SHA-1 de {entry.uri} différente de "
                                     f"celle de {METADATA}", where))
        if not entry.size:
            problems.append(_problem("xdm-size-missing", f"slot size absent pour {entry.uri}", where))
        elif entry.size != str(len(entry.content)):
            problems.append(_problem("xdm-size-mismatch", f"taille de {entry.uri} ({len(entry.content)} "
                                     f"octets) différente de {METADATA} ({entry.size})", where))
        if not entry.patient_id:
            problems.append(_problem("xdm-patient-id-missing", "patientId absent du DocumentEntry", where))
        if entry.action is not None and entry.action not in ACTIONS:
            problems.append(_problem("xdm-action-unknown", f"valeur du slot action inconnue : {entry.action} "
                                     "(C ou D)", where))
        if entry.mime_type in ("text/xml", "application/xml", "application/hl7-v3+xml"):
            unique = cda_unique_id(entry.content)
            if unique is None:
                problems.append(_problem("xdm-cda-unreadable", f"{entry.uri} n'est pas un document CDA lisible",
                                         path))
            elif not entry.unique_id:
                problems.append(_problem("xdm-unique-id-missing", "uniqueId absent du DocumentEntry", where))
            elif unique != entry.unique_id:
                problems.append(_problem("xdm-unique-id-mismatch", f"uniqueId de {METADATA} ({entry.unique_id}) "
                                         f"différent de l'identifiant du CDA ({unique})", where))
    for member in package.members:
        parts = member.name.strip("/").split("/")
        if (not member.is_dir and len(parts) == 3 and parts[0].upper() == ROOT
                and parts[2].upper() != METADATA and member.name.upper() not in referenced):
            problems.append(_problem("xdm-document-not-described", f"{member.name} n'est décrit par aucun "
                                     f"DocumentEntry de {METADATA}", member.name, Severity.warning))
    return problems


def extract(package: XdmPackage, directory) -> list[str]:
    """Write a read (hence already checked) package under `directory`, which must be empty or
    absent. Files are created exclusively, never through a link; returns the paths written."""
    import os
    from pathlib import Path

    target = Path(directory).resolve()
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"le répertoire {directory} n'est pas vide")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for member in package.members:
        path = (target / member.name.rstrip("/")).resolve()
        if path != target and target not in path.parents:
            raise XdmRefused("zip-name-traversal", f"chemin hors du répertoire : {member.name}")
        if member.is_dir:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(member.data)
        written.append(member.name)
    return written
