"""Plan -> CDA R2 document (CI-SIS header, structured body with SERAFIN-PH codes).

Implements: CI-SIS Structuration minimale header (TestContenuCDA structMin 1.16, specs §2),
CI-SIS INS annex for the patient (specs §7), XDS-facing header codes (specs §5.3, §5.4).
Pure: the same plan, `now` and document ids give byte-identical output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.model import IdentityStatus, Plan
from mappings.cda import constants as C
from mappings.cda import narrative as N
from mappings.cda.codec import flatten, ts_date, ts_datetime
from mappings.cda.sections import (
    ATTRIBUTE_TEMPLATE,
    KINDS,
    PLAN_ENTRY_TEMPLATE,
    PLAN_SECTION_CODE,
    PLAN_SECTION_TEMPLATE,
    PLAN_SECTION_TITLE,
    Kind,
)
from mappings.serafin import nomenclature


@dataclass(frozen=True)
class DocumentIds:
    """Identity of one version of the plan's document (CI-SIS: id, setId, versionNumber,
    relatedDocument RPLC pointing at the version it replaces)."""

    document_id: str
    set_id: str
    version: int = 1
    replaces: str | None = None


def document_ids(plan: Plan, version: int = 1, replaces: str | None = None) -> DocumentIds:
    """Deterministic OIDs: the set from (FINESS, plan id), the document from (set, version);
    version n > 1 replaces version n - 1 unless told otherwise."""
    if version < 1:
        raise ValueError("le numéro de version du document commence à 1")
    finess = plan.platform.finess
    if version > 1 and replaces is None:
        replaces = C.derived_oid("document", finess, plan.id, str(version - 1))
    return DocumentIds(
        document_id=C.derived_oid("document", finess, plan.id, str(version)),
        set_id=C.derived_oid("set", finess, plan.id),
        version=version,
        replaces=replaces,
    )


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{C.NS}}}{tag}", {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        node.text = text
    return node


def _xsi_type(node: etree._Element, value: str) -> None:
    node.set(f"{{{C.XSI}}}type", value)


def _ivl(parent: etree._Element, low: str | None, high: str | None, tag: str = "effectiveTime"):
    node = _el(parent, tag)
    if low is None and high is None:
        node.set("nullFlavor", "UNK")
        return node
    if low is not None:
        _el(node, "low", value=low)
    else:
        _el(node, "low", nullFlavor="UNK")
    if high is not None:
        _el(node, "high", value=high)
    return node


def _pop(data: dict, path: str) -> Any:
    """Remove and return the value at a dotted path (None when absent)."""
    *head, last = path.split(".")
    node = data
    for part in head:
        node = node.get(part)
        if not isinstance(node, dict):
            return None
    return node.pop(last, None)


def _attributes(parent: etree._Element, data: dict, relation: str = "entryRelationship") -> None:
    """One attribute observation per remaining JSON leaf of `data` (codec.py)."""
    for path, value in flatten(data):
        holder = _el(parent, relation, typeCode="COMP")
        obs = _el(holder, "observation", classCode="OBS", moodCode="EVN")
        _el(obs, "templateId", root=ATTRIBUTE_TEMPLATE)
        _el(obs, "code", code=path, codeSystem=C.CS_ATTRIBUTE, codeSystemName="Relais-attribut-plan")
        if isinstance(value, bool):
            _xsi_type(_el(obs, "value", value="true" if value else "false"), "BL")
        elif isinstance(value, int):
            _xsi_type(_el(obs, "value", value=str(value)), "INT")
        elif isinstance(value, float):
            _xsi_type(_el(obs, "value", value=repr(value)), "REAL")
        else:
            _xsi_type(_el(obs, "value", str(value)), "ST")


def _serafin_code(parent: etree._Element, code: str) -> None:
    concept = nomenclature().get(code)
    attrs = {"code": code, "codeSystem": C.SERAFIN_CS, "codeSystemName": C.SERAFIN_CS_NAME}
    if concept is not None:
        attrs["displayName"] = concept.label
    _el(parent, "code", **attrs)


def _time(kind: Kind, value: str | None) -> str | None:
    if value is None:
        return None
    return ts_datetime(value) if kind.datetime else ts_date(value)


def _entry(section: etree._Element, kind: Kind, item: dict, row_id: str) -> None:
    data = dict(item)
    entry = _el(section, "entry")
    act = _el(entry, kind.element, classCode=kind.class_code, moodCode=kind.mood)
    _el(act, "templateId", root=kind.entry_template)
    if kind.has_id:
        _el(act, "id", root=kind.id_root, extension=data.pop("id"))
    if kind.serafin:
        _serafin_code(act, data.pop("code"))
    else:
        _el(act, "code", code=kind.code, codeSystem=C.CS_ENTRY, displayName=kind.title)
    if kind.text and kind.element != "organizer" and data.get(kind.text) is not None:
        _el(act, "text", data.pop(kind.text))
    elif kind.element != "organizer":
        _el(_el(act, "text"), "reference", value=f"#{row_id}")
    status = data.get("status")
    if kind.status and status in kind.status:
        _el(act, "statusCode", code=kind.status[data.pop("status")])
    if kind.value_at:
        value = data.pop(kind.value_at, None)
        if value is not None:
            _el(act, "effectiveTime", value=_time(kind, value))
    elif kind.low or kind.high:
        low = _time(kind, _pop(data, kind.low)) if kind.low else None
        high = _time(kind, _pop(data, kind.high)) if kind.high else None
        if low or high:
            _ivl(act, low, high)
        for path in (kind.low, kind.high):  # drop the emptied `period` object
            head = path.split(".")[0] if path and "." in path else None
            if head and data.get(head) == {}:
                data.pop(head)
    if kind.value_field and kind.element == "observation":
        value = data.pop(kind.value_field, None)
        if value is not None:
            node = _el(act, "value", code=value, codeSystem=C.CS_CONCEPT, displayName=N.label(value))
            _xsi_type(node, "CD")
    if kind.key == "evaluations":
        for item_ in data.pop("items"):
            comp = _el(act, "component")
            obs = _el(comp, "observation", classCode="OBS", moodCode="EVN")
            _el(obs, "templateId", root=C.relais_oid(1, 5))
            _serafin_code(obs, item_["code"])
            if item_.get("comment") is not None:
                _el(obs, "text", item_["comment"])
            _el(obs, "statusCode", code="completed")
            _xsi_type(_el(obs, "value", value=str(item_["value"])), "INT")
        _attributes(act, data, relation="component")
    else:
        _attributes(act, data)


def _section(body: etree._Element, code: str, template: str, title: str) -> etree._Element:
    comp = _el(body, "component")
    section = _el(comp, "section")
    _el(section, "templateId", root=template)
    _el(section, "code", code=code, codeSystem=C.CS_SECTION, codeSystemName="Relais-section",
        displayName=title)
    _el(section, "title", title)
    return section


def _kind_section(body: etree._Element, kind: Kind, items: list[dict]) -> None:
    section = _section(body, kind.code, kind.section_template, kind.title)
    text = _el(section, "text")
    rows = []
    for index, item in enumerate(items):
        row_id = f"{kind.key}-{index + 1}"
        rows.append((row_id, [N.cell(item, name) for _, name in kind.columns]))
    N.table(text, [header for header, _ in kind.columns], rows)
    for index, item in enumerate(items):
        _entry(section, kind, item, f"{kind.key}-{index + 1}")


# ------------------------------------------------------------------------ header


def _name_parts(person: dict) -> list[tuple[str, str, str | None]]:
    """CI-SIS INS annex: birth name BR, all birth given names (no qualifier), first birth given
    name BR; used name and given name CL."""
    given = person["birth_given_names"]
    parts = [("family", person["birth_family_name"], "BR"), ("given", " ".join(given), None),
             ("given", given[0], "BR")]
    if person.get("used_family_name"):
        parts.append(("family", person["used_family_name"], "CL"))
    if person.get("used_given_name"):
        parts.append(("given", person["used_given_name"], "CL"))
    return parts


def _addr(parent: etree._Element, address: dict) -> None:
    # CI-SIS structured address (structMin CI-SISAddr): first line as streetName, others as
    # additionalLocator; a streetAddressLine would forbid postalCode/city.
    node = _el(parent, "addr")
    for index, line in enumerate(address.pop("lines", [])):
        _el(node, "streetName" if index == 0 else "additionalLocator", line)
    for key, tag in (("postal_code", "postalCode"), ("city", "city"), ("country", "country")):
        if address.get(key) is not None:
            _el(node, tag, address.pop(key))


def _professional_entity(parent, tag: str, pro: dict | None, plan: dict, org: bool = True):
    entity = _el(parent, tag)
    finess = plan["platform"]["finess"]
    if pro is None:
        _el(entity, "id", root=C.IDNAT_PS, extension=f"3{finess}/RELAIS")
    elif pro.get("rpps"):
        _el(entity, "id", root=C.IDNAT_PS, extension=f"8{pro['rpps']}")
    else:
        _el(entity, "id", root=C.IDNAT_PS, extension=f"3{finess}/{pro['id']}")
    return entity


def _person_name(parent, pro: dict) -> None:
    person = _el(parent, "assignedPerson")
    name = _el(person, "name")
    _el(name, "family", pro["family_name"])
    if pro.get("given_name"):
        _el(name, "given", pro["given_name"])


def _organisation(parent, tag: str, plan: dict, industry: bool = False) -> None:
    org = _el(parent, tag)
    _el(org, "id", root=C.IDNAT_STRUCT, extension="1" + plan["platform"]["finess"])
    _el(org, "name", plan["platform"]["name"])
    if industry:
        _el(org, "standardIndustryClassCode", code=C.PRACTICE_SETTING[0],
            displayName=C.PRACTICE_SETTING[1], codeSystem=C.TRE_A01)


def _signer(plan: Plan) -> tuple[dict | None, str]:
    """legalAuthenticator: who signed the structure's agreement, else the coordinator."""
    pros = {p.id: p for p in plan.professionals}
    for agreement in plan.agreements:
        if agreement.party.value == "structure" and agreement.performer_id in pros:
            return pros[agreement.performer_id].model_dump(mode="json"), ts_datetime(agreement.date)
    coord = pros.get(plan.platform.coordinator.professional_id)
    return (coord.model_dump(mode="json") if coord else None), plan.established_on.strftime("%Y%m%d")


def plan_to_cda(
    plan: Plan, *, now: dt.datetime, ids: DocumentIds | None = None, confidentiality: str = "N"
) -> bytes:
    """The plan as a CDA R2 document (UTF-8 bytes). `now` is the document's creation time."""
    if confidentiality not in C.CONFIDENTIALITY_DISPLAY:
        raise ValueError(f"code de confidentialité inconnu : {confidentiality}")
    ids = ids or document_ids(plan)
    data = plan.model_dump(mode="json", exclude_none=True)
    data.pop("schema_version", None)
    person, platform = data["person"], data["platform"]

    doc = etree.Element(f"{{{C.NS}}}ClinicalDocument", nsmap=C.NSMAP)
    _el(doc, "realmCode", code="FR")
    _el(doc, "typeId", root=C.TYPE_ID_ROOT, extension=C.TYPE_ID_EXTENSION)
    _el(doc, "templateId", root=C.TEMPLATE_HL7_FRANCE)
    _el(doc, "templateId", root=C.TEMPLATE_CISIS)
    _el(doc, "templateId", root=C.TEMPLATE_RELAIS_DOCUMENT, extension=C.RELAIS_FORMAT_VERSION)
    _el(doc, "id", root=ids.document_id)
    _el(doc, "code", code=C.DOC_TYPE_CODE, displayName=C.DOC_TYPE_DISPLAY, codeSystem=C.LOINC,
        codeSystemName="LOINC")
    _el(doc, "title", data.pop("title"))
    _el(doc, "effectiveTime", value=ts_datetime(now))
    _el(doc, "confidentialityCode", code=confidentiality,
        displayName=C.CONFIDENTIALITY_DISPLAY[confidentiality], codeSystem=C.CONFIDENTIALITY)
    _el(doc, "languageCode", code=C.LANGUAGE)
    _el(doc, "setId", root=ids.set_id)
    _el(doc, "versionNumber", value=str(ids.version))

    # recordTarget — CI-SIS INS annex; the INS only for a qualified identity (RNIV, specs §7).
    role = _el(_el(doc, "recordTarget"), "patientRole")
    ins = person.pop("ins", None)
    if ins and plan.person.identity_status is IdentityStatus.QUAL:
        _el(role, "id", root=ins["oid"], extension=ins["value"])
    _el(role, "id", root=C.ID_PERSON_LOCAL, extension=f"{platform['finess']}/{person.pop('local_id')}")
    if person.get("address"):
        _addr(role, person["address"])
        if not person["address"]:
            person.pop("address")
    patient = _el(role, "patient")
    name = _el(patient, "name")
    for tag, text, qualifier in _name_parts(person):
        node = _el(name, tag, text)
        if qualifier:
            node.set("qualifier", qualifier)
    for key in ("birth_family_name", "birth_given_names", "used_family_name", "used_given_name"):
        person.pop(key, None)
    code, display = C.GENDER[person.pop("sex")]
    _el(patient, "administrativeGenderCode", code=code, displayName=display, codeSystem=C.GENDER_CS)
    _el(patient, "birthTime", value=ts_date(person.pop("birth_date")))
    if person.get("birth_order") is not None:  # CI-SIS INS annex: birth registration rank
        etree.SubElement(patient, f"{{{C.SDTC}}}multipleBirthOrderNumber", value=str(person.pop("birth_order")))
    for rep in person.get("representatives", []):
        guardian = _el(patient, "guardian")
        _el(guardian, "id", root=C.ID_REPRESENTATIVE, extension=rep.pop("id"))
        # CI-SIS closes guardian to id/addr/telecom/guardianPerson (structMin): the role and
        # the relationship travel as attributes of the plan.
        gname = _el(_el(guardian, "guardianPerson"), "name")
        _el(gname, "family", rep.pop("family_name"))
        for given in rep.pop("given_names"):
            _el(gname, "given", given)
    if person.get("birthplace_insee"):
        place = _el(_el(_el(patient, "birthplace"), "place"), "addr")
        _el(place, "county", person.pop("birthplace_insee"))

    # author: the DUI software acting for the platform (TDDUI CDA header, specs §2).
    author = _el(doc, "author")
    _el(author, "time", value=ts_datetime(now))
    assigned = _professional_entity(author, "assignedAuthor", None, data)
    _el(assigned, "code", code=C.AUTHOR_DEVICE_CODE[0], displayName=C.AUTHOR_DEVICE_CODE[1],
        codeSystem=C.TRE_A00)
    device = _el(assigned, "assignedAuthoringDevice")
    _el(device, "manufacturerModelName", C.SOFTWARE_MANUFACTURER)
    _el(device, "softwareName", C.SOFTWARE_NAME)
    _organisation(assigned, "representedOrganization", data)

    custodian = _el(_el(doc, "custodian"), "assignedCustodian")
    _organisation(custodian, "representedCustodianOrganization", data)

    signer, signed_at = _signer(plan)
    legal = _el(doc, "legalAuthenticator")
    _el(legal, "time", value=signed_at)
    _el(legal, "signatureCode", code="S")
    entity = _professional_entity(legal, "assignedEntity", signer, data)
    if signer:
        _person_name(entity, signer)
    _organisation(entity, "representedOrganization", data)

    period = data.pop("period")
    low = ts_date(period["start"]) if period.get("start") else None
    high = ts_date(period["end"]) if period.get("end") else None
    event = _el(_el(doc, "documentationOf"), "serviceEvent")
    _el(event, "id", root=C.ID_PLAN, extension=f"{platform['finess']}/{data.pop('id')}")
    _ivl(event, low, high)
    performer = _el(event, "performer", typeCode="PRF")
    pros = {p["id"]: p for p in data.get("professionals", [])}
    coordinator = pros.get(platform["coordinator"]["professional_id"])
    pentity = _professional_entity(performer, "assignedEntity", coordinator, data)
    if coordinator:
        _person_name(pentity, coordinator)
    _organisation(pentity, "representedOrganization", data, industry=True)

    if ids.replaces:
        related = _el(doc, "relatedDocument", typeCode=C.RELATED_REPLACE)
        parent = _el(related, "parentDocument")
        _el(parent, "id", root=ids.replaces)
        _el(parent, "setId", root=ids.set_id)
        _el(parent, "versionNumber", value=str(ids.version - 1))

    encounter = _el(_el(doc, "componentOf"), "encompassingEncounter")
    _ivl(encounter, low, high)
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _el(facility, "code", code=C.FACILITY_TYPE[0], displayName=C.FACILITY_TYPE[1], codeSystem=C.TRE_R02)

    platform.pop("finess")
    platform.pop("name")
    body = _el(_el(doc, "component"), "structuredBody")
    lists = {kind.key: data.pop(kind.key, []) for kind in KINDS}
    _plan_section(body, plan, data)
    for kind in KINDS:
        if lists[kind.key]:
            _kind_section(body, kind, lists[kind.key])
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _plan_section(body: etree._Element, plan: Plan, rest: dict) -> None:
    """The person, the platform and what belongs to the plan as a whole."""
    section = _section(body, PLAN_SECTION_CODE, PLAN_SECTION_TEMPLATE, PLAN_SECTION_TITLE)
    text = _el(section, "text")
    person = plan.person
    ident = person.ins.value if person.ins and person.identity_status is IdentityStatus.QUAL else None
    lines = [
        ("Personne", f"{person.birth_family_name} {' '.join(person.birth_given_names)}"
                     + (f" (nom d'usage {person.used_family_name})" if person.used_family_name else "")),
        ("Né(e) le", person.birth_date.isoformat()),
        ("Identité", N.label(person.identity_status.value)
         + (f" — INS {ident} ({person.ins.kind})" if ident else " — INS non transmis")),
        ("Plateforme", f"{plan.platform.name} (FINESS {plan.platform.finess})"),
        ("Statut du projet", N.label(plan.status.value)),
        ("Établi le", plan.established_on.isoformat()),
    ]
    if plan.next_review:
        lines.append(("Prochaine révision", plan.next_review.isoformat()))
    for rep in person.representatives:
        lines.append(("Représentant légal",
                      f"{rep.family_name} {' '.join(rep.given_names)} ({rep.relationship or N.label(rep.role.value)})"))
    if person.protection:
        lines.append(("Mesure de protection", f"{N.label(person.protection.kind.value)} ({N.label(person.protection.scope.value)})"))
    if plan.life_project:
        lines.append(("Projet de vie", plan.life_project.text))
    if plan.participation:
        lines.append(("Participation", ", ".join(N.label(m.value) for m in plan.participation.modes)
                      + (" ; " + ", ".join(plan.participation.communication_means)
                         if plan.participation.communication_means else "")))
    if plan.notes:
        lines.append(("Modes de communication", plan.notes))
    N.table(text, ["Rubrique", "Contenu"], [(None, [k, v]) for k, v in lines])
    entry = _el(section, "entry")
    act = _el(entry, "act", classCode="ACT", moodCode="EVN")
    _el(act, "templateId", root=PLAN_ENTRY_TEMPLATE)
    _el(act, "code", code=PLAN_SECTION_CODE, codeSystem=C.CS_ENTRY, displayName="Projet personnalisé")
    _attributes(act, rest)
