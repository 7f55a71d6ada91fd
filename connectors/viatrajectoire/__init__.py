"""ViaTrajectoire / SI-SDO connector: the ESMS side of the ANS "Suivi des décisions
d'orientation" guide (specs §3), every flow.

- `build(config)` → `ViaTrajectoireConnector` (system `viatrajectoire`);
- send: `sdo-consent` (flux 2, esms-consent) and `sdo-status` (flux 4, sdo-task), payloads built
  with `build_consent` / `build_status_task`;
- poll: `sdo-decision` (flux 1), `sdo-evaluation` (flux 3), `sdo-status` (flux 5);
- `parse_decision_cda` / `orientation_records`: the CDA "Individu + Décision" onto the plan's
  orientation records; `decision_file` for an inbound DocumentReference.
"""

from connectors.viatrajectoire.cda_decision import (
    DecisionDocument,
    DecisionDocumentError,
    PersonTraits,
    orientation_records,
    parse_decision_cda,
)
from connectors.viatrajectoire.connector import (
    INBOUND_DECISION,
    INBOUND_DECISION_REJECTED,
    INBOUND_EVALUATION,
    INBOUND_EVALUATION_REFUSED,
    INBOUND_STATUS,
    KIND_CONSENT,
    KIND_STATUS,
    SYSTEM,
    ViaTrajectoireConnector,
    build,
)
from connectors.viatrajectoire.decisions import DecisionFile, decision_file
from connectors.viatrajectoire.resources import (
    ResourceError,
    StatusReport,
    build_consent,
    build_status_task,
    id_nat_struct,
)

__all__ = [
    "INBOUND_DECISION", "INBOUND_DECISION_REJECTED", "INBOUND_EVALUATION", "INBOUND_EVALUATION_REFUSED",
    "INBOUND_STATUS",
    "KIND_CONSENT", "KIND_STATUS", "SYSTEM", "DecisionDocument", "DecisionDocumentError", "DecisionFile",
    "PersonTraits", "ResourceError", "StatusReport", "ViaTrajectoireConnector", "build", "build_consent",
    "build_status_task", "decision_file", "id_nat_struct", "orientation_records", "parse_decision_cda",
]
