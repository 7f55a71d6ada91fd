"""FHIR conformance: packages, compiled profile rules, offline terminology, validator, runtime gate."""

from gateway.conformance.fhir.gate import Gate, tddui_gate
from gateway.conformance.fhir.packages import Package, PackageError, PackageSet, load_package
from gateway.conformance.fhir.rules import RuleSet
from gateway.conformance.fhir.validator import Validator

__all__ = ["Gate", "Package", "PackageError", "PackageSet", "RuleSet", "Validator", "load_package", "tddui_gate"]
