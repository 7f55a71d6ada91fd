"""The structure check's fast paths for `code` and `uri` / `url` / `canonical` values (printable ASCII,
where the only whitespace is the space) answer as the regular expressions they stand in for."""

from __future__ import annotations

import random
import re

from gateway.conformance.fhir import structure as S

_CODE = re.compile(f"[^{S._WS}]+(?:[{S._WS}][^{S._WS}]+)*")  # the code format, as fhir_core's pattern reads it
_SPACE = re.compile(r"\s")  # R4: a uri holds no whitespace


def _code(v: str):
    return None if _CODE.fullmatch(v) else S.FORMAT


def _uri(v: str):
    return S.R4 if _SPACE.search(v) else None


def _values() -> list[str]:
    bmp = [chr(i) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF]
    values = ["", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "urn:uuid:0", "http://x/ y", "59284-0"]
    values += bmp + [c + "a" for c in bmp] + ["a" + c + "b" for c in bmp] + ["a" + c for c in bmp]
    rnd = random.Random(3)
    alphabet = [chr(i) for i in range(0x80)] + [" "] * 30 + ["\xa0", "\u2028", "é"]
    values += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8))) for _ in range(20000)]
    return values


def test_code_and_uri_answer_as_their_regular_expressions():
    for v in _values():
        assert S._code(v) == _code(v), repr(v)
        assert S._uri(v) == _uri(v), repr(v)
