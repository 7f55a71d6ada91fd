"""FHIR translations (`tddui/`) and the compiled FHIR profile rule sets Relais ships (`profiles/`)."""
