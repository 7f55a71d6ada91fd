"""GDPR consent engine: FHIR Consent storage, care team, policy decision point."""
