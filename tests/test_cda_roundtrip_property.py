"""Property: plan -> CDA -> plan is the identity on any valid plan, for everything the CDA
carries (all of it but the INS of a non-qualified identity, RNIV)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings

from gateway.model import IdentityStatus, Plan
from mappings.cda import cda_to_plan, plan_to_cda
from tests.strategies import valid_plans

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone.utc)


def carried(plan: Plan) -> dict:
    data = plan.model_dump(mode="json")
    if plan.person.identity_status is not IdentityStatus.QUAL:
        data["person"]["ins"] = None
        if data["person"]["identity_status"] == "RECUP":
            data["person"]["identity_status"] = "PROV"
    return data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_plans())
def test_plan_cda_plan_is_the_identity_for_what_the_cda_carries(plan):
    result = cda_to_plan(plan_to_cda(plan, now=NOW))
    assert result.plan is not None, [p.line() for p in result.problems]
    assert result.plan.model_dump(mode="json") == carried(plan)
