"""The platform and its professionals: Organization, Practitioner, PractitionerRole
(TDDUI 2.2.0 tddui-organization, tddui-practitioner, tddui-practitioner-role; specs §0.2)."""

from __future__ import annotations

from gateway.model.plan import Platform, Professional
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import Node, code_of, concept, meta, plan_element, put, read_plan_element
from mappings.fhir.tddui.context import Ctx, idnat_ps
from mappings.fhir.tddui.datatypes import read_telecom, telecom


def _org_identifiers(finess: str, kind: str) -> list[dict]:
    # tddui-organization: identifier:idNatSt 1..* (`1`+FINESS, specs §0.2) + FR Core finess slice.
    return [
        {"use": "official", "type": concept(c.CS_FRCORE_0203, "IDNST"), "system": c.IDNAT_STRUCT,
         "value": f"1{finess}"},
        {"type": concept(c.CS_FRCORE_0203, kind), "system": c.FINESS, "value": finess},
    ]


# specs §1.3 / issue 4: the platform → Organization with FINESS (EG); its legal entity (EJ)
# → a second Organization, `partOf` of the first.
def organizations(ctx: Ctx) -> list[tuple[str, dict]]:
    platform = ctx.plan.platform
    org = {"resourceType": "Organization", "meta": meta(c.P_ORGANIZATION)}
    ext = plan_element(platform, ("intervention_zone",))
    if ext:
        org["extension"] = [ext]
    org["identifier"] = _org_identifiers(platform.finess, "FINEG")
    org["name"] = platform.name
    out = [(ctx.organization, org)]
    if platform.finess_legal_entity:
        org["partOf"] = {"reference": ctx.legal_entity}
        legal = {"resourceType": "Organization", "meta": meta(c.P_ORGANIZATION),
                 "identifier": _org_identifiers(platform.finess_legal_entity, "FINEJ")}
        out.append((ctx.legal_entity, legal))
    return out


# tddui-practitioner: identifier:idNatPs 1..1 (`8`+RPPS or `3`+FINESS`/`+local id) and the FR
# Core rpps slice; the plan's local id rides in a Relais identifier when idNatPs does not hold it.
def practitioner(ctx: Ctx, pro: Professional) -> dict:
    identifiers = [{"type": concept(c.CS_FRCORE_0203, "IDNPS"), "system": c.IDNAT_PS,
                    "value": idnat_ps(ctx.plan, pro)}]
    if pro.rpps:
        identifiers.append({"type": concept(c.CS_FRCORE_0203, "RPPS"), "system": c.RPPS, "value": pro.rpps})
        identifiers.append({"type": concept(c.CS_FRCORE_0203, "INTRN"), "system": c.ID_RELAIS_PROFESSIONAL,
                            "value": f"3{ctx.plan.platform.finess}/{pro.id}"})
    name: dict = {"family": pro.family_name}
    put(name, "given", [pro.given_name] if pro.given_name else None)
    return {"resourceType": "Practitioner", "meta": meta(c.P_PRACTITIONER), "identifier": identifiers,
            "name": [name]}


# tddui-practitioner-role: code (max 1) holds the function as text (JDV_J47 binds only codings);
# organisation as a display-only reference; telecom on the role (work contact).
def practitioner_role(ctx: Ctx, pro: Professional) -> dict:
    role = {"resourceType": "PractitionerRole", "meta": meta(c.P_PRACTITIONER_ROLE),
            "practitioner": {"reference": ctx.url("practitioner", pro.id)}}
    if pro.organisation:
        role["organization"] = {"display": pro.organisation}
    role["code"] = [{"text": pro.role}]
    put(role, "telecom", telecom(pro.telecom))
    return role


# ------------------------------------------------------------------------------ import


def _finess(node: Node, kind: str | None = None) -> str | None:
    for ident in node.nodes("identifier"):
        system, value = ident.peek("system"), ident.peek("value")
        if system == c.FINESS and value:
            type_code = code_of(ident.node("type"), c.CS_FRCORE_0203) if ident.peek("type") else None
            if kind is None or type_code in (None, kind):
                ident.mark()
                return value
    for ident in node.nodes("identifier"):  # idNatSt `1`+FINESS
        value = ident.peek("value") or ""
        if ident.peek("system") == c.IDNAT_STRUCT and value.startswith("1") and len(value) == 10:
            ident.mark()
            return value[1:]
    return None


def read_organization(node: Node, legal: Node | None) -> dict:
    """Platform fields; the coordinator is filled by the CarePlan reader."""
    out: dict = {}
    finess = _finess(node)
    for ident in node.nodes("identifier"):  # the idNatSt twin of the FINESS identifier
        if ident.peek("system") == c.IDNAT_STRUCT and finess and ident.peek("value") == f"1{finess}":
            ident.mark()
    if finess:
        out["finess"] = finess
    name = node.get("name")
    if name:
        out["name"] = name
    for ext in node.extensions(c.X_RELAIS_PLAN):
        ext.get("url")
        out.update(read_plan_element(ext, Platform))
    if legal is not None:
        node.take("partOf")
        legal_finess = _finess(legal)
        for ident in legal.nodes("identifier"):
            if ident.peek("system") == c.IDNAT_STRUCT and ident.peek("value") == f"1{legal_finess}":
                ident.mark()
        if legal_finess:
            out["finess_legal_entity"] = legal_finess
    return out


def read_professional(node: Node, role: Node | None, local_id: str, finess: str | None) -> dict:
    out: dict = {"id": local_id}
    name = (node.nodes("name") or [None])[0]
    if name is not None:
        out["family_name"] = name.get("family")
        given = name.values("given")
        if given:
            out["given_name"] = " ".join(given)
    for ident in node.nodes("identifier"):
        system, value = ident.peek("system"), ident.peek("value") or ""
        if system == c.RPPS:
            out["rpps"] = value
            ident.mark()
        elif system == c.IDNAT_PS and value.startswith("8"):
            out.setdefault("rpps", value[1:])
            ident.mark()
        elif system in (c.IDNAT_PS, c.ID_RELAIS_PROFESSIONAL) and finess and value == f"3{finess}/{local_id}":
            ident.mark()
    if role is not None:
        role.take("practitioner")
        codes = role.nodes("code")
        if codes:
            text = codes[0].get("text") or codes[0].peek("coding") and codes[0].data["coding"][0].get("display")
            if text:
                out["role"] = text
        org = role.node("organization")
        if org is not None and org.peek("display") and not org.peek("reference"):
            out["organisation"] = org.get("display")
        tel = read_telecom(role)
        if tel:
            out["telecom"] = tel
    return out


def professional_local_id(node: Node, finess: str | None) -> str | None:
    """The plan id of a Practitioner: from `3`+FINESS`/`+id (idNatPs or the Relais identifier)."""
    for ident in node.data.get("identifier", []) or []:
        value = ident.get("value") or ""
        if ident.get("system") in (c.IDNAT_PS, c.ID_RELAIS_PROFESSIONAL) and finess and value.startswith(f"3{finess}/"):
            return value[len(finess) + 2:]
    for ident in node.data.get("identifier", []) or []:
        value = ident.get("value") or ""
        if ident.get("system") == c.RPPS and value:
            return f"RPPS-{value}"
        if ident.get("system") == c.IDNAT_PS and value:
            return f"PS-{value}"
    return None
