"""Shared pieces of the TDDUI mapping: fullUrls, business identifiers, codings, the Relais
`plan-element` extension codec, and the tracking reader the import uses to report every
element it could not carry into the plan."""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
import uuid
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel

from gateway.model import Problem, Severity
from mappings.fhir.tddui import constants as c

SOURCE = f"{c.TDDUI_PACKAGE}#{c.TDDUI_VERSION}"
_NAMESPACE = uuid.UUID(c.UUID_NAMESPACE)


def full_url(key: str) -> str:
    """Deterministic `urn:uuid` from a business key (issue 4: uuid5, same plan → same Bundle)."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}"


def ref(url: str) -> dict:
    return {"reference": url}


def coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict:
    return {"coding": [coding(system, code, display)]}


def discriminator(code: str) -> dict:
    """TDDUI `tddui-discriminator` extension (slices of CarePlan.supportingInfo, Goal.note)."""
    return {"url": c.X_DISCRIMINATOR, "valueCodeableConcept": concept(c.CS_DISCRIMINATOR, code)}


def meta(name: str) -> dict:
    return {"profile": [c.profile(name)]}


def fhir_date(value: dt.date | dt.datetime) -> str:
    return value.isoformat()


def fhir_decimal(value: Decimal) -> int | float:
    """JSON number for a FHIR decimal (integral values stay integers)."""
    return int(value) if value == value.to_integral_value() else float(value)


def period(start, end) -> dict | None:
    out = {}
    if start is not None:
        out["start"] = fhir_date(start)
    if end is not None:
        out["end"] = fhir_date(end)
    return out or None


def put(target: dict, key: str, value) -> None:
    """Set only meaningful values: FHIR forbids empty elements."""
    if value is None or value == [] or value == {} or value == "":
        return
    target[key] = value


# ------------------------------------------------------------ the plan-element extension
# A complex extension whose sub-extensions are named after the plan fields the guide has no
# element for; values use the FHIR type of the field (date → valueDate, enum → valueCode…),
# nested models become nested complex extensions, lists repeat the sub-extension.


def _value(value) -> tuple[str, object]:
    if isinstance(value, bool):
        return "valueBoolean", value
    if isinstance(value, int):
        return "valueInteger", value
    if isinstance(value, Decimal):
        return "valueDecimal", fhir_decimal(value)
    if isinstance(value, dt.datetime):
        return "valueDateTime", value.isoformat()
    if isinstance(value, dt.date):
        return "valueDate", value.isoformat()
    if isinstance(value, Enum):
        return "valueCode", value.value
    if isinstance(value, str):
        return "valueString", value
    raise TypeError(f"no FHIR type for {type(value).__name__}")


def _sub(name: str, value) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, list):
        return [ext for item in value for ext in _sub(name, item)]
    if isinstance(value, BaseModel):
        if type(value).__name__ in ("Period", "DateTimePeriod"):
            p = period(value.start, value.end)
            return [{"url": name, "valuePeriod": p}] if p else []
        inner = [e for field in type(value).model_fields for e in _sub(field, getattr(value, field))]
        return [{"url": name, "extension": inner}] if inner else []
    key, val = _value(value)
    return [{"url": name, key: val}]


def plan_element(model: BaseModel, fields: typing.Iterable[str]) -> dict | None:
    """The Relais `plan-element` extension carrying `fields` of `model` (None when all empty)."""
    inner = [e for field in fields for e in _sub(field, getattr(model, field))]
    return {"url": c.X_RELAIS_PLAN, "extension": inner} if inner else None


def _field_shape(annotation) -> tuple[bool, type | None]:
    """(is_list, nested model class or None) of a pydantic field annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _field_shape(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        inner = typing.get_args(annotation)[0]
        return True, _field_shape(inner)[1]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _field_shape(arg)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False, annotation
    return False, None


_VALUE_KEYS = ("valueString", "valueCode", "valueDate", "valueDateTime", "valueBoolean",
               "valueInteger", "valueDecimal", "valuePeriod")


def read_plan_element(node: Node, model_cls: type[BaseModel]) -> dict:
    """Inverse of `plan_element` for the sub-extensions named after `model_cls` fields; the
    result is JSON-shaped (validated later with the whole plan). Unknown sub-extensions stay
    unread, so the import reports them."""
    out: dict = {}
    fields = model_cls.model_fields
    for sub in node.nodes("extension"):
        name = sub.peek("url")
        if name not in fields:
            continue
        sub.get("url")
        is_list, nested = _field_shape(fields[name].annotation)
        if nested is not None and nested.__name__ not in ("Period", "DateTimePeriod"):
            value = read_plan_element(sub, nested)
        else:
            key = next((k for k in _VALUE_KEYS if sub.peek(k) is not None), None)
            if key is None:
                continue
            value = sub.take(key)
        if is_list:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


# ---------------------------------------------------------------------- import reader


class Seen:
    """Which paths of the Bundle the import used: `taken` whole, or `visited` (look inside)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.visited: set[str] = set()


class Node:
    """A JSON object of the Bundle being read, remembering what was read from it."""

    __slots__ = ("data", "path", "seen")

    def __init__(self, data: dict, path: str, seen: Seen):
        self.data = data
        self.path = path
        self.seen = seen
        seen.visited.add(path)

    def peek(self, key: str):
        """Look without marking as used."""
        return self.data.get(key)

    def get(self, key: str):
        """A primitive (or any value taken whole), marked as used."""
        value = self.data.get(key)
        if value is not None:
            self.seen.taken.add(f"{self.path}.{key}")
        return value

    take = get

    def node(self, key: str) -> Node | None:
        value = self.data.get(key)
        if isinstance(value, dict):
            return Node(value, f"{self.path}.{key}", self.seen)
        return None

    def nodes(self, key: str) -> list[Node]:
        value = self.data.get(key)
        if not isinstance(value, list):
            return []
        base = f"{self.path}.{key}"
        self.seen.visited.add(base)
        return [Node(item, f"{base}[{i}]", self.seen) for i, item in enumerate(value) if isinstance(item, dict)]

    def values(self, key: str) -> list:
        value = self.data.get(key)
        if value is None:
            return []
        self.seen.taken.add(f"{self.path}.{key}")
        return value if isinstance(value, list) else [value]

    def mark(self) -> None:
        """This whole object is used."""
        self.seen.taken.add(self.path)

    def extensions(self, url: str) -> list[Node]:
        return [n for n in self.nodes("extension") if n.peek("url") == url]


# Elements whose loss changes nothing the plan holds: reported as `information`.
_INFORMATIONAL = re.compile(r"\.(text|id|meta|language|implicitRules)$|\.meta\.|\.display$")


def dropped(data, path: str, seen: Seen) -> list[tuple[str, object]]:
    """Every element under `path` the import neither took nor looked into (highest node)."""
    if path in seen.taken:
        return []
    if path not in seen.visited:
        return [(path, data)]
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(dropped(value, f"{path}.{key}", seen))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(dropped(value, f"{path}[{i}]", seen))
    return out


def drop_problem(path: str, value) -> Problem:
    informational = bool(_INFORMATIONAL.search(path))
    what = ""
    if isinstance(value, dict) and "url" in value:
        what = f" ({value['url']})"
    return Problem(
        location=path,
        rule="tddui-element-not-imported",
        message=f"élément sans équivalent dans le projet, non repris{what}",
        message_en=f"element the plan cannot hold, not imported{what}",
        severity=Severity.information if informational else Severity.warning,
        source=SOURCE,
    )


def problem(location: str, rule: str, message: str, message_en: str,
            severity: Severity = Severity.warning) -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=severity, source=SOURCE)


def code_of(node: Node | None, systems: str | tuple[str, ...]) -> str | None:
    """The code of the first coding of a CodeableConcept node in one of `systems` (marks the
    coding used)."""
    if node is None:
        return None
    systems = (systems,) if isinstance(systems, str) else systems
    for cod in node.nodes("coding"):
        if cod.peek("system") in systems and cod.peek("code") is not None:
            cod.mark()
            return cod.data["code"]
    return None
