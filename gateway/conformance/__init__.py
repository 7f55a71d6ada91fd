"""Conformance of what Relais emits and receives: FHIR profiles (`fhir/`), CDA schema and CI-SIS
schematrons (`cda/`), and the runner integrators use on their own artefacts and servers (`runner/`)."""
