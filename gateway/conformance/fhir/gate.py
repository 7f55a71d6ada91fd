"""The runtime gate: every TDDUI Bundle Relais emits is validated before it leaves.

Pinned to TDDUI 2.2.0 (`ans.fhir.fr.tddui#2.2.0`, with FR Core 2.1.0, IHE MHD 4.2.3 and the ANS
terminology subset). The compiled rule set shipped in `mappings/fhir/profiles/` is used, so the
gate needs no FHIR package on the machine; `tddui_gate(packages=[…])` compiles from packages
instead. Every problem's source carries the profile canonical and its version, and `Gate.pinned`
lists the packages (ids, versions, sha256) and the shipped rule file's sha256.

Policy of the gate (stricter than the generic engine): every resource must declare its profile,
a reference must resolve inside the Bundle (a transaction Relais emits is self-contained), and
best-practice recommendations (dom-6, narrative) are not reported.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

import orjson

from gateway.conformance.fhir.rules import RuleSet
from gateway.conformance.fhir.validator import Validator
from gateway.model.problem import Problem, Severity

TDDUI_MAIN = "ans.fhir.fr.tddui"
TDDUI_VERSION = "2.2.0"
# The packages the shipped TDDUI rule set is compiled from (file names in a FHIR package folder).
TDDUI_PACKAGES = (
    "ans.fhir.fr.tddui#2.2.0.tgz",
    "hl7.fhir.fr.core#2.1.0.tgz",
    "ihe.iti.mhd#4.2.3.tgz",
    "ans.fr.terminologies-subset#0.0.0-from-pdsm-combined.tgz",
)
TDDUI_RULES = "tddui-2.2.0.rules.json"
TDDUI_BUNDLE = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-bundle"


class Gate:
    def __init__(self, rules: RuleSet, *, rules_sha256: str = ""):
        self.rules = rules
        self.rules_sha256 = rules_sha256
        self.validator = Validator(rules, closed_references=True, require_profiles=True, best_practice=False)

    def validate(self, bundle: dict) -> list[Problem]:
        """All problems (errors, warnings, information notes); the Bundle may leave only if none
        is an error (`gateway.model.problem.errors`)."""
        return self.validator.validate(bundle)

    def accepts(self, bundle: dict) -> bool:
        return not any(p.severity is Severity.error for p in self.validate(bundle))

    @property
    def pinned(self) -> dict:
        out = self.rules.pinned()
        out["rules"] = {"format": self.rules.data["format"], "sha256": self.rules_sha256}
        out["defects"] = [f"{d['id']} ({d['specs']})" for d in self.rules.defects]
        return out

    def report(self, bundle: dict) -> dict:
        problems = self.validate(bundle)
        return {
            "valid": not any(p.severity is Severity.error for p in problems),
            "pinned": self.pinned,
            "problems": [p.model_dump(mode="json") for p in problems],
        }


def shipped_rules_path() -> Path:
    return Path(str(resources.files("mappings.fhir.profiles").joinpath(TDDUI_RULES)))


@cache
def _shipped_gate() -> Gate:
    raw = resources.files("mappings.fhir.profiles").joinpath(TDDUI_RULES).read_bytes()
    return Gate(RuleSet(orjson.loads(raw)), rules_sha256=hashlib.sha256(raw).hexdigest())


def tddui_gate(packages: list[str | Path] | None = None) -> Gate:
    """The TDDUI 2.2.0 gate: from the shipped rule set, or compiled from the given packages."""
    if packages is None:
        return _shipped_gate()
    return Gate(RuleSet.from_packages(list(packages), TDDUI_MAIN))
