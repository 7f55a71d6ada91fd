"""The actors of a cercle de soins: the person (FR Core Patient), the platform and member
structures (cds-organization), professionals (as-practitionerrole) and representatives
(cds-fr-related-person) — specs §6.1, §0.2, §7."""

from __future__ import annotations

from gateway.model.identity import LegalRepresentative, RepresentativeRole
from gateway.model.plan import Plan
from mappings.fhir.cds import constants as c
from mappings.fhir.tddui import constants as t
from mappings.fhir.tddui.common import coding, concept, put
from mappings.fhir.tddui.context import Ctx
from mappings.fhir.tddui.datatypes import telecom
from mappings.fhir.tddui.patient import patient as tddui_patient
from mappings.fhir.tddui.patient import uses_ins_profile


def meta(*profiles: str) -> dict:
    return {"profile": [c.versioned(p) for p in profiles]}


# FR Core 2.1.0 fr-core-patient, plus fr-core-patient-ins for a qualified identity (specs §7): the
# TDDUI mapping's Patient (itself FR Core) without what only TDDUI or Relais define (birth-order,
# plan-element), without the INS unless the identity is qualified (RNIV), and without the
# person's address and contact points, which the cercle de soins does not need (R.1110-1).
def patient(ctx: Ctx) -> dict:
    res = tddui_patient(ctx)
    qualified = uses_ins_profile(ctx.plan.person)
    res["meta"] = meta(c.PATIENT, c.PATIENT_INS) if qualified else meta(c.PATIENT)
    res["extension"] = [e for e in res["extension"] if e["url"] in (t.X_IDENTITY_RELIABILITY, t.X_BIRTH_PLACE)]
    if not qualified:
        res["identifier"] = [i for i in res["identifier"] if i["system"] == c.ID_PATIENT]
    for key in ("_birthDate", "telecom", "address"):
        res.pop(key, None)
    return res


def patient_key(ctx: Ctx) -> dict:
    """The identifier the peer finds the person by: the INS once qualified, else the platform's PI."""
    person = ctx.plan.person
    if uses_ins_profile(person):
        return {"system": f"urn:oid:{person.ins.oid}", "value": person.ins.value}
    return {"system": c.ID_PATIENT, "value": ctx.prefix}


# cds-organization (AsOrganization): idNatSt `1`+FINESS (specs §0.2) and the FINESS slice.
# A structure known by another identifier (an MSSanté address) carries that identifier only.
def organization(identifier: dict, name: str | None = None) -> dict:
    res: dict = {"resourceType": "Organization", "meta": meta(c.ORGANIZATION)}
    if identifier["system"] == c.FINESS:
        finess = identifier["value"]
        res["identifier"] = [
            {"use": "official", "type": concept(c.CS_FRCORE_0203, "IDNST"), "system": c.IDNAT_STRUCT,
             "value": f"1{finess}"},
            {"system": c.FINESS, "value": finess},
        ]
    else:
        res["identifier"] = [dict(identifier)]
    put(res, "name", name)
    return res


def _idnat_ps(identifier: dict) -> dict | None:
    """idNat_PS of the person behind a member identifier: `8`+RPPS, `0`+ADELI (specs §0.2)."""
    if identifier["system"] == c.RPPS:
        return {"type": concept(c.CS_FRCORE_0203, "IDNPS"), "system": c.IDNAT_PS, "value": f"8{identifier['value']}"}
    if identifier["system"] == c.IDNAT_PS:
        return {"type": concept(c.CS_FRCORE_0203, "IDNPS"), "system": c.IDNAT_PS, "value": identifier["value"]}
    return None


# as-practitionerrole (Annuaire 1.1.0): the member's identifier as the consent engine keeps it
# (RPPS in the idSituationExercice slice's system); the practitioner and the structure as
# logical references (Relais holds no Annuaire Santé resource); no onBehalfOf on the participant
# (cds-ihe-careteam ctm-1 allows it only for a Practitioner member).
def practitioner_role(plan: Plan, identifier: dict, structure: dict | None) -> dict:
    res: dict = {"resourceType": "PractitionerRole", "meta": meta(c.PRACTITIONER_ROLE),
                 "identifier": [dict(identifier)]}
    idnat = _idnat_ps(identifier)
    if idnat is not None:
        who: dict = {"type": "Practitioner", "identifier": idnat}
        known = next((p for p in plan.professionals
                      if p.rpps and idnat["value"] == f"8{p.rpps}"), None)
        if known is not None:
            who["display"] = " ".join(x for x in (known.given_name, known.family_name) if x)
        res["practitioner"] = who
    if structure is not None:
        res["organization"] = {"type": "Organization", "identifier": dict(structure)}
    return res


def representative_identifier(ctx: Ctx, rep: LegalRepresentative) -> dict:
    return {"system": c.ID_REPRESENTATIVE, "value": ctx.business(t.ID_REPRESENTATIVE_CODE, rep.id)}


def relation_type(rep: LegalRepresentative) -> tuple[str, str] | None:
    said = (rep.relationship or "").strip().lower()
    if said in c.RELATION_TYPES:
        return c.RELATION_TYPES[said]
    if not said and rep.role == RepresentativeRole.parent:
        return c.PARENT
    if not said and rep.organisation:
        return c.NOT_FAMILY
    return None


# cds-fr-related-person: identifier 1..1 (the TDDUI representative identifier), name 1..1
# (family 1..1, given ..1: the first given name), telecom 1..*, relationship Role 1..1 (TRE_R260
# GUARD: the plan lists legal representatives — a curator too, TRE_R260 having no code for an
# assisting protector) and RelationType ..1 (TRE_R216, from the plan's words when they say it).
def related_person(ctx: Ctx, rep: LegalRepresentative, patient_url: str) -> dict:
    relationship = [{"coding": [coding(c.CS_ROLE_CLASS, *c.GUARD)]}]
    kin = relation_type(rep)
    if kin is not None:
        relationship.append({"coding": [coding(c.CS_ROLE_CODE, *kin)]})
    res = {
        "resourceType": "RelatedPerson",
        "meta": meta(c.RELATED_PERSON),
        "identifier": [representative_identifier(ctx, rep)],
        "active": True,
        "patient": {"reference": patient_url},
        "relationship": relationship,
        "name": [{"use": "official", "family": rep.family_name, "given": [rep.given_names[0]]}],
        "telecom": telecom(rep.telecom),
    }
    span = {k: v.isoformat() for k, v in (("start", rep.period.start), ("end", rep.period.end)) if v}
    put(res, "period", span)
    return res
