"""Sandbox of a regional e-parcours tool: a strict FHIR server that accepts the TDDUI
transaction (validated against TDDUI 2.2.0 with the same gate Relais uses), the cercle de
soins CareTeam transaction (500 on error, as that guide says), and serves event notifications
(CommunicationRequest, notification d'évènements) for polling."""

from __future__ import annotations

from connectors.sandbox.cds import ConditionalStore, cds_issues, is_cds_bundle
from connectors.sandbox.fhir_app import FhirSandbox, Personality

TDDUI_TYPES = frozenset({
    "Patient", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson", "CarePlan",
    "Consent", "Goal", "ServiceRequest", "Task", "Encounter", "QuestionnaireResponse",
    "DocumentReference", "CareTeam", "CommunicationRequest", "Subscription",
})
TDDUI_BUNDLE = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-bundle"


def _validate_bundle(bundle: dict) -> list[dict] | None:
    """TDDUI Bundles go through the TDDUI 2.2.0 profiles, cercle de soins Bundles through the CDS
    2.0.1 rules (connectors/sandbox/cds.py), base structure included; others are not judged here
    (None): the base structure of each entry only."""
    if is_cds_bundle(bundle):
        return cds_issues(bundle)
    profiles = [p.split("|")[0] for p in (bundle.get("meta") or {}).get("profile", [])]
    if TDDUI_BUNDLE not in profiles:
        return None
    from gateway.conformance.fhir.gate import tddui_gate

    return [{"severity": p.severity.value, "code": "processing", "diagnostics": f"[{p.rule}] {p.message}",
             "expression": [p.location]} for p in tddui_gate().validate(bundle)]


def eparcours_sandbox() -> FhirSandbox:
    return FhirSandbox(Personality(
        name="e-parcours (bac à sable)",
        resource_types=TDDUI_TYPES,
        transaction_error_status=500,  # cercle de soins: 500 + OperationOutcome (specs §11.13)
        validate_bundle=_validate_bundle,
    ), store=ConditionalStore())  # PUT CareTeam?identifier=… (cercle de soins updates)


def notify(sandbox: FhirSandbox, *, patient_identifier: dict, event_code: str, display: str) -> dict:
    """The tool declares an event about a person (NdE flux 3, nde-eventdeclaration): e.g. a
    hospitalisation. Relais polls it."""
    stored, _ = sandbox.store.create({
        "resourceType": "CommunicationRequest",
        "meta": {"profile": ["https://interop.esante.gouv.fr/ig/fhir/nde/StructureDefinition/nde-eventdeclaration"]},
        "status": "active",
        "contained": [{"resourceType": "Patient", "id": "p", "identifier": [patient_identifier]}],
        "subject": {"reference": "#p"},
        "payload": [{"contentString": display}],
        "extension": [{"url": "https://interop.esante.gouv.fr/ig/fhir/nde/StructureDefinition/EventType",
                       "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R254-TypeEvenement/FHIR/TRE-R254-TypeEvenement",
                                       "code": event_code, "display": display}}],
    })
    return stored.resource
