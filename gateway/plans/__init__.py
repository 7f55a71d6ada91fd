"""Plan-level services: validation, canonical form, diff."""
