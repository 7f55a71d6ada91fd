"""Canonicals, identifier systems, code systems and tables of the TDDUI mapping.

Every value cites where it comes from. "SD" is the StructureDefinition of the pinned package
`ans.fhir.fr.tddui#2.2.0` (shared/reference/fhir-packages, reconstructed from the published
pages); "FR Core" is `hl7.fhir.fr.core#2.1.0`, the version TDDUI 2.2.0 depends on.
"""

from __future__ import annotations

# The pinned guide (issue 4; specs §1). Every output records it: each `meta.profile` is the
# versioned canonical `<canonical>|2.2.0` (FHIR R4 §2.1.0.6 "canonical|version").
TDDUI_VERSION = "2.2.0"
TDDUI_PACKAGE = "ans.fhir.fr.tddui"
TDDUI_BASE = "https://interop.esante.gouv.fr/ig/fhir/tddui"
SD = f"{TDDUI_BASE}/StructureDefinition/"
CS = f"{TDDUI_BASE}/CodeSystem/"


def profile(name: str) -> str:
    """Versioned profile canonical, e.g. `…/StructureDefinition/tddui-patient|2.2.0`."""
    return f"{SD}{name}|{TDDUI_VERSION}"


# Profiles (specs §1.2, SD ids of the 2.2.0 package).
P_BUNDLE = "tddui-bundle"
P_PATIENT = "tddui-patient"
P_PATIENT_INS = "tddui-patient-ins"
P_ORGANIZATION = "tddui-organization"
P_PRACTITIONER = "tddui-practitioner"
P_PRACTITIONER_ROLE = "tddui-practitioner-role"
P_RELATED_PERSON = "tddui-related-person-contact"
P_CAREPLAN = "tddui-careplan-projet-personnalise"
P_CONSENT = "tddui-consent-accord"
P_NEED = "tddui-service-request-besoin"
P_EXPECTATION = "tddui-goal-attente"
P_OBJECTIVE = "tddui-goal-objectif"
P_ACTION = "tddui-task-action"
P_SERVICE = "tddui-task-prestation"
P_STAY = "tddui-encounter-sejour"
P_EVENT = "tddui-encounter-evenement"
P_EVALUATION = "tddui-questionnaire-response"

# Business identifier systems (patternUri of each SD's identifier.system) and the element
# code of the value `3`+FINESS`/`+idUsager`-`+CODE`-`+id (SD identifier.value examples,
# e.g. "3480787529/123456789-OBJE-1234").
ID_PATIENT = "https://identifiant-medicosocial-localusager.esante.gouv.fr"  # tddui-patient PI
ID_CAREPLAN = ("https://identifiant-medicosocial-projetpersonnalise.esante.gouv.fr", "PPER")
ID_NEED = ("https://identifiant-medicosocial-besoin.esante.gouv.fr", "BESO")
ID_EXPECTATION = ("https://identifiant-medicosocial-attente.esante.gouv.fr", "ATTE")
ID_OBJECTIVE = ("https://identifiant-medicosocial-objectif.esante.gouv.fr", "OBJE")
ID_ACTION = ("https://identifiant-medicosocial-action.esante.gouv.fr", "ACTI")
ID_SERVICE = ("https://identifiant-medicosocial-prestation.esante.gouv.fr", "PRES")
ID_STAY = ("https://identifiant-medicosocial-sejour.esante.gouv.fr", "SEJOUR")
ID_EVENT = ("https://identifiant-medicosocial-evenement.esante.gouv.fr", "EVN")
ID_EVALUATION = ("https://identifiant-medicosocial-evaluation.esante.gouv.fr", "EVAL")
# The guide prescribes no system for these; Relais ones (see RELAIS below).
ID_AGREEMENT_CODE = "ACCO"
ID_REPRESENTATIVE_CODE = "REPR"

# Extensions of the guide (SD urls).
X_DISCRIMINATOR = f"{SD}tddui-discriminator"
X_CAREPLAN_REF = f"{SD}tddui-careplan-reference"
X_BIRTH_ORDER = f"{SD}tddui-birth-order"
X_ADMISSION_DATE = f"{SD}tddui-admission-date"
X_ENTRY_MODE = f"{SD}tddui-entry-mode-label"
X_EXIT_MODE = f"{SD}tddui-exit-mode-label"
X_COMMENT = f"{SD}tddui-comment"
X_EVENT_LABEL = f"{SD}tddui-event-label"
X_EVENT_REPORT = f"{SD}tddui-event-report"
X_OUTSIDE_SERVICE = f"{SD}tddui-outside-service"
X_PATIENT_PRESENT = f"{SD}tddui-patient-present"
X_CONSENT_PERIOD = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.period"  # SD consent-accord
X_DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

# TDDUI code systems, 2.2.0 (package CodeSystem-*.json) and the older URLs still found in the
# published examples (2.1.0-ballot / 2.2.0-ballot builds, specs §11.3): accepted on import,
# reported as `information`, never written.
CS_DISCRIMINATOR = f"{CS}tddui-discriminator"
CS_TASK_ACTION = f"{CS}tddui-task-input-action"
CS_TASK_SERVICE = f"{CS}tddui-task-input-prestation"
CS_ENCOUNTER_ID = f"{CS}tddui-encounter-identifier"
LEGACY_CODE_SYSTEMS = {
    f"{CS}tddui-discriminator-cs": CS_DISCRIMINATOR,
    f"{CS}input-tddui-task-action-codesystem": CS_TASK_ACTION,
    f"{CS}input-tddui-task-prestation-codesystem": CS_TASK_SERVICE,
    f"{CS}tddui-encounter-identifier-cs": CS_ENCOUNTER_ID,
}

# SERAFIN-PH (specs §0.3, §9) and the SERAFIN Questionnaire (specs §1.2; the Questionnaire
# `tddui-questionnaire-serafin` is not in the reconstructed package: linkIds below are read
# from ansforge/IG-fhir-medicosocial-transfert-donnees-dui main/ig/Questionnaire-tddui-
# questionnaire-serafin.json, whose items each carry their SERAFIN-PH `code`).
SERAFIN = "https://smt.esante.gouv.fr/terminologie-SERAFINPH"
QUESTIONNAIRE_SERAFIN = f"{TDDUI_BASE}/Questionnaire/tddui-questionnaire-serafin"
SERAFIN_LINK_IDS = {
    "1": "besoin-serafin",
    "1.1": "besoin-sante-som-psy",
    "1.1.1": "besoin-fonc-ment",
    "1.1.2": "besoin-fonc-sensorielle",
    "1.1.3": "besoin-douleur",
    "1.1.4": "besoin-voix",
    "1.1.5": "besoin-cardio-vasc",
    "1.1.6": "besoin-dig",
    "1.1.7": "besoin-genito-uri",
    "1.1.8": "besoin-loco-mot",
    "1.1.9": "besoin-peau",
    "1.1.10": "besoin-entretien",
    "1.2": "besoin-autonomie",
    "1.2.1.1": "besoin-entretien-personnel",
    "1.2.1.2": "besoin-relations",
    "1.2.1.3": "besoin-mobilite",
    "1.2.1.4": "besoin-decision",
    "1.3": "besoin-participation-sociale",
    "1.3.1": "besoin-droit-citoyen",
    "1.3.2": "besoin-logement",
    "1.3.2.1": "besoin-vivre-logement",
    "1.3.2.2": "besoin-activite-dom",
    "1.3.3": "besoin-insertion-sociale",
    "1.3.3.1": "besoin-vie-scolaire",
    "1.3.3.2": "besoin-activite-domestique",  # sic: the official linkId of 1.3.3.2 (travail et emploi)
    "1.3.3.3": "besoin-apprentissage",
    "1.3.3.4": "besoin-famille",
    "1.3.3.5": "besoin-pair-aidant",
    "1.3.4": "besoin-vie-sociale-moyen-transport",
    "1.3.4.1": "besoin-vie-sociale",
    "1.3.4.2": "besoin-moyen-transport",
    "1.3.5": "besoin-economie",
}
CODE_BY_LINK_ID = {link: code for code, link in SERAFIN_LINK_IDS.items()}
# Codes the Questionnaire has no item for (1.2.1, 1.3.1.1, 1.3.5.1): written `serafin-<code>`.
FALLBACK_LINK_PREFIX = "serafin-"

# FR Core 2.1.0 (specs §0.1, §7).
FRCORE = "https://hl7.fr/ig/fhir/core"
X_IDENTITY_RELIABILITY = f"{FRCORE}/StructureDefinition/fr-core-identity-reliability"
X_BIRTH_LIST_GIVEN_NAME = f"{FRCORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
X_INSEE_CODE = f"{FRCORE}/StructureDefinition/fr-core-address-insee-code"
X_EMAIL_TYPE = f"{FRCORE}/StructureDefinition/fr-core-contact-point-email-type"
X_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
CS_FRCORE_0203 = f"{FRCORE}/CodeSystem/fr-core-cs-v2-0203"
CS_FRCORE_ID_TYPE = f"{FRCORE}/CodeSystem/fr-core-cs-identifier-type"  # VN (Encounter)
# RNIV identity statuses PROV/RECUP/VALI/QUAL: FR Core CodeSystem fr-core-cs-identity-status
# (published with FR Core 2.2.0; FR Core 2.1.0 binds identityStatus *extensibly* to v2-0445,
# which has neither RECUP nor QUAL). v2-0445 PROV/VALI are accepted on import.
CS_IDENTITY_STATUS = f"{FRCORE}/CodeSystem/fr-core-cs-identity-status"
CS_IDENTITY_0445 = f"{FRCORE}/CodeSystem/fr-core-cs-v2-0445"
CS_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INSEE_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"  # fr-core-vs-insee-code
EMAIL_TYPE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"  # specs §0.2, FR Core practitioner idNatPs
IDNAT_STRUCT = "urn:oid:1.2.250.1.71.4.2.2"  # specs §0.2, FR Core organization idNatSt
FINESS = "https://finess.esante.gouv.fr"  # FR Core organization finess slice
RPPS = "https://rpps.esante.gouv.fr"  # FR Core practitioner rpps slice
ADELI = "https://adeli.esante.gouv.fr"
SIRENE = "https://sirene.fr"  # FR Core organization siret slice
CAREPLAN_CATEGORY = "https://smt.esante.gouv.fr/fhir/CodeSystem/tre-r390-type-projet-personnalise"  # JDV_J367
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
CNSA = "https://www.cnsa.fr/"  # policy.authority of the official consent example
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
UCUM = "http://unitsofmeasure.org"
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"

# Relais' own canonicals, for plan fields the guide has no element for. `relais.example` is a
# reserved domain (RFC 2606) that Relais does not claim: these urls name, they do not resolve.
RELAIS = "https://relais.example/fhir"
X_RELAIS_PLAN = f"{RELAIS}/StructureDefinition/plan-element"  # complex: sub-extension url = plan field
X_RELAIS_OBJECTIVE = f"{RELAIS}/StructureDefinition/objective"  # Task-prestation -> Goal-objectif
X_RELAIS_SERVICE = f"{RELAIS}/StructureDefinition/service"  # Encounter-evenement -> Task-prestation
X_RELAIS_COORDINATOR_SINCE = f"{RELAIS}/StructureDefinition/coordinator-since"  # on CarePlan.author
X_RELAIS_PLAN_STATUS = f"{RELAIS}/StructureDefinition/plan-status"  # on CarePlan.status
CS_LIFE_DOMAIN = f"{RELAIS}/CodeSystem/life-domain"
CS_OUTCOME = f"{RELAIS}/CodeSystem/objective-outcome"
ID_RELAIS_AGREEMENT = f"{RELAIS}/NamingSystem/agreement"
ID_RELAIS_REPRESENTATIVE = f"{RELAIS}/NamingSystem/representative"
ID_RELAIS_PROFESSIONAL = f"{RELAIS}/NamingSystem/professional"
ID_RELAIS_LOCAL = f"{RELAIS}/NamingSystem/local"  # Provider identifier of system "local"
UUID_NAMESPACE = "6f1c2d4e-8a3b-5c7d-9e0f-a1b2c3d4e5f6"  # uuid5 namespace of Relais fullUrls

# Status tables (the "Correspondance des statuts métier" of each SD's status element).
CAREPLAN_STATUS = {  # SD careplan: ENPREPARATION→draft, ENCOURS→active, ENPAUSE→on-hold, TERMINE→completed
    "draft": "draft",
    "validated": "active",
    "agreed": "active",
    "suspended": "on-hold",
    "closed": "completed",
}
TASK_STATUS = {  # SD task-action/-prestation: ENPREPARATION→draft, ACTIF→in-progress, …
    "draft": "draft",
    "in_progress": "in-progress",
    "completed": "completed",
    "cancelled": "cancelled",
}
EVENT_STATUS = {  # SD encounter-evenement: Planifié→planned, Validé→triaged, Réalisé→finished, Annulé→cancelled
    "planned": "planned",
    "in_progress": "in-progress",
    "finished": "finished",
    "cancelled": "cancelled",
}
OUTCOME = {  # Goal.achievementStatus (goal-achievement); partially_achieved has no code there
    "achieved": "achieved",
    "not_achieved": "not-achieved",
    "in_progress": "in-progress",
}
EXPRESSED_BY_TEXT = {  # note origineAttente is free text ("Usager", "Famille" in the PA example)
    "person": "Usager",
    "family": "Famille",
    "legal_representative": "Représentant légal",
    "professional": "Professionnel",
}
IDENTIFIER_SYSTEMS = {  # plan Identifier.system -> FHIR system (FR Core slices; specs §0.2)
    "finess": FINESS,
    "siret": SIRENE,
    "rpps": RPPS,
    "adeli": ADELI,
    "local": ID_RELAIS_LOCAL,
}
# Encounter.class (R4 1..1, v3-ActCode): the plan has modality and place, not a class; the class
# is derived (home health when at home, non-acute stay when housed, ambulatory otherwise) and
# the exact modality and place travel in the Relais plan-element extension.
HOUSED = {"full_time_housing", "temporary_housing", "night_care", "sequential"}
