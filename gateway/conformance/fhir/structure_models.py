"""Base FHIR structure checked with the fhir.resources R4B models (pydantic): the reference the
compiled check (structure.py) is tested against, and its fallback when the compiled schema cannot
be used. Slow (≈ 0.25 ms per resource, and ≈ 0.5 s of imports): not on the gate's path.

Pydantic errors become Problems located by FHIRPath (`Bundle.entry[2].resource.period.start`):
pydantic's own location tags (`root`, union members) are dropped, `resource_type` is written
`resourceType`. Where fhir.resources raises something else than a validation error (an unknown
`resourceType` inside a Bundle, a number where a `url` is expected…), the error is reported at the
resource instead of escaping.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.model.problem import Problem, Severity

SOURCE = "hl7.fhir.r4.core|4.0.1 (fhir.resources 8.3.0, R4B models)"

_MESSAGES = {
    "extra_forbidden": ("élément inconnu dans FHIR R4", "unknown element in FHIR R4"),
    "missing": ("élément obligatoire absent", "required element missing"),
    "list_type": ("une liste est attendue", "a list is expected"),
    "string_pattern_mismatch": ("valeur au format invalide", "value does not match the datatype format"),
    "string_type": ("une chaîne est attendue", "a string is expected"),
    "bool_type": ("un booléen est attendu", "a boolean is expected"),
    "bool_parsing": ("un booléen est attendu", "a boolean is expected"),
    "int_type": ("un entier est attendu", "an integer is expected"),
    "int_parsing": ("un entier est attendu", "an integer is expected"),
    "decimal_type": ("un décimal est attendu", "a decimal is expected"),
    "model_type": ("un objet est attendu", "an object is expected"),
    "dict_type": ("un objet est attendu", "an object is expected"),
}


class ModelError(NamedTuple):
    location: str
    kind: str  # pydantic error type, or `crash:<exception>` when fhir.resources did not raise a ValidationError
    message: str


def _describe(error: dict) -> tuple[str, str]:
    from gateway.conformance.fhir.structure import described

    kind = error.get("type", "")
    shown, shown_en = described(error.get("input"))  # never the value (personal data)
    if "date" in kind or "time" in kind:
        return "date ou date-heure invalide", "invalid date or dateTime"
    if kind.endswith(".missing") or kind == "missing":
        return _MESSAGES["missing"]
    fr, en = _MESSAGES.get(kind, ("structure FHIR invalide", "invalid FHIR structure"))
    if kind in ("extra_forbidden", "missing"):
        return fr, en
    return f"{fr} : {shown}", f"{en}: {shown_en}"  # pydantic's own text may quote the value


def fhirpath_location(root: str, loc: tuple, instance=None) -> str:
    """FHIRPath of a pydantic location, read along the instance: steps that are not FHIR elements
    (`root`, union tags such as `str`, steps inside a string pydantic parsed as JSON) are dropped."""
    out = root
    here = instance
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            here = here[part] if isinstance(here, list) and 0 <= part < len(here) else None
            continue
        if not isinstance(part, str) or not part.replace("_", "").isalnum():
            continue  # pydantic internals (function-after[…], list[str])
        if instance is not None and not isinstance(here, dict):
            continue  # inside a value pydantic parsed from a JSON string, or a union tag
        if part == "root":
            continue
        if part == "resource_type" and isinstance(here, dict) and "resourceType" in here:
            part = "resourceType"
        out += f".{part}"
        here = here.get(part) if isinstance(here, dict) else None
    return out


def model_errors(resource: dict, root: str | None = None) -> list[ModelError]:
    """What fhir.resources says about one resource (a Bundle includes its entries)."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    root = root or (resource_type if isinstance(resource_type, str) else "$")
    if not isinstance(resource_type, str):
        return [ModelError(root, "no-resource-type", "resourceType absent")]
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return [ModelError(f"{root}.resourceType", "unknown-resource-type", resource_type)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            ModelError(fhirpath_location(root, e.get("loc", ()), resource), e.get("type", ""), e.get("msg", ""))
            for e in exc.errors()
        ]
    except Exception as exc:  # noqa: BLE001 — fhir.resources' own bugs (KeyError, AttributeError, TypeError…)
        return [ModelError(root, f"crash:{type(exc).__name__}", str(exc))]
    return []


def check_structure_with_models(resource: dict, root: str | None = None) -> list[Problem]:
    """Problems of the base structure of one resource, from the fhir.resources R4B models."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    root = root or (resource_type if isinstance(resource_type, str) else "$")
    if not isinstance(resource_type, str):
        return [_problem(root, "resourceType absent : ce n'est pas une ressource FHIR",
                         "no resourceType: not a FHIR resource")]
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return [_problem(f"{root}.resourceType", f"type de ressource inconnu dans FHIR R4 : {resource_type}",
                         f"unknown FHIR R4 resource type: {resource_type}")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        out = []
        for error in exc.errors():
            fr, en = _describe(error)
            out.append(_problem(fhirpath_location(root, error.get("loc", ()), resource), fr, en))
        return out
    except Exception as exc:  # noqa: BLE001 — see model_errors
        return [_problem(root, f"structure FHIR invalide (fhir.resources : {type(exc).__name__} {exc})",
                         f"invalid FHIR structure (fhir.resources: {type(exc).__name__} {exc})")]
    return []


def _problem(location: str, fr: str, en: str) -> Problem:
    return Problem(location=location, rule="fhir-structure", message=fr, message_en=en, severity=Severity.error,
                   source=SOURCE)
