"""FHIR NPM packages, read offline: a `package.tgz` or an extracted folder.

A package is identified by its `package.json` name and version and by a sha256 (of the .tgz file, or
of a sorted manifest of the folder's files), so that every report can say exactly what it used.
Conformance resources (StructureDefinition, ValueSet, CodeSystem…) are indexed by canonical url
and by `url|version`. Examples (`package/example/`) are not indexed.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

INDEXED_TYPES = frozenset(
    {"StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "NamingSystem", "SearchParameter"}
)


class PackageError(Exception):
    """A package is missing, unreadable or not a FHIR NPM package."""


@dataclass
class Package:
    id: str
    version: str
    sha256: str
    path: str
    canonical: str = ""
    fhir_versions: tuple[str, ...] = ()
    dependencies: dict[str, str] = field(default_factory=dict)
    description: str = ""
    resources: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.id}#{self.version}"

    def pin(self) -> dict:
        """What a report says about this package."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


def _is_resource_member(name: str) -> bool:
    # package/<file>.json at the top level only (package/example/, package/other/ are not indexed)
    parts = name.split("/")
    return len(parts) == 2 and parts[0] == "package" and parts[1].endswith(".json")


def _from_members(members: dict[str, bytes], path: str, sha256: str) -> Package:
    manifest = members.get("package/package.json")
    if manifest is None:
        raise PackageError(f"{path}: no package/package.json (not a FHIR NPM package)")
    meta = orjson.loads(manifest)
    resources = []
    for name in sorted(members):
        if name == "package/package.json" or not _is_resource_member(name):
            continue
        try:
            res = orjson.loads(members[name])
        except orjson.JSONDecodeError as exc:
            raise PackageError(f"{path}: {name} is not valid JSON ({exc})") from exc
        if isinstance(res, dict) and res.get("resourceType") in INDEXED_TYPES:
            resources.append(res)
    return Package(
        id=meta["name"],
        version=meta["version"],
        sha256=sha256,
        path=path,
        canonical=meta.get("canonical", ""),
        fhir_versions=tuple(meta.get("fhirVersions") or meta.get("fhir-version-list") or ()),
        dependencies=dict(meta.get("dependencies") or {}),
        description=meta.get("description", ""),
        resources=resources,
    )


def load_package(path: str | Path) -> Package:
    """Read one package from a `.tgz` file or a folder (holding `package/` or being it)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PackageError(f"{p}: package not found")
    if p.is_file():
        data = p.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for info in tar.getmembers():
                    if not info.isfile():
                        continue
                    name = info.name.lstrip("./")
                    if name == "package/package.json" or _is_resource_member(name):
                        members[name] = tar.extractfile(info).read()
        except tarfile.TarError as exc:
            raise PackageError(f"{p}: not a readable .tgz ({exc})") from exc
        return _from_members(members, str(p), digest)
    root = p if (p / "package.json").is_file() and p.name == "package" else p / "package"
    if not (root / "package.json").is_file():
        raise PackageError(f"{p}: no package/package.json (not a FHIR NPM package)")
    members = {}
    manifest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if not file.is_file():
            continue
        rel = "package/" + file.relative_to(root).as_posix()
        content = file.read_bytes()
        manifest.update(f"{hashlib.sha256(content).hexdigest()}  {rel}\n".encode())
        if rel == "package/package.json" or _is_resource_member(rel):
            members[rel] = content
    return _from_members(members, str(p), "folder:" + manifest.hexdigest())


def fhir_cache_dirs() -> list[Path]:
    """The usual local package cache (`~/.fhir/packages/<id>#<version>/package`)."""
    return [Path.home() / ".fhir" / "packages"]


def find_package(package_id: str, version: str, search: list[Path] | None = None) -> Path:
    """Locate `<id>#<version>` as a folder or `.tgz` in the given folders (default: the FHIR cache).
    A missing package is an error, never a silent skip."""
    for folder in search if search is not None else fhir_cache_dirs():
        for candidate in (folder / f"{package_id}#{version}", folder / f"{package_id}#{version}.tgz"):
            if candidate.exists():
                return candidate
    raise PackageError(f"package {package_id}#{version} not found in {[str(f) for f in search or fhir_cache_dirs()]}")


def _version_key(version: str) -> tuple:
    out = []
    for part in version.replace("-", ".").split("."):
        out.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return tuple(out)


class PackageSet:
    """Several packages, resources indexed by canonical url (newest version wins for a bare url)."""

    def __init__(self, packages: list[Package]):
        self.packages = list(packages)
        self._by_url: dict[str, list[tuple[dict, Package]]] = {}
        for package in self.packages:
            for res in package.resources:
                url = res.get("url")
                if url:
                    self._by_url.setdefault(url, []).append((res, package))
        for entries in self._by_url.values():
            entries.sort(key=lambda rp: _version_key(rp[0].get("version") or "0"), reverse=True)

    @classmethod
    def load(cls, paths: list[str | Path]) -> PackageSet:
        return cls([load_package(p) for p in paths])

    def package(self, package_id: str) -> Package | None:
        for package in self.packages:
            if package.id == package_id:
                return package
        return None

    def resolve(self, canonical: str, resource_type: str | None = None) -> tuple[dict, Package] | None:
        """Find `url` or `url|version`; None when absent."""
        url, _, version = canonical.partition("|")
        for res, package in self._by_url.get(url, ()):
            if resource_type and res.get("resourceType") != resource_type:
                continue
            if version and res.get("version") != version:
                continue
            return res, package
        return None

    def all(self, resource_type: str, package_id: str | None = None) -> list[tuple[dict, Package]]:
        out = []
        for package in self.packages:
            if package_id and package.id != package_id:
                continue
            out.extend((r, package) for r in package.resources if r.get("resourceType") == resource_type)
        return out

    def pins(self) -> list[dict]:
        return [p.pin() for p in self.packages]
