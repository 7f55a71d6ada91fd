"""Plan fields <-> flat (path, value) pairs, and HL7 date/time literals.

Fields the CDA has no native element for travel as *attribute observations*: one observation
per JSON leaf, coded with the field's path relative to its element (`provider.identifier.value`,
`given_names[1]`) in the Relais attribute code system, valued ST / INT / BL. Flattening and
unflattening are exact inverses on JSON values, which is what makes the round trip an identity.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """JSON value -> [(path, scalar)] in document order; empty lists/objects vanish."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += flatten(item, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            out += flatten(item, f"{prefix}[{index}]")
        return out
    if value is None:
        return []
    return [(prefix, value)]


def parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        if match.start() != pos and path[pos] != ".":
            raise ValueError(f"chemin d'attribut invalide : {path!r}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
        if pos < len(path) and path[pos] == ".":
            pos += 1
    if not parts or pos != len(path):
        raise ValueError(f"chemin d'attribut invalide : {path!r}")
    return parts


def assign(target: dict, path: str, value: Any) -> None:
    """Set `value` at `path` inside `target`, creating dicts and lists on the way.
    List indices must arrive in order (0, 1, 2…), as `flatten` produces them."""
    parts = parse_path(path)
    node: Any = target
    for here, nxt in zip(parts, parts[1:]):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(here, int):
            if not isinstance(node, list) or here > len(node):
                raise ValueError(f"indice hors séquence dans {path!r}")
            if here == len(node):
                node.append(empty)
            node = node[here]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"chemin incohérent : {path!r}")
            node = node.setdefault(here, empty)
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last != len(node):
            raise ValueError(f"indice hors séquence dans {path!r}")
        node.append(value)
    else:
        if not isinstance(node, dict):
            raise ValueError(f"chemin incohérent : {path!r}")
        node[last] = value


# ----------------------------------------------------------------- HL7 TS literals


def ts_date(value: str) -> str:
    """ISO date (JSON form) -> HL7 TS `YYYYMMDD`."""
    return dt.date.fromisoformat(value).strftime("%Y%m%d")


def ts_datetime(value: str | dt.datetime) -> str:
    """ISO date-time -> HL7 TS `YYYYMMDDHHMMSS[.ffffff][+ZZZZ]`."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    text = moment.strftime("%Y%m%d%H%M%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    if moment.tzinfo is not None:
        text += moment.strftime("%z")
    return text


_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?)?([+-]\d{4})?$"
)


def parse_ts(text: str) -> dt.date | dt.datetime:
    """HL7 TS -> date (day precision) or datetime (with its zone when given)."""
    match = _TS.match(text or "")
    if not match:
        raise ValueError(f"date HL7 invalide : {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    if hour is None:
        if month is None or day is None:
            raise ValueError(f"date HL7 incomplète (jour attendu) : {text!r}")
        return dt.date(int(year), int(month), int(day))
    tz = None
    if zone:
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    return dt.datetime(
        int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0),
        int((frac or "0").ljust(6, "0")), tzinfo=tz,
    )
