"""TDDUI 2.2.0 (ANS "Médicosocial – Transfert de données DUI"): plan ⇄ transaction Bundle.

`plan_to_bundle(plan, now) -> dict` and `bundle_to_plan(bundle, today) -> (plan | None, problems)`
are pure: no I/O, no clock (the SERAFIN-PH data file is read once, by `mappings.serafin`)."""

from mappings.fhir.tddui.constants import TDDUI_VERSION
from mappings.fhir.tddui.export import plan_to_bundle
from mappings.fhir.tddui.import_ import bundle_to_plan

__all__ = ["TDDUI_VERSION", "bundle_to_plan", "plan_to_bundle"]
