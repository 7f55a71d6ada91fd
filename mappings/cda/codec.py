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


# Errors below never quote the path or the value: they come from received documents and may
# carry personal data; the caller names the place (XPath of the observation).


def parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        if match.start() != pos and path[pos] != ".":
            raise ValueError("chemin d'attribut invalide")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
        if pos < len(path) and path[pos] == ".":
            pos += 1
    if not parts or pos != len(path):
        raise ValueError("chemin d'attribut invalide")
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
                raise ValueError("indice de liste hors séquence dans le chemin d'attribut")
            if here == len(node):
                node.append(empty)
            node = node[here]
        else:
            if not isinstance(node, dict):
                raise ValueError("chemin d'attribut incohérent avec les attributs déjà lus")
            node = node.setdefault(here, empty)
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last != len(node):
            raise ValueError("indice de liste hors séquence dans le chemin d'attribut")
        node.append(value)
    else:
        if not isinstance(node, dict):
            raise ValueError("chemin d'attribut incohérent avec les attributs déjà lus")
        node[last] = value


# ----------------------------------------------------------------- HL7 TS literals


def ts_date(value: str) -> str:
    """ISO date (JSON form) -> HL7 TS `YYYYMMDD`."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("date ISO invalide (AAAA-MM-JJ attendu)") from None
    return day.strftime("%Y%m%d")


def ts_datetime(value: str | dt.datetime) -> str:
    """ISO date-time -> HL7 TS `YYYYMMDDHHMMSS[.ffffff][+ZZZZ]`."""
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("date-heure ISO invalide") from None
    text = moment.strftime("%Y%m%d%H%M%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    if moment.tzinfo is not None:
        text += moment.strftime("%z")
    return text


_TS = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?)?([+-]\d{4})?", re.ASCII
)


def parse_ts(text: str) -> dt.date | dt.datetime:
    """HL7 TS -> date (day precision) or datetime (with its zone when given).
    A ValueError never quotes `text`: a birth date is personal data."""
    match = _TS.fullmatch(text or "")
    if not match:
        raise ValueError("date HL7 invalide (AAAAMMJJ[hhmm[ss]][±hhmm] attendu)")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    if month is None or day is None:  # `198512.5` matches with an hour but no month: refused too
        raise ValueError("date HL7 incomplète (jour attendu)")
    try:
        if hour is None:
            return dt.date(int(year), int(month), int(day))
        tz = None
        if zone:
            sign = 1 if zone[0] == "+" else -1
            tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
        return dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0),
            int((frac or "0").ljust(6, "0")), tzinfo=tz,
        )
    except ValueError:  # day 30 of February, hour 25, zone beyond ±24 h, year 0…
        raise ValueError("date HL7 inexistante (jour, heure ou fuseau hors limites)") from None
