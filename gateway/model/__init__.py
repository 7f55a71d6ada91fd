"""The single support plan model. Imports nothing else of Relais (style guide)."""

from gateway.model.identity import INS_OIDS, IdentityStatus, Ins, Person
from gateway.model.plan import PLAN_SCHEMA_VERSION, Plan, PlanStatus
from gateway.model.problem import Problem, Severity, json_path

__all__ = [
    "INS_OIDS",
    "PLAN_SCHEMA_VERSION",
    "IdentityStatus",
    "Ins",
    "Person",
    "Plan",
    "PlanStatus",
    "Problem",
    "Severity",
    "json_path",
]
