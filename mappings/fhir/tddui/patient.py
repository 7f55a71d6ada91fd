"""The person: Patient (TDDUI 2.2.0 tddui-patient / tddui-patient-ins on FR Core 2.1.0; specs §0.1,
§7) and legal representatives (tddui-related-person-contact)."""

from __future__ import annotations

from gateway.model.identity import INS_OIDS, LegalRepresentative, Person
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import (
    Node,
    coding,
    concept,
    meta,
    period,
    plan_element,
    put,
    read_plan_element,
)
from mappings.fhir.tddui.context import Ctx
from mappings.fhir.tddui.datatypes import address, read_address, read_telecom, telecom

_INS_USE = {"INS-NIA": "temp"}  # FR Core INS slices: use official, NIA temp
_PERSON_EXTRA = ("protection",)  # no TDDUI element (RelatedPerson LegalProtection codes the protector)
_REP_EXTRA = ("role", "relationship", "organisation")


def nir_birth_order(person: Person) -> int | None:
    """The NIR's digits 11-13 are the birth's order in the civil register (INSEE): the value of
    tddui-birth-order when the INS is a NIR (not a NIA)."""
    if person.ins is None or person.ins.kind == "INS-NIA":
        return None
    order = int(person.ins.value[10:13])
    return order or None


def uses_ins_profile(person: Person) -> bool:
    """tddui-patient-ins is for a qualified identity (specs §1.2, §7: the INS is used only once
    qualified); every other identity is a tddui-patient, still carrying its INS and status."""
    return person.ins is not None and person.identity_status.value == "QUAL"


def patient(ctx: Ctx) -> dict:
    person = ctx.plan.person
    extensions = [{
        "url": c.X_IDENTITY_RELIABILITY,
        "extension": [{"url": "identityStatus",
                       "valueCoding": coding(c.CS_IDENTITY_STATUS, person.identity_status.value)}],
    }]
    if person.birthplace_insee:
        extensions.append({"url": c.X_BIRTH_PLACE, "valueAddress": {"extension": [
            {"url": c.X_INSEE_CODE, "valueCoding": coding(c.INSEE_COMMUNE, person.birthplace_insee)}]}})
    extra = plan_element(person, _PERSON_EXTRA)
    if extra:
        extensions.append(extra)
    identifiers = [{"use": "usual", "type": concept(c.CS_V2_0203, "PI", "Patient internal identifier"),
                    "system": c.ID_PATIENT, "value": ctx.prefix}]
    if person.ins is not None:
        kind = person.ins.kind
        identifiers.append({"use": _INS_USE.get(kind, "official"), "type": concept(c.CS_FRCORE_0203, kind),
                            "system": f"urn:oid:{person.ins.oid}", "value": person.ins.value})
    # officialName: birth name, first birth given name, the full list in birth-list-given-name
    official = {"extension": [{"url": c.X_BIRTH_LIST_GIVEN_NAME, "valueString": " ".join(person.birth_given_names)}],
                "use": "official", "family": person.birth_family_name, "given": [person.birth_given_names[0]]}
    names = [official]
    if person.used_family_name or person.used_given_name:
        usual: dict = {"use": "usual"}
        put(usual, "family", person.used_family_name)
        put(usual, "given", [person.used_given_name] if person.used_given_name else None)
        names.append(usual)
    res = {
        "resourceType": "Patient",
        "meta": meta(c.P_PATIENT_INS if uses_ins_profile(person) else c.P_PATIENT),
        "extension": extensions,
        "identifier": identifiers,
        "name": names,
    }
    put(res, "telecom", telecom(person.telecom))
    res["gender"] = person.sex.value
    res["birthDate"] = person.birth_date.isoformat()
    order = person.birth_order or nir_birth_order(person)
    if order:  # tddui-patient: birthDate.extension:tddui-birth-order 1..1
        res["_birthDate"] = {"extension": [{"url": c.X_BIRTH_ORDER, "valuePositiveInt": order}]}
    addr = address(person.address)
    if addr:
        res["address"] = [addr]
    return res


def related_person(ctx: Ctx, rep: LegalRepresentative) -> dict:
    # fr-core-related-person: identifier 1..1 (no system in the guide: a Relais one).
    res: dict = {"resourceType": "RelatedPerson", "meta": meta(c.P_RELATED_PERSON)}
    extra = plan_element(rep, _REP_EXTRA)
    if extra:
        res["extension"] = [extra]
    res["identifier"] = [{"system": c.ID_RELAIS_REPRESENTATIVE,
                          "value": ctx.business(c.ID_REPRESENTATIVE_CODE, rep.id)}]
    res["patient"] = {"reference": ctx.patient}
    res["name"] = [{"family": rep.family_name, "given": list(rep.given_names)}]
    put(res, "telecom", telecom(rep.telecom))
    addr = address(rep.address)
    if addr:
        res["address"] = [addr]
    put(res, "period", period(rep.period.start, rep.period.end))
    return res


# ------------------------------------------------------------------------------ import


def read_identity(node: Node) -> tuple[str | None, dict | None, str | None]:
    """(PI value, INS, identity status) of a Patient."""
    pi = ins = status = None
    for ident in node.nodes("identifier"):
        system, value = ident.peek("system") or "", ident.peek("value")
        if system == c.ID_PATIENT and value:
            pi = value
            ident.mark()
        elif system.startswith("urn:oid:") and system[8:] in INS_OIDS and value:
            ins = {"value": value, "oid": system[8:]}
            ident.mark()
    for rel in node.extensions(c.X_IDENTITY_RELIABILITY):
        rel.get("url")
        for sub in rel.nodes("extension"):
            cod = sub.node("valueCoding")
            if sub.peek("url") == "identityStatus" and cod is not None:
                if cod.peek("system") in (c.CS_IDENTITY_STATUS, c.CS_IDENTITY_0445):
                    sub.mark()
                    status = cod.data.get("code")
    return pi, ins, status


def read_patient(node: Node) -> dict:
    out: dict = {}
    for ext in node.extensions(c.X_BIRTH_PLACE):
        addr = ext.node("valueAddress")
        if addr is not None:
            for insee in addr.extensions(c.X_INSEE_CODE):
                cod = insee.node("valueCoding")
                if cod is not None and cod.peek("code"):
                    insee.mark()
                    ext.get("url")
                    out["birthplace_insee"] = cod.data["code"]
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Person))
    for name in node.nodes("name"):
        use = name.peek("use")
        if use == "official" and "birth_family_name" not in out:
            name.get("use")
            out["birth_family_name"] = name.get("family")
            given = name.values("given")
            listed = [e for e in name.extensions(c.X_BIRTH_LIST_GIVEN_NAME) if e.peek("valueString")]
            if listed:
                listed[0].mark()
                out["birth_given_names"] = listed[0].data["valueString"].split()
            elif given:
                out["birth_given_names"] = [g for part in given for g in part.split()]
        elif use == "usual":
            name.get("use")
            if name.peek("family"):
                out["used_family_name"] = name.get("family")
            given = name.values("given")
            if given:
                out["used_given_name"] = " ".join(given)
    gender = node.get("gender")
    if gender:
        out["sex"] = gender
    birth = node.get("birthDate")
    if birth:
        out["birth_date"] = birth
    meta_birth = node.node("_birthDate")
    if meta_birth is not None:
        for ext in meta_birth.extensions(c.X_BIRTH_ORDER):
            if ext.peek("valuePositiveInt") is not None:
                ext.mark()
                out["birth_order"] = ext.data["valuePositiveInt"]
    tel = read_telecom(node)
    if tel:
        out["telecom"] = tel
    addresses = node.nodes("address")
    if addresses:
        out["address"] = read_address(addresses[0])
    return out


def read_representative(node: Node, local_id: str) -> dict:
    out: dict = {"id": local_id}
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, LegalRepresentative))
    for ident in node.nodes("identifier"):
        if ident.peek("system") == c.ID_RELAIS_REPRESENTATIVE:
            ident.mark()
    node.take("patient")
    name = (node.nodes("name") or [None])[0]
    if name is not None:
        out["family_name"] = name.get("family")
        out["given_names"] = name.values("given")
    tel = read_telecom(node)
    if tel:
        out["telecom"] = tel
    addresses = node.nodes("address")
    if addresses:
        out["address"] = read_address(addresses[0])
    span = node.node("period")
    if span is not None:
        out["period"] = {k: span.get(k) for k in ("start", "end") if span.peek(k)}
    return out
