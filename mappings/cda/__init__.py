"""Plan <-> CDA R2 document (CI-SIS header, SERAFIN-PH coded body) and its HTML rendering."""

from mappings.cda.export import DocumentIds, document_ids, plan_to_cda

__all__ = ["DocumentIds", "document_ids", "plan_to_cda"]
