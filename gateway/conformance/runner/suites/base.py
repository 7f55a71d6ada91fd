"""The framework of `relais conformance run SUITE --base-url URL`: a suite is an ordered list of
named tests against a live endpoint; each test passes, fails (with the issues behind it, located
and with their rule), or is skipped with its reason (never silently). Tests of one suite share a
`Session` (HTTP client, OAuth2 token, what earlier tests created)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.conformance.runner.results import Artefact, Issue
from gateway.model.problem import Severity

OUTCOME_FR = {"passed": "réussi", "failed": "échoué", "skipped": "ignoré", "error": "erreur"}


@dataclass
class Endpoint:
    base_url: str
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 10.0
    options: dict[str, str] = field(default_factory=dict)


class Skip(Exception):
    """The test cannot run against this endpoint (said in the report, never a pass)."""


class Failed(Exception):
    pass


@dataclass
class TestCase(Artefact):
    outcome: str = "passed"

    @property
    def valid(self) -> bool:
        return self.outcome in ("passed", "skipped")

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error") + (1 if self.outcome == "error" else 0)

    @property
    def outcome_fr(self) -> str:
        return OUTCOME_FR[self.outcome]

    def to_json(self) -> dict:
        out = super().to_json()
        out["outcome"] = self.outcome
        out["title"] = self.detail
        return out


@dataclass
class Check:
    id: str
    title: str  # what it verifies, in French
    run: Callable  # (session) -> None; records issues with session.fail(...)
    reference: str = ""  # the guide section it comes from


class Suite:
    name = ""
    title = ""
    implemented = True
    reference = ""

    def checks(self) -> list[Check]:
        raise NotImplementedError

    def describe(self) -> list[str]:
        if not self.implemented:
            return [self.reference]
        return [f"{c.id} : {c.title}" + (f" ({c.reference})" if c.reference else "") for c in self.checks()]

    def session(self, endpoint: Endpoint):
        raise NotImplementedError

    def run(self, endpoint: Endpoint) -> list[TestCase]:
        if not self.implemented:
            case = TestCase(f"{self.name}", "suite", detail=self.title, outcome="error")
            case.add([Issue("error", endpoint.base_url, "suite-not-implemented", f"relais-conformance suite {self.name}",
                            f"suite {self.name} non implémentée : {self.reference}")])
            return [case]
        session = self.session(endpoint)
        out = []
        try:
            for check in self.checks():
                case = TestCase(f"{self.name}/{check.id}", "test", detail=check.title)
                started = time.perf_counter()
                session.current = case
                try:
                    check.run(session)
                    if case.errors:
                        case.outcome = "failed"
                except Skip as exc:
                    case.outcome = "skipped"
                    case.add([Issue("information", check.id, "test-skipped", check.reference or self.name, str(exc))])
                except Failed:
                    case.outcome = "failed"
                except Exception as exc:  # the endpoint broke the test: an error, reported
                    case.outcome = "error"
                    case.add([Issue("error", check.id, "test-error", check.reference or self.name,
                                    f"{type(exc).__name__} : {exc}")])
                case.seconds = time.perf_counter() - started
                out.append(case)
        finally:
            session.close()
        return out


class SessionBase:
    """What every session offers tests: recording issues on the current test case."""

    current: TestCase | None = None

    def issue(self, rule: str, message: str, *, location: str = "", source: str = "",
              severity: Severity = Severity.error) -> None:
        self.current.add([Issue(severity.value, location or self.current.path, rule, source or self.source, message)])

    def fail(self, rule: str, message: str, **kw) -> None:
        self.issue(rule, message, **kw)
        raise Failed(message)

    def check(self, condition: bool, rule: str, message: str, **kw) -> bool:
        if not condition:
            self.issue(rule, message, **kw)
        return condition

    def tls_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext:
        """The server verified against `--ca-file` (IGC-Santé in production), TLS 1.2 minimum, and
        the structure's certificate when one is given (sessions hold `self.endpoint`)."""
        context = ssl.create_default_context(cafile=self.endpoint.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if with_client_cert and self.endpoint.client_cert:
            context.load_cert_chain(self.endpoint.client_cert, self.endpoint.client_key)
        return context

    def close(self) -> None:
        pass
