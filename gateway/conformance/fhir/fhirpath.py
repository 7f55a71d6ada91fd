"""FHIRPath invariants: compiled once per expression (fhirpathpy, R4 model) and cached.

A few base-FHIR invariants sit on every resource and are cheap to decide directly; when the
expression text is exactly the published one, a native implementation answers instead of the
FHIRPath engine (tests check both agree). Everything else goes to fhirpathpy. An expression the
engine cannot evaluate yields None — the caller reports it as not evaluable, never as a pass or a
failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fhirpathpy import compile as fp_compile
from fhirpathpy.models import models

_R4 = models["r4"]


def _has_value(inputs) -> list[bool]:
    # FHIRPath hasValue(): a single primitive with a value (fhirpathpy 2.2.4 lacks it)
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}}


def _contained(focus) -> list:
    return focus.get("contained") or [] if isinstance(focus, dict) else []


def _dom2(focus, resource) -> bool:
    return not any(c.get("contained") for c in _contained(focus))


def _dom4(focus, resource) -> bool:
    return not any(
        (c.get("meta") or {}).get("versionId") is not None or (c.get("meta") or {}).get("lastUpdated") is not None
        for c in _contained(focus)
    )


def _dom5(focus, resource) -> bool:
    return not any((c.get("meta") or {}).get("security") for c in _contained(focus))


def _dom6(focus, resource) -> bool:
    return bool(isinstance(focus, dict) and (focus.get("text") or {}).get("div"))


def _bdl8(focus, resource) -> bool:
    return "/_history/" not in (focus.get("fullUrl") or "")


def _bdl5(focus, resource) -> bool:
    return any(k in focus for k in ("resource", "request", "response"))


def _entries(focus) -> list:
    return [e for e in focus.get("entry") or () if isinstance(e, dict)]


def _bdl3(focus, resource) -> bool:
    expected = (resource or focus).get("type") in ("batch", "transaction", "history")
    return all(("request" in e) == expected for e in _entries(focus))


def _bdl4(focus, resource) -> bool:
    expected = (resource or focus).get("type") in ("batch-response", "transaction-response", "history")
    return all(("response" in e) == expected for e in _entries(focus))


def _bdl7(focus, resource) -> bool:
    if focus.get("type") == "history":
        return True
    keys = [
        e["fullUrl"] + str(((e.get("resource") or {}).get("meta") or {}).get("versionId") or "")
        for e in _entries(focus)
        if e.get("fullUrl") is not None
    ]
    return len(keys) == len(set(keys))


# key -> (published expression, native implementation). dom-3 has no native form: it is only
# decided by FHIRPath when a resource has contained resources (otherwise it is trivially true).
NATIVE: dict[str, tuple[str, Callable]] = {
    "dom-2": ("contained.contained.empty()", _dom2),
    "dom-4": ("contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()", _dom4),
    "dom-5": ("contained.meta.security.empty()", _dom5),
    "dom-6": ("text.`div`.exists()", _dom6),
    "bdl-3": (
        "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' "
        "or %resource.type = 'history'))",
        _bdl3,
    ),
    "bdl-4": (
        "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = "
        "'transaction-response' or %resource.type = 'history'))",
        _bdl4,
    ),
    "bdl-7": (
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        _bdl7,
    ),
    "bdl-5": ("resource.exists() or request.exists() or response.exists()", _bdl5),
    "bdl-8": ("fullUrl.exists() implies fullUrl.contains('/_history/').not()", _bdl8),
}
TRIVIAL_WITHOUT_CONTAINED = {"dom-3"}


# --- quick answers -------------------------------------------------------------------------------
# Most invariants are `A or B`, `A implies B` or `A and B` over simple existence tests; when such
# a simple part already decides the result (e.g. `lastModified.exists().not()` is true), the
# answer is given without the FHIRPath engine. Anything else returns None and goes to fhirpathpy.
_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_EXISTS = re.compile(rf"^({_PATH})\.(exists\(\)\.not\(\)|exists\(\)|empty\(\))$")
_EQUALS = re.compile(rf"^({_PATH})\s*=\s*'([^'\\]*)'$")


def _split_top(expr: str, op: str) -> list[str]:
    """Split on ` op ` at parenthesis depth 0, outside string literals."""
    parts, depth, quoted, start, i, token = [], 0, False, 0, 0, f" {op} "
    while i < len(expr):
        ch = expr[i]
        if ch == "'" and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and expr.startswith(token, i):
            parts.append(expr[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def _strip_parens(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr  # "(a) or (b)": the outer parentheses are not one group
        expr = expr[1:-1].strip()
    return expr


# Type suffixes of choice elements (value[x] → valueString…): FHIR R4 data types.
CHOICE_TYPES = frozenset(
    "Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid PositiveInt "
    "String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding "
    "ContactPoint Count Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference "
    "SampledData Signature Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition "
    "RelatedArtifact TriggerDefinition UsageContext Dosage Meta".split()
)


def choice_values(obj: dict, prefix: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of choice element `prefix[x]` present in `obj`."""
    n = len(prefix)
    return [(k, v) for k, v in obj.items() if k.startswith(prefix) and k[n:] in CHOICE_TYPES]


def _navigate(focus, path: str) -> list:
    items = [focus]
    steps = path.split(".")
    if steps and steps[0][:1].isupper() and isinstance(focus, dict) and focus.get("resourceType") == steps[0]:
        steps = steps[1:]
    for step in steps:
        nxt = []
        for x in items:
            if not isinstance(x, dict):
                continue
            got = x.get(step)
            if got is None:
                got = [v for _, v in choice_values(x, step)] or None
            if isinstance(got, list):
                nxt.extend(got)
            elif got is not None:
                nxt.append(got)
        items = nxt
    return items


def compile_quick(expression: str) -> Callable | None:
    """A Python closure deciding `expression` when its simple parts suffice (None: it never can)."""
    expr = _strip_parens(expression)
    if " xor " in expr:
        return None
    parts = _split_top(expr, "implies")
    if len(parts) == 2:
        premise, conclusion = compile_quick(parts[0]), compile_quick(parts[1])
        if premise is None:
            return None

        def implies(focus):
            value = premise(focus)
            if value is False:
                return True
            return conclusion(focus) if value is True and conclusion is not None else None

        return implies
    for op, decisive in (("or", True), ("and", False)):
        parts = _split_top(expr, op)
        if len(parts) > 1:
            subs = [compile_quick(p) for p in parts]
            known = [f for f in subs if f is not None]
            if not known:
                return None
            complete = len(known) == len(subs)

            def junction(focus, known=known, complete=complete, decisive=decisive):
                unknown = not complete
                for f in known:
                    value = f(focus)
                    if value is decisive:
                        return decisive
                    unknown = unknown or value is None
                return None if unknown else not decisive

            return junction
    m = _EXISTS.match(expr)
    if m:
        path, test = m.group(1), m.group(2)
        if test == "exists()":
            return lambda focus: bool(_navigate(focus, path))
        return lambda focus: not _navigate(focus, path)
    m = _EQUALS.match(expr)
    if m:
        path, literal = m.group(1), m.group(2)

        def equals(focus):
            items = _navigate(focus, path)
            return items[0] == literal if len(items) == 1 and isinstance(items[0], str) else None

        return equals
    return None


_QUICK: dict[str, Callable | None] = {}


def quick(expression: str, focus) -> bool | None:
    if expression not in _QUICK:
        _QUICK[expression] = compile_quick(expression)
    fn = _QUICK[expression]
    return fn(focus) if fn is not None else None


class FhirPath:
    def __init__(self):
        self._compiled: dict[str, Callable | Exception] = {}

    def compiled(self, expression: str) -> Callable | Exception:
        fn = self._compiled.get(expression)
        if fn is None:
            try:
                fn = fp_compile(expression, _R4, _OPTIONS)
            except Exception as exc:  # a syntax the engine does not know: reported, not raised
                fn = exc
            self._compiled[expression] = fn
        return fn

    def native(self, key: str, expression: str) -> Callable | None:
        entry = NATIVE.get(key)
        return entry[1] if entry and entry[0] == expression else None

    def check(self, key: str, expression: str, focus, resource) -> bool | None:
        """True (holds), False (violated) or None (the engine cannot evaluate it)."""
        native = self.native(key, expression)
        if native is not None:
            return native(focus, resource)
        if key in TRIVIAL_WITHOUT_CONTAINED and not _contained(focus):
            return True
        answer = quick(expression, focus)
        if answer is not None:
            return answer
        return self.evaluate(expression, focus, resource)

    def evaluate(self, expression: str, focus, resource) -> bool | None:
        fn = self.compiled(expression)
        if isinstance(fn, Exception):
            return None
        try:
            result = fn(focus, {"resource": resource, "rootResource": resource})
        except Exception:
            return None
        if not result:
            return True  # empty: nothing to object to
        if len(result) == 1 and isinstance(result[0], bool):
            return result[0]
        return None
