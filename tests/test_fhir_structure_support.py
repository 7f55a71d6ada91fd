"""Support for the structure equivalence tests: the corpus, and the rule that says when the compiled
check (structure.py) and the fhir.resources models (structure_models.py) agree.

Agreement, for one resource:
- same locations when fhir.resources is right for FHIR R4 (no `r4` finding on our side, no
  fhir.resources crash, no documented fhir.resources-only error);
- otherwise every location only we report carries an `r4` finding (a documented R4 rule
  fhir.resources does not apply), and every location only fhir.resources reports is explained:
  it lies inside a value we refuse as a whole (e.g. a JSON string pydantic parsed into an object);
  or it is a check pydantic runs after an element's properties (required element, choice group)
  on an element holding one of our R4 findings, which stops that check as any error does;
  or it is one of the documented errors of fhir.resources in R4 (uuid version 4,
  `Extension.valueMeta`, `Extension._valueString`…); or fhir.resources crashed, and then we
  report an R4 finding.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.conformance.fhir.structure import Finding, Structure, compiled
from gateway.conformance.fhir.structure_models import ModelError, model_errors

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
PACKAGES = REFERENCE / "fhir-packages"
OFFICIAL = REFERENCE / "official"
AFTER_CHECKS = {"value_error", "model_field_validation.missing", "missing"}


def structure() -> Structure:
    found = compiled()
    assert found is not None, "the shipped r4-structure.json cannot be used"
    return found


def ours(resource) -> list[Finding]:
    s = structure()
    fast = s.valid(resource)
    found = [] if fast else s.findings(resource)
    if fast:
        assert not s.findings(resource), "the fast pass accepts what the precise pass refuses"
    else:
        assert found, "the fast pass refuses what the precise pass accepts"
    return found


def _inside(location: str, prefix: str) -> bool:
    return location == prefix or location.startswith(prefix + ".") or location.startswith(prefix + "[")


def _parent(location: str) -> str:
    cut = max(location.rfind("."), location.rfind("["))
    return location[:cut] if cut > 0 else location


def _element_of(finding: Finding) -> str:
    """The element a check after its properties is about (a choice group: the element itself)."""
    return finding.location if "[x]" in finding.message_en else _parent(finding.location)


def documented_model_only(error: ModelError, structure_data: dict) -> bool:
    """fhir.resources errors that are wrong in FHIR R4 (structure.py docstring)."""
    if error.kind == "uuid_version":
        return True  # R4 uuid: any version
    if error.kind == "extra_forbidden":
        name = error.location.rsplit(".", 1)[-1]
        added = {c["element"] for c in structure_data.get("corrections", ()) if c["change"] == "added"}
        return name in added
    return False


@dataclass
class Verdict:
    same: bool  # same locations
    explained: list[str] = field(default_factory=list)  # why they differ, when they do
    unexplained: list[str] = field(default_factory=list)


def compare(resource) -> Verdict:
    mine = ours(resource)
    theirs = model_errors(resource)
    my_locs = {f.location for f in mine}
    their_locs = {e.location for e in theirs}
    if my_locs == their_locs:
        return Verdict(True)
    verdict = Verdict(False)
    r4 = [f.location for f in mine if f.r4]
    crash = [e for e in theirs if e.kind.startswith("crash:")]
    if crash:
        if r4:
            verdict.explained.append(f"fhir.resources crash ({crash[0].kind}), R4 finding at {r4[0]}")
        else:
            verdict.unexplained.append(f"fhir.resources crash {crash[0].kind} and no R4 finding: {mine}")
        return verdict
    data = structure().data
    documented = [e.location for e in theirs if documented_model_only(e, data)]
    for loc in sorted(my_locs - their_locs):
        found = [f for f in mine if f.location == loc]
        if all(f.r4 for f in found):
            verdict.explained.append(f"R4 only: {loc}")
        elif any(_inside(loc, x) for x in documented):
            verdict.explained.append(f"inside an element fhir.resources wrongly refuses: {loc}")
        elif all(f.after for f in found) and any(_inside(x, _element_of(f)) for f in found for x in documented):
            verdict.explained.append(f"check after an element fhir.resources wrongly refuses: {loc}")
        else:
            verdict.unexplained.append(f"only compiled: {loc} {[f.message for f in mine if f.location == loc]}")
    for loc in sorted(their_locs - my_locs):
        errs = [e for e in theirs if e.location == loc]
        if any(_inside(loc, x) for x in r4):
            verdict.explained.append(f"inside a value refused in R4: {loc}")
        elif all(e.kind in AFTER_CHECKS for e in errs) and any(
            _inside(x, loc if e.kind == "value_error" else _parent(loc)) for e in errs for x in r4
        ):
            verdict.explained.append(f"check after an R4 finding: {loc}")
        elif all(documented_model_only(e, data) for e in errs):
            verdict.explained.append(f"fhir.resources wrong for R4: {loc} {[e.kind for e in errs]}")
        else:
            verdict.unexplained.append(f"only fhir.resources: {loc} {[(e.kind, e.message[:60]) for e in errs]}")
    return verdict


# --- corpus -----------------------------------------------------------------------------------
def fixture_bundles() -> dict[str, dict]:
    """The TDDUI Bundles of the 60 fixture plans."""
    import datetime as dt

    from gateway.model import Plan
    from mappings.fhir.tddui import plan_to_bundle

    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    out = {}
    for path in sorted((ROOT / "fixtures" / "plans").glob("*.json")):
        plan = Plan.model_validate(json.loads(path.read_text("utf-8")))
        out[f"fixture:{path.stem}"] = orjson.loads(orjson.dumps(plan_to_bundle(plan, now)))
    return out


def official_resources() -> dict[str, dict]:
    """The official JSON examples of shared/reference, and every JSON resource of its FHIR packages
    (StructureDefinitions, ValueSets, CodeSystems, examples)."""
    out: dict[str, dict] = {}
    if OFFICIAL.is_dir():
        for path in sorted(OFFICIAL.rglob("*.json")):
            try:
                doc = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and "resourceType" in doc:
                out[f"official:{path.relative_to(OFFICIAL)}"] = doc
    if PACKAGES.is_dir():
        for tgz in sorted(PACKAGES.glob("*.tgz")):
            with tarfile.open(tgz) as tar:
                for member in tar.getmembers():
                    if not member.isfile() or not member.name.endswith(".json"):
                        continue
                    if member.name.endswith(("package.json", ".index.json")):
                        continue
                    try:
                        doc = orjson.loads(tar.extractfile(member).read())
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(doc, dict) and isinstance(doc.get("resourceType"), str):
                        out[f"package:{tgz.name}/{member.name}"] = doc
    return out


def broken_copies() -> dict[str, dict]:
    """The conformance runner's broken FHIR copies (JSON, and FHIR XML turned into JSON)."""
    from lxml import etree

    from gateway.conformance.runner import samples as S
    from gateway.conformance.runner.fhirxml import to_json

    bases = S.bases(REFERENCE if REFERENCE.is_dir() else None)
    out = {}
    for broken in S.BROKEN:
        if broken.base not in bases:
            continue
        data = broken.mutate(bases[broken.base])
        if broken.base.endswith(".json"):
            out[f"broken:{broken.id}"] = orjson.loads(data)
        elif broken.base == "tddui.xml":
            out[f"broken:{broken.id}"] = to_json(etree.parse(io.BytesIO(data)))
    return out


def entries(resource: dict) -> list[dict]:
    """A resource, then each resource inside it (Bundle entries, contained), depth first."""
    out = [resource]
    for entry in resource.get("entry") or ():
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            out.extend(entries(entry["resource"]))
    for inner in resource.get("contained") or ():
        if isinstance(inner, dict):
            out.extend(entries(inner))
    return out


def summary(results: dict[str, Verdict]) -> Counter:
    return Counter("same" if v.same else ("explained" if not v.unexplained else "UNEXPLAINED") for v in results.values())


# --- generated instances and mutations ----------------------------------------------------------
GOOD = {
    "base64Binary": ["YQ==", "", "SGVsbG8gd29ybGQ="],
    "boolean": [True, False],
    "canonical": ["http://example.org/fhir/StructureDefinition/x|1.0", "urn:uuid:0"],
    "code": ["active", "a b", "urn:x"],
    "date": ["2026", "2026-02", "2024-02-29", "2026-11-26"],
    "dateTime": ["2026", "2026-11", "2026-11-26", "2026-11-26T10:00:00+01:00", "2016-12-31T23:59:60Z",
                 "2026-11-26T10:00:00.123456789Z"],
    "decimal": [1.5, 0, -3, 1e-05, 12.0],
    "id": ["abc-1.2", "x" * 64],
    "instant": ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5+14:00"],
    "integer": [0, -2147483648, 2147483647],
    "markdown": ["*x*", ""],
    "oid": ["urn:oid:1.2.250.1.213.1.4.8"],
    "positiveInt": [1, 2147483647],
    "string": ["texte", " a ", "x\u001c", "ligne\nligne"],
    "time": ["10:00:00", "23:59:60", "00:00:00.5"],
    "unsignedInt": [0, 5],
    "uri": ["http://example.org", "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", ""],
    "url": ["https://example.org/x", "mailto:a@b.fr"],
    "uuid": ["urn:uuid:c757873d-ec9a-4326-a141-556f43239520"],
    "xhtml": ['<div xmlns="http://www.w3.org/1999/xhtml">x</div>'],
}
BAD = {  # mostly refused by both; some only by R4 (JSON types, id length, uri whitespace, uuid form)
    "base64Binary": ["abc", "YQ", "Y!Q==", 5],
    "boolean": ["true", 1, 0, "yes", "maybe", 2, 1.0, None, [True]],
    "canonical": ["a b", 5, ["x"]],
    "code": ["", " x", "a  b", "x\n", "a\tb", "\u00a0", "a\u00a0b", 5, True],
    "date": ["2026-02-30", "2026-13-01", "2026-02-29", "2026-04-31", "26-01-01", "2026-1-1", "2026-01-01T10:00:00Z",
             "0000", 20260101, "", " 2026"],
    "dateTime": ["2026-02-30T10:00:00Z", "2026-01-01T10:00:00", "2026-01-01T10:00Z", "2026-01-01T24:00:00Z",
                 "2026-02-29T23:59:60+01:00", "2026-01-01T10:00:00+15:00", 1700000000, "2026-01-01 10:00:00Z"],
    "decimal": ["1.5", "01", True, [1], {"v": 1}],
    "id": ["", "a_b", "x" * 65, "x" * 300, 5, "a b"],
    "instant": ["2026-01-01", "2026-02-30T10:00:00Z", "2026-01-01T10:00:00", 1700000000],
    "integer": [1.5, 1.0, "12", 2147483648, -2147483649, True],
    "markdown": [5, None],
    "oid": ["urn:oid:3.1", "1.2.3", "urn:oid:1.02"],
    "positiveInt": [0, -1, "1", 1.0],
    "string": ["", "\u000b", "\u00a0\u3000", 5, ["x"], {"a": 1}, None],
    "time": ["24:00:00", "10:00", "10:00:00Z", 3600],
    "unsignedInt": [-1, 2147483648, "0"],
    "uri": ["a b", "http://x .org", 5, True],
    "url": ["a b", 5, {"a": 1}],
    "uuid": ["c757873d-ec9a-4326-a141-556f43239520", "urn:uuid:C757873D-EC9A-4326-A141-556F43239520",
             "urn:uuid:c757873d-ec9a-1326-a141-556f43239520", "x"],
    "xhtml": [5],
}


class Generator:
    """Random instances of the compiled types (valid unless told otherwise), from a seeded random."""

    def __init__(self, rnd, data: dict):
        self.rnd = rnd
        self.data = data
        self.types = data["types"]

    def value(self, leaf: str, depth: int):
        if leaf in GOOD:
            return self.rnd.choice(GOOD[leaf])
        if leaf == "Resource":
            return self.resource(self.rnd.choice(["Patient", "Organization", "Basic", "Binary"]), depth + 2)
        return self.instance(leaf, depth + 1)

    def resource(self, rtype: str | None = None, depth: int = 0) -> dict:
        rtype = rtype or self.rnd.choice(self.data["resources"])
        out = {"resourceType": rtype}
        out.update(self.instance(rtype, depth))
        return out

    def instance(self, tname: str, depth: int) -> dict:
        elements = self.types[tname]
        choices = {n: g for g in self.data["choices"].get(tname, ()) for n in g[2]}
        chosen_groups = set()
        out = {}
        p = 0.5 / (1 + depth * 2)
        for name, (leaf, mn, mx, ext) in elements.items():
            group = choices.get(name)
            if group is not None:
                if group[0] in chosen_groups:
                    continue
            if not mn and self.rnd.random() > p:
                continue
            if depth > 5 and not mn:
                continue
            if group is not None:
                chosen_groups.add(group[0])
            if mx == "*":
                out[name] = [self.value(leaf, depth) for _ in range(self.rnd.choice((1, 1, 2)))]
            else:
                out[name] = self.value(leaf, depth)
            if ext and self.rnd.random() < 0.1:
                ext_value = {"extension": [{"url": "http://example.org/x", "valueString": "e"}]}
                out["_" + name] = [ext_value] * len(out[name]) if mx == "*" else ext_value
        for prefix, needed, names in self.data["choices"].get(tname, ()):
            if needed and prefix not in chosen_groups:
                name = self.rnd.choice(names)
                out[name] = self.value(elements[name][0], depth)
        return out


def slots(node, tname: str, data: dict, path=()):
    """(container, key, leaf, is list item) of every value of an instance, with its schema type."""
    types = data["types"]
    if not isinstance(tname, str):
        return
    elements = types.get(tname) or (data["primitiveExtension"] if tname == "FHIRPrimitiveExtension" else {})
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        spec = elements.get(key)
        leaf = spec[0] if spec else ("FHIRPrimitiveExtension" if key.startswith("_") else None)
        yield node, key, leaf, False
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(value, list):
                yield value, i, leaf, True
            if isinstance(item, dict):
                sub = item.get("resourceType") if leaf == "Resource" else leaf
                if isinstance(sub, str) and (sub in types or sub == "FHIRPrimitiveExtension"):
                    yield from slots(item, sub, data, path + (key, i))


def mutate(resource: dict, rnd, data: dict) -> dict:
    """One random mutation of a copy of the resource."""
    doc = copy.deepcopy(resource)
    if not isinstance(doc, dict):
        return doc
    places = list(slots(doc, doc.get("resourceType"), data))
    if not places:
        return doc
    container, key, leaf, item = rnd.choice(places)
    value = container[key]
    kind = rnd.choice(["drop", "unknown", "bad", "good", "wrap", "unwrap", "null", "empty", "choice", "ext",
                       "resource", "bad", "bad"])
    if kind == "drop":
        del container[key]
    elif kind == "unknown" and isinstance(value, dict):
        value[rnd.choice(["titre", "fhir_comments", "resourceType", "resource_type", "class_fhir", "x__ext"])] = (
            rnd.choice(["x", 5, None, {"a": 1}]))
    elif kind == "bad" and leaf in BAD:
        container[key] = rnd.choice(BAD[leaf])
    elif kind == "good" and leaf in GOOD:
        container[key] = rnd.choice(GOOD[leaf])
    elif kind == "wrap":
        container[key] = [value]
    elif kind == "unwrap" and isinstance(value, list) and value:
        container[key] = value[0]
    elif kind == "null":
        if isinstance(value, list):
            value.insert(rnd.randrange(len(value) + 1), None)
        else:
            container[key] = None
    elif kind == "empty":
        container[key] = rnd.choice([{}, [], ""])
    elif kind == "choice" and isinstance(value, dict):
        tname = value.get("resourceType") if leaf == "Resource" else leaf
        groups = data["choices"].get(tname, ()) if isinstance(tname, str) and tname in data["types"] else ()
        if groups:
            prefix, needed, names = rnd.choice(groups)
            present = [n for n in names if n in value]
            if present and rnd.random() < 0.5:
                del value[present[0]]
            else:
                name = rnd.choice(names)
                value[name] = Generator(rnd, data).value(data["types"][tname][name][0], 3)
    elif kind == "ext" and not item and not key.startswith("_") and leaf in GOOD and isinstance(container, dict):
        ext = rnd.choice([{}, {"id": "a"}, {"extension": []}, {"extension": [{"url": "u", "valueCode": "x"}]},
                          {"fhir_comments": "c"}, "x", [{"id": "a"}], {"extension": [None]}])
        container["_" + key] = ext
        if rnd.random() < 0.5:
            del container[key]
    elif kind == "resource" and isinstance(value, dict) and "resourceType" in value:
        value["resourceType"] = rnd.choice(["Foo", "Coding", "DomainResource", "PatientContact", 5, None, "Basic"])
    return doc
