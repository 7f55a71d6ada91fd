"""Plan <-> CDA R2 document (CI-SIS header, SERAFIN-PH coded body) and its HTML rendering."""

from mappings.cda.export import DocumentIds, document_ids, plan_to_cda
from mappings.cda.import_ import ImportResult, cda_to_plan
from mappings.cda.render import cda_to_html

__all__ = ["DocumentIds", "ImportResult", "cda_to_html", "cda_to_plan", "document_ids", "plan_to_cda"]
