"""FHIRPath invariants: compiled once per expression (fhirpathpy, R4 model) and cached.

A few base-FHIR invariants sit on every resource and are cheap to decide directly; when the
expression text is exactly the published one, a native implementation answers instead of the
FHIRPath engine (tests check both agree). Everything else goes to fhirpathpy. An expression the
engine cannot evaluate yields None — the caller reports it as not evaluable, never as a pass or a
failure.
"""

from __future__ import annotations

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


# key -> (published expression, native implementation). dom-3 has no native form: it is only
# decided by FHIRPath when a resource has contained resources (otherwise it is trivially true).
NATIVE: dict[str, tuple[str, Callable]] = {
    "dom-2": ("contained.contained.empty()", _dom2),
    "dom-4": ("contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()", _dom4),
    "dom-5": ("contained.meta.security.empty()", _dom5),
    "dom-6": ("text.`div`.exists()", _dom6),
    "bdl-5": ("resource.exists() or request.exists() or response.exists()", _bdl5),
    "bdl-8": ("fullUrl.exists() implies fullUrl.contains('/_history/').not()", _bdl8),
}
TRIVIAL_WITHOUT_CONTAINED = {"dom-3"}


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
