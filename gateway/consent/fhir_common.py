"""What the FHIR readers of the consent engine share: problems with FHIRPath locations,
FHIR date/dateTime values, identifier → matching token, canonical JSON and its hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError

from gateway.consent.model import Token
from gateway.consent.vocab import (
    CS_PROFESSION_CATEGORY,
    SID_FINESS,
    SID_IDNAT_PS,
    SID_RPPS,
    SID_SYSTEM,
    SID_URI,
    Profession,
    System,
)
from gateway.model import Problem, Severity

PARIS = ZoneInfo("Europe/Paris")  # date-only FHIR values are French calendar days
STRUCTURE_SOURCE = "FHIR R4 (fhir.resources 8.3.0, R4B models)"


class FhirInputError(Exception):
    """A FHIR resource Relais refuses; `problems` say where (FHIRPath), which rule, why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.line() for p in problems[:5]))


def problem(location: str, rule: str, message: str, message_en: str, source: str,
            warning: bool = False) -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   source=source, severity=Severity.warning if warning else Severity.error)


def fhirpath(root: str, loc: tuple | list) -> str:
    """Pydantic location → FHIRPath-like: ('provision', 'provision', 0, 'class_fhir') →
    Consent.provision.provision[0].class."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part).removesuffix("_fhir")
            out += f".{name}"
    return out


def structure_problems(resource_type: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err.get("loc", ()) if p != "__root__")
        kind = str(err.get("type", "invalid"))
        msg = str(err.get("msg", ""))
        if kind == "missing":
            fr = "élément obligatoire absent"
        elif kind == "extra_forbidden":
            fr = "élément inconnu de FHIR R4 à cet endroit"
        else:
            fr = f"valeur non conforme à FHIR R4 ({msg})"
        problems.append(problem(fhirpath(resource_type, loc), f"fhir-{kind.replace('_', '-')}",
                                fr, msg, STRUCTURE_SOURCE))
    return problems


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_datetime(value: str, *, end: bool = False) -> dt.datetime:
    """FHIR date or dateTime → aware UTC datetime. A partial date stands for its whole
    day/month/year in Paris time: its start, or (end=True) the last instant before the next."""
    if not isinstance(value, str):
        raise ValueError("date attendue")
    m = _DATE.match(value)
    if m:
        year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
        start = dt.datetime(year, month, day, tzinfo=PARIS)
        if end:
            if m[3]:
                nxt = start + dt.timedelta(days=1)
            elif m[2]:
                nxt = start.replace(year=year + (month == 12), month=month % 12 + 1)
            else:
                nxt = start.replace(year=year + 1)
            return (nxt - dt.timedelta(microseconds=1)).astimezone(dt.UTC)
        return start.astimezone(dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("un dateTime FHIR avec heure doit porter son fuseau")
    return parsed.astimezone(dt.UTC)


def fhir_instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def identifier_token(identifier: dict) -> Token | None:
    """Identifier → the token the matcher compares; None when Relais cannot use it."""
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str) or not value:
        return None
    if system == SID_RPPS and re.fullmatch(r"[0-9]{11}", value):
        return ("rpps", value)
    if system == SID_IDNAT_PS:
        if value[:1] == "8" and re.fullmatch(r"[0-9]{11}", value[1:]):
            return ("rpps", value[1:])
        if value[:1] == "0" and len(value) > 1:
            return ("adeli", value[1:])
        return None
    if system == SID_FINESS and re.fullmatch(r"(?:[0-9]{2}|2[AB])[0-9]{7}", value):
        return ("finess", value)
    if system == SID_URI and value.lower().startswith("mailto:") and "@" in value:
        return ("mssante", value[7:].lower())
    if system == SID_SYSTEM and value in System.__members__:
        return ("system", value)
    if system == CS_PROFESSION_CATEGORY and value in Profession.__members__:
        return ("category", value)
    return None


def token_identifier(token: Token) -> dict:
    kind, value = token
    if kind == "rpps":
        return {"system": SID_RPPS, "value": value}
    if kind == "adeli":
        return {"system": SID_IDNAT_PS, "value": "0" + value}
    if kind == "finess":
        return {"system": SID_FINESS, "value": value}
    if kind == "mssante":
        return {"system": SID_URI, "value": f"mailto:{value}"}
    if kind == "system":
        return {"system": SID_SYSTEM, "value": value}
    if kind == "category":
        return {"system": CS_PROFESSION_CATEGORY, "value": value}
    return {"system": "urn:relais:local", "value": value}


def canonical_bytes(resource: dict) -> bytes:
    """Stored form: UTF-8 JSON, sorted keys, no insignificant whitespace."""
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def codings(concept: object) -> list[dict]:
    if isinstance(concept, dict):
        return [c for c in concept.get("coding", []) if isinstance(c, dict)]
    return []


def has_coding(concepts: list, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code
               for concept in concepts for c in codings(concept))
