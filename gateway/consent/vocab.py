"""Codes and canonical URLs of the consent engine (versioned tables, DPO-reviewable).

Relais's own canonical URLs live under `https://relais.example/fhir/`: `.example` is a
top-level domain reserved for documentation (RFC 2606), so these URLs claim nobody's
namespace. A deployment that publishes its profiles replaces the base in one place (`BASE`).
"""

from __future__ import annotations

from enum import StrEnum

BASE = "https://relais.example/fhir"

# ------------------------------------------------------------------ profiles and extensions

PRIVACY_CONSENT_PROFILE = f"{BASE}/StructureDefinition/relais-privacy-consent"
CARE_TEAM_PROFILE = f"{BASE}/StructureDefinition/relais-care-team"
PROFILE_VERSION = "0.1.0"
PROFILE_SOURCE = f"relais-privacy-consent {PROFILE_VERSION}"
CARE_TEAM_SOURCE = f"relais-care-team {PROFILE_VERSION} (shape of cds-ihe-careteam 2.0.1)"
# ANS cercle de soins CareTeam, whose constraints the Relais care team follows (specs §6.1).
CDS_CARE_TEAM_PROFILE = "https://interop.esante.gouv.fr/ig/fhir/cds/StructureDefinition/cds-ihe-careteam"
# TDDUI agreement profiles: agreement to the personalised project, never a privacy rule
# (consent_audit §2.4).
TDDUI_AGREEMENT_PROFILES = frozenset({
    "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-consent",
    "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-consent-accord",
})

EXT_PERSON_OPINION = f"{BASE}/StructureDefinition/consent-person-opinion"
EXT_CAN_EXPRESS_WILL = f"{BASE}/StructureDefinition/consent-person-can-express-will"
EXT_COLLECTED_BY = f"{BASE}/StructureDefinition/consent-collected-by"
EXT_COLLECTION_METHOD = f"{BASE}/StructureDefinition/consent-collection-method"
EXT_MEMBERSHIP_BASIS = f"{BASE}/StructureDefinition/care-team-membership-basis"

# ------------------------------------------------------------------ code systems

CS_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CS_LOINC = "http://loinc.org"
LOINC_CONSENT_DOCUMENT = "59284-0"
CS_CONSENT_CATEGORY = f"{BASE}/CodeSystem/consent-category"
CS_DATA_CATEGORY = f"{BASE}/CodeSystem/data-category"
CS_PROFESSION_CATEGORY = f"{BASE}/CodeSystem/r1110-2-category"
CS_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CS_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"  # policyRule OPTIN/OPTOUT
CS_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CS_ROLE_CLASS = "https://mos.esante.gouv.fr/NOS/TRE_R260-HL7RoleClass/FHIR/TRE-R260-HL7RoleClass"

# Identifier systems (specs §0.2; FR Core).
SID_RPPS = "https://rpps.esante.gouv.fr"
SID_FINESS = "https://finess.esante.gouv.fr"
SID_IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"  # "8"+RPPS, "0"+ADELI
SID_URI = "urn:ietf:rfc:3986"  # value "mailto:<MSSanté address>"
SID_SYSTEM = f"{BASE}/sid/exchange-system"  # the target systems below, as actors
SID_LOCAL_PERSON = "https://identifiant-medicosocial-localusager.esante.gouv.fr"  # TDDUI: 3+FINESS/id
SID_CARE_TEAM = f"{BASE}/sid/care-team"


class System(StrEnum):
    """Target systems of an outbound flow (domain.md)."""

    dmp = "dmp"
    mss = "mss"
    viatrajectoire = "viatrajectoire"
    eparcours = "eparcours"
    tddui = "tddui"


class Flow(StrEnum):
    """Arrêté of 25 Nov 2016, annex: échange = to identified recipients; partage = made
    available to categories of professionals entitled to know it (consent_audit §1.1)."""

    echange = "echange"
    partage = "partage"


# Default flow kind of each system (consent_audit §1.1 table).
DEFAULT_FLOW = {
    System.mss: Flow.echange,
    System.tddui: Flow.echange,
    System.dmp: Flow.partage,
    System.viatrajectoire: Flow.partage,
    System.eparcours: Flow.partage,
}


class RecipientKind(StrEnum):
    professional = "professional"
    organisation = "organisation"
    person = "person"  # the person's own mailbox (Mon espace santé / MSSanté citoyen)
    system = "system"  # a shared space (DMP, e-parcours tool) rather than an addressee


class Profession(StrEnum):
    """CSP R.1110-2: 1° health professionals, 2° listed social and médico-social ones."""

    health = "health"
    social = "social"
    other = "other"


PROFESSION_LABEL = {
    Profession.health: "professionnel de santé (R.1110-2 1°)",
    Profession.social: "professionnel du social ou du médico-social (R.1110-2 2°)",
    Profession.other: "hors des catégories de l'article R.1110-2",
}


class ConsentKind(StrEnum):
    """The CSP instrument a stored Consent records (consent_audit §4.10 category codes)."""

    opposition = "opposition-L1110-4-IV"
    outside_team = "consentement-partage-hors-equipe-L1110-4-III"
    dmp_consultation = "dmp-consentement-consultation-R1111-46"
    team_recognition = "reconnaissance-membre-equipe-L1110-12-2"
    emergency_opposition = "opposition-acces-urgence-DMP"
    generic = "generic"  # a privacy directive without a Relais category
    agreement = "agreement"  # TDDUI agreement to the personalised project: grants nothing


CONSENT_KIND_LABEL = {
    ConsentKind.opposition: "opposition à l'échange et au partage (L.1110-4 IV)",
    ConsentKind.outside_team: "consentement au partage hors équipe de soins (L.1110-4 III al. 2)",
    ConsentKind.dmp_consultation: "consentement à la consultation du DMP (R.1111-46)",
    ConsentKind.team_recognition: "reconnaissance d'un membre de l'équipe de soins (L.1110-12)",
    ConsentKind.emergency_opposition: "opposition à l'accès d'urgence au DMP (L.1111-17 I)",
    ConsentKind.generic: "directive de confidentialité",
    ConsentKind.agreement: "accord sur le projet personnalisé (TDDUI), sans effet sur le partage",
}
# Root decision each category imposes (None: either).
KIND_ROOT_EFFECT = {
    ConsentKind.opposition: "deny",
    ConsentKind.emergency_opposition: "deny",
    ConsentKind.outside_team: "permit",
    ConsentKind.dmp_consultation: "permit",
    ConsentKind.team_recognition: "permit",
}


class DataCategory(StrEnum):
    """What a payload carries (`Consent.provision.class`, system CS_DATA_CATEGORY)."""

    identity = "identity"  # identity traits, INS
    plan = "plan"  # personalised project: objectives, actions, planned services
    needs = "needs"  # assessed needs (SERAFIN-PH 1.*)
    orientation = "orientation"  # CDAPH orientation decisions
    evaluation = "evaluation"  # SERAFIN evaluations
    events = "events"  # delivered services, stays
    health = "health"  # health documents and data
    social = "social"  # social and family situation


DATA_LABEL = {
    DataCategory.identity: "identité",
    DataCategory.plan: "projet personnalisé",
    DataCategory.needs: "besoins évalués",
    DataCategory.orientation: "décisions d'orientation",
    DataCategory.evaluation: "évaluations SERAFIN",
    DataCategory.events: "prestations délivrées et séjours",
    DataCategory.health: "données de santé",
    DataCategory.social: "situation sociale",
}

# Security label of documents under a minor's secrecy (L.1111-5): never to parent-facing
# channels; DMP deposits carry INVISIBLE_REPRESENTANTS_LEGAUX (consent_audit §1.4, L12).
LABEL_MINOR_SECRET = "minor-secret"
KNOWN_LABELS = frozenset({LABEL_MINOR_SECRET})

# L2 / R.1110-1: strictly necessary data per channel. A DRAFT table to be approved by the
# DPO; its version is recorded with every decision.
ALLOWLIST_VERSION = "relais-allowlist-2026-11-draft"
ALLOWLIST: dict[System, frozenset[DataCategory]] = {
    System.mss: frozenset(DataCategory),
    System.tddui: frozenset(DataCategory),
    System.dmp: frozenset({DataCategory.identity, DataCategory.plan, DataCategory.needs,
                           DataCategory.evaluation, DataCategory.health}),
    System.viatrajectoire: frozenset({DataCategory.identity, DataCategory.orientation,
                                      DataCategory.plan, DataCategory.events}),
    System.eparcours: frozenset({DataCategory.identity, DataCategory.plan, DataCategory.needs,
                                 DataCategory.orientation, DataCategory.events,
                                 DataCategory.social}),
}

# ------------------------------------------------------------------ purpose of use

# v3 ActReason `_PurposeOfUse` codes Relais knows, child -> parent (consent_audit §2.5).
PURPOSE_PARENT: dict[str, str | None] = {
    "TREAT": None,
    "COC": "TREAT",
    "ETREAT": "TREAT",
    "BTG": "ETREAT",
    "POPHLTH": "TREAT",
    "HOPERAT": None,
    "CAREMGT": "HOPERAT",
    "PATADMIN": "HOPERAT",
    "HQUALIMP": "HOPERAT",
    "RECORDMGT": "HOPERAT",
    "HSYSADMIN": "HOPERAT",
    "PATRQT": None,
    "HPAYMT": None,
    "HRESCH": None,
    "HMARKT": None,
    "HLEGAL": None,
}
PURPOSE_LABEL = {
    "TREAT": "soins et accompagnement",
    "COC": "coordination du parcours",
    "ETREAT": "soins en urgence",
    "BTG": "accès d'urgence (bris de glace)",
    "POPHLTH": "santé des populations",
    "HOPERAT": "gestion des prises en charge",
    "CAREMGT": "gestion du parcours",
    "PATADMIN": "gestion administrative",
    "HQUALIMP": "amélioration de la qualité",
    "RECORDMGT": "gestion du dossier",
    "HSYSADMIN": "administration technique",
    "PATRQT": "demande de la personne",
    "HPAYMT": "facturation",
    "HRESCH": "recherche",
    "HMARKT": "marketing",
    "HLEGAL": "procédure judiciaire",
}


def _ancestors(code: str) -> frozenset[str]:
    out, cur = set(), code
    while cur is not None:
        out.add(cur)
        cur = PURPOSE_PARENT[cur]
    return frozenset(out)


# purpose -> itself and its ancestors: a provision purpose P covers request purpose R
# iff P in PURPOSE_ANCESTORS[R] (subsumption, consent_audit §2.1 gotchas).
PURPOSE_ANCESTORS = {code: _ancestors(code) for code in PURPOSE_PARENT}

# Purposes never served (consent_audit §2.5: payment out of scope; research, marketing and
# legal go through other regimes), and the purposes each channel may carry: the channel and
# the operation decide the purpose, not the caller's wish.
DENIED_PURPOSES = frozenset({"HPAYMT", "HRESCH", "HMARKT", "HLEGAL", "POPHLTH"})
POLICY_TABLE_VERSION = "relais-purposes-2026-11"
SYSTEM_PURPOSES: dict[System, frozenset[str]] = {
    System.mss: frozenset({"TREAT", "COC", "ETREAT", "PATRQT"}),
    System.dmp: frozenset({"TREAT", "COC", "ETREAT", "BTG"}),
    System.viatrajectoire: frozenset({"COC", "HOPERAT", "CAREMGT", "PATADMIN"}),
    System.eparcours: frozenset({"TREAT", "COC", "CAREMGT"}),
    System.tddui: frozenset({"TREAT", "COC", "HOPERAT", "RECORDMGT", "PATRQT"}),
}


class InformationTopic(StrEnum):
    """What a person was informed of (R.1110-3, L.1110-4 IV, L.1111-15)."""

    care_team_sharing = "care-team-sharing"  # sharing within the team and right to oppose
    cross_category_exchange = "cross-category-exchange"  # R.1110-3 I: health <-> social
    dmp = "dmp"  # feeding the DMP (written information, arrêté 26/10/2023)


class InformationMethod(StrEnum):
    oral = "oral"
    written = "written"  # paper notice handed over
    electronic = "electronic"  # notice sent or shown electronically


class MembershipBasis(StrEnum):
    """CSP L.1110-12: how a professional belongs to the person's équipe de soins."""

    same_structure = "same-structure"  # a) same ESSMS / establishment / coordination structure
    recognised_by_person = "recognised-by-person"  # b) recognised by the person
    formal_team = "formal-team"  # c) formalised team (arrêté 25/11/2016)
