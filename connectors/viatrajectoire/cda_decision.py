"""The CDA "Individu + Décision" carried by SDO flux 1.4 (specs §3.4), read safely.

`parse_decision_cda(bytes) -> DecisionDocument`: a pure data structure with the CDAPH decision
(the `urn:cnsaSDO` extension `cnsaSDO:decision`, section template 1.2.250.1.213.1.1.2.235) and
the person's traits for identity matching (`PersonTraits`, whose repr shows nothing: return them,
never log them). `orientation_records(doc, national_id=…)` gives the fields of
`gateway.model.plan.OrientationDecision`, one per right granted.

Hostile input is refused before anything is expanded: a DOCTYPE (hence any entity, internal or
external: XXE, "billion laughs") is forbidden, and parsing never resolves entities, loads a DTD
or touches the network.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from lxml import etree

from mappings.cda.xmlsafe import UnsafeXml, check_shape

HL7 = "urn:hl7-org:v3"
CNSA = "urn:cnsaSDO"
NS = {"h": HL7, "s": CNSA}

TEMPLATE_DOCUMENT = "1.2.250.1.213.1.1.1.4.8"  # CDA "Individu + Décision" (SI-ESMS)
TEMPLATE_DECISION_SECTION = "1.2.250.1.213.1.1.2.235"
TEMPLATE_DEATH_SECTION = "1.2.250.1.213.1.1.2.228"
INS_OIDS = {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
            "1.2.250.1.213.1.4.11"}
MDPH_OID_PREFIX = "1.2.250.1.213.7."  # annexe "OID MDPH": 1.2.250.1.213.7.<n>, extension "NN-NOM"
DECISION_CLOSURE = "5"  # No_Type_Decision (1.2.250.1.213.3.3.202): 1 attribution, 5 clôture
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024

_SEX = {"M": "male", "F": "female", "U": "unknown"}


class DecisionDocumentError(ValueError):
    """The document is refused; `reason` in French, `location` an XPath when known."""

    def __init__(self, reason: str, location: str | None = None):
        super().__init__(reason + (f" ({location})" if location else ""))
        self.reason = reason
        self.location = location


@dataclass(frozen=True)
class Coded:
    code: str
    display: str | None = None
    system: str | None = None  # an OID, as CDA writes code systems


@dataclass(frozen=True)
class CareMode:
    """cnsaSDO:priseEnCharge: the mode (TRE_R213, e.g. 47 accueil de jour) and its quantity."""

    mode: Coded | None
    quantity: str | None = None
    unit: Coded | None = None
    periodicity: Coded | None = None


@dataclass(frozen=True)
class RightGranted:
    """cnsaSDO:droitPrestation: one right or service granted by the decision."""

    right_type: Coded | None  # typeDroitOuPrestation (TRE_R420, e.g. 13.2 orientation EAM)
    nature: Coded | None = None  # nouveau droit, renouvellement…
    opens_on: dt.date | None = None
    expires_on: dt.date | None = None
    qualification: Coded | None = None
    priority: Coded | None = None  # caracterisation/niveau
    reception_timing: Coded | None = None  # temporaliteAccueil (TRE_R240)
    sequential: bool | None = None  # accueilSequentiel
    organisation_category: Coded | None = None  # categorieOrganisation (TRE_R244)
    establishment_category: Coded | None = None
    care_modes: tuple[CareMode, ...] = ()
    designated_structures: tuple[str, ...] = ()  # idNat_Struct of the ESMS named by the CDAPH


@dataclass(frozen=True, repr=False)
class PersonTraits:
    """Identity traits of the oriented person, for matching only. Personal data: the repr is
    masked so that it never reaches a log by accident."""

    ins: str | None = None
    ins_oid: str | None = None
    mdph_file_id: str | None = None  # the MDPH's own dossier number
    birth_family_name: str | None = None
    used_family_name: str | None = None
    birth_given_names: tuple[str, ...] = ()
    first_given_name: str | None = None
    used_given_name: str | None = None
    sex: str | None = None  # male | female | unknown
    birth_date: dt.date | None = None
    birthplace_insee: str | None = None
    deceased_on: dt.date | None = None

    def __repr__(self) -> str:
        return "PersonTraits(<données personnelles masquées>)"

    __str__ = __repr__


@dataclass(frozen=True)
class DecisionDocument:
    document_id: str
    decision_number: str  # idDecision, unique within the MDPH
    decision_type: Coded
    decision_date: dt.date
    person: PersonTraits = field(repr=False)
    decision_number_root: str | None = None
    set_id: str | None = None
    version: int | None = None
    replaces: str | None = None  # relatedDocument RPLC: the previous version's id
    issued_on: dt.date | None = None  # effectiveTime: when the SI-SDO issued (notified) it
    closure_effective_on: dt.date | None = None
    motivation: Coded | None = None
    mdph: str | None = None  # département of the MDPH in charge ("06", "2A", "974")
    mdph_code: str | None = None  # as written ("06", "69M", "972R")
    hosting_mdph_code: str | None = None
    rights: tuple[RightGranted, ...] = ()


# ----------------------------------------------------------------------------- parsing


_WIDE = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xfe\xff", "utf-16-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
         (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"))


def _declares_dtd(data: bytes) -> bool:
    """A DOCTYPE or an entity declaration anywhere, in any of XML's autodetected encodings."""
    text = data
    for mark, codec in _WIDE:
        if data.startswith(mark):
            text = data.decode(codec, errors="replace").encode("utf-8", errors="replace")
            break
    return b"<!DOCTYPE" in text or b"<!ENTITY" in text


def safe_xml(data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> etree._Element:
    """Parse untrusted XML: no DOCTYPE, no entity expansion, no DTD, no network."""
    if not isinstance(data, (bytes, bytearray)):
        raise DecisionDocumentError("le document CDA doit être fourni en octets")
    if len(data) > max_bytes:
        raise DecisionDocumentError(f"document CDA trop volumineux ({len(data)} octets, "
                                    f"maximum {max_bytes})")
    if _declares_dtd(bytes(data)):
        raise DecisionDocumentError("DOCTYPE ou déclaration d'entité interdits dans un document CDA")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_pis=True,
                             collect_ids=False)
    try:
        root = etree.fromstring(bytes(data), parser)
    except etree.XMLSyntaxError as exc:
        raise DecisionDocumentError(f"XML illisible : {exc.msg}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        # another encoding (UTF-16…) hid the DOCTYPE from the byte scan above
        raise DecisionDocumentError("DOCTYPE interdit dans un document CDA")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise DecisionDocumentError("référence d'entité interdite dans un document CDA")
    try:
        check_shape(root)  # nesting depth, attribute count and size
    except UnsafeXml as exc:
        raise DecisionDocumentError(exc.problem.message) from None
    return root


def _one(node, path: str):
    found = node.xpath(path, namespaces=NS)
    return found[0] if found else None


def _attr(node, path: str, name: str) -> str | None:
    element = _one(node, path) if node is not None else None
    value = element.get(name) if element is not None else None
    return value.strip() if value and value.strip() else None


def _text(node, path: str) -> str | None:
    element = _one(node, path) if node is not None else None
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _coded(node, path: str) -> Coded | None:
    element = _one(node, path) if node is not None else None
    if element is None or not (element.get("code") or "").strip():
        return None
    return Coded(element.get("code").strip(), (element.get("displayName") or "").strip() or None,
                 element.get("codeSystem"))


def _date(value: str | None, where: str) -> dt.date | None:
    """HL7 TS (`YYYYMMDD[hhmmss][±zzzz]`) → the date it names."""
    if value is None:
        return None
    if not re.fullmatch(r"\d{8}(\d{2,6}(\.\d+)?)?([+-]\d{4})?", value):
        raise DecisionDocumentError(f"date invalide : {value!r}", where)
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise DecisionDocumentError(f"date invalide : {value!r}", where) from None


def _bool(node, path: str) -> bool | None:
    value = _attr(node, path, "value")
    return None if value is None else value.lower() == "true"


def mdph_department(code: str | None) -> str | None:
    """The département of an MDPH code of the OID annex ("06", "2A", "974"; "69M" → "69",
    "972R" → "972"). Collectivities spanning several départements (20R, 6AE) have none."""
    if not code:
        return None
    match = re.fullmatch(r"(\d{2,3}|2[AB])([A-Z]{0,2})", code.upper())
    if not match or match.group(1) == "20" or (match.group(2) and match.group(2) not in ("D", "M", "R")):
        return None
    return match.group(1)


def _mdph_code(node, path: str) -> str | None:
    extension = _attr(node, path, "extension")
    return extension.split("-", 1)[0].strip().upper() if extension else None


def _person(record_target) -> PersonTraits:
    role = _one(record_target, "h:patientRole")
    patient = _one(role, "h:patient") if role is not None else None
    ins = ins_oid = mdph_file = None
    for ident in (role.xpath("h:id", namespaces=NS) if role is not None else []):
        root = ident.get("root")
        if root in INS_OIDS and ins is None:
            ins, ins_oid = ident.get("extension"), root
        elif root and root.startswith(MDPH_OID_PREFIX) and mdph_file is None:
            mdph_file = ident.get("extension")
    name = _one(patient, "h:name") if patient is not None else None
    # the unqualified <given> is the list of birth given names (INS: separated by spaces)
    birth_given = tuple(part for g in (name.xpath("h:given[not(@qualifier)]", namespaces=NS)
                                       if name is not None else []) for part in (g.text or "").split())
    sex_code = _attr(patient, "h:administrativeGenderCode", "code")
    return PersonTraits(
        ins=ins, ins_oid=ins_oid, mdph_file_id=mdph_file,
        birth_family_name=_text(name, "h:family[@qualifier='BR']"),
        used_family_name=_text(name, "h:family[@qualifier='CL']"),
        birth_given_names=birth_given,
        first_given_name=_text(name, "h:given[@qualifier='BR']"),
        used_given_name=_text(name, "h:given[@qualifier='CL']"),
        sex=_SEX.get((sex_code or "").upper()) if sex_code else None,
        birth_date=_date(_attr(patient, "h:birthTime", "value"), "patient/birthTime"),
        birthplace_insee=_text(patient, "h:birthplace/h:place/h:addr/h:county"),
    )


def _right(node, index: int) -> RightGranted:
    where = f"cnsaSDO:droitPrestation[{index + 1}]"
    detail = _one(node, "s:detailTypeDroitPrestation")
    care_modes = tuple(
        CareMode(_coded(pec, "s:modePriseEnCharge"), _attr(pec, "s:quantification/s:nombre", "value"),
                 _coded(pec, "s:quantification/s:unite"), _coded(pec, "s:quantification/s:periodicite"))
        for pec in (detail.xpath("s:priseEnCharge", namespaces=NS) if detail is not None else []))
    designated = tuple(e.get("extension").strip() for e in
                       (detail.xpath("s:idNat", namespaces=NS) if detail is not None else [])
                       if (e.get("extension") or "").strip())
    return RightGranted(
        right_type=_coded(node, "s:typeDroitOuPrestation"),
        nature=_coded(node, "s:natureDroit"),
        opens_on=_date(_attr(node, "s:dateOuvertureDuDroit", "value"), where + "/dateOuvertureDuDroit"),
        expires_on=_date(_attr(node, "s:dateEcheanceDuDroit", "value"), where + "/dateEcheanceDuDroit"),
        qualification=_coded(node, "s:qualification"),
        priority=_coded(node, "s:caracterisation/s:niveau"),
        reception_timing=_coded(detail, "s:temporaliteAccueil"),
        sequential=_bool(detail, "s:accueilSequentiel") if detail is not None else None,
        organisation_category=_coded(detail, "s:categorieOrganisation"),
        establishment_category=_coded(detail, "s:categorieEtablissement"),
        care_modes=care_modes,
        designated_structures=designated,
    )


def parse_decision_cda(data: bytes) -> DecisionDocument:
    """Read a CDA "Individu + Décision"; raise DecisionDocumentError when it is not one."""
    root = safe_xml(data)
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        raise DecisionDocumentError("l'élément racine n'est pas un ClinicalDocument HL7 CDA")
    templates = set(root.xpath("h:templateId/@root", namespaces=NS))
    if TEMPLATE_DOCUMENT not in templates:
        raise DecisionDocumentError(f"templateId {TEMPLATE_DOCUMENT} absent : ce n'est pas un "
                                    "document « Individu + Décision »", "/ClinicalDocument/templateId")
    record_target = _one(root, "h:recordTarget")
    if record_target is None:
        raise DecisionDocumentError("recordTarget absent", "/ClinicalDocument/recordTarget")
    section = _one(root, f"h:component/h:structuredBody/h:component/h:section"
                         f"[h:templateId/@root='{TEMPLATE_DECISION_SECTION}']")
    decision = _one(section, "s:decision") if section is not None else None
    if decision is None:
        raise DecisionDocumentError("section décision (cnsaSDO:decision) absente",
                                    f"section[templateId/@root='{TEMPLATE_DECISION_SECTION}']")
    number = _attr(decision, "s:identifiantDecision", "extension")
    if not number:
        raise DecisionDocumentError("identifiant de la décision absent", "cnsaSDO:identifiantDecision/@extension")
    decision_type = _coded(decision, "s:typeDeDecision")
    if decision_type is None:
        raise DecisionDocumentError("type de décision absent", "cnsaSDO:typeDeDecision")
    decision_date = _date(_attr(decision, "s:dateDeDecision", "value"), "cnsaSDO:dateDeDecision")
    if decision_date is None:
        raise DecisionDocumentError("date de décision absente", "cnsaSDO:dateDeDecision/@value")

    person = _person(record_target)
    death = _one(root, f"h:component/h:structuredBody/h:component/h:section"
                       f"[h:templateId/@root='{TEMPLATE_DEATH_SECTION}']/h:entry/h:observation")
    if death is not None:
        died = _date(_attr(death, "h:effectiveTime", "value"), "section décès/effectiveTime")
        person = PersonTraits(**{**person.__dict__, "deceased_on": died})

    role = _one(record_target, "h:patientRole")
    mdph_code = _mdph_code(role, "s:idMDPHResponsable")
    version = _attr(root, "h:versionNumber", "value")
    doc_id = _one(root, "h:id")
    replaced = _one(root, "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id")
    return DecisionDocument(
        document_id=_ident(doc_id) or "",
        decision_number=number,
        decision_number_root=_attr(decision, "s:identifiantDecision", "root"),
        decision_type=decision_type,
        decision_date=decision_date,
        person=person,
        set_id=_ident(_one(root, "h:setId")),
        version=int(version) if version and version.isdigit() else None,
        replaces=_ident(replaced),
        issued_on=_date(_attr(root, "h:effectiveTime", "value"), "/ClinicalDocument/effectiveTime"),
        closure_effective_on=_date(_attr(decision, "s:dateEffetDeLaDecisionDeCloture", "value"),
                                   "cnsaSDO:dateEffetDeLaDecisionDeCloture"),
        motivation=_coded(decision, "s:motivation"),
        mdph=mdph_department(mdph_code),
        mdph_code=mdph_code,
        hosting_mdph_code=_mdph_code(role, "s:idMDPHAccueil"),
        rights=tuple(_right(node, i) for i, node in
                     enumerate(decision.xpath("s:droitPrestation", namespaces=NS))),
    )


def _ident(element) -> str | None:
    if element is None:
        return None
    root, extension = element.get("root"), element.get("extension")
    return f"{root}^{extension}" if extension else root


# ------------------------------------------------------------ onto the plan's records


def _local_id(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return (cleaned or "decision")[:64]


def orientation_records(doc: DecisionDocument, *, national_id: str | None,
                        id_prefix: str = "SDO") -> list[dict]:
    """The fields of `OrientationDecision` for each right granted (specs §3.4 → plan model).

    notification_date ← effectiveTime (the SI-SDO issues the document when it notifies the
    ESMS); status ← `cancelled` for a closure decision (type 5), else `notified`."""
    if doc.mdph is None:
        raise DecisionDocumentError(f"MDPH responsable non rattachable à un département : "
                                    f"{doc.mdph_code!r}", "cnsaSDO:idMDPHResponsable/@extension")
    key = national_id or doc.decision_number
    base = _local_id(key if key.upper().startswith(id_prefix.upper() + "-") else f"{id_prefix}-{key}")
    records = []
    for i, right in enumerate(doc.rights):
        end = right.expires_on
        if doc.closure_effective_on and (end is None or doc.closure_effective_on < end):
            end = doc.closure_effective_on
        if right.opens_on is None or end is None:
            raise DecisionDocumentError("période de validité du droit incomplète",
                                        f"cnsaSDO:droitPrestation[{i + 1}]")
        label = (right.right_type.display or right.right_type.code) if right.right_type else None
        records.append({
            "id": base if len(doc.rights) == 1 else _local_id(f"{base[:60]}-{i + 1}"),
            "decision_number": doc.decision_number,
            "national_id": national_id,
            "mdph": doc.mdph,
            "decision_date": doc.decision_date,
            "notification_date": doc.issued_on,
            "right_type_code": right.right_type.code if right.right_type else None,
            "orientation": (label or "orientation")[:200],
            "care_mode_code": next((m.mode.code for m in right.care_modes if m.mode), None),
            "organisation_category_code": right.organisation_category.code
            if right.organisation_category else None,
            "validity": {"start": right.opens_on, "end": end},
            "status": "cancelled" if doc.decision_type.code == DECISION_CLOSURE else "notified",
        })
    if not records:
        raise DecisionDocumentError("aucun droit ou prestation dans la décision", "cnsaSDO:droitPrestation")
    return records
