"""Canonicals, identifier systems and codes of the cercle de soins mapping (ans.fhir.fr.cds 2.0.1,
with hl7.fhir.fr.core 2.1.0 and ans.fhir.fr.annuaire 1.1.0 — specs §6.1, §0.2, §7)."""

from __future__ import annotations

from mappings.fhir.tddui import constants as t

CDS_PACKAGE = "ans.fhir.fr.cds"
CDS_VERSION = "2.0.1"
FRCORE_VERSION = "2.1.0"
ANNUAIRE_VERSION = "1.1.0"

CDS_SD = "https://interop.esante.gouv.fr/ig/fhir/cds/StructureDefinition/"
FRCORE_SD = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
ANNUAIRE_SD = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"

# Profiles (SD ids of the packages), without version; `versioned()` pins them in meta.profile.
BUNDLE_CREATION = f"{CDS_SD}cds-bundle-transaction-creation"
BUNDLE_UPDATE = f"{CDS_SD}cds-bundle-transaction-maj"
CARE_TEAM = f"{CDS_SD}cds-ihe-careteam"
RELATED_PERSON = f"{CDS_SD}cds-fr-related-person"
ORGANIZATION = f"{CDS_SD}cds-organization"
PATIENT = f"{FRCORE_SD}fr-core-patient"
PATIENT_INS = f"{FRCORE_SD}fr-core-patient-ins"
PRACTITIONER_ROLE = f"{ANNUAIRE_SD}as-practitionerrole"
PRACTITIONER = f"{ANNUAIRE_SD}as-practitioner"

_VERSIONS = {CDS_SD: CDS_VERSION, FRCORE_SD: FRCORE_VERSION, ANNUAIRE_SD: ANNUAIRE_VERSION}


def versioned(canonical: str) -> str:
    """`…/cds-ihe-careteam|2.0.1`: the version judged is the version claimed."""
    for base, version in _VERSIONS.items():
        if canonical.startswith(base):
            return f"{canonical}|{version}"
    raise ValueError(canonical)


# Identifier systems (specs §0.2; FR Core; Annuaire).
RPPS = t.RPPS
IDNAT_PS = t.IDNAT_PS
IDNAT_STRUCT = t.IDNAT_STRUCT
FINESS = t.FINESS
ID_PATIENT = t.ID_PATIENT  # PI: `3`+FINESS`/`+idUsager (TDDUI local usager identifier)
ID_REPRESENTATIVE = t.ID_RELAIS_REPRESENTATIVE
# The person's cercle de soins kept by a platform: `3`+FINESS`/`+idUsager under this system.
# One per person and platform, derived (never random), so every sync designates the same CareTeam.
ID_CARE_TEAM = f"{t.RELAIS}/NamingSystem/cercle-de-soins"
RELAIS_BASE = t.RELAIS  # Relais-internal codes and extensions stay in Relais

CS_FRCORE_0203 = t.CS_FRCORE_0203

# cds-fr-related-person relationship slices (fr-core-related-person, discriminator coding.system).
CS_ROLE_CLASS = "https://mos.esante.gouv.fr/NOS/TRE_R260-HL7RoleClass/FHIR/TRE-R260-HL7RoleClass"
CS_ROLE_CODE = "https://mos.esante.gouv.fr/NOS/TRE_R216-HL7RoleCode/FHIR/TRE-R216-HL7RoleCode"
GUARD = ("GUARD", "Responsable légal")  # TRE_R260: every legal representative of the plan

# The plan's free-text relationship (lower case, accents kept) → TRE_R216-HL7RoleCode.
RELATION_TYPES = {
    "mère": ("MTH", "Mère"),
    "père": ("FTH", "Père"),
    "parent": ("PRN", "Parent, au sens père ou mère"),
    "frère": ("BRO", "Frère"),
    "sœur": ("SIS", "Soeur"),
    "soeur": ("SIS", "Soeur"),
    "grand-mère": ("GRMTH", "Grand-mère"),
    "grand-père": ("GRFTH", "Grand-père"),
    "grand-parent": ("GRPRN", "Grand-parent"),
    "oncle": ("UNCLE", "Oncle"),
    "tante": ("AUNT", "Tante"),
    "fils": ("SONC", "Fils"),
    "fille": ("DAUC", "Fille"),
    "enfant": ("CHILD", "Enfant"),
    "époux": ("HUSB", "Epoux"),
    "épouse": ("WIFE", "Epouse"),
    "conjoint": ("SIGOTHR", "Conjoint"),
    "conjointe": ("SIGOTHR", "Conjoint"),
    "cousin": ("COUSN", "Cousin(e)"),
    "cousine": ("COUSN", "Cousin(e)"),
    "neveu": ("NEPHEW", "Neveu"),
    "nièce": ("NIECE", "Nièce"),
    "mandataire judiciaire": ("RESPRSN", "Responsable légal non membre de la famille"),
    "association tutélaire": ("RESPRSN", "Responsable légal non membre de la famille"),
    "mjpm": ("RESPRSN", "Responsable légal non membre de la famille"),
}
PARENT = RELATION_TYPES["parent"]
NOT_FAMILY = RELATION_TYPES["mandataire judiciaire"]
