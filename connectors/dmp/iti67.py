"""ITI-67 Find Document References (IHE MHD; PDSm flux 05/06, PDSm4DMP TD3.1a): the person's
DocumentReferences by patient identifier and status (both mandatory in PDSm)."""

from __future__ import annotations

from connectors.dmp.iti65 import FHIR_JSON, base_url, request
from connectors.dmp.mhd import patient_reference


def find(connector, patient_cx: str, status: str = "current") -> list[dict]:
    system, value = patient_reference(patient_cx)
    response = request(connector, "GET", base_url(connector) + "/DocumentReference",
                       params={"patient.identifier": f"{system}|{value}", "status": status},
                       headers={"Accept": FHIR_JSON})
    return [e["resource"] for e in response.json().get("entry", []) if "resource" in e]
