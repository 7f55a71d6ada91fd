"""Property: plan → TDDUI Bundle → plan is the identity (issue 4 item 3), on 500 generated plans."""

from __future__ import annotations

import datetime as dt

import orjson
from hypothesis import HealthCheck, given, settings

from mappings.fhir.tddui import bundle_to_plan, plan_to_bundle
from tests.strategies import TODAY, valid_plans

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_plans())
def test_plan_to_bundle_to_plan_is_the_identity(plan):
    bundle = orjson.loads(orjson.dumps(plan_to_bundle(plan, NOW)))  # through real JSON bytes
    again, problems = bundle_to_plan(bundle, TODAY)
    assert again is not None, [p.line() for p in problems]
    assert [p.line() for p in problems if p.rule.startswith("tddui")] == []
    assert again == plan
