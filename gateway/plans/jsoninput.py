"""Strict JSON reading for every input path (API bodies, CLI files).

Refuses what a lenient parser would silently accept: duplicate keys (the last one would win),
NaN/Infinity, numbers with thousands of digits or integers beyond 64 bits, NUL characters in
strings (PostgreSQL cannot store them), nesting deeper than a plan ever needs, oversized
documents, invalid UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.model import Problem

SOURCE = "relais-json"
MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 40


class JsonInputError(ValueError):
    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def _fail(rule: str, message: str, message_en: str, location: str = "$") -> JsonInputError:
    return JsonInputError(
        Problem(location=location, rule=rule, message=message, message_en=message_en, source=SOURCE)
    )


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _fail(
                "json-duplicate-key",
                f"clé JSON en double : {key!r} (ambiguë, refusée)",
                f"duplicate JSON key {key!r}",
            )
        out[key] = value
    return out


def _number(text: str) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        raise _fail("json-number-too-large", "nombre trop long", "number literal too long")
    return text


INT64 = 2**63 - 1  # the storage's widest integer (and orjson's): nothing larger has a meaning here


def _int(text: str) -> int:
    value = int(_number(text))
    if not -INT64 - 1 <= value <= INT64:
        raise _fail("json-number-too-large", f"entier hors limites (plus de 64 bits) : {text[:24]}{'…' if len(text) > 24 else ''}",
                    "integer beyond 64 bits")
    return value


def _float(text: str) -> float:
    value = float(_number(text))
    if value in (float("inf"), float("-inf")):
        raise _fail("json-non-finite", f"nombre hors limites : {text}", f"number out of range: {text}")
    return value


def _constant(name: str) -> Any:
    raise _fail("json-non-finite", f"valeur non finie refusée : {name}", f"non-finite value {name}")


def _depth(value: Any, limit: int) -> None:
    stack = [(value, 1)]
    nul = False
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise _fail(
                "json-too-deep",
                f"imbrication JSON trop profonde (plus de {limit} niveaux)",
                f"JSON nested deeper than {limit} levels",
            )
        if isinstance(node, dict):
            nul = nul or any("\x00" in k for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and "\x00" in node:
            nul = True
    if nul:
        where = _nul_path(value)
        raise _fail("json-nul-character", f"caractère NUL (\\u0000) refusé dans une chaîne, en {where}",
                    f"NUL character (\\u0000) in a string at {where}", location=where)


def _nul_path(value: Any, path: str = "$") -> str:
    """JSON path of the first string (or key) holding U+0000 (only walked once one was seen)."""
    if isinstance(value, str):
        return path if "\x00" in value else ""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if isinstance(key, str) and "\x00" in key:
            return path
        step = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        found = _nul_path(child, step)
        if found:
            return found
    return ""


def loads_strict(raw: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document or raise JsonInputError naming the place and the reason."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _fail(
                "json-encoding",
                f"texte non représentable en UTF-8 (caractère {exc.start})",
                f"text not encodable as UTF-8 (character {exc.start})",
            ) from None
    size = len(raw)
    if size > max_bytes:
        raise _fail(
            "too-large",
            f"document trop volumineux ({size} octets, maximum {max_bytes})",
            f"document too large ({size} bytes, max {max_bytes})",
        )
    try:
        raw = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            "json-encoding",
            f"le document n'est pas en UTF-8 (octet {exc.start})",
            f"not UTF-8 (byte {exc.start})",
        ) from None
    raw = raw.removeprefix("\ufeff")
    try:
        value = json.loads(
            raw,
            object_pairs_hook=_pairs,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise _fail(
            "json-syntax",
            f"JSON invalide ligne {exc.lineno}, colonne {exc.colno} : {_fr(exc.msg)}",
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        ) from None
    except RecursionError:
        raise _fail(
            "json-too-deep",
            f"imbrication JSON trop profonde (plus de {max_depth} niveaux)",
            "JSON nested too deeply",
        ) from None
    _depth(value, max_depth)
    return value


def loads_object(raw: bytes | str, **limits: int) -> dict:
    value = loads_strict(raw, **limits)
    if not isinstance(value, dict):
        raise _fail("json-not-object", "un objet JSON est attendu à la racine", "expected a JSON object")
    return value


_MESSAGES = {
    "Expecting value": "valeur attendue",
    "Expecting property name enclosed in double quotes": "nom de propriété entre guillemets attendu",
    "Expecting ',' delimiter": "virgule attendue",
    "Expecting ':' delimiter": "deux-points attendu",
    "Extra data": "données en trop après le document",
    "Unterminated string starting at": "chaîne non terminée",
    "Invalid control character at": "caractère de contrôle interdit",
    "Invalid \\escape": "séquence d'échappement invalide",
}


def _fr(msg: str) -> str:
    for en, fr in _MESSAGES.items():
        if msg.startswith(en):
            return fr
    return msg
