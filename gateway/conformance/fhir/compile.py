"""Compile StructureDefinition snapshots into a compact, JSON-serialisable rule set.

The rule set is the project's own format (`relais-fhir-rules/1`), derived from the packages'
facts: per profile, a tree of element rules keeping only what the base FHIR structure (checked
separately by structure.py, compiled from the fhir.resources R4B models) does not already check —
cardinalities stricter than the base, fixed[x]/pattern[x], required bindings, choice-type
restrictions, type and target profiles, slicing (with each slice's discriminator values resolved
at compile time) and invariants — plus the value-set expansions its required bindings need, and
the ids, versions and sha256 of the packages it came from. A new guide version is then a data
change:

    python -m gateway.conformance.fhir.compile --package ans.fhir.fr.tddui#2.2.0.tgz \
        --package hl7.fhir.fr.core#2.1.0.tgz … --main ans.fhir.fr.tddui --out mappings/fhir/profiles/
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path

import orjson

from gateway.conformance.fhir import defects
from gateway.conformance.fhir.packages import Package, PackageSet
from gateway.conformance.fhir.rules import FORMAT
from gateway.conformance.fhir.terminology import BASE_R4_CODES, Expansion, Terminology

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
# Invariants present on (nearly) every element; the validator checks them in one native pass.
UNIVERSAL = {
    "ele-1": "hasValue() or (children().count() > id.count())",
    "ext-1": "extension.exists() != value.exists()",
}
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"


class CompileError(Exception):
    pass


def _max(value: str | None) -> int | None:
    return None if value in (None, "*") else int(value)


def _fixed_or_pattern(element: dict) -> tuple[str, str, object] | None:
    for key, value in element.items():
        if key.startswith("fixed") and key != "fixed":
            return "fixed", key, value
        if key.startswith("pattern") and key != "pattern":
            return "pattern", key, value
    return None


def _split_id(element_id: str) -> list[str]:
    return element_id.split(".")


@cache
def _is_resource_type(code: str) -> bool:
    """True for a resource type name (Patient, Bundle…), per the fhir.resources R4B models."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    if not code[:1].isupper():
        return False
    try:
        return issubclass(get_fhir_model_class(code), Resource)
    except ValueError:
        return False


def _model_enum(path: str) -> list[str] | None:
    """Codes the fhir.resources R4B model enumerates for a `code` element (base FHIR value sets
    that no loaded package defines, e.g. `http://hl7.org/fhir/ValueSet/task-status`)."""
    from fhir.resources.R4B import get_fhir_model_class

    parts = path.split(".")
    if any("[x]" in p for p in parts):
        return None
    try:
        cls = get_fhir_model_class(parts[0])
        for part in parts[1:-1]:
            field = cls.model_fields[part]
            text = str(field.annotation)
            name = text.split("abc.")[1].split("Type")[0] if "abc." in text else None
            if name is None:
                return None
            cls = get_fhir_model_class(name)
        extra = cls.model_fields[parts[-1]].json_schema_extra or {}
    except (KeyError, IndexError, ValueError, AttributeError):
        return None
    values = extra.get("enum_values")
    return list(values) if values else None


class Compiler:
    def __init__(self, packages: PackageSet, main_package: str, also: tuple[str, ...] = ()):
        self.packages = packages
        # Profiles compiled besides the main package's own: those its Bundles admit as entries
        # (e.g. FR Core Patient and Annuaire PractitionerRole in the cercle de soins Bundles).
        self.also = tuple(sorted(set(also)))
        self.main = packages.package(main_package)
        if self.main is None:
            raise CompileError(f"main package {main_package} is not among the loaded packages")
        self.terminology = Terminology(packages, override=defects.value_set)
        self.profiles: dict[str, dict] = {}
        self.value_sets: dict[str, Expansion] = {}
        self.warnings: list[str] = []
        self._pending: list[str] = []

    # --- public -------------------------------------------------------------------------------
    def compile(self) -> dict:
        for sd, _ in self.packages.all("StructureDefinition", self.main.id):
            if sd.get("kind") != "logical" and sd.get("derivation") == "constraint":
                self._pending.append(sd["url"])
        self._pending.extend(self.also)
        while self._pending:
            url = self._pending.pop(0)
            if url in self.profiles or url.startswith(CORE_SD):
                continue
            found = self.packages.resolve(url, "StructureDefinition")
            if found is None:
                self.warnings.append(f"profile {url} is referenced but not in the loaded packages")
                continue
            self.profiles[url] = self._profile(*found)
        out = {
            "format": FORMAT,
            "main": self.main.pin(),
            "packages": self.packages.pins(),  # every input package, each pinned by sha256
            "fhirVersion": "4.0.1",
            "profiles": {k: self.profiles[k] for k in sorted(self.profiles)},
            "valueSets": {k: self.value_sets[k].to_json() for k in sorted(self.value_sets)},
            "universal": sorted(UNIVERSAL),
            "defects": defects.describe(),
            "warnings": sorted(set(self.warnings)),
        }
        if self.also:
            out["also"] = list(self.also)
        return out

    # --- profiles -----------------------------------------------------------------------------
    def _profile(self, sd: dict, package: Package) -> dict:
        snapshot = (sd.get("snapshot") or {}).get("element")
        if not snapshot:
            raise CompileError(f"{sd['url']} has no snapshot in {package.label}")
        nodes: dict[str, dict] = {}
        root = None
        for element in snapshot:
            node = self._node(element, sd)
            nodes[element["id"]] = node
            parts = _split_id(element["id"])
            if len(parts) == 1:
                root = node
                continue
            parent_id = ".".join(parts[:-1])
            last = parts[-1]
            parent = nodes.get(parent_id)
            if parent is None:
                self.warnings.append(f"{sd['url']}: element {element['id']} has no parent in the snapshot")
                continue
            if ":" in last and element.get("sliceName"):
                owner = nodes.get(f"{parent_id}.{last.split(':')[0]}")
                if owner is None:
                    self.warnings.append(f"{sd['url']}: slice {element['id']} has no sliced element")
                    continue
                node["slice"] = element["sliceName"]
                owner.setdefault("slices", []).append(node)
            else:
                parent.setdefault("children", []).append(node)
        if root is None:
            raise CompileError(f"{sd['url']}: snapshot has no root element")
        for node in nodes.values():
            if node.get("slices") and "slicing" not in node:
                if node["name"] in ("extension", "modifierExtension"):
                    # FHIR: extensions are always sliced by url (some generated snapshots omit it)
                    node["slicing"] = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open", "ordered": False}
                else:
                    self.warnings.append(f"{sd['url']}: {node['id']} has slices but no slicing")
            for slice_node in node.get("slices", ()):
                slice_node["match"] = self._discriminators(node, slice_node, sd)
        _prune(root)
        return {
            "url": sd["url"],
            "version": sd.get("version", ""),
            "name": sd.get("name", ""),
            "type": sd["type"],
            "kind": sd.get("kind"),
            "package": package.label,
            "root": root,
        }

    def _node(self, element: dict, sd: dict) -> dict:
        parts = _split_id(element["id"])
        name = parts[-1].split(":")[0]
        node: dict = {"id": element["id"], "name": name}
        base = element.get("base") or {}
        mn, mx = element.get("min", 0), _max(element.get("max"))
        bmn, bmx = base.get("min", 0), _max(base.get("max"))
        node["list"] = bmx is None or bmx > 1
        if mn > bmn or element.get("sliceName"):
            node["min"] = mn
        if (mx is not None and (bmx is None or mx < bmx)) or element.get("sliceName"):
            node["max"] = mx
        types = element.get("type") or []
        codes = [t["code"] for t in types]
        if name.endswith("[x]"):
            node["types"] = codes
        profiles = sorted({p for t in types for p in t.get("profile", ())})
        if profiles:
            node["profiles"] = profiles
            if any(_is_resource_type(c) for c in codes):
                node["resource"] = True  # entry.resource: matched by declared meta.profile
                node["types"] = codes
            else:
                self._pending.extend(profiles)
        targets = sorted({p for t in types if t["code"] == "Reference" for p in t.get("targetProfile", ())})
        if targets and targets != [CORE_SD + "Resource"]:
            node["targetTypes"] = sorted({self._type_of(t) for t in targets} - {None})
            if any(not t.startswith(CORE_SD) for t in targets):
                node["targets"] = targets
        fp = _fixed_or_pattern(element)
        if fp:
            node[fp[0]] = fp[2]
            node["valueKey"] = fp[1]
        binding = element.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet"):
            vs = binding["valueSet"]
            node["binding"] = vs
            self._expand(vs, element, codes)
        if element.get("slicing"):
            slicing = element["slicing"]
            node["slicing"] = {
                "discriminator": slicing.get("discriminator", []),
                "rules": slicing.get("rules", "open"),
                "ordered": bool(slicing.get("ordered", False)),
            }
        constraints = []
        for c in element.get("constraint", ()):
            if c.get("key") in UNIVERSAL and c.get("expression") == UNIVERSAL[c["key"]]:
                continue
            if not c.get("expression"):
                continue  # a constraint with no FHIRPath (e.g. constr-bind-*) cannot be evaluated
            best = any(x.get("url") == BEST_PRACTICE and x.get("valueBoolean") for x in c.get("extension", ()))
            item = {
                "key": c["key"],
                "severity": c.get("severity", "error"),
                "human": c.get("human", ""),
                "expression": c["expression"],
                "source": c.get("source") or sd["url"],
            }
            if best:
                item["bestPractice"] = True
            constraints.append(item)
        if constraints:
            node["constraints"] = constraints
        return node

    def _type_of(self, profile: str) -> str | None:
        if profile.startswith(CORE_SD):
            return profile[len(CORE_SD) :].partition("|")[0]  # `…/Organization|4.0.1` (Annuaire, CDS)
        found = self.packages.resolve(profile, "StructureDefinition")
        if found is None:
            self.warnings.append(f"target profile {profile} is not in the loaded packages")
            return None
        return found[0].get("type")

    def _expand(self, canonical: str, element: dict, codes: list[str]) -> None:
        if canonical in self.value_sets and self.value_sets[canonical].expandable:
            return
        expansion = self.terminology.expand(canonical)
        if not expansion.expandable and canonical.partition("|")[0] in BASE_R4_CODES:
            expansion = Expansion(
                url=canonical.partition("|")[0],
                version=canonical.partition("|")[2],
                codes={"": set(BASE_R4_CODES[canonical.partition("|")[0]])},
                source=["relais: FHIR R4 4.0.1 code list (gateway/conformance/fhir/terminology.py)"],
            )
        if not expansion.expandable and codes == ["code"]:
            enum = _model_enum(element["path"])
            if enum and "+" not in enum:  # "+" marks a list the model abbreviates: not usable
                expansion = Expansion(
                    url=canonical.partition("|")[0],
                    version=canonical.partition("|")[2],
                    codes={"": set(enum)},
                    source=["fhir.resources 8.3.0 R4B enumeration (base FHIR code list)"],
                )
        self.value_sets[canonical] = expansion

    # --- slicing ------------------------------------------------------------------------------
    def _discriminators(self, owner: dict, slice_node: dict, sd: dict) -> list[dict]:
        out = []
        for disc in owner.get("slicing", {}).get("discriminator", ()):
            kind, path = disc.get("type"), disc.get("path", "$this")
            steps = _parse_path(path)
            if steps is None:
                self.warnings.append(f"{sd['url']} {slice_node['id']}: discriminator path '{path}' not supported")
                out.append({"type": "unsupported", "path": path})
                continue
            target = _follow(slice_node, steps)
            item: dict = {"type": kind, "path": path, "steps": steps}
            if kind in ("value", "pattern"):
                if target is not None and ("fixed" in target or "pattern" in target):
                    item["mode"] = "fixed" if "fixed" in target else "pattern"
                    item["value"] = target.get("fixed", target.get("pattern"))
                elif target is not None and target.get("binding"):
                    item["mode"] = "binding"
                    item["value"] = target["binding"]
                else:
                    item["type"] = "unsupported"
                    self.warnings.append(f"{sd['url']} {slice_node['id']}: no value for discriminator '{path}'")
            elif kind == "exists":
                item["value"] = bool(target and target.get("min", 0) >= 1)
            elif kind == "type":
                item["value"] = (target or {}).get("types") or []
            elif kind == "profile":
                item["value"] = (target or {}).get("profiles", [])
            else:
                item["type"] = "unsupported"
            out.append(item)
        return out


def _parse_path(path: str) -> list[list[str]] | None:
    """A discriminator path as steps: ['name', x] | ['ext', url] | ['ofType', T] | ['this']."""
    steps: list[list[str]] = []
    rest = path.strip()
    while rest:
        if rest.startswith("$this"):
            steps.append(["this"])
            rest = rest[5:]
        elif rest.startswith("extension('") or rest.startswith('extension("'):
            end = rest.index(")", 11)
            steps.append(["ext", rest[11 : end - 1]])
            rest = rest[end + 1 :]
        elif rest.startswith("ofType("):
            end = rest.index(")")
            steps.append(["ofType", rest[7:end]])
            rest = rest[end + 1 :]
        elif rest.startswith("resolve()"):
            return None
        else:
            name = rest.split(".", 1)[0]
            if not name.replace("_", "").isalnum():
                return None
            steps.append(["name", name])
            rest = rest[len(name) :]
        if rest.startswith("."):
            rest = rest[1:]
        elif rest:
            return None
    return steps


def _follow(node: dict, steps: list[list[str]]) -> dict | None:
    """The element rule a discriminator path designates inside a slice (compile time)."""
    current: dict | None = node
    for step in steps:
        if current is None:
            return None
        if step[0] in ("this", "ofType"):
            continue
        if step[0] == "ext":
            ext = _child(current, "extension")
            current = next((s for s in (ext or {}).get("slices", ()) if _extension_url_for(s) == step[1]), None)
            continue
        nxt = _child(current, step[1])
        if nxt is None and step[1] == "url" and current.get("profiles"):
            return {"fixed": current["profiles"][0]}  # a profiled extension: its canonical is its url
        current = nxt
    return current


def _child(node: dict, name: str) -> dict | None:
    for child in node.get("children", ()):
        if child["name"] == name or (child["name"] == name + "[x]"):
            return child
    return None


def _fixed_url(node: dict) -> str | None:
    url = _child(node, "url")
    return url.get("fixed") if url else None


def _extension_url_for(slice_node: dict) -> str | None:
    return _fixed_url(slice_node) or (slice_node.get("profiles") or [None])[0]


def _prune(node: dict) -> bool:
    """Drop children that constrain nothing beyond the base structure; True when `node` matters."""
    kept = [c for c in node.get("children", ()) if _prune(c)]
    if kept:
        node["children"] = kept
    else:
        node.pop("children", None)
    for s in node.get("slices", ()):
        _prune(s)
    if "slicing" in node and not node.get("slices") and node["slicing"]["rules"] != "closed":
        del node["slicing"]  # open slicing without slices (e.g. every `extension`) constrains nothing
    if node.get("name") == "url" and "fixed" in node:
        return True  # extension urls serve the discriminators
    interesting = (
        "min",
        "max",
        "types",
        "profiles",
        "targetTypes",
        "fixed",
        "pattern",
        "binding",
        "slicing",
        "slices",
        "constraints",
        "children",
        "slice",
    )
    return any(k in node for k in interesting)


def rules_filename(rules: dict) -> str:
    main = rules["main"]
    short = main["id"].rsplit(".", 1)[-1]
    return f"{short}-{main['version']}.rules.json"


def dump(rules: dict) -> bytes:
    return orjson.dumps(rules, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def compile_packages(paths: list[str | Path], main: str, also: tuple[str, ...] = ()) -> dict:
    return Compiler(PackageSet.load(paths), main, also).compile()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.conformance.fhir.compile",
        description="Compile FHIR profiles (StructureDefinition snapshots) into a Relais rule set.",
    )
    parser.add_argument("--package", action="append", required=True, help="package .tgz or folder (repeat)")
    parser.add_argument("--main", required=True, help="id of the package whose profiles are compiled")
    parser.add_argument("--out", required=True, help="output folder (or a .json file)")
    parser.add_argument("--also", action="append", default=[],
                        help="canonical of another profile to compile, e.g. a Bundle entry's (repeat)")
    args = parser.parse_args(argv)
    try:
        rules = compile_packages(args.package, args.main, tuple(args.also))
    except Exception as exc:  # report and stop: a missing input is never a silent pass
        print(f"compile: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    target = out if out.suffix == ".json" else out / rules_filename(rules)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(dump(rules))
    print(f"{target}: {len(rules['profiles'])} profiles, {len(rules['valueSets'])} value sets")
    for warning in rules["warnings"]:
        print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
