"""Suites of scripted tests against a live endpoint (`relais conformance run SUITE --base-url URL`).

Implemented: `tddui-consommateur`, `eparcours`, `sdo` (FHIR). Declared but not implemented yet
(the run says so and fails, never passes): `dmp` (XDS.b ITI-41/18/43 with VIHF — the DMP
connector and its sandbox come in a later step), `mss` (SMTP/IMAP MSSanté mailbox)."""

from __future__ import annotations

import datetime as dt
import time

from gateway.conformance.runner.suites.base import Endpoint, Suite, TestCase
from gateway.conformance.runner.suites.fhir_suites import EparcoursSuite, SdoSuite, TdduiConsumerSuite


class DmpSuite(Suite):
    name = "dmp"
    title = "point d'accès DMP XDS.b (ITI-41, ITI-18, ITI-43, VIHF)"
    implemented = False
    reference = ("non implémentée : le connecteur DMP et son bac à sable XDS.b arrivent à une étape ultérieure "
                 "(specs §5.1) ; les métadonnées et messages ITI-41 se valident déjà hors ligne avec "
                 "« relais conformance validate »")


class MssSuite(Suite):
    name = "mss"
    title = "boîte aux lettres MSSanté (SMTP 587 STARTTLS, IMAP 143 STARTTLS, IHE_XDM.zip)"
    implemented = False
    reference = "non implémentée dans cette version (voir README, « Conformance runner »)"


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
