"""What every exporter needs: the plan, and the fullUrl of each element (computed once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.model import Plan
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import full_url


@dataclass
class Ctx:
    plan: Plan
    prefix: str  # `3`+FINESS`/`+idUsager (TDDUI business identifier stem)
    patient: str = ""
    organization: str = ""
    legal_entity: str = ""
    careplan: str = ""
    urls: dict[str, dict[str, str]] = field(default_factory=dict)

    def business(self, code: str, local_id: str) -> str:
        """TDDUI business identifier value: 3+FINESS/idUsager-CODE-id (SD identifier examples)."""
        return f"{self.prefix}-{code}-{local_id}"

    def url(self, kind: str, local_id: str) -> str:
        return self.urls[kind][local_id]


def idnat_ps(plan: Plan, professional) -> str:
    """idNat_PS (specs §0.2): `8`+RPPS, else `3`+FINESS`/`+local id (professional of a structure)."""
    if professional.rpps:
        return f"8{professional.rpps}"
    return f"3{plan.platform.finess}/{professional.id}"


def build(plan: Plan) -> Ctx:
    finess = plan.platform.finess
    ctx = Ctx(plan=plan, prefix=f"3{finess}/{plan.person.local_id}")
    ctx.patient = full_url(f"{c.ID_PATIENT}|{ctx.prefix}")
    ctx.organization = full_url(f"{c.IDNAT_STRUCT}|1{finess}")
    if plan.platform.finess_legal_entity:
        ctx.legal_entity = full_url(f"{c.IDNAT_STRUCT}|1{plan.platform.finess_legal_entity}")
    system, code = c.ID_CAREPLAN
    ctx.careplan = full_url(f"{system}|{ctx.business(code, plan.id)}")
    ctx.urls["practitioner"] = {p.id: full_url(f"{c.IDNAT_PS}|{idnat_ps(plan, p)}|{p.id}")
                                for p in plan.professionals}
    ctx.urls["role"] = {p.id: full_url(f"PractitionerRole|{c.IDNAT_PS}|{idnat_ps(plan, p)}|{p.id}")
                        for p in plan.professionals}
    ctx.urls["representative"] = {
        r.id: full_url(f"{c.ID_RELAIS_REPRESENTATIVE}|{ctx.business(c.ID_REPRESENTATIVE_CODE, r.id)}")
        for r in plan.person.representatives
    }
    ctx.urls["agreement"] = {
        a.id: full_url(f"{c.ID_RELAIS_AGREEMENT}|{ctx.business(c.ID_AGREEMENT_CODE, a.id)}")
        for a in plan.agreements
    }
    for kind, items, (system, code) in (
        ("need", plan.needs, c.ID_NEED),
        ("expectation", plan.expectations, c.ID_EXPECTATION),
        ("objective", plan.objectives, c.ID_OBJECTIVE),
        ("action", plan.actions, c.ID_ACTION),
        ("service", plan.services, c.ID_SERVICE),
        ("stay", plan.stays, c.ID_STAY),
        ("event", plan.events, c.ID_EVENT),
        ("evaluation", plan.evaluations, c.ID_EVALUATION),
    ):
        ctx.urls[kind] = {item.id: full_url(f"{system}|{ctx.business(code, item.id)}") for item in items}
    return ctx
