"""What leaves: the data categories an exchange carries, and the plan cut down to them.

Strictly necessary data (CSP L.1110-4 II, R.1110-1; consent_audit checklist L2): by default
an exchange carries the categories its payload kind can hold, limited to the channel's
allowlist (gateway.consent.vocab.ALLOWLIST, DPO-approved) and to what the plan contains; the
payload is then built from the plan restricted to those categories, so the decision and the
bytes that leave describe the same data.
"""

from __future__ import annotations

from gateway.model import Plan

# What each payload kind can hold.
KIND_CATEGORIES = {
    "tddui-bundle": ("identity", "plan", "needs", "orientation", "evaluation", "events"),
    "cds-careteam": ("identity", "social"),
    "sdo-consent": ("identity", "orientation"),
    "sdo-status": ("identity", "orientation"),
    "cda-document": ("identity", "plan", "needs"),
    "xdm-message": ("identity", "plan", "needs"),
}


def present(plan: Plan) -> set[str]:
    out = {"identity", "plan", "social"}
    if plan.needs:
        out.add("needs")
    if plan.orientation_decisions:
        out.add("orientation")
    if plan.evaluations:
        out.add("evaluation")
    if plan.events or plan.stays:
        out.add("events")
    return out


def default_categories(system: str, payload_kind: str, plan: Plan) -> tuple[str, ...]:
    from gateway.consent.vocab import ALLOWLIST, System

    allowed = {c.value for c in ALLOWLIST.get(System(system), frozenset())} if system in System.__members__ else set()
    wanted = [c for c in KIND_CATEGORIES.get(payload_kind, ()) if c in allowed and c in present(plan)]
    return tuple(wanted)


def restrict(plan: Plan, categories: tuple[str, ...] | frozenset[str]) -> Plan:
    """The plan without the parts whose category is not carried."""
    keep = set(categories)
    update: dict = {}
    if "needs" not in keep:
        update["needs"] = []
        update["objectives"] = [o.model_copy(update={"need_ids": []}) for o in plan.objectives]
    if "evaluation" not in keep:
        update["evaluations"] = []
    if "events" not in keep:
        update["events"] = []
        update["stays"] = []
    if "orientation" not in keep:
        update["orientation_decisions"] = []
    return plan.model_copy(update=update) if update else plan
