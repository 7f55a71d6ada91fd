"""Signed, tamper-evident audit trail."""
