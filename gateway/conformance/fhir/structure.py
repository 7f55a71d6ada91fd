"""Base FHIR R4 structure, checked from a compiled schema: no pydantic on the gate's path.

Why: validating a resource with the fhir.resources R4B pydantic models costs ≈ 0.25 ms (and their
import ≈ 0.5 s), as much as the whole budget of the gate (issue 4: ≤ 0.25 ms per resource).

How:
- `structure_schema.py` reads the fhir.resources R4B models once and writes what their validation
  enforces as data (`mappings/fhir/profiles/r4-structure.json`): per type, each JSON property with
  its type, list or not, required or not, and whether its `_name` sibling is allowed; the choice
  groups; the resource types; the primitive formats of fhir_core (regular expressions, limits).
- Here, per type, a table `property → (kind, argument, required bit, choice bit)` is built on first
  use, and from it the type's scan (`_Type.bad`: property → one function of the value); one pass
  over the JSON answers "valid or not" without building anything (the common case), stopping at the
  first error. The valid strings of the costlier formats (uri, code, string, dates…) are remembered
  (≤ 4,096 per format, ≤ 256 characters each): a Bundle repeats the same ones hundreds of times.
  Only an invalid resource is walked again, with locations, to say everything fhir.resources would
  say, where it would say it.
- Primitive formats are the ones fhir_core applies, with its semantics: the string, code and id
  patterns are matched as pydantic matches them (Rust regex: `\\s` is Unicode White_Space — not
  U+001C–U+001F —, search not full match), the date / time patterns with Python's fullmatch, then
  the calendar (`2026-02-30` is refused, leap seconds are accepted as fhir_core accepts them).
  `_KNOWN` lists the formats implemented: a data file with other ones (fhir_core changed) is not
  used, the models are (`structure_models.py`), until the difference is reviewed.
- Which errors are reported follows pydantic's order: an unknown `resourceType` inside a data type
  or a `null` inside a list of complex elements stops the element's other checks; required
  primitives (a value, or a `_name` with extensions) and choice groups (one type at most; one
  when required) are checked only for elements whose own properties are all valid.

The same errors as fhir.resources, except where fhir.resources is wrong for FHIR R4 (JSON
representation, R4 data types) — tested, each in tests/test_fhir_structure_equivalence.py:
- JSON types are not coerced: `"true"` or `1` is not a boolean, `"12"` or `1.0` not an integer,
  `"1.5"` not a decimal, a number not a date, a string holding JSON not an object;
- `null` is refused except inside a list of primitives (positional, beside its `_name` list);
- properties that are not FHIR are unknown elements: `fhir_comments`, `resourceType` outside a
  resource's root, the models' Python names (`class_fhir`, `birthDate__ext`);
- a contained resource / Bundle entry needs a `resourceType` naming a concrete R4B resource
  (fhir.resources accepts data types and abstract types there, and crashes on unknown ones);
- `id` at most 64 characters (R4 regex; fhir_core allows 255); `uri`, `url`, `canonical` without
  whitespace (R4 regex `\\S*`, full match); `uuid` as R4 writes it (`urn:uuid:` + lowercase hex,
  any version; pydantic requires version 4 and accepts a bare UUID); `string` at most 1 MiB;
- FHIR R4 open types (`Extension.value[x]`, `ElementDefinition.fixed[x]`…) allow `Meta`, not the
  R4B `CodeableReference` / `RatioRange`, and `Extension._valueString` (etc.) is allowed: the
  data file's `corrections` list them;
- where fhir.resources raises something else than a validation error (a number as `url`, a JSON
  string as `_birthDate`), the error is reported.
Not R4 either, but kept (no R4 definitions offline): resource types new in R4B are accepted,
R4-only ones (MedicinalProduct…) are unknown.
Why R4 there rather than imitate pydantic's lax mode: the gate judges FHIR R4 JSON for partners
whose validators (HL7's, the ANS test platforms) refuse `"active": "true"`; every such case is one
fhir.resources lets through only by coercing or by a bug, never one it catches and we miss.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from functools import cache
from importlib import resources
from typing import NamedTuple

import orjson

from gateway.model.problem import Problem, Severity

DATA_FORMAT = "relais-fhir-structure/1"
DATA_FILE = "r4-structure.json"
STRING_MAX = 1024 * 1024  # R4: strings SHALL NOT exceed 1 MiB
ID_MAX = 64  # R4 id regex [A-Za-z0-9\-\.]{1,64}
KNOWN_MAX = 4096  # valid strings remembered per format by the scan (then forgotten all at once)
KNOWN_LENGTH = 256  # of strings at most this long: the memory stays bounded

# fhir_core's formats this module implements (data file `primitives`, verbatim)
_KNOWN = {
    "base64Binary": {"check": "base64.b64decode of the UTF-8 bytes (pydantic Base64Bytes)"},
    "boolean": {"check": "bool"},
    "canonical": {"check": "str", "match": "search", "pattern": "\\S*"},
    "code": {"check": "str", "match": "search", "pattern": "^[^\\s]+(\\s[^\\s]+)*$"},
    "date": {"calendar": True, "check": "str", "match": "full",
             "pattern": "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]"
                        "|3[0-1]))?)?"},
    "dateTime": {"calendar": True, "check": "str", "match": "full",
                 "pattern": "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2]"
                            "[0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|([+\\-])"
                            "((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"},
    "decimal": {"check": "number", "match": "full", "pattern": "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$"},
    "id": {"check": "str", "match": "search", "maxLength": 255, "minLength": 1, "pattern": "^[A-Za-z0-9\\-.]+$"},
    "instant": {"calendar": True, "check": "str", "match": "full",
                "pattern": "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|"
                           "3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|([+\\-])((0[0-9]|"
                           "1[0-3]):[0-5][0-9]|14:00))"},
    "integer": {"check": "int", "max": 2147483647, "min": -2147483648},
    "markdown": {"check": "str", "match": "search", "pattern": "\\s*(\\S|\\s)*"},
    "oid": {"check": "str", "match": "search", "pattern": "^urn:oid:[0-2](\\.(0|[1-9][0-9]*))+$"},
    "positiveInt": {"check": "int", "max": 2147483647, "min": 1},
    "string": {"allowEmpty": False, "check": "str", "match": "search", "pattern": "[ \r\n\t\\S]+"},
    "time": {"check": "str", "match": "full", "pattern": "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?"},
    "unsignedInt": {"check": "int", "max": 2147483647, "min": 0},
    "uri": {"check": "str", "match": "search", "pattern": "\\S*"},
    "url": {"check": "str"},
    "uuid": {"check": "UUID version 4 (pydantic UUID4)"},
    "xhtml": {"check": "str"},
}

# Unicode White_Space, what `\s` means to pydantic's (Rust) regex engine; Python's `\s` adds U+001C–U+001F
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_STRING_KEEP = frozenset(" \r\n\t\x1c\x1d\x1e\x1f")  # whitespace to Python that `[ \r\n\t\S]` matches
_CODE = re.compile(f"[^{_WS}]+(?:[{_WS}][^{_WS}]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]+")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID_R4 = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SPACE = re.compile(r"\s")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# Problems a primitive value can have; None when valid
TYPE, FORMAT, CALENDAR, RANGE, R4 = "type", "format", "calendar", "range", "r4"


def _bad_day(v: str) -> bool:
    """A `YYYY-MM-DD…` string (format already checked) naming a day its month does not have."""
    day = int(v[8:10])
    if day <= 28:
        return False
    month = int(v[5:7])
    if month == 2:
        year = int(v[0:4])
        return day > (29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28)
    return day > _DAYS[month - 1]


# Checkers: None when valid, else the problem. (`found`: unused, the signature of the scan's functions.)
def _string(v, found=None):
    if type(v) is not str:
        return TYPE
    if not v or (v.isspace() and _STRING_KEEP.isdisjoint(v)):
        return FORMAT
    if len(v) > STRING_MAX:
        return R4
    return None


def _code(v, found=None):
    if type(v) is not str:
        return TYPE
    if v.isascii() and v.isprintable():  # (fast path) the only whitespace there is the space
        return None if v and v[0] != " " and v[-1] != " " and "  " not in v else FORMAT
    return None if _CODE.fullmatch(v) else FORMAT


def _id(v, found=None):
    if type(v) is not str:
        return TYPE
    if not _ID.fullmatch(v) or len(v) > 255:
        return FORMAT
    return R4 if len(v) > ID_MAX else None


def _oid(v, found=None):
    if type(v) is not str:
        return TYPE
    return None if _OID.fullmatch(v) else FORMAT


def _uri(v, found=None):
    if type(v) is not str:
        return TYPE
    if v.isascii() and v.isprintable():  # (fast path) the only whitespace there is the space
        return R4 if " " in v else None
    return R4 if _SPACE.search(v) else None


def _text(v, found=None):  # markdown, xhtml: any string
    return None if type(v) is str else TYPE


def _boolean(v, found=None):
    return None if type(v) is bool else TYPE


def _integer_check(low: int, high: int):
    def check(v, found=None):
        if type(v) is not int:
            return TYPE
        return None if low <= v <= high else RANGE

    return check


def _decimal(v, found=None):
    t = type(v)
    if t is int:
        return None
    if t is float:
        return None if v - v == 0 else FORMAT  # not inf / nan
    return TYPE


def _dated(pattern: str, calendar: bool):
    compiled = re.compile(pattern)

    def check(v, found=None):
        if type(v) is not str:
            return TYPE
        if not compiled.fullmatch(v):
            return FORMAT
        if calendar and len(v) >= 10 and _bad_day(v):
            return CALENDAR
        return None

    return check


def _base64(v, found=None):
    if type(v) is not str:
        return TYPE
    try:
        base64.b64decode(v.encode())
    except (binascii.Error, ValueError, UnicodeError):
        return FORMAT
    return None


def _uuid(v, found=None):
    if type(v) is not str:
        return TYPE
    return None if _UUID_R4.fullmatch(v) else R4


def _remembered(check):
    """`check` remembering the strings it found valid: a Bundle repeats the same systems, codes,
    canonicals and dates hundreds of times (≈ 30 distinct among ≈ 430 uris). The answer depends on
    the string alone."""
    known: set[str] = set()

    def remembered(v, found=None):  # (`found`: the scan's signature, see Structure._entry)
        if type(v) is str:
            if v in known:
                return None
            problem = check(v)
            if problem is None and len(v) <= KNOWN_LENGTH:
                if len(known) >= KNOWN_MAX:
                    known.clear()
                known.add(v)
            return problem
        return check(v)

    remembered.forget = known.clear
    return remembered


def _checkers(formats: dict) -> dict:
    return {
        "base64Binary": _base64,
        "boolean": _boolean,
        "canonical": _uri,
        "code": _code,
        "date": _dated(formats["date"]["pattern"], True),
        "dateTime": _dated(formats["dateTime"]["pattern"], True),
        "decimal": _decimal,
        "id": _id,
        "instant": _dated(formats["instant"]["pattern"], True),
        "integer": _integer_check(formats["integer"]["min"], formats["integer"]["max"]),
        "markdown": _text,
        "oid": _oid,
        "positiveInt": _integer_check(formats["positiveInt"]["min"], formats["positiveInt"]["max"]),
        "string": _string,
        "time": _dated(formats["time"]["pattern"], False),
        "unsignedInt": _integer_check(formats["unsignedInt"]["min"], formats["unsignedInt"]["max"]),
        "uri": _uri,
        "url": _uri,
        "uuid": _uuid,
        "xhtml": _text,
    }


_JSON_TYPE = {"boolean": ("un booléen JSON (true, false)", "a JSON boolean (true, false)"),
              "decimal": ("un nombre JSON", "a JSON number"), "integer": ("un entier JSON", "a JSON integer"),
              "positiveInt": ("un entier JSON", "a JSON integer"), "unsignedInt": ("un entier JSON", "a JSON integer")}


def described(v) -> tuple[str, str]:
    """What a wrong value is, without its content (a name, a birth date or an INS may be the
    value: personal data stays out of messages; the location names the place)."""
    if v is None or type(v) is bool:
        return (str(v).lower() if v is not None else "null",) * 2
    if isinstance(v, int | float):
        return "un nombre", "a number"
    if isinstance(v, str):
        return f"une chaîne de {len(v)} caractère(s)", f"a string of {len(v)} character(s)"
    if isinstance(v, list):
        return f"une liste de {len(v)} élément(s)", f"a list of {len(v)} item(s)"
    return ("un objet JSON", "a JSON object") if isinstance(v, dict) else (type(v).__name__,) * 2


def _primitive_message(ptype: str, problem: str, v) -> tuple[str, str]:
    """The reason, never the value itself (see described)."""
    if problem == TYPE:
        fr, en = _JSON_TYPE.get(ptype, ("une chaîne JSON", "a JSON string"))
        found, found_en = described(v)
        return (f"{ptype} invalide : il faut {fr}, trouvé {found}", f"invalid {ptype}: {en} is expected, found {found_en}")
    if problem == CALENDAR:
        return ("date ou date-heure invalide (ce jour n'existe pas dans ce mois)",
                "invalid date or dateTime (no such day in that month)")
    if problem == RANGE:
        return f"{ptype} hors limites", f"{ptype} out of range"
    if problem == R4:
        rule = {"id": f"au plus {ID_MAX} caractères", "uuid": "urn:uuid: suivi de l'UUID en minuscules",
                "string": "au plus 1 Mio"}.get(ptype, "sans espace")
        rule_en = {"id": f"at most {ID_MAX} characters", "uuid": "urn:uuid: then the lowercase UUID",
                   "string": "at most 1 MiB"}.get(ptype, "no whitespace")
        return f"{ptype} invalide en FHIR R4 ({rule})", f"invalid FHIR R4 {ptype} ({rule_en})"
    if ptype in ("date", "dateTime", "instant", "time"):
        return f"date ou date-heure invalide (format {ptype})", f"invalid date or dateTime ({ptype} format)"
    return f"valeur au format {ptype} invalide", f"value does not match the {ptype} format"


# kinds of property; REF and EXTENSIONS are PRIM and COMPLEX_LIST seen by `scan` (references, ext-1)
PRIM, PRIM_LIST, COMPLEX, COMPLEX_LIST, RES, RES_LIST, EXT, EXT_LIST, RTYPE, REF, EXTENSIONS = range(11)
_PLAIN = {REF: PRIM, EXTENSIONS: COMPLEX_LIST}
_EXT_KEYS = ("extension", "modifierExtension")


class Finding(NamedTuple):
    location: str
    message: str
    message_en: str
    r4: bool  # True where this is FHIR R4 stricter than fhir.resources (module docstring)
    after: bool = False  # a check run only when the element's properties are valid (required primitive, choice)
    json_type: bool = False  # a value of another JSON type than its element's (list, object, string, number…)


class StructureSchemaError(Exception):
    pass


class _Type:
    """The compiled table of one type."""

    __slots__ = ("name", "elements", "table", "required", "required_mask", "choices", "choice_required",
                 "prim_required", "bad")

    def __init__(self, name, elements, table, required, required_mask, choices, choice_required, prim_required):
        self.name = name
        self.elements = elements  # the data file's entries: property → [type, min, max, ext]
        self.table = table  # property → (kind, argument, required bit, choice bit)
        self.required = required  # complex required properties (pydantic `missing` when absent)
        self.required_mask = required_mask
        self.choices = choices  # [(prefix, required, names)]
        self.choice_required = choice_required  # mask of the required choice groups
        self.prim_required = prim_required  # required primitive properties
        self.bad = None  # the scan of a value of this type (Structure._scanner)


class Structure:
    """The compiled base structure (one per data file)."""

    def __init__(self, data: dict):
        if data.get("format") != DATA_FORMAT:
            raise StructureSchemaError(f"unknown structure data format {data.get('format')!r}")
        if data.get("primitives") != _KNOWN:
            changed = sorted(k for k in set(_KNOWN) | set(data.get("primitives", {}))
                             if _KNOWN.get(k) != data.get("primitives", {}).get(k))
            raise StructureSchemaError(f"primitive formats not implemented by structure.py: {changed}")
        self.data = data
        self.source = data["source"]
        self.resources = frozenset(data["resources"])
        self.checkers = _checkers(data["primitives"])
        # the scan's checkers of string formats costing more than a set lookup, remembering valid strings
        self._remembering = {check: _remembered(check) for name, check in self.checkers.items()
                             if name not in ("boolean", "decimal", "integer", "positiveInt", "unsignedInt",
                                             "markdown", "xhtml")}
        self.corrections = {(c["type"], c["element"]) for c in data.get("corrections", ()) if c["change"] == "removed"}
        self._types: dict[str, _Type] = {}
        self._building: dict[str, _Type] = {}  # types whose scan is being made (a type can hold itself)
        self._compiling = threading.RLock()
        self._ext = self._compile("FHIRPrimitiveExtension", data["primitiveExtension"], ())
        self._ext.bad = self._scanner(self._ext)

    def forget(self) -> None:
        """Forget the valid strings remembered (measures, tests)."""
        for remembered in self._remembering.values():
            remembered.forget()

    # --- tables -----------------------------------------------------------------------------------
    def _type(self, name: str) -> _Type:
        found = self._types.get(name)
        if found is None:
            # One thread compiles at a time (the API validates in several): `_building` is this
            # compile's own; re-entered by the types a type holds.
            with self._compiling:
                found = self._types.get(name)
                if found is None:
                    found = self._building[name] = self._compile(name, self.data["types"][name],
                                                                 self.data["choices"].get(name, ()))
                    try:
                        found.bad = self._scanner(found)  # (compiles the types it holds first)
                    finally:
                        del self._building[name]
                    self._types[name] = found
        return found

    def _compile(self, name: str, elements: dict, choices) -> _Type:
        table: dict[str, tuple] = {}
        bits = {}
        required, prim_required = [], []
        for prop, (leaf, mn, mx, ext) in elements.items():
            many = mx == "*"
            bit = 0
            if mn:
                bit = bits[prop] = 1 << len(bits)
            if leaf in self.checkers:
                table[prop] = (PRIM_LIST if many else REF if prop == "reference" else PRIM, self.checkers[leaf], bit, 0)
                if ext:
                    table["_" + prop] = (EXT_LIST if many else EXT, leaf, bit, 0)
                if mn:
                    prim_required.append(prop)
            else:
                if leaf == "Resource":
                    table[prop] = (RES_LIST if many else RES, None, bit, 0)
                else:
                    table[prop] = (EXTENSIONS if prop in _EXT_KEYS else COMPLEX_LIST if many else COMPLEX, leaf, bit, 0)
                if prop in _EXT_KEYS and not many:  # scan would miss ext-1 there: not this module's data
                    raise StructureSchemaError(f"{name}.{prop} is not a list of extensions")
                if mn:
                    required.append(prop)
        groups = []
        choice_required = 0
        for n, (prefix, needed, names) in enumerate(choices):
            gbit = 1 << n
            for prop in names:
                kind, arg, bit, _ = table[prop]
                table[prop] = (kind, arg, bit, gbit)
            if needed:
                choice_required |= gbit
            groups.append((prefix, needed, tuple(names)))
        if name in self.resources:
            table["resourceType"] = (RTYPE, name, 0, 0)
        mask = (1 << len(bits)) - 1
        return _Type(name, elements, table, tuple(required), mask, tuple(groups), choice_required, tuple(prim_required))

    # --- fast pass: valid or not ------------------------------------------------------------------
    def valid(self, resource) -> bool:
        return self.scan(resource) is not None

    def scan(self, resource) -> list | None:
        """None when the base structure is invalid; else the string values of the `reference`
        elements met, with a None for each element the validator's ele-1 / ext-1 pass would refuse
        (empty, only an id; an extension with both or neither extensions and value). That pass
        gives nothing on a resource whose list holds no None."""
        if not isinstance(resource, dict):
            return None
        found: list = []
        return None if self._resource_bad(resource, found) else found

    # The scan is compiled per type (`_Type.bad`, on first use): a table property → function(value,
    # found) that is true when the value is invalid (a primitive's checker, or a closure doing what
    # its kind needs), so that each property costs one lookup and one call, whatever its kind.
    def _resource_bad(self, v, found: list) -> bool:
        if type(v) is not dict:
            return True
        rtype = v.get("resourceType")
        if type(rtype) is not str or rtype not in self.resources:
            return True
        return self._type(rtype).bad(v, found)

    def _ext_bad(self, v, found: list) -> bool:
        if type(v) is not dict or (v.get("id") is None and v.get("extension") is None):
            return True
        return self._ext.bad(v, found)

    def _entry(self, kind: int, arg):
        """What the scan does with one property's value: true when it is invalid."""
        if kind in (PRIM, PRIM_LIST, REF):
            arg = self._remembering.get(arg, arg)
        if kind == PRIM:
            return arg
        if kind == PRIM_LIST:
            def prims(v, found):
                if type(v) is not list:
                    return True
                for x in v:
                    if x is not None and arg(x) is not None:
                        return True
                return False
            return prims
        if kind == REF:
            def ref(v, found):
                if arg(v) is not None:
                    return True
                if type(v) is str:
                    found.append(v)
                return False
            return ref
        if kind == EXT:
            return self._ext_bad
        if kind == EXT_LIST:
            ext_bad = self._ext_bad

            def exts(v, found):
                if type(v) is not list:
                    return True
                for x in v:
                    if x is not None and ext_bad(x, found):
                        return True
                return False
            return exts
        if kind == RES:
            return self._resource_bad
        if kind == RES_LIST:
            resource_bad = self._resource_bad

            def resources(v, found):
                if type(v) is not list:
                    return True
                for x in v:
                    if resource_bad(x, found):
                        return True
                return False
            return resources
        if kind == RTYPE:
            return _not_null  # the resource's own type, already chosen by it
        if kind == COMPLEX:
            return self._complex(arg)
        sub = None  # the element type's scan, compiled on first use (types refer to each other)
        if kind == COMPLEX_LIST:
            def complexes(v, found):
                nonlocal sub
                if type(v) is not list:
                    return True
                if sub is None:
                    sub = self._type(arg).bad
                for x in v:
                    if sub(x, found):
                        return True
                return False
            return complexes

        valued = None  # the properties of the type starting with "value" (value[x])

        def extensions(v, found):  # EXTENSIONS: a list of extensions, and ext-1 noticed
            nonlocal sub, valued
            if type(v) is not list:
                return True
            if sub is None:
                t = self._type(arg)
                sub, valued = t.bad, frozenset(k for k in t.table if k.startswith("value"))
            for x in v:
                if sub(x, found):
                    return True
                # a valid x has no other property: "one starts with 'value'" is "one is in `valued`"
                if ("extension" in x) != valued.isdisjoint(x):
                    found.append(None)  # ext-1
            return False
        return extensions

    def _complex(self, name: str):
        """The scan of a value that must be an object of type `name`: the type's own once compiled
        (types refer to each other: Extension to itself)."""
        if name not in self._building:
            return self._type(name).bad
        sub = None  # (a type holding itself, directly or not: its scan is looked up on first use)

        def complex_(v, found):
            nonlocal sub
            if sub is None:
                sub = self._type(name).bad
            return sub(v, found)
        return complex_

    def _scanner(self, t: _Type):
        """`bad(obj, found)` of one type: true when `obj` is not a valid object of that type."""
        mask, choice_required = t.required_mask, t.choice_required
        if not mask and not t.choices:
            plain = {prop: self._entry(kind, arg) for prop, (kind, arg, _, _) in t.table.items()}

            def bad(obj, found):
                if type(obj) is not dict:
                    return True
                if len(obj) < 2 and (not obj or "id" in obj):
                    found.append(None)  # ele-1
                for k, v in obj.items():
                    try:
                        check = plain[k]
                    except KeyError:  # an unknown element
                        return True
                    if check(v, found):
                        return True
                return False
            return bad

        marked = {}  # property → (entry, required bit, choice bit)
        late = []  # (bit, property): a required primitive that its `_name` holding extensions stands for
        for prop, (kind, arg, bit, gbit) in t.table.items():
            if kind == EXT:
                if bit:
                    late.append((bit, prop[1:]))
                bit = gbit = 0
            elif kind == EXT_LIST:
                bit = gbit = 0
            marked[prop] = (self._entry(kind, arg), bit, gbit)
        late = tuple(late)

        def bad(obj, found):
            if type(obj) is not dict:
                return True
            if len(obj) < 2 and (not obj or "id" in obj):
                found.append(None)  # ele-1
            seen = 0
            groups = 0
            for k, v in obj.items():
                try:
                    check, bit, gbit = marked[k]
                except KeyError:  # an unknown element
                    return True
                if check(v, found):
                    return True
                if bit:
                    seen |= bit
                if gbit:
                    if groups & gbit:
                        return True  # two types of one choice
                    groups |= gbit
            if seen != mask:
                for bit, prop in late:  # the value's `_name` with extensions stands for it
                    if not seen & bit:
                        ext = obj.get("_" + prop)
                        if ext is not None and ext.get("extension"):
                            seen |= bit
                if seen != mask:
                    return True
            return bool(choice_required & ~groups)
        return bad

    # --- precise pass: every error, where fhir.resources puts it ----------------------------------
    def findings(self, resource, root: str | None = None, *, keep_types: bool = False) -> list[Finding]:
        """Every structure error of one resource (a Bundle includes its entries). `keep_types`:
        a value of the wrong JSON type is reported even where pydantic stops at a `null` first."""
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        root = root or (rtype if isinstance(rtype, str) else "$")
        if not isinstance(rtype, str):
            return [Finding(root, "resourceType absent : ce n'est pas une ressource FHIR",
                            "no resourceType: not a FHIR resource", False)]
        if rtype not in self.resources:
            return [Finding(f"{root}.resourceType", f"type de ressource inconnu dans FHIR R4 : {rtype}",
                            f"unknown FHIR R4 resource type: {rtype}",
                            rtype in self.data["types"] or rtype in ("Resource", "DomainResource"))]
        out: list[Finding] = []
        self._errors(resource, self._type(rtype), root, out, keep_types)
        return out

    def _errors(self, obj: dict, t: _Type, loc: str, out: list[Finding], keep: bool = False) -> None:
        start = len(out)
        table = t.table
        nulls = []
        stop = None
        groups: dict[int, list[str]] = {}
        for k, v in obj.items():
            here = f"{loc}.{k}"
            spec = table.get(k)
            if spec is None:
                if k in ("resourceType", "resource_type") and t.name not in self.resources:
                    declared = obj.get("resourceType") if "resourceType" in obj else obj.get("resource_type")
                    if declared is not None and declared != t.name:
                        stop = Finding(f"{loc}.{'resourceType' if 'resourceType' in obj else 'resource_type'}",
                                       f"resourceType dans un élément qui n'est pas une ressource : {declared!r}",
                                       f"resourceType inside an element that is not a resource: {declared!r}", True)
                out.append(self._unknown(t, k, here))
                continue
            kind, arg, bit, gbit = spec
            kind = _PLAIN.get(kind, kind)
            if v is None:
                out.append(Finding(here, "null n'est pas une valeur FHIR : omettre la propriété",
                                   "null is not a FHIR value: leave the property out", True))
                continue
            if gbit:
                groups.setdefault(gbit, []).append(k)
            if kind == PRIM:
                self._primitive(t.elements[k][0], arg, v, here, out)
            elif kind == PRIM_LIST:
                if self._list(v, here, out):
                    for i, x in enumerate(v):
                        if x is not None:
                            self._primitive(t.elements[k][0], arg, x, f"{here}[{i}]", out)
            elif kind == COMPLEX:
                if self._object(v, arg, here, out):
                    self._errors(v, self._type(arg), here, out, keep)
            elif kind == COMPLEX_LIST:
                if self._list(v, here, out):
                    if any(x is None for x in v):
                        nulls.append(k)
                    for i, x in enumerate(v):
                        if x is not None and self._object(x, arg, f"{here}[{i}]", out):
                            self._errors(x, self._type(arg), f"{here}[{i}]", out, keep)
            elif kind == EXT:
                self._extension(v, here, out, keep)
            elif kind == EXT_LIST:
                if self._list(v, here, out):
                    for i, x in enumerate(v):
                        if x is not None:
                            self._extension(x, f"{here}[{i}]", out, keep)
            elif kind == RES:
                self._contained(v, here, out, keep)
            elif kind == RES_LIST:
                if self._list(v, here, out):
                    if any(x is None for x in v):
                        nulls.append(k)
                    for i, x in enumerate(v):
                        if x is not None:
                            self._contained(x, f"{here}[{i}]", out, keep)
        for prop in t.required:
            if prop not in obj:  # (fhir.resources also takes the model's Python name: `class_fhir`)
                out.append(Finding(f"{loc}.{prop}", f"élément obligatoire absent : {prop}",
                                   f"required element missing: {prop}", prop + "_fhir" in obj))
        if stop is not None or nulls:  # pydantic stops there: the element's other errors are not reported
            out[start:] = [f for f in out[start:] if f.json_type] if keep else []
            if stop is not None:
                out.append(stop)
            else:
                out.extend(Finding(f"{loc}.{k}", f"null interdit dans la liste {k}",
                                   f"null is not allowed in the list {k}", False) for k in nulls)
            return
        if len(out) > start:
            return  # pydantic's checks after the properties run only when these are valid
        missing = [p for p in t.prim_required if obj.get(p) is None and not _has_extensions(obj.get("_" + p))]
        if missing:
            out.extend(Finding(f"{loc}.{p}", f"élément obligatoire absent : {p}", f"required element missing: {p}",
                               p + "_fhir" in obj or p + "__ext" in obj, True) for p in missing)
            return
        for n, (prefix, needed, _names) in enumerate(t.choices):
            present = groups.get(1 << n, [])
            if len(present) > 1:
                out.append(Finding(loc, f"un seul type pour {prefix}[x], trouvé : {', '.join(present)}",
                                   f"{prefix}[x] takes one type, found: {', '.join(present)}", False, True))
                return
            if needed and not present:
                out.append(Finding(loc, f"élément obligatoire absent : {prefix}[x]",
                                   f"required element missing: {prefix}[x]", False, True))
                return

    def _unknown(self, t: _Type, k: str, here: str) -> Finding:
        r4 = (k in ("fhir_comments", "resourceType", "resource_type") or "__" in k or k.endswith("_fhir")
              or (t.name, k) in self.corrections)
        return Finding(here, f"élément inconnu dans FHIR R4 : {k}", f"unknown element in FHIR R4: {k}", r4)

    def _primitive(self, ptype: str, check, v, here: str, out: list[Finding]) -> None:
        problem = check(v)
        if problem is not None:
            fr, en = _primitive_message(ptype, problem, v)
            out.append(Finding(here, fr, en, problem in (TYPE, R4), json_type=problem == TYPE))

    def _list(self, v, here: str, out: list[Finding]) -> bool:
        if type(v) is list:
            return True
        found, found_en = described(v)
        out.append(Finding(here, f"une liste (tableau JSON) est attendue, trouvé {found}",
                           f"a list (JSON array) is expected, found {found_en}", False, json_type=True))
        return False

    def _object(self, v, type_name: str, here: str, out: list[Finding]) -> bool:
        if type(v) is dict:
            return True
        found, found_en = described(v)
        out.append(Finding(here, f"un objet JSON ({type_name}) est attendu, trouvé {found}",
                           f"a JSON object ({type_name}) is expected, found {found_en}", True, json_type=True))
        return False

    def _extension(self, v, here: str, out: list[Finding], keep: bool = False) -> None:
        if not self._object(v, "extensions d'une valeur primitive", here, out):
            return
        if v.get("id") is None and v.get("extension") is None:
            out.append(Finding(here, "extension de valeur primitive sans id ni extension",
                               "primitive value extension without id or extension", "fhir_comments" in v))
            return
        self._errors(v, self._ext, here, out, keep)

    def _contained(self, v, here: str, out: list[Finding], keep: bool = False) -> None:
        if not self._object(v, "Resource", here, out):
            return
        rtype = v.get("resourceType")
        if type(rtype) is str and rtype in self.resources:
            self._errors(v, self._type(rtype), here, out, keep)
        elif rtype is None:
            out.append(Finding(here, "ressource sans resourceType", "resource without resourceType", True))
        else:
            shown = (repr(rtype[:80]),) * 2 if type(rtype) is str else described(rtype)
            out.append(Finding(here, f"type de ressource inconnu dans FHIR R4 : {shown[0]}",
                               f"unknown FHIR R4 resource type: {shown[1]}", True, json_type=type(rtype) is not str))


def _not_null(v, found) -> bool:
    return v is None


def _has_extensions(ext) -> bool:
    """A primitive's `_name` standing for its missing value (FHIR R4 "extensibility", special case)."""
    return isinstance(ext, dict) and bool(ext.get("extension"))


@cache
def compiled() -> Structure | None:
    """The shipped structure, or None when it cannot be used (the models are then)."""
    try:
        raw = resources.files("mappings.fhir.profiles").joinpath(DATA_FILE).read_bytes()
        return Structure(orjson.loads(raw))
    except (FileNotFoundError, ModuleNotFoundError, StructureSchemaError, orjson.JSONDecodeError):
        return None


def source_of(structure: Structure) -> str:
    s = structure.source
    return f"hl7.fhir.r4.core|4.0.1 (compiled from fhir.resources {s['fhir.resources']} R4B models)"


def check_structure(resource: dict, root: str | None = None, *, engine: str = "compiled") -> list[Problem]:
    """Problems of the base structure of one resource (a Bundle includes its entries).

    `engine="models"` checks with the fhir.resources models instead (structure_models.py), as
    does the compiled engine when the shipped data cannot be used."""
    structure = compiled() if engine == "compiled" else None
    if structure is None:
        from gateway.conformance.fhir.structure_models import check_structure_with_models

        return check_structure_with_models(resource, root)
    if structure.valid(resource):
        return []
    return _problems(structure, structure.findings(resource, root))


def _problems(structure: Structure, findings) -> list[Problem]:
    source = source_of(structure)
    return [Problem(location=f.location, rule="fhir-structure", message=f.message, message_en=f.message_en,
                    severity=Severity.error, source=source) for f in findings]


def check_received_bundle(bundle: object) -> list[Problem]:
    """Values of the wrong JSON type in a Bundle received to be read (TDDUI import, activity),
    found before any mapping reads it: the readers take each value as FHIR types it (a list or a
    number where a string belongs gave a 500). Only the JSON types: formats, unknown elements and
    resources stay the readers' to report (their verdicts unchanged). Empty for a document that is
    not a Bundle (its reader says so)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    structure = compiled()
    if structure is None:
        return check_structure(bundle, "Bundle")  # the models: every structure error refuses
    if structure.valid(bundle):
        return []
    return _problems(structure, (f for f in structure.findings(bundle, "Bundle", keep_types=True) if f.json_type))


def read_tddui_bundle(bundle: dict, today):
    """`mappings.fhir.tddui.bundle_to_plan` behind `check_received_bundle`: (plan or None,
    problems), the one way a received TDDUI Bundle is read (API `$import-tddui`, `relais fhir import`)."""
    from mappings.fhir.tddui import bundle_to_plan

    problems = check_received_bundle(bundle)
    return (None, problems) if problems else bundle_to_plan(bundle, today)