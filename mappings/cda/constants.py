"""OIDs, templateIds and codes of the plan's CDA R2 document, each with its source.

Decision (specs §2 vs §5.4, recorded in README "CDA and XDS metadata"): the document Relais
produces *is* the personalised support plan, so its type is LOINC **80788-3** "Projet
personnalisé d'accompagnement" (JDV_J07-XdsTypeCode-CISIS; class 44 via ASS_X04). `EXPORT_DUI`
(TRE_A05, class 11) types the TDDUI CDA *export of a whole DUI record*, whose volet
(templateId 1.2.250.1.213.1.1.1.58) fixes that code and body templates (séjour, évènements,
évaluations) Relais does not follow: Relais therefore does not claim the TDDUI template, and only
recognises it on import.
"""

from __future__ import annotations

import uuid

# --------------------------------------------------------------- relais-owned OIDs
# No OID arc is registered for Relais: its identifiers live under a UUID-derived OID
# (ITU-T X.667, `2.25.<uuid as integer>`), which needs no registration and never collides.
_RELAIS_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "urn:relais:oid-root")
RELAIS_ROOT = f"2.25.{_RELAIS_UUID.int}"


def relais_oid(*arcs: int) -> str:
    return ".".join([RELAIS_ROOT, *map(str, arcs)])


def derived_oid(*parts: str) -> str:
    """A deterministic `2.25` OID for a tuple of business keys (document id, set id…)."""
    return f"2.25.{uuid.uuid5(_RELAIS_UUID, '|'.join(parts)).int}"


# Relais templates (arc .1): the document model and its sections / entries.
TEMPLATE_RELAIS_DOCUMENT = relais_oid(1, 1)  # @extension = RELAIS_FORMAT_VERSION
RELAIS_FORMAT_VERSION = "1.0"
# Relais code systems (arc .2).
CS_SECTION = relais_oid(2, 1)  # section codes
CS_ATTRIBUTE = relais_oid(2, 2)  # attribute observations (plan field paths)
CS_CONCEPT = relais_oid(2, 3)  # plan enumerations (levels, statuses, modalities…)
CS_ENTRY = relais_oid(2, 4)  # entry kinds (needs, objectives…)
# Relais identifier roots (arc .3): local ids of plan elements, per kind.
ID_PLAN = relais_oid(3, 1)
ID_PERSON_LOCAL = relais_oid(3, 2)  # extension = "<FINESS>/<local_id>"
ID_REPRESENTATIVE = relais_oid(3, 3)
ID_PROFESSIONAL = relais_oid(3, 4)
ID_ELEMENT = relais_oid(3, 5)  # + ".<kind arc>"; extension = local id

# ------------------------------------------------------------------ CI-SIS header
# HL7 CDA R2 (POCD_HD000040) and CI-SIS Structuration minimale (TestContenuCDA structMin 1.16).
TYPE_ID_ROOT, TYPE_ID_EXTENSION = "2.16.840.1.113883.1.3", "POCD_HD000040"
TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CISIS = "1.2.250.1.213.1.1.1.1"
TEMPLATE_TDDUI = "1.2.250.1.213.1.1.1.58"  # TDDUI CDA (specs §2): recognised on import only
TEMPLATE_UNSTRUCTURED = "1.3.6.1.4.1.19376.1.2.20"  # N1 (PDF) documents

LOINC = "2.16.840.1.113883.6.1"
TRE_A05 = "1.2.250.1.213.1.1.4.12"  # complementary document types (EXPORT_DUI)
DOC_TYPE_CODE = "80788-3"
DOC_TYPE_DISPLAY = "Projet personnalisé d'accompagnement"
DOC_CLASS_CODE = "44"  # TRE_A03, via ASS_X04 (specs §5.4)
TRE_A03 = "1.2.250.1.213.1.1.4.1"

CONFIDENTIALITY = "2.16.840.1.113883.5.25"
CONFIDENTIALITY_DISPLAY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
LANGUAGE = "fr-FR"

# Identifiers (specs §0.1, §0.2)
INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIR_DEMO = (
    "1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11",
)
INS_ROOTS = (INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIR_DEMO)
IDNAT_PS = "1.2.250.1.71.4.2.1"  # 8+RPPS, 3+FINESS/local
IDNAT_STRUCT = "1.2.250.1.71.4.2.2"  # 1+FINESS, 3+SIRET
MDPH_DOSSIER = "1.2.250.1.213.7.14"  # SDO CDA, MDPH records (specs §0.1)

GENDER_CS = "2.16.840.1.113883.5.1"
GENDER = {"male": ("M", "Masculin"), "female": ("F", "Féminin"), "unknown": ("U", "Inconnu")}

# Author: the DUI software (TRE_A00-ProducteurDocNonPS, TDDUI CDA header, specs §0.2).
TRE_A00 = "1.2.250.1.213.1.1.4.6"
AUTHOR_DEVICE_CODE = ("LOGICIEL_DUI", "Logiciel de Dossier Usager Informatisé")
SOFTWARE_NAME = "Relais"
SOFTWARE_MANUFACTURER = "Relais (logiciel libre)"

# documentationOf/serviceEvent/performer: TRE_A01 CadreExercice (J04 practiceSettingCode).
TRE_A01 = "1.2.250.1.213.1.1.4.9"
PRACTICE_SETTING = ("ESSMS", "Etablissement ou Service Social ou Médico-Social")
# componentOf/.../healthCareFacility/code: TRE_R02 SecteurActivite (J02 / DMP J61).
# SA16 "Etablissement pour personnes handicapées": platforms of coordinated services are
# ESMS for disabled persons (specs §5.4). TDDUI's SSIAD example uses SA41; not our case.
TRE_R02 = "1.2.250.1.71.4.2.4"
FACILITY_TYPE = ("SA16", "Etablissement pour personnes handicapées")

# SERAFIN-PH in CDA (specs §2, §9): code system, and value sets per family.
SERAFIN_CS = "1.2.250.1.213.3.3.60"
SERAFIN_CS_NAME = "TRE_R265_PrestationPilotageSerafin"
SERAFIN_VS = {"1": "1.2.250.1.213.3.3.254", "2": "1.2.250.1.213.3.3.253", "3": "1.2.250.1.213.3.3.252"}

# relatedDocument for a new version (CI-SIS structMin: at most one RPLC).
RELATED_REPLACE = "RPLC"

# Namespaces
NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SDTC = "urn:hl7-org:sdtc"
NSMAP = {None: NS, "xsi": XSI, "sdtc": SDTC}
XPATH_NS = {"cda": NS, "xsi": XSI, "sdtc": SDTC}
