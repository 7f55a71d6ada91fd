"""One error model for the whole gateway (style guide): where, which rule, from which source,
how bad, and a plain message (French first: coordinators and DPOs read it; English beside it)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    information = "information"


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True)

    location: str  # JSON path ($.needs[2].code), FHIRPath or XPath
    rule: str  # stable rule id, e.g. "serafin-unknown-code"
    message: str  # French
    message_en: str = ""
    severity: Severity = Severity.error
    source: str = "relais-plan"  # profile / schematron / rule set, with its version

    def line(self, prefix: str = "") -> str:
        """One CLI line: `file: location: [rule] message`."""
        head = f"{prefix}: " if prefix else ""
        tag = "" if self.severity is Severity.error else f"({self.severity.value}) "
        return f"{head}{self.location}: {tag}[{self.rule}] {self.message}"


def json_path(loc: tuple | list) -> str:
    """Pydantic location tuple -> JSON path: ('needs', 2, 'code') -> $.needs[2].code."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.error]
