"""A small valid TDDUI 2.2.0 transaction Bundle, written by hand from the profiles (invented
person, test INS OID): the reference instance of the tests and of the validation benchmark, and a
self-check of the gate. Each builder returns a fresh dict, so callers may break it at will."""

from __future__ import annotations

TDDUI = "https://interop.esante.gouv.fr/ig/fhir/tddui"
SD = TDDUI + "/StructureDefinition/"
SERAFIN = "https://smt.esante.gouv.fr/terminologie-SERAFINPH"
# fullUrls of the entries, by role
U = {k: f"urn:uuid:00000000-0000-4000-8000-00000000000{i}" for i, k in enumerate(
    ["patient", "org", "consent", "careplan", "need", "goal", "task", "encounter"], start=1)}


def entry(key, resource):
    return {"fullUrl": U[key], "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def disc(code):
    return {"url": SD + "tddui-discriminator",
            "valueCodeableConcept": {"coding": [{"system": TDDUI + "/CodeSystem/tddui-discriminator", "code": code}]}}


def patient_ins():
    return {
        "resourceType": "Patient",
        "meta": {"profile": [SD + "tddui-patient-ins"]},
        "extension": [
            {"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
             "extension": [{"url": "identityStatus",
                            "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445", "code": "VALI"}}]},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
             "valueAddress": {"extension": [{"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                                             "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM", "code": "75056"}}]}},
        ],
        "identifier": [{
            "use": "official",
            "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR-TEST"}]},
            "system": "urn:oid:1.2.250.1.213.1.4.10",
            "value": "248039263001064",
        }],
        "name": [{"use": "official", "family": "Martin", "given": ["Hugo"],
                  "extension": [{"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name", "valueString": "Hugo"}]}],
        "gender": "male",
        "birthDate": "2012-03-15",
    }


def organization():
    return {"resourceType": "Organization", "meta": {"profile": [SD + "tddui-organization"]},
            "identifier": [
                {"type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "IDNST"}]},
                 "system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1750000001"},
                {"system": "https://finess.esante.gouv.fr", "value": "750000001"},
            ],
            "name": "PCPE du Val"}


def consent():
    return {"resourceType": "Consent", "meta": {"profile": [SD + "tddui-consent-accord"]},
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": U["patient"]},
            "dateTime": "2026-01-15T09:00:00+01:00",
            "performer": [{"reference": U["patient"]}],
            "policy": [{"authority": "https://www.cnsa.fr/"}]}


def careplan():
    return {"resourceType": "CarePlan", "meta": {"profile": [SD + "tddui-careplan-projet-personnalise"]},
            "identifier": [{"system": "https://identifiant-medicosocial-projetpersonnalise.esante.gouv.fr",
                            "value": "3750000001/123456-PPER-1"}],
            "status": "active", "intent": "plan", "title": "Projet personnalisé de Hugo",
            "subject": {"reference": U["patient"]},
            "period": {"start": "2026-01-15", "end": "2026-12-31"},
            "supportingInfo": [{"extension": [disc("accordStructure")], "reference": U["consent"]}]}


def need():
    return {"resourceType": "ServiceRequest", "meta": {"profile": [SD + "tddui-service-request-besoin"]},
            "identifier": [{"system": "https://identifiant-medicosocial-besoin.esante.gouv.fr", "value": "3750000001/123456-BESO-1"}],
            "basedOn": [{"reference": U["careplan"]}],
            "status": "active", "intent": "plan",
            "category": [{"coding": [{"system": SERAFIN, "code": "1.1.1"}]}],
            "code": {"text": "Besoin en matière de fonctions mentales"},
            "subject": {"reference": U["patient"]}}


def goal():
    return {"resourceType": "Goal", "meta": {"profile": [SD + "tddui-goal-objectif"]},
            "extension": [{"url": SD + "tddui-careplan-reference", "valueReference": {"reference": U["careplan"]}}],
            "identifier": [{"system": "https://identifiant-medicosocial-objectif.esante.gouv.fr", "value": "3750000001/123456-OBJE-1"}],
            "lifecycleStatus": "active",
            "description": {"text": "Tolérer 20 min de cour avec casque anti-bruit"},
            "subject": {"reference": U["patient"]},
            "addresses": [{"reference": U["need"]}],
            "note": [{"extension": [disc("titreObjectif")], "text": "Objectif 1"}]}


def task():
    cs = TDDUI + "/CodeSystem/tddui-task-input-prestation"
    return {"resourceType": "Task", "meta": {"profile": [SD + "tddui-task-prestation"]},
            "identifier": [{"system": "https://identifiant-medicosocial-prestation.esante.gouv.fr", "value": "3750000001/123456-PRES-1"}],
            "basedOn": [{"reference": U["careplan"]}],
            "status": "in-progress", "intent": "plan",
            "for": {"reference": U["patient"]},
            "executionPeriod": {"start": "2026-02-01"},
            "input": [
                {"type": {"coding": [{"system": cs, "code": "titre"}]}, "valueString": "Séances d'orthophonie"},
                {"type": {"coding": [{"system": cs, "code": "typePrestation"}]},
                 "valueCodeableConcept": {"coding": [{"system": SERAFIN, "code": "2.1.1.2"}]}},
            ]}


def encounter():
    return {"resourceType": "Encounter", "meta": {"profile": [SD + "tddui-encounter-evenement"]},
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]},
                            "system": "https://identifiant-medicosocial-evenement.esante.gouv.fr", "value": "3750000001/123456-EVEN-1"}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": SERAFIN, "code": "2.1.1.2"}]}],
            "subject": {"reference": U["patient"]},
            "period": {"start": "2026-02-03T10:00:00+01:00", "end": "2026-02-03T11:00:00+01:00"},
            "serviceProvider": {"reference": U["org"]}}


def bundle(extra_tasks: int = 0) -> dict:
    """Patient (INS), Organization, Consent, CarePlan, ServiceRequest (need), Goal, Task
    (prestation), Encounter (event); `extra_tasks` more prestations for larger Bundles."""
    entries = [entry("patient", patient_ins()), entry("org", organization()), entry("consent", consent()),
               entry("careplan", careplan()), entry("need", need()), entry("goal", goal()),
               entry("task", task()), entry("encounter", encounter())]
    for n in range(extra_tasks):
        extra = task()
        extra["identifier"][0]["value"] = f"3750000001/123456-PRES-{n + 2}"
        entries.append({"fullUrl": f"urn:uuid:00000000-0000-4000-9000-{n:012d}", "resource": extra,
                        "request": {"method": "POST", "url": "Task"}})
    return {"resourceType": "Bundle", "meta": {"profile": [SD + "tddui-bundle"]}, "type": "transaction",
            "entry": entries}
