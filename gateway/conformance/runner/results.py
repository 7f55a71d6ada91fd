"""What a conformance run produces: one `Artefact` per file (and per document found inside an
XDM archive or an ITI-41 message), each with its problems, and the `Inputs` the run used
(packages, rule sets, schemas, schematron sets — with versions and hashes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.model.problem import Problem, Severity

# Kinds of artefact (detect.py)
FHIR_JSON, FHIR_XML, CDA, XDM, XDS, ITI41, UNKNOWN = (
    "fhir-json", "fhir-xml", "cda", "xdm", "xds-metadata", "iti41", "unknown")
KIND_LABELS = {
    FHIR_JSON: "ressource FHIR (JSON)", FHIR_XML: "ressource FHIR (XML)", CDA: "document CDA R2",
    XDM: "archive IHE XDM", XDS: "métadonnées XDS (SubmitObjectsRequest)", ITI41: "message ITI-41 (SOAP)",
    UNKNOWN: "type inconnu",
}
_DEFECT = re.compile(r"\((?:défaut|defect) (§\d+(?:\.\d+)?)\)")


@dataclass
class Issue:
    """A Problem as reported: the one error model plus, when the error comes from a documented
    defect of the official material (specs §11), that defect's number."""

    severity: str
    location: str
    rule: str
    source: str
    message: str
    message_en: str = ""
    defect: str | None = None

    @classmethod
    def of(cls, p: Problem) -> Issue:
        found = _DEFECT.search(p.message) or _DEFECT.search(p.message_en)
        return cls(p.severity.value, p.location, p.rule, p.source, p.message, p.message_en,
                   found.group(1) if found else None)

    def to_json(self) -> dict:
        out = {"severity": self.severity, "location": self.location, "rule": self.rule, "source": self.source,
               "message": self.message}
        if self.message_en:
            out["message_en"] = self.message_en
        if self.defect:
            out["defect"] = self.defect
        return out

    @classmethod
    def from_json(cls, data: dict) -> Issue:
        return cls(data["severity"], data["location"], data["rule"], data["source"], data["message"],
                   data.get("message_en", ""), data.get("defect"))


@dataclass
class Artefact:
    path: str
    kind: str
    issues: list[Issue] = field(default_factory=list)
    detail: str = ""  # what was checked, in a few words (profiles, schematron sets…)
    parent: str | None = None  # the archive or message it was found in
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")

    @property
    def valid(self) -> bool:
        return self.errors == 0

    def add(self, problems) -> None:
        """Add problems, each once (same location, rule and message)."""
        seen = {(i.location, i.rule, i.message) for i in self.issues}
        for p in problems:
            issue = p if isinstance(p, Issue) else Issue.of(p)
            key = (issue.location, issue.rule, issue.message)
            if key not in seen:
                seen.add(key)
                self.issues.append(issue)

    def to_json(self) -> dict:
        out = {"path": self.path, "kind": self.kind, "valid": self.valid, "errors": self.errors,
               "warnings": self.warnings, "detail": self.detail,
               "issues": [i.to_json() for i in self.issues]}
        if self.parent:
            out["parent"] = self.parent
        return out

    @classmethod
    def from_json(cls, data: dict) -> Artefact:
        return cls(data["path"], data["kind"], [Issue.from_json(i) for i in data["issues"]],
                   data.get("detail", ""), data.get("parent"))


@dataclass
class Inputs:
    """Everything a run relied on, pinned: the report lists it so a result can be reproduced."""

    packages: list[dict] = field(default_factory=list)  # id, version, sha256, path, origin
    rules: list[dict] = field(default_factory=list)  # compiled or shipped FHIR rule sets
    schemas: list[dict] = field(default_factory=list)  # XSD: file, sha256
    schematrons: list[dict] = field(default_factory=list)  # name, file, version, sha256
    value_sets: list[dict] = field(default_factory=list)  # XDS value-set files: file, version, sha256
    notes: list[str] = field(default_factory=list)  # missing dependencies, decisions

    def merge(self, other: Inputs) -> None:
        for name in ("packages", "rules", "schemas", "schematrons", "value_sets"):
            mine = getattr(self, name)
            for item in getattr(other, name):
                if item not in mine and not (name == "packages" and any(
                        m.get("sha256") == item.get("sha256") for m in mine)):
                    mine.append(item)
        for note in other.notes:
            if note not in self.notes:
                self.notes.append(note)

    def to_json(self) -> dict:
        key = lambda d: sorted(d.items())  # noqa: E731 — deterministic order whatever the worker order
        return {"packages": sorted(self.packages, key=key), "rules": sorted(self.rules, key=key),
                "schemas": sorted(self.schemas, key=key), "schematrons": sorted(self.schematrons, key=key),
                "value_sets": sorted(self.value_sets, key=key), "notes": sorted(self.notes)}

    @classmethod
    def from_json(cls, data: dict) -> Inputs:
        return cls(**{k: list(v) for k, v in data.items()})


def problem(rule: str, message: str, message_en: str = "", *, location: str = "/",
            severity: Severity = Severity.error, source: str = "relais-conformance") -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=severity, source=source)
