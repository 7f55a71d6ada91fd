"""Conformance of what Relais emits and receives: FHIR profiles (`fhir/`), later CDA schematrons."""
