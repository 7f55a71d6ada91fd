"""Compiled FHIR profile rule sets (written by `python -m gateway.conformance.fhir.compile`)."""
