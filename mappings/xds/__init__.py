"""XDS.b metadata (ebRIM 3.0) of the plan's CDA document, for the DMP and MSSanté XDM."""

from mappings.xds.metadata import Destination, MetadataError, entry_uuid, patient_cx, submit_objects_request

__all__ = ["Destination", "MetadataError", "entry_uuid", "patient_cx", "submit_objects_request"]
