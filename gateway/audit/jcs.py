"""RFC 8785 JSON Canonicalization Scheme for the values audit entries hold.

Entries only hold strings, integers (|i| < 2^53), booleans, null, lists and objects, for
which JCS reduces to: object members sorted by the UTF-16 code units of their names (§3.2.3),
no whitespace, strings escaped as ECMAScript JSON.stringify does (§3.2.2.2: \\b \\t \\n \\f \\r,
other controls as lowercase \\u00xx, everything else literal UTF-8), integers in plain
decimal (§3.2.2.3). Floats are refused (entries carry none), which keeps this small and
fast; the tests cross-check it with the `rfc8785` package.
"""

from __future__ import annotations

import json

import orjson

_MAX_SAFE = 2**53 - 1
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_dumps_sorted = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                 sort_keys=True).encode


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _sorted(value):
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError("JCS : clés d'objet textuelles uniquement")
        return {k: _sorted(value[k]) for k in sorted(value, key=_utf16)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE:
            raise ValueError("JCS : entier hors de l'intervalle exact (2^53)")
        return value
    if isinstance(value, str):
        return value
    raise TypeError(f"JCS : type non pris en charge ({type(value).__name__})")


def canonical(value) -> bytes:
    """The RFC 8785 bytes of `value`. Lone surrogates are refused (not valid UTF-8)."""
    return _dumps(_sorted(value)).encode("utf-8")


def canonical_ascii_keys(value) -> bytes:
    """Fast path for values whose object keys are all ASCII and which hold no float nor
    integer beyond 2^53 (audit records: entry.check guarantees it). For ASCII keys, code point
    order is UTF-16 order, so the C encoder's sort_keys gives the RFC 8785 bytes."""
    return _dumps_sorted(value).encode("utf-8")


# orjson gives the same bytes as the stdlib encoder above for plain str/int/bool/None/dict/list:
# strings escaped like ECMAScript (§3.2.2.2: \b \t \n \f \r, other controls as lowercase
# \u00xx, the rest literal UTF-8), integers in plain decimal (§3.2.2.3), and with ASCII keys its
# byte-order sort is the UTF-16 order of §3.2.3. Subclasses, dataclasses and datetimes are passed
# to `_refuse` so that they, and anything orjson cannot encode (lone surrogates, ints beyond 64
# bits, non-str keys), take the reference path and give its bytes or its error.
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
                   | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)


def _refuse(value):
    raise TypeError


def canonical_checked(value) -> bytes:
    """`canonical_ascii_keys` for values holding only str (or str subclasses), int, bool, None,
    dict and list -- NO float, UUID nor Enum, whose orjson forms differ from the stdlib's.
    Audit records after entry.check hold nothing else."""
    body = canonical_fast(value)
    if body is None:  # lone surrogate, int beyond 64 bits, subclass...: reference path
        return _dumps_sorted(value).encode("utf-8")
    return body


def canonical_fast(value) -> bytes | None:
    """`canonical_checked`'s bytes when orjson alone gives them, else None (same domain)."""
    try:
        return orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return None
