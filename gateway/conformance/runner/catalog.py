"""Where FHIR profiles come from, indexed once and cached on disk.

Sources, in order: the packages given with `--package` (a `package.tgz`, an extracted folder, or
a folder of packages such as a copy of `~/.fhir/packages`), then the standard package cache
(`~/.fhir/packages`), then — unless refused — the rule sets Relais itself ships and applies
(`mappings/fhir/profiles/*.rules.json`, compiled from pinned packages). A profile none of them
defines is a missing input: an error naming the canonical, never a silent pass.

Disk cache (`RELAIS_CONFORMANCE_CACHE`, default `./var/cache/conformance/`):
- `index/` one small JSON per package file or folder (keyed by path, size and mtime): id,
  version, sha256, dependencies and the canonicals of its profiles — so a run reads no .tgz
  unless it must compile;
- `rules/` the compiled rule set of each package (`relais-fhir-rules/1`, keyed by the sha256 of
  the compiler and of every input package): compiled once, then only loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import orjson

from gateway.conformance.fhir import compile as fhir_compile
from gateway.conformance.fhir.packages import PackageError, PackageSet, _version_key, fhir_cache_dirs, load_package
from gateway.conformance.fhir.rules import FORMAT, RuleSet
from gateway.conformance.fhir.validator import Validator

INDEX_VERSION = "relais-package-index/1"
_ENGINE_FILES = ("compile.py", "terminology.py", "defects.py", "rules.py")


class CatalogError(Exception):
    """A given input cannot be used: the run stops (never validates without it)."""


@dataclass
class PackageEntry:
    id: str
    version: str
    sha256: str
    path: str
    origin: str  # "--package" | "cache FHIR" | "relais"
    dependencies: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)  # canonical url -> SD version
    rules_file: str | None = None  # shipped rule set (origin "relais")

    @property
    def label(self) -> str:
        return f"{self.id}#{self.version}"

    def pin(self) -> dict:
        out = {"id": self.id, "version": self.version, "sha256": self.sha256, "origin": self.origin}
        if self.origin != "relais":
            out["path"] = self.path
        return out


def _engine_digest() -> str:
    digest = hashlib.sha256(FORMAT.encode())
    folder = Path(fhir_compile.__file__).parent
    for name in _ENGINE_FILES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _stat_key(path: Path) -> str:
    """Changes when the package changes: size and mtime of the file, or of every file of a folder."""
    parts = [str(path.resolve())]
    if path.is_file():
        st = path.stat()
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    else:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                st = file.stat()
                parts.append(f"{file.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _is_package(path: Path) -> bool:
    return path.is_file() or (path / "package" / "package.json").is_file() or (
        path.name == "package" and (path / "package.json").is_file())


def expand_package_paths(path: Path) -> list[Path]:
    """A package, or a folder holding packages (`*.tgz`, `<id>#<version>/package/`)."""
    if not path.exists():
        raise CatalogError(f"paquet FHIR introuvable : {path}")
    if _is_package(path):
        return [path]
    found = sorted(p for p in path.iterdir() if (p.suffix == ".tgz" and p.is_file()) or
                   (p.is_dir() and _is_package(p)))
    if not found:
        raise CatalogError(f"{path} : ni un paquet FHIR (package/package.json) ni un dossier de paquets")
    return found


class Catalog:
    def __init__(self, packages: list[str | Path] = (), *, cache_dir: str | Path | None = None,
                 use_fhir_cache: bool = True, use_shipped: bool = True, fhir_cache: list[Path] | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else _default_cache()
        self.entries: list[PackageEntry] = []
        self.notes: list[str] = []
        self._rules: dict[str, RuleSet] = {}
        self._validators: dict[tuple, Validator] = {}
        self._engine = None
        for given in packages:
            for path in expand_package_paths(Path(given).expanduser()):
                self.entries.append(self._index(path, "--package"))
        if use_fhir_cache:
            for folder in fhir_cache if fhir_cache is not None else fhir_cache_dirs():
                if folder.is_dir():
                    for path in sorted(folder.iterdir()):
                        if path.is_dir() and _is_package(path) and "#" in path.name:
                            try:
                                self.entries.append(self._index(path, "cache FHIR"))
                            except (PackageError, CatalogError) as exc:
                                self.notes.append(f"paquet du cache FHIR ignoré : {path} ({exc})")
        if use_shipped:
            self.entries.extend(_shipped_entries())
        self._by_url: dict[str, list[PackageEntry]] = {}
        for entry in self.entries:
            for url in entry.profiles:
                self._by_url.setdefault(url, []).append(entry)

    # --- index ---------------------------------------------------------------------------------
    def _index(self, path: Path, origin: str) -> PackageEntry:
        cached = self.cache_dir / "index" / f"{_stat_key(path)}.json"
        if cached.is_file():
            data = orjson.loads(cached.read_bytes())
            if data.get("format") == INDEX_VERSION:
                return PackageEntry(data["id"], data["version"], data["sha256"], str(path), origin,
                                    data["dependencies"], data["profiles"])
        try:
            package = load_package(path)
        except PackageError as exc:
            raise CatalogError(f"paquet FHIR illisible : {exc}") from None
        profiles = {r["url"]: r.get("version", "") for r in package.resources
                    if r.get("resourceType") == "StructureDefinition" and r.get("url")
                    and r.get("derivation") == "constraint" and r.get("kind") != "logical"}
        data = {"format": INDEX_VERSION, "id": package.id, "version": package.version, "sha256": package.sha256,
                "dependencies": package.dependencies, "profiles": profiles}
        _atomic_write(cached, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        return PackageEntry(package.id, package.version, package.sha256, str(path), origin,
                            package.dependencies, profiles)

    # --- profiles -------------------------------------------------------------------------------
    def find(self, canonical: str, prefer: list[PackageEntry] = ()) -> tuple[PackageEntry | None, str]:
        """The package that defines `url` or `url|version`; (None, reason) when none does.
        Several candidates: the exact version asked, then one the preferred packages depend
        on, then packages before the FHIR cache before Relais's rule sets, then the newest."""
        url, _, version = canonical.partition("|")
        candidates = self._by_url.get(url, [])
        if version:
            exact = [e for e in candidates if e.profiles[url] == version]
            if not exact:
                known = sorted({e.profiles[url] for e in candidates})
                return None, ("version " + version + " absente (disponible : " + ", ".join(known) + ")") if known else "absent"
            candidates = exact
        if not candidates:
            return None, "absent"
        wanted = {(d, v) for p in prefer for d, v in p.dependencies.items()} | {(p.id, p.version) for p in prefer}
        order = {"--package": 0, "cache FHIR": 1, "relais": 2}
        ranked = sorted(candidates, key=lambda e: _version_key(e.version), reverse=True)  # newest first…
        ranked.sort(key=lambda e: ((e.id, e.version) not in wanted, order[e.origin]))  # …within each rank
        return ranked[0], ""

    def dependencies(self, entry: PackageEntry) -> list[PackageEntry]:
        """Entries for the packages `entry` declares (same id and version) that are available."""
        out = []
        for dep_id, dep_version in entry.dependencies.items():
            found = [e for e in self.entries if e.id == dep_id and e.version == dep_version and e.origin != "relais"]
            if found:
                out.append(found[0])
        return out

    def missing_dependencies(self, entry: PackageEntry) -> list[str]:
        have = {(e.id, e.version) for e in self.entries if e.origin != "relais"}
        return [f"{d}#{v}" for d, v in sorted(entry.dependencies.items()) if (d, v) not in have]

    # --- rule sets ------------------------------------------------------------------------------
    def rules(self, entry: PackageEntry) -> RuleSet:
        """The compiled rules of one package's profiles (with what they reference)."""
        if entry.label + entry.origin in self._rules:
            return self._rules[entry.label + entry.origin]
        if entry.origin == "relais":
            raw = resources.files("mappings.fhir.profiles").joinpath(entry.rules_file).read_bytes()
            rules = RuleSet(orjson.loads(raw))
        else:
            inputs = self._compile_inputs(entry)
            key = hashlib.sha256("\n".join([self._engine_digest(), entry.label] +
                                           sorted(e.sha256 for e in inputs)).encode()).hexdigest()
            cached = self.cache_dir / "rules" / f"{entry.label}-{key[:20]}.rules.json"
            if cached.is_file():
                rules = RuleSet(orjson.loads(cached.read_bytes()))
            else:
                try:
                    packages = PackageSet([load_package(e.path) for e in inputs])
                    data = fhir_compile.Compiler(packages, entry.id).compile()
                except (PackageError, fhir_compile.CompileError) as exc:
                    raise CatalogError(f"compilation des profils de {entry.label} impossible : {exc}") from None
                _atomic_write(cached, fhir_compile.dump(data))
                rules = RuleSet(data)
        self._rules[entry.label + entry.origin] = rules
        return rules

    def _engine_digest(self) -> str:
        if self._engine is None:
            self._engine = _engine_digest()
        return self._engine

    def _compile_inputs(self, entry: PackageEntry) -> list[PackageEntry]:
        """The package, then for every other package id available the version it declares, else
        the newest (terminology packages such as a subset of ans.fr.terminologies are not
        declared dependencies but carry the value sets its bindings use)."""
        chosen: dict[str, PackageEntry] = {entry.id: entry}
        for other in self.entries:
            if other.origin == "relais" or other.id == entry.id:
                continue
            current = chosen.get(other.id)
            declared = entry.dependencies.get(other.id)
            if current is None or other.version == declared or (
                    current.version != declared and _version_key(other.version) > _version_key(current.version)):
                chosen[other.id] = other
        return [chosen[k] for k in sorted(chosen, key=lambda k: k != entry.id)]

    def validator(self, entries: list[PackageEntry], *, best_practice: bool = False) -> Validator:
        """One validator for the profiles of these packages (the first one is the main)."""
        key = (tuple(e.label + e.origin for e in entries), best_practice)
        if key not in self._validators:
            sets = [self.rules(e) for e in entries]
            self._validators[key] = Validator(merge(sets) if sets else base_rules(), best_practice=best_practice)
        return self._validators[key]

    def pins(self, entries: list[PackageEntry]) -> tuple[list[dict], list[dict]]:
        """(packages, rule sets) a validation with these entries relied on."""
        packages, rules = [], []
        for entry in entries:
            rule_set = self.rules(entry)
            for pin in rule_set.packages:
                if any(p["sha256"] == pin["sha256"] for p in packages):
                    continue
                packages.append({"id": pin["id"], "version": pin["version"], "sha256": pin["sha256"],
                                 "origin": entry.origin, "role": "profils" if pin["id"] == entry.id else "dépendance"})
            rule = {"main": entry.label, "origin": entry.origin, "format": FORMAT}
            if entry.origin == "relais":
                rule["file"] = f"mappings/fhir/profiles/{entry.rules_file}"
                rule["sha256"] = entry.sha256
            rules.append(rule)
        return packages, rules


def merge(sets: list[RuleSet]) -> RuleSet:
    """Several compiled rule sets as one (the first one's main; earlier ones win on conflicts)."""
    data = {"format": FORMAT, "main": dict(sets[0].main), "packages": [], "fhirVersion": "4.0.1",
            "profiles": {}, "valueSets": {}, "defects": sets[0].defects, "warnings": []}
    for rules in sets:
        for pin in rules.packages:
            if pin not in data["packages"]:
                data["packages"].append(pin)
        for url, profile in rules.profiles.items():
            data["profiles"].setdefault(url, profile)
        for url, vs in rules.data["valueSets"].items():
            data["valueSets"].setdefault(url, vs)
    return RuleSet(data)


def base_rules() -> RuleSet:
    """No profile: the base FHIR R4 structure and invariants only."""
    return RuleSet({"format": FORMAT, "main": {"id": "hl7.fhir.r4.core", "version": "4.0.1", "sha256": ""},
                    "packages": [], "profiles": {}, "valueSets": {}, "defects": [], "warnings": []})


def _default_cache() -> Path:
    from gateway.settings import settings

    return Path(getattr(settings(), "conformance_cache", None) or "./var/cache/conformance")


_SHIPPED: list[PackageEntry] | None = None


def _shipped_entries() -> list[PackageEntry]:
    """Relais's own rule sets (what its runtime gates apply), as sources of last resort."""
    global _SHIPPED
    if _SHIPPED is None:
        out = []
        folder = resources.files("mappings.fhir.profiles")
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if not item.name.endswith(".rules.json"):
                continue
            raw = item.read_bytes()
            data = orjson.loads(raw)
            main = data["main"]
            profiles = {url: p.get("version", "") for url, p in data["profiles"].items()
                        if p.get("package", "").split("#")[0] == main["id"]}
            entry = PackageEntry(main["id"], main["version"], hashlib.sha256(raw).hexdigest(), item.name, "relais",
                                 {}, profiles, rules_file=item.name)
            out.append(entry)
        _SHIPPED = out
    return _SHIPPED
