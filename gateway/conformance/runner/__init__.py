"""The conformance runner for integrators (`relais conformance validate|run`): the rules Relais
applies, on a laptop or in CI, without a hosted service. `run_validate(paths, Options(...))`
validates files and folders; `suites.run_suite(name, Endpoint(...))` tests a live endpoint;
`report` writes the console, JSON, JUnit XML and HTML reports."""

from gateway.conformance.runner.validate import Options, Run, RunStopped, run_validate

__all__ = ["Options", "Run", "RunStopped", "run_validate"]
