"""Suites of scripted tests against a live endpoint (`relais conformance run SUITE --base-url URL`):
`tddui-consommateur`, `eparcours`, `sdo` (FHIR servers, fhir_suites.py), `dmp` (a DMP XDS.b
endpoint over mutual TLS with a VIHF, dmp_suite.py) and `mss` (an MSSanté operator, SMTP
submission and IMAP, mss_suite.py). Relais's own sandbox peers pass all of them (tests)."""

from __future__ import annotations

import datetime as dt
import time

from gateway.conformance.runner.suites.base import Endpoint, Suite, TestCase
from gateway.conformance.runner.suites.dmp_suite import DmpSuite
from gateway.conformance.runner.suites.fhir_suites import EparcoursSuite, SdoSuite, TdduiConsumerSuite
from gateway.conformance.runner.suites.mss_suite import MssSuite


SUITES: dict[str, Suite] = {s.name: s for s in (TdduiConsumerSuite(), EparcoursSuite(), SdoSuite(), DmpSuite(),
                                                MssSuite())}


class SuiteRun:
    """A suite's result, shaped like a validation run for the reports."""

    command = "run"

    def __init__(self, suite: str, base_url: str):
        self.suite, self.base_url = suite, base_url
        self.artefacts: list[TestCase] = []
        from gateway.conformance.runner.results import Inputs

        self.inputs = Inputs()
        self.started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.seconds = 0.0
        self.stopped: str | None = None

    @property
    def errors(self) -> int:
        return sum(a.errors for a in self.artefacts)

    @property
    def ok(self) -> bool:
        return all(a.valid for a in self.artefacts) and not self.stopped


def run_suite(name: str, endpoint: Endpoint) -> SuiteRun:
    run = SuiteRun(name, endpoint.base_url)
    started = time.perf_counter()
    run.artefacts = SUITES[name].run(endpoint)
    if SUITES[name].implemented and name in ("tddui-consommateur", "eparcours", "sdo"):
        from gateway.conformance.runner.suites import fhir_suites

        if fhir_suites._CATALOG is not None:
            for entry in fhir_suites._CATALOG.entries:
                if entry.origin == "relais":
                    packages, rules = fhir_suites._CATALOG.pins([entry])
                    run.inputs.packages += [p for p in packages if p not in run.inputs.packages]
                    run.inputs.rules += rules
    run.seconds = time.perf_counter() - started
    return run


__all__ = ["Endpoint", "SUITES", "SuiteRun", "run_suite"]
