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

from functools import cache


@cache
def _engine() -> tuple[Callable, object]:
    """fhirpathpy's compiler and R4 model, imported on first need (≈ 0.1–0.2 s): most invariants are
    decided natively or by the quick answers below, and a gate that never needs the engine never
    pays for it."""
    from fhirpathpy import compile as fp_compile
    from fhirpathpy.models import models

    return fp_compile, models["r4"]


def _has_value(inputs) -> list[bool]:
    # FHIRPath hasValue(): a single primitive with a value (fhirpathpy 2.2.4 lacks it)
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}}


def _contained(focus) -> list:
    return focus.get("contained") or [] if isinstance(focus, dict) else []


def _dom2(focus, resource, engine=None) -> bool:
    return not any(c.get("contained") for c in _contained(focus))


def _dom4(focus, resource, engine=None) -> bool:
    return not any(
        (c.get("meta") or {}).get("versionId") is not None or (c.get("meta") or {}).get("lastUpdated") is not None
        for c in _contained(focus)
    )


def _dom5(focus, resource, engine=None) -> bool:
    return not any((c.get("meta") or {}).get("security") for c in _contained(focus))


def _dom6(focus, resource, engine=None) -> bool:
    return bool(isinstance(focus, dict) and (focus.get("text") or {}).get("div"))


def _bdl8(focus, resource, engine=None) -> bool:
    return "/_history/" not in (focus.get("fullUrl") or "")


def _bdl5(focus, resource, engine=None) -> bool:
    return "resource" in focus or "request" in focus or "response" in focus


def _entries(focus) -> list:
    return [e for e in focus.get("entry") or () if isinstance(e, dict)]


def _bdl3(focus, resource, engine=None) -> bool:
    expected = (resource or focus).get("type") in ("batch", "transaction", "history")
    return all(("request" in e) == expected for e in _entries(focus))


def _bdl4(focus, resource, engine=None) -> bool:
    expected = (resource or focus).get("type") in ("batch-response", "transaction-response", "history")
    return all(("response" in e) == expected for e in _entries(focus))


def _bdl7(focus, resource, engine=None) -> bool:
    if focus.get("type") == "history":
        return True
    keys = [
        e["fullUrl"] + str(((e.get("resource") or {}).get("meta") or {}).get("versionId") or "")
        for e in _entries(focus)
        if e.get("fullUrl") is not None
    ]
    return len(keys) == len(set(keys))


# key -> (published expression, native implementation (focus, resource, engine=None): the signature of
# a decider). dom-3 has no native form: it is only
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
# Most invariants are `A or B`, `A implies B` or `A and B` over simple tests on paths: `p.exists()`,
# `p.empty()`, `p.exists().not()`, `p = 'literal'`, `(p.count() + q.count()) > 0`, `(A).not()`,
# where a path may filter with `where(name = 'literal')`. When such parts decide the result, it is
# given without the FHIRPath engine, with FHIRPath's three-valued logic (EMPTY: the empty
# collection, which an invariant treats as satisfied, as evaluate() does). Anything else returns
# None and goes to fhirpathpy (tests compare both on the invariants of the shipped rule sets).
EMPTY = "empty"
_LIT = r"'[^'\\]*'"
_STEP = rf"(?:[A-Za-z_]\w*|where\(\s*[A-Za-z_]\w*\s*=\s*{_LIT}\s*\))"
_PATH = rf"{_STEP}(?:\.{_STEP})*"
_EXISTS = re.compile(rf"^\(?({_PATH})\)?\.(exists\(\)\.not\(\)|exists\(\)|empty\(\))$")
_EQUALS = re.compile(rf"^({_PATH})\s*=\s*({_LIT})$")
_COUNT = re.compile(rf"({_PATH})\.count\(\)")
_COUNTS = re.compile(rf"^\(?\s*({_PATH}\.count\(\)(?:\s*\+\s*{_PATH}\.count\(\))*)\s*\)?\s*(>=|<=|>|<|=)\s*(\d+)$")
_WHERE = re.compile(rf"^where\(\s*([A-Za-z_]\w*)\s*=\s*({_LIT})\s*\)$")
_KEYWORD = re.compile(r"(?<=[)\s])(implies|and|or|xor)(?=[(\s])")


def _normalise(expr: str) -> str:
    """One space between tokens outside string literals, and around implies / and / or / xor."""
    parts = expr.split("'")
    for i in range(0, len(parts), 2):
        parts[i] = _KEYWORD.sub(r" \1 ", re.sub(r"\s+", " ", parts[i]))
        parts[i] = re.sub(r" +", " ", parts[i])
    return "'".join(parts).strip()


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


_CHOICE_KEYS: dict[str, frozenset] = {}  # prefix → its keys (prefix + each type): names of the rule set


def choice_values(obj: dict, prefix: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of choice element `prefix[x]` present in `obj`."""
    keys = _CHOICE_KEYS.get(prefix)
    if keys is None:
        keys = frozenset(prefix + t for t in CHOICE_TYPES)
        if len(_CHOICE_KEYS) < 4096:
            _CHOICE_KEYS[prefix] = keys
    if keys.isdisjoint(obj):  # (most often: one set test over the object's keys)
        return []
    return [(k, v) for k, v in obj.items() if k in keys]


def _steps(path: str) -> list[tuple]:
    """`a.where(b = 'x.y').c` → [("a",), ("where", "b", "x.y"), ("c",)]."""
    out, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(path + "."):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ".":
            step = path[start:i].strip()
            m = _WHERE.match(step)
            out.append(("where", m.group(1), m.group(2)[1:-1]) if m else (step,))
            start = i + 1
    return out


def _navigate(focus, steps: list[tuple]) -> list:
    items = [focus]
    if steps and len(steps[0]) == 1 and steps[0][0][:1].isupper():
        if not (isinstance(focus, dict) and focus.get("resourceType") == steps[0][0]):
            return []
        steps = steps[1:]
    for step in steps:
        if len(step) == 3:  # where(name = 'literal')
            _, name, literal = step
            items = [x for x in items if isinstance(x, dict) and x.get(name) == literal]
            continue
        name = step[0]
        nxt = []
        for x in items:
            if not isinstance(x, dict):
                continue
            got = x.get(name)
            if got is None:
                pairs = choice_values(x, name)
                got = [v for _, v in pairs] if pairs else None
            if isinstance(got, list):
                nxt.extend(got)
            elif got is not None:
                nxt.append(got)
        items = nxt
    return items


def _not(value):
    return (not value) if isinstance(value, bool) else value  # not(EMPTY) is EMPTY, None stays undecided


def compile_quick(expression: str) -> Callable | None:
    """A Python closure deciding `expression` when its simple parts suffice (None: it never can).
    The closure returns True, False, EMPTY, or None when this focus needs the engine."""
    expr = _strip_parens(_normalise(expression))
    if " xor " in expr:
        return None
    parts = _split_top(expr, "implies")
    if len(parts) == 2:
        premise, conclusion = compile_quick(parts[0]), compile_quick(parts[1])
        if premise is None and conclusion is None:
            return None

        def implies(focus):
            then = conclusion(focus) if conclusion is not None else None
            if then is True:
                return True
            value = premise(focus) if premise is not None else None
            if value is False:
                return True
            if value is None or then is None:
                return None
            if value is True:
                return then
            return EMPTY  # {} implies false / {}

        return implies
    if len(parts) > 2:
        return None
    for op, decisive in (("or", True), ("and", False)):
        parts = _split_top(expr, op)
        if len(parts) > 1:
            subs = [compile_quick(p) for p in parts]
            if all(f is None for f in subs):
                return None

            def junction(focus, subs=subs, decisive=decisive):
                unknown = empty = False
                for f in subs:
                    value = f(focus) if f is not None else None
                    if value is decisive:
                        return decisive
                    unknown = unknown or value is None
                    empty = empty or value == EMPTY
                if unknown:
                    return None
                return EMPTY if empty else not decisive

            return junction
    if expr.endswith(".not()") and expr.startswith("("):
        inner = expr[: -len(".not()")]
        if _strip_parens(inner) != inner:  # `(A).not()`, the parentheses enclosing A only
            sub = compile_quick(inner)
            return None if sub is None else (lambda focus: _not(sub(focus)))
    m = _EXISTS.match(expr)
    if m and expr.count("(") == expr.count(")"):
        steps, test = _steps(m.group(1)), m.group(2)
        if test == "exists()":
            return lambda focus: bool(_navigate(focus, steps))
        return lambda focus: not _navigate(focus, steps)
    m = _EQUALS.match(expr)
    if m:
        steps, literal = _steps(m.group(1)), m.group(2)[1:-1]

        def equals(focus):
            items = _navigate(focus, steps)
            if not items:
                return EMPTY
            return items[0] == literal if len(items) == 1 and isinstance(items[0], str) else None

        return equals
    m = _COUNTS.match(expr)
    if m and expr.count("(") == expr.count(")"):
        paths = [_steps(p) for p in _COUNT.findall(m.group(1))]
        op, bound = m.group(2), int(m.group(3))
        compare = {">": int.__gt__, ">=": int.__ge__, "<": int.__lt__, "<=": int.__le__, "=": int.__eq__}[op]
        return lambda focus: compare(sum(len(_navigate(focus, p)) for p in paths), bound)
    return None


_QUICK: dict[str, Callable | None] = {}


def quick(expression: str, focus) -> bool | None:
    """True / False when the simple parts decide `expression` on this focus (an empty result counts
    as satisfied, as in evaluate()), None when the engine must."""
    if expression not in _QUICK:
        _QUICK[expression] = compile_quick(expression)
    fn = _QUICK[expression]
    if fn is None:
        return None
    value = fn(focus)
    return True if value == EMPTY else value


def decider(key: str, expression: str) -> Callable:
    """`FhirPath.check` for one constraint, its lookups made once: a function (focus, resource,
    engine) giving the same answer (tests/test_fhir_profile_speed.py compares them)."""
    entry = NATIVE.get(key)
    if entry and entry[0] == expression:
        return entry[1]  # (focus, resource, engine=None)
    trivial = key in TRIVIAL_WITHOUT_CONTAINED
    if expression not in _QUICK:
        _QUICK[expression] = compile_quick(expression)
    fn = _QUICK[expression]

    def decide(focus, resource, engine: FhirPath) -> bool | None:
        if trivial and not _contained(focus):
            return True
        if fn is not None:
            value = fn(focus)
            if value is not None:
                return True if value == EMPTY else value
        return engine.evaluate(expression, focus, resource)

    return decide


class FhirPath:
    def __init__(self):
        self._compiled: dict[str, Callable | Exception] = {}

    def compiled(self, expression: str) -> Callable | Exception:
        fn = self._compiled.get(expression)
        if fn is None:
            try:
                fp_compile, r4 = _engine()
                fn = fp_compile(expression, r4, _OPTIONS)
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
