"""SERAFIN-PH nomenclatures of needs and services: data, look-ups, hierarchy, search."""

from mappings.serafin.nomenclature import (
    FAMILIES,
    FHIR_SYSTEM,
    Concept,
    Nomenclature,
    nomenclature,
)

__all__ = ["FAMILIES", "FHIR_SYSTEM", "Concept", "Nomenclature", "nomenclature"]
