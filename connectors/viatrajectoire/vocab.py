"""The SDO guide's canonical URLs, code systems and the national value sets its profiles bind.

Guide pinned: ANS "Médicosocial - Suivi Décisions Orientation" (`ans.fhir.fr.sdo`) 4.0.7, whose
profiles are the 4.0.2 ones renamed (`sdo-task` → `esms-task`, same constraints); specs §3.3.
Value sets: ans.fr.terminologies 1.12.0 (JDV_J250/J251/J252/J253 version 2023-09-22 / 2024-01-26,
JDV_J264 2026-07-30, JDV_J30 2020-04-24). Only codes and displays are kept here.
"""

from __future__ import annotations

IG = "https://interop.esante.gouv.fr/ig/fhir/sdo"
IG_VERSION = "4.0.7"

# Profiles (specs §3.3). A Task claims both names of the same profile: `sdo-task` (4.0.2, the name
# the SDOGestionnaire CapabilityStatement still uses) and `esms-task` (4.0.5+).
PROFILE_CONSENT = f"{IG}/StructureDefinition/esms-consent"
PROFILE_TASK = f"{IG}/StructureDefinition/sdo-task"
PROFILE_TASK_ESMS = f"{IG}/StructureDefinition/esms-task"
PROFILE_DOCUMENT_REFERENCE = f"{IG}/StructureDefinition/esms-document-reference"

INPUT_TASK_CS = f"{IG}/CodeSystem/input-task-sdo-codesystem"

LOINC = "http://loinc.org"
DOC_DECISION = "57830-2"  # "Admission request Document": CDA Individu + Décision (flux 1)
DOC_EVALUATION = "51848-0"  # "Evaluation note": CDA Evaluation (flux 3)
TITLE_DECISION = "Document Individu et décision"  # regle-NomPieceJointe-type
TITLE_EVALUATION = "Document évaluation"
CONSENT_CATEGORY = "59284-0"
CONSENT_SCOPE_CS = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE_CS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# Identifiers (specs §0.2): idNat_Struct = TRE_G07 prefix + number (1 = FINESS, 3 = SIRET).
ID_NAT_STRUCT_OID = "urn:oid:1.2.250.1.71.4.2.2"
RFC3986 = "urn:ietf:rfc:3986"


def _nos(tre: str) -> str:
    return f"https://mos.esante.gouv.fr/NOS/{tre}/FHIR/{tre.replace('_', '-')}"


TRE_R357 = _nos("TRE_R357-StatutPersonnePriseCharge")
TRE_R358 = _nos("TRE_R358-MotifStatutPersonnePriseCharge")
TRE_R244 = _nos("TRE_R244-CategorieOrganisation")
TRE_R240 = _nos("TRE_R240-TemporaliteAccueil")
TRE_R213 = _nos("TRE_R213-ModePriseEnCharge")

# JDV_J252-StatutPersonnePriseChargeESMS (TRE_R357): status of the person in the ESMS.
STATUT_ESMS = {
    "37": "Décision d'orientation annulée",
    "39": "Notification envoyée",
    "40": "Notification lue",
    "41": "Contact effectué",
    "42": "Liste d'attente. En cours d'analyse, demande d'admission reçue dans l'ESMS",
    "43": "Période d'essai en cours dans l'ESMS",
    "44": "Période d'essai non concluante dans l'ESMS",
    "45": "Admission impossible signalée",
    "46": "Admission impossible entérinée",
    "47": "Usager entré",
    "48": "Usager sorti",
    "49": "Notification annulée",
    "51": "Demande de réorientation dans l'ESMS",
    "54": "Notification réactivée",
    "71": "Liste d'attente. Admis dans l'ESMS",
    "72": "Liste d'attente. Admissible dans l'ESMS",
}

# JDV_J251-MotifStatutPersonnePriseChargeESMS (TRE_R358).
MOTIF_ESMS = {
    "86": "Le plateau technique n'est pas adapté à la prise en charge de l'usager",
    "109": "Déménagement",
    "112": "Erreur d'utilisation du logiciel",
    "113": "Eloignement géographique",
    "114": "Les ressources de l'ESMS ne sont pas suffisantes",
    "115": "L'ESMS n'est pas adapté au projet de vie actuel de l'usager",
    "116": "Le type de handicap ne relève pas de l'ESMS",
    "117": "La situation de l'usager a changé, l'ESMS n'est pas adapté",
    "118": "L'usager ou son représentant légal refuse de s'inscrire dans l'ESMS",
    "119": "L'usager a été admis dans un autre ESMS, l'orientation n'est plus pertinente",
    "120": "L'usager a déménagé, l'orientation n'est plus pertinente géographiquement",
    "121": "L'usager ou son représentant légal refuse d'adhérer au projet de vie de l'ESMS",
    "122": "L'âge de l'usager est incompatible",
    "124": "L'usager est décédé",
    "127": "L'usager a fait valoir ses droits à la retraite (ESAT)",
    "148": "L'ESMS n'a pas réussi à joindre l'usager",
    "150": "L'usager a pris contact avec l'ESMS",
    "151": "L'ESMS a pris contact avec l'usager",
    "152": "L'usager a visité l'ESMS",
    "153": "L'ESMS a envoyé une documentation à l'usager",
    "168": "Pour placer l'usager en liste d'attente",
    "170": "Pour prendre en charge l'usager à temps adapté",
    "173": "Une autre décision annule et remplace cette décision",
    "174": "Décision clôturée par la MDPH",
}

# JDV_J253-StatutPersonnePriseChargeUnite (TRE_R357): status of the person in the unit.
STATUT_UNITE = {
    "180": "Retiré de la liste d'attente ou accompagnement annulé",
    "181": "Période d'essai non concluante dans l'unité",
    "182": "Liste d'attente. En cours d'analyse, demande d'admission reçue dans l'unité",
    "183": "Liste d'attente. Admissible dans l'unité",
    "184": "Liste d'attente. Admis dans l'unité",
    "185": "Période d'essai en cours dans l'unité",
    "186": "Usager pris en charge",
    "187": "Demande de réorientation dans l'unité",
    "188": "Fin de prise en charge",
}

# JDV_J250-MotifStatutPersonnePriseChargeUnite (TRE_R358).
MOTIF_UNITE = {
    "84": "Le demandeur ne remplit pas les exigences d'admission",
    "85": "Volonté du demandeur",
    "87": "L'usager est admis dans un autre ESMS suite à un déménagement",
    "88": "Suite à la décision de la CDAPH",
    "89": "L'usager ne souhaite plus être pris en charge par l'ESMS",
    "91": "L'usager est admis dans un autre ESMS suite à une réorientation",
    "92": "Amélioration notoire de la situation de l'usager",
    "93": "Aggravation notoire de la situation de l'usager",
    "95": "Annulation automatique",
    "98": "Fin de validité de la notification",
    "100": "Volonté de l'usager",
    "109": "Déménagement",
    "112": "Erreur d'utilisation du logiciel",
    "124": "L'usager est décédé",
    "125": "L'usager a démissionné (ESAT)",
    "126": "L'usager est pris en charge par la sécurité sociale au titre de l'invalidité (ESAT)",
    "127": "L'usager a fait valoir ses droits à la retraite (ESAT)",
    "128": "L'usager est arrivé à la fin du contrat de prise en charge (SAVS/SAMSAH/SESSAD)",
    "135": "Fin de période d'essai",
    "136": "Renouvellement",
    "146": "L'usager a pu entrer en apprentissage",
    "147": "L'usager a pu se réinsérer en milieu ordinaire",
    "157": "Hospitalisation",
    "158": "L'usager est admis dans un établissement pour personnes âgées",
    "159": "Fin de formation",
    "172": "Changement de situation de l'usager",
    "184": "L'usager est accueilli en famille d'accueil",
    "204": "Fin de l'accueil temporaire",
    "253": "L'usager est transféré dans une autre unité",
}

# JDV_J264-ModeEtCentreDePriseEnCharge-MDPH restricted by the invariant regle-ModePriseEnCharge
# to TRE_R213 46/47/48 (the value set's fourth code, 238, is from another code system).
MODE_PRISE_CHARGE = {
    "46": "Hébergement (accueil jour et nuit)",
    "47": "Accueil de jour",
    "48": "Accueil de nuit",
}

# JDV_J30-TemporaliteAccueil-ROR (TRE_R240).
TEMPORALITE_ACCUEIL = {"01": "Temporaire", "02": "Permanent"}

# The slices of sdo-task `input` (specs §3.3): code → value[x] type, cardinality max 1 each.
TASK_INPUTS: dict[str, str] = {
    "idNat_Struct": "Identifier",
    "nomESMS": "string",
    "statutESMS": "CodeableConcept",
    "motifESMS": "CodeableConcept",
    "dateStatutESMS": "date",
    "idUnite": "Identifier",
    "nomUnite": "string",
    "categorieOrganisation": "CodeableConcept",
    "temporaliteAccueil": "CodeableConcept",
    "accueilSequentiel": "boolean",
    "modePriseCharge": "CodeableConcept",
    "statutUnite": "CodeableConcept",
    "dateStatutUnite": "date",
    "motifUnite": "CodeableConcept",
    "idDecision": "Identifier",
    "idNat_Decision": "Identifier",
}
TASK_REQUIRED_INPUTS = ("idNat_Struct", "nomESMS", "idDecision", "idNat_Decision")
# regle-StatutUnite (as its description means it; its FHIRPath tests `type.text`, never set).
UNIT_STATUS_REQUIRES = ("idUnite", "nomUnite", "categorieOrganisation", "modePriseCharge",
                        "dateStatutUnite")

# Coded inputs: code system and allowed codes (None = any code of that system).
TASK_BINDINGS: dict[str, tuple[str, dict[str, str] | None]] = {
    "statutESMS": (TRE_R357, STATUT_ESMS),
    "motifESMS": (TRE_R358, MOTIF_ESMS),
    "statutUnite": (TRE_R357, STATUT_UNITE),
    "motifUnite": (TRE_R358, MOTIF_UNITE),
    "modePriseCharge": (TRE_R213, MODE_PRISE_CHARGE),
    "temporaliteAccueil": (TRE_R240, TEMPORALITE_ACCUEIL),
    "categorieOrganisation": (TRE_R244, None),  # JDV_J34 (ROR): list not pinned here
}

# Statuses the SI-SDO returns to an ESMS in flux 5.2 (st_flux5.2): entry into another ESMS
# (unit statuses 185, 186) and, on the ESMS's own dossier, events such as 46.
ENTRY_ELSEWHERE = frozenset({"185", "186"})
