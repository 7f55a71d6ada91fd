"""Compile the base FHIR structure from the fhir.resources R4B models into a compact data file.

    .venv/bin/python -m gateway.conformance.fhir.structure_schema [--out mappings/fhir/profiles/r4-structure.json]

The fhir.resources models are the project's chosen source for the base structure (the official
`hl7.fhir.r4.core` package is not available offline). What their pydantic validation enforces is
read off the model classes once, here, and written as plain data (`relais-fhir-structure/1`):

- `types`: for every resource, backbone element and data type, each JSON property (choice types
  already expanded: `valueString`, `valueQuantity`…) → `[type, min, max, ext]`: `type` is a
  primitive name (`boolean`, `dateTime`…), a complex type (`Coding`, `PatientContact`…) or
  `Resource` (a resource chosen by its `resourceType`: `contained`, `Bundle.entry.resource`);
  `min` is 1 when the model requires the element; `max` is `1` or `*`; `ext` is 1 when the
  `_name` sibling (extensions and id of a primitive) is allowed;
- `choices`: per type, each choice group (`deceased[x]` → its properties) and whether one is
  required;
- `resources`: the resource types an instance may declare (abstract ones left out);
- `primitives`: the formats fhir_core applies (its regular expressions, length and range limits),
  copied verbatim so that a change upstream shows as a change of this file; the fast check
  (structure.py) refuses to load a file whose formats it does not implement.

A test regenerates the file from the installed fhir.resources and requires the same bytes: an
upgrade of fhir.resources / fhir_core is a data change, reviewed like one.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import types
import typing
import uuid
from importlib import metadata
from pathlib import Path

import orjson

FORMAT = "relais-fhir-structure/1"
DATA_FILE = "r4-structure.json"  # in mappings/fhir/profiles/
ABSTRACT_RESOURCES = ("Resource", "DomainResource")

# fhir_core's metadata classes → FHIR primitive type names (their `__visit_name__`)
_PY_PRIMITIVES = {bool: "boolean", uuid.UUID: "uuid"}
_MODEL_PRIMITIVES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "integer64", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid", "xhtml",
})


def _models() -> dict[str, type]:
    """Every model class of fhir.resources.R4B, by class name (unique in the package)."""
    import fhir.resources.R4B as r4b
    from fhir_core.fhirabstractmodel import FHIRAbstractModel

    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"fhir.resources.R4B.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, FHIRAbstractModel) and obj.__module__ == module.__name__:
                if name in found and found[name] is not obj:
                    raise RuntimeError(f"two fhir.resources models named {name}")
                found[name] = obj
    return found


def _leaf(annotation) -> tuple[bool, str]:
    """(is a list, type) of a field annotation: a primitive name, a model class name, `Resource`."""
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    is_list = False
    todo = [annotation]
    while todo:
        ann = todo.pop()
        origin = typing.get_origin(ann)
        if origin in (typing.Union, types.UnionType):
            todo.extend(a for a in typing.get_args(ann) if a is not type(None))
            continue
        if origin is list:
            is_list = True
            todo.extend(typing.get_args(ann))
            continue
        if origin is typing.Annotated:
            base, *meta = typing.get_args(ann)
            for m in meta:
                name = getattr(m, "__visit_name__", None)
                if name:
                    return is_list, name
            if base is uuid.UUID:
                return is_list, "uuid"
            todo.append(base)
            continue
        if ann in _PY_PRIMITIVES:
            return is_list, _PY_PRIMITIVES[ann]
        if isinstance(ann, type) and issubclass(ann, FhirElementOrResourceBase):
            target = ann._model_klass.rsplit(".", 1)[1]
            if target != "Resource":
                raise RuntimeError(f"element-or-resource field of type {target} not supported")
            return is_list, "Resource"
        if isinstance(ann, type) and issubclass(ann, FhirBase):
            return is_list, ann._model_klass.rsplit(".", 1)[1]
        if isinstance(ann, type) and ann.__name__ == "FHIRPrimitiveExtension":
            return is_list, "FHIRPrimitiveExtension"
        raise RuntimeError(f"unsupported annotation {ann!r}")
    raise RuntimeError(f"no type in {annotation!r}")


def _type(cls) -> tuple[dict[str, list], list[list]]:
    """Elements and choice groups of one model class."""
    if cls.get_resource_type() != cls.__name__:
        raise RuntimeError(f"{cls.__name__}: resource type {cls.get_resource_type()}")  # structure.py relies on it
    fields = cls.model_fields
    required_primitives = {name for name, _ in cls.get_required_fields(None)}
    elements: dict[str, list] = {}
    ext_of: set[str] = set()
    for name, field in fields.items():
        if name == "fhir_comments":
            continue  # fhir.resources' own comment carrier, not an R4 element (structure.py)
        alias = field.alias or name
        is_list, leaf = _leaf(field.annotation)
        if leaf == "FHIRPrimitiveExtension":
            if not alias.startswith("_"):
                raise RuntimeError(f"{cls.__name__}.{name}: primitive extension without a _ name")
            ext_of.add(alias[1:])
            continue
        if alias != name and not (name.endswith("_fhir") and name[:-5] == alias):
            raise RuntimeError(f"{cls.__name__}.{name}: unexpected alias {alias}")  # structure.py relies on it
        if leaf in _MODEL_PRIMITIVES and field.is_required():
            raise RuntimeError(f"{cls.__name__}.{name}: primitive required by pydantic, not by fhir_core")
        if leaf not in _MODEL_PRIMITIVES and alias in required_primitives:
            raise RuntimeError(f"{cls.__name__}.{name}: complex element in get_required_fields")
        required = field.is_required() or alias in required_primitives
        elements[alias] = [leaf, 1 if required else 0, "*" if is_list else 1, 0]
    for base in ext_of:
        if base not in elements:
            raise RuntimeError(f"{cls.__name__}._{base} has no {base}")
        elements[base][3] = 1
    choices = []
    groups = cls.get_one_of_many_fields(None) or {}
    for prefix, names in groups.items():
        first = fields[names[0]].json_schema_extra
        aliases = [fields[n].alias or n for n in names]
        choices.append([prefix, 1 if first.get("one_of_many_required") else 0, aliases])
    return dict(sorted(elements.items())), sorted(choices)


def _primitives() -> dict[str, dict]:
    """The formats fhir_core applies to each primitive (copied, not interpreted, here)."""
    from fhir_core import constraints as c
    from fhir_core import types as t

    def general(meta) -> str:
        (only,) = list(meta)
        return only.__dict__["pattern"]

    id_meta = list(t.Id())
    return {
        "base64Binary": {"check": "base64.b64decode of the UTF-8 bytes (pydantic Base64Bytes)"},
        "boolean": {"check": "bool"},
        "canonical": {"check": "str", "pattern": t.Canonical.pattern.pattern, "match": "search"},
        "code": {"check": "str", "pattern": general(t.Code()), "match": "search"},
        "date": {"check": "str", "pattern": t.Date.pattern.pattern, "match": "full", "calendar": True},
        "dateTime": {"check": "str", "pattern": t.DateTime.pattern.pattern, "match": "full", "calendar": True},
        "decimal": {"check": "number", "pattern": t.Decimal.pattern.pattern, "match": "full"},
        "id": {"check": "str", "pattern": id_meta[2].__dict__["pattern"], "match": "search",
               "minLength": id_meta[0].min_length, "maxLength": id_meta[1].max_length},
        "instant": {"check": "str", "pattern": t.Instant.pattern.pattern, "match": "full", "calendar": True},
        "integer": {"check": "int", "min": t.Integer().min_length, "max": t.Integer().max_length},
        "markdown": {"check": "str", "pattern": t.Markdown.pattern.pattern, "match": "search"},
        "oid": {"check": "str", "pattern": t.Oid.pattern.pattern, "match": "search"},
        "positiveInt": {"check": "int", "min": t.PositiveInt().min_length, "max": t.PositiveInt().max_length},
        "string": {"check": "str", "pattern": general(t.String()), "match": "search",
                   "allowEmpty": bool(c.TYPES_STRING_ALLOW_EMPTY_STR)},
        "time": {"check": "str", "pattern": t.Time.pattern.pattern, "match": "full"},
        "unsignedInt": {"check": "int", "min": t.UnsignedInt().min_length, "max": t.UnsignedInt().max_length},
        "uri": {"check": "str", "pattern": t.Uri.pattern.pattern, "match": "search"},
        "url": {"check": "str"},
        "uuid": {"check": "UUID version 4 (pydantic UUID4)"},
        "xhtml": {"check": "str"},
    }


# Where the R4B models are not FHIR R4 (4.0.1) in the types the French guides use — found by comparing
# the models with the R4 snapshots of the FR Core / TDDUI / MHD / PDS-m / SDO / CDS profiles
# (tests/test_fhir_structure_schema.py) — the file says R4. Each correction is listed in the file.
OPEN_TYPE_GROUPS = (  # `value[x]` of type `*`: R4 allows Meta, R4B replaced it by CodeableReference, RatioRange
    ("Extension", "value"),
    ("ElementDefinition", "defaultValue"),
    ("ElementDefinition", "fixed"),
    ("ElementDefinition", "pattern"),
    ("ElementDefinitionExample", "value"),
)


def _r4_corrections(table: dict[str, dict], choices: dict[str, list], primitives: dict) -> list[dict]:
    done = []
    for type_name, prefix in OPEN_TYPE_GROUPS:
        elements = table[type_name]
        (group,) = [g for g in choices[type_name] if g[0] == prefix]
        for r4b_only in ("CodeableReference", "RatioRange"):
            name = prefix + r4b_only
            if elements.pop(name, None) is None:
                raise RuntimeError(f"{type_name}.{name} expected in the R4B model (correction out of date)")
            group[2].remove(name)
            done.append({"type": type_name, "element": name, "change": "removed",
                         "why": f"{r4b_only} is an R4B data type; FHIR R4 {type_name}.{prefix}[x] does not allow it"})
        name = prefix + "Meta"
        if name in elements:
            raise RuntimeError(f"{type_name}.{name} already in the model (correction out of date)")
        elements[name] = ["Meta", 0, 1, 0]
        group[2].append(name)
        group[2].sort()
        table[type_name] = dict(sorted(elements.items()))
        done.append({"type": type_name, "element": name, "change": "added",
                     "why": f"FHIR R4 {type_name}.{prefix}[x] allows Meta (open type); the R4B model lacks it"})
    extension = table["Extension"]
    for name, spec in extension.items():
        if name.startswith("value") and spec[0] in primitives and not spec[3]:
            spec[3] = 1
            done.append({"type": "Extension", "element": "_" + name, "change": "added",
                         "why": "FHIR R4 JSON allows the `_` sibling (id, extensions) of a primitive value[x] of an "
                                "extension; the model refuses it"})
    return done


def compile_structure() -> dict:
    """The structure data (`relais-fhir-structure/1`) of the installed fhir.resources R4B models."""
    from fhir.resources.R4B import __fhir_version__

    models = _models()
    resource_cls = models["Resource"]
    table: dict[str, dict] = {}
    choices: dict[str, list] = {}
    resources = []
    todo = []
    for name, cls in models.items():
        if issubclass(cls, resource_cls) and name == cls.get_resource_type() and name not in ABSTRACT_RESOURCES:
            resources.append(name)
            todo.append(name)
    while todo:
        name = todo.pop()
        if name in table:
            continue
        elements, groups = _type(models[name])
        table[name] = elements
        if groups:
            choices[name] = groups
        for leaf, *_ in elements.values():
            if leaf in models and leaf not in table and leaf != "Resource":
                todo.append(leaf)
    primitives = _primitives()
    corrections = _r4_corrections(table, choices, primitives)
    used = {leaf for elements in table.values() for leaf, *_ in elements.values() if leaf not in table}
    unknown = used - set(primitives) - {"Resource"}
    if unknown:
        raise RuntimeError(f"primitive types without a format: {sorted(unknown)}")
    # the primitive extension's own elements (`_birthDate`: id, extension)
    ext = models["FHIRPrimitiveExtension"]
    ext_elements = {}
    for name, field in ext.model_fields.items():
        if name != "fhir_comments":
            is_list, leaf = _leaf(field.annotation)
            ext_elements[field.alias or name] = [leaf, 0, "*" if is_list else 1, 0]
    return {
        "format": FORMAT,
        "source": {
            "fhir.resources": metadata.version("fhir.resources"),
            "fhir_core": metadata.version("fhir_core"),
            "models": "fhir.resources.R4B",
            "fhirVersion": __fhir_version__,
        },
        "note": "Generated by gateway.conformance.fhir.structure_schema from the fhir.resources R4B models; "
                "element: [type, min, max, ext]; regenerate, do not edit.",
        "corrections": corrections,
        "resources": sorted(resources),
        "primitiveExtension": dict(sorted(ext_elements.items())),
        "primitives": primitives,
        "choices": dict(sorted(choices.items())),
        "types": dict(sorted(table.items())),
    }


def dump(data: dict) -> bytes:
    """Stable bytes: one type per line, sorted keys (small diffs when fhir.resources changes)."""
    head = {k: v for k, v in data.items() if k != "types"}
    lines = [orjson.dumps(head, option=orjson.OPT_SORT_KEYS)[:-1] + b',"types":{']
    items = list(data["types"].items())
    for i, (name, elements) in enumerate(items):
        sep = b"," if i < len(items) - 1 else b""
        lines.append(orjson.dumps(name) + b":" + orjson.dumps(elements, option=orjson.OPT_SORT_KEYS) + sep)
    lines.append(b"}}")
    return b"\n".join(lines) + b"\n"


def default_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("mappings.fhir.profiles").joinpath(DATA_FILE)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"file to write (default: the shipped {DATA_FILE})")
    args = parser.parse_args(argv)
    out = args.out or default_path()
    if out.is_dir():
        out = out / DATA_FILE
    data = compile_structure()
    out.write_bytes(dump(data))
    print(f"{out}: {len(data['types'])} types, {len(data['resources'])} resources "
          f"(fhir.resources {data['source']['fhir.resources']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
