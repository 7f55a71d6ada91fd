"""CDA R2 conformance: the CDA schema with the French extensions and the CI-SIS schematrons."""
