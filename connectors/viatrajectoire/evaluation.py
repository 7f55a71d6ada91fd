"""Flux 3 — ConsultationEvaluation (st_flux3.md): once the oriented person's consent for a
decision has been posted (flux 2), the evaluation is read with
`GET [base]/DocumentReference?identifier=[idNat_Decision]&type=51848-0` (searchset with one
DocumentReference carrying the CDA "Evaluation"). The SI-SDO returns it only to an authorised
ESMS: before that, an empty searchset or a refusal (403) both mean "not yet"."""

from __future__ import annotations

from connectors.base import PermanentError
from connectors.fhirhttp import FhirClient
from connectors.viatrajectoire import searchset, vocab

NOT_YET = {"403", "404"}  # "not authorised (yet)" as a refusal rather than an empty searchset


def find(client: FhirClient, national_decision_id: str) -> dict | None:
    """The evaluation DocumentReference of a decision, or None while it is not served."""
    params = {"identifier": national_decision_id, "type": vocab.DOC_EVALUATION}
    try:
        for resource in searchset.resources(client, "/DocumentReference", params,
                                            resource_type="DocumentReference"):
            return resource
    except PermanentError as exc:
        if exc.code in NOT_YET:
            return None
        raise
    return None
