"""Base FHIR R4 structure, checked with the fhir.resources R4B models (pydantic).

The French guides are FHIR R4 (4.0.1); fhir.resources ships R4B (4.3.0) models, whose structure is
the same for the resources Relais exchanges (CarePlan, Task, Goal, Consent, Encounter, Patient…).
Pydantic errors are turned into Problems located by FHIRPath (`Bundle.entry[2].resource.period.start`).
"""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

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


def _describe(error: dict) -> tuple[str, str]:
    kind = error.get("type", "")
    shown = repr(error.get("input"))[:80]
    if "date" in kind or "time" in kind:
        return (
            f"date ou date-heure invalide : {shown} ({error.get('msg', '')})",
            f"invalid date or dateTime: {shown} ({error.get('msg', '')})",
        )
    if kind.endswith(".missing") or kind == "missing":
        return _MESSAGES["missing"]
    fr, en = _MESSAGES.get(kind, ("structure FHIR invalide", "invalid FHIR structure"))
    detail = error.get("msg", "")
    if kind in ("extra_forbidden", "missing"):
        return fr, en
    return f"{fr} : {shown} ({detail})", f"{en}: {shown} ({detail})"


def fhirpath_location(root: str, loc: tuple) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "").isalnum():
            out += f".{part}"
        # pydantic internals (function-after[…], union tags) are not FHIR path steps
    return out


def check_structure(resource: dict, root: str | None = None) -> list[Problem]:
    """Problems of the base structure of one resource (a Bundle includes its entries)."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    root = root or (resource_type or "$")
    if not isinstance(resource_type, str):
        return [
            Problem(
                location=root,
                rule="fhir-structure",
                message="resourceType absent : ce n'est pas une ressource FHIR",
                message_en="no resourceType: not a FHIR resource",
                source=SOURCE,
            )
        ]
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return [
            Problem(
                location=f"{root}.resourceType",
                rule="fhir-structure",
                message=f"type de ressource inconnu dans FHIR R4 : {resource_type}",
                message_en=f"unknown FHIR R4 resource type: {resource_type}",
                source=SOURCE,
            )
        ]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        out = []
        for error in exc.errors():
            fr, en = _describe(error)
            out.append(
                Problem(
                    location=fhirpath_location(root, error.get("loc", ())),
                    rule="fhir-structure",
                    message=fr,
                    message_en=en,
                    severity=Severity.error,
                    source=SOURCE,
                )
            )
        return out
    return []
