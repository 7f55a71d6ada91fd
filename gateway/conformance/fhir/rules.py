"""A compiled rule set (`relais-fhir-rules/1`, see compile.py), ready for the validator."""

from __future__ import annotations

from pathlib import Path

import orjson

from gateway.conformance.fhir.terminology import Expansion

FORMAT = "relais-fhir-rules/1"


class RuleSetError(Exception):
    pass


class RuleSet:
    def __init__(self, data: dict):
        if data.get("format") != FORMAT:
            raise RuleSetError(f"unknown rule set format {data.get('format')!r} (expected {FORMAT})")
        self.data = data
        self.main: dict = data["main"]
        self.packages: list[dict] = data["packages"]
        self.profiles: dict[str, dict] = data["profiles"]
        self.value_sets: dict[str, Expansion] = {k: Expansion.from_json(v) for k, v in data["valueSets"].items()}
        self.defects: list[dict] = data.get("defects", [])
        self.warnings: list[str] = data.get("warnings", [])
        self.profile_names = {p["name"] for p in self.profiles.values() if p.get("name")}

    @classmethod
    def load(cls, path: str | Path) -> RuleSet:
        p = Path(path)
        if not p.is_file():
            raise RuleSetError(f"{p}: rule set not found")
        return cls(orjson.loads(p.read_bytes()))

    @classmethod
    def from_packages(cls, paths: list[str | Path], main: str) -> RuleSet:
        from gateway.conformance.fhir.compile import compile_packages  # packages are read only here

        return cls(compile_packages(paths, main))

    def pinned(self) -> dict:
        return {"main": dict(self.main), "packages": [dict(p) for p in self.packages]}

    def profile(self, canonical: str) -> tuple[dict | None, str]:
        """The profile for `url` or `url|version`, or None with the reason (French, English)."""
        url, _, version = canonical.partition("|")
        found = self.profiles.get(url)
        if found is None:
            return None, "unknown"
        if version and found.get("version") != version:
            return None, "version"
        return found, ""

    def expansion(self, canonical: str) -> Expansion | None:
        found = self.value_sets.get(canonical)
        if found is None and "|" in canonical:
            found = self.value_sets.get(canonical.partition("|")[0])
        return found
