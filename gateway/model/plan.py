"""The single support plan (projet personnalisé d'accompagnement unique).

The hub every connector translates to and from. It carries what the ANS TDDUI 2.2.0 guide
carries for the personalised project (CarePlan, Goals of three kinds, ServiceRequest-besoin,
Task-action / Task-prestation, Encounter séjour / évènement, SERAFIN QuestionnaireResponse,
Consent accord) and what the SDO guide carries about an orientation decision.
Structural rules live here; rules that need the SERAFIN-PH nomenclature or cross-references
live in `gateway.plans.validate`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from gateway.model.common import (
    DateTimePeriod,
    Finess,
    Identifier,
    LocalId,
    Period,
    SerafinCode,
    ShortText,
    Strict,
    Telecom,
    Text,
)
from gateway.model.identity import Person

PLAN_SCHEMA_VERSION = "1.0"


# ---------------------------------------------------------------- platform and people


class Professional(Strict):
    """A professional of the platform or of a partner, referenced by id elsewhere."""

    id: LocalId
    family_name: ShortText
    given_name: ShortText | None = None
    role: ShortText = Field(description="Fonction (éducateur spécialisé, psychologue, AESH…)")
    rpps: Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")] | None = None
    organisation: ShortText | None = None
    telecom: list[Telecom] = Field(default_factory=list, max_length=10)


class ZoneKind(StrEnum):
    departement = "departement"
    commune = "commune"
    epci = "epci"


class ZoneArea(Strict):
    kind: ZoneKind
    code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{2,9}$")]
    label: ShortText | None = None


class Coordinator(Strict):
    """The single contact (interlocuteur unique / coordinateur de parcours)."""

    professional_id: LocalId = Field(description="Référence vers `professionals[].id`")
    since: dt.date | None = None


class Platform(Strict):
    finess: Finess = Field(description="FINESS de l'établissement (EG) portant la plateforme")
    finess_legal_entity: Finess | None = Field(default=None, description="FINESS juridique (EJ)")
    name: ShortText
    intervention_zone: list[ZoneArea] = Field(default_factory=list, max_length=500)
    coordinator: Coordinator


# ------------------------------------------------------------------ orientation (SDO)


class OrientationStatus(StrEnum):
    notified = "notified"
    in_progress = "in_progress"
    implemented = "implemented"
    expired = "expired"
    cancelled = "cancelled"


class OrientationDecision(Strict):
    """A CDAPH decision as the SDO guide carries it (SDO Task `idDecision`/`idNat_Decision`,
    CDA `cnsaSDO:decision`, specs §3)."""

    id: LocalId
    decision_number: ShortText = Field(description="Numéro de décision CDAPH (idDecision, MDPH)")
    national_id: ShortText | None = Field(
        default=None, description="idNat_Decision attribué par le SI-SDO"
    )
    mdph: Annotated[str, StringConstraints(pattern=r"^(?:[0-9]{2,3}|2[AB])$")] = Field(
        description="Département de la MDPH responsable"
    )
    decision_date: dt.date
    notification_date: dt.date | None = None
    right_type_code: ShortText | None = Field(
        default=None, description="typeDroitOuPrestation (ex. 13.2, orientation EAM)"
    )
    orientation: ShortText = Field(description="Libellé de l'orientation (ex. « SESSAD »)")
    care_mode_code: ShortText | None = Field(
        default=None, description="Mode de prise en charge, TRE_R213 (ex. 47 accueil de jour)"
    )
    organisation_category_code: ShortText | None = Field(
        default=None, description="Catégorie d'organisation ROR, TRE_R244"
    )
    validity: Period
    status: OrientationStatus = OrientationStatus.notified

    @model_validator(mode="after")
    def _validity_bounded(self):
        if self.validity.start is None or self.validity.end is None:
            raise PydanticCustomError(
                "orientation-validity", "une décision d'orientation a une date de début et de fin"
            )
        return self


# ----------------------------------------------------------------------- needs, goals


class LifeDomain(StrEnum):
    """Life domains used to file expectations and objectives (the participation areas
    of SERAFIN-PH needs 1.2 / 1.3, plus health)."""

    health = "health"
    daily_living = "daily_living"
    communication_relationships = "communication_relationships"
    decisions_safety = "decisions_safety"
    mobility = "mobility"
    rights_citizenship = "rights_citizenship"
    housing = "housing"
    education = "education"
    employment = "employment"
    family_affective_life = "family_affective_life"
    social_life_leisure = "social_life_leisure"
    resources = "resources"


class NeedLevel(StrEnum):
    """Intensity of the need (ICF generic qualifier scale, on which the SERAFIN-PH need
    descriptions are built)."""

    none = "none"
    light = "light"
    moderate = "moderate"
    severe = "severe"
    complete = "complete"


class AssessmentMethod(StrEnum):
    interview = "interview"
    observation = "observation"
    standardised_tool = "standardised_tool"
    multidisciplinary_meeting = "multidisciplinary_meeting"
    document_review = "document_review"


class Need(Strict):
    """An assessed need (TDDUI `tddui-service-request-besoin`, category from JDV_J285)."""

    id: LocalId
    code: SerafinCode
    description: Text = Field(description="Description du besoin (ServiceRequest.code.text)")
    level: NeedLevel
    assessed_on: dt.date
    assessor_id: LocalId | None = Field(default=None, description="Référence `professionals[].id`")
    method: AssessmentMethod
    tool: ShortText | None = Field(default=None, description="Outil d'évaluation employé")
    analysis: Text | None = Field(
        default=None, description="Analyse professionnelle (ServiceRequest.orderDetail.text)"
    )


class ExpressedBy(StrEnum):
    person = "person"
    family = "family"
    legal_representative = "legal_representative"
    professional = "professional"


class LifeProject(Strict):
    """The person's life project, in their own words."""

    text: Text
    expressed_on: dt.date | None = None
    expressed_by: ExpressedBy = ExpressedBy.person


class Expectation(Strict):
    """An expectation of the person or of those around them (TDDUI `tddui-goal-attente`)."""

    id: LocalId
    text: Text = Field(description="L'attente, dans les mots de la personne")
    life_domain: LifeDomain
    expressed_by: ExpressedBy = Field(description="Origine de l'attente (note origineAttente)")
    expressed_on: dt.date | None = None
    comment: Text | None = None


class ObjectiveStatus(StrEnum):
    """TDDUI Goal.lifecycleStatus: ENPREPARATION→planned, ACTIF→active, TERMINE→completed,
    ANNULE→cancelled."""

    planned = "planned"
    active = "active"
    completed = "completed"
    cancelled = "cancelled"


class Outcome(StrEnum):
    achieved = "achieved"
    partially_achieved = "partially_achieved"
    not_achieved = "not_achieved"
    in_progress = "in_progress"


class Objective(Strict):
    """An objective of the plan (TDDUI `tddui-goal-objectif`), linked to the needs it addresses."""

    id: LocalId
    title: ShortText = Field(description="Titre de l'objectif (note titreObjectif)")
    description: Text
    life_domain: LifeDomain
    need_ids: list[LocalId] = Field(default_factory=list, description="Besoins visés (Goal.addresses)")
    start_date: dt.date | None = None
    target_date: dt.date | None = None
    expected_result: Text | None = Field(default=None, description="Résultat attendu (target.detailString)")
    status: ObjectiveStatus = ObjectiveStatus.planned
    outcome: Outcome | None = None
    outcome_note: Text | None = None
    person_opinion: Text | None = Field(default=None, description="Avis de l'usager (avisUsagerObjectif)")
    strategy: Text | None = Field(default=None, description="Stratégie de mise en œuvre")

    @model_validator(mode="after")
    def _dates(self):
        if self.start_date and self.target_date and self.target_date < self.start_date:
            raise PydanticCustomError(
                "objective-dates", "la date cible précède la date de début de l'objectif"
            )
        return self


# ------------------------------------------------------------------- actions, services


class TaskStatus(StrEnum):
    """TDDUI Task.status: ENPREPARATION→draft, ACTIF→in-progress, TERMINE→completed,
    ANNULE→cancelled."""

    draft = "draft"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class Action(Strict):
    """An action carried out to reach objectives (TDDUI `tddui-task-action`)."""

    id: LocalId
    title: ShortText
    description: Text | None = None
    objective_ids: list[LocalId] = Field(default_factory=list)
    owner_id: LocalId | None = Field(default=None, description="Référence `professionals[].id`")
    owner_label: ShortText | None = Field(default=None, description="Responsable non référencé (ex. AESH)")
    status: TaskStatus = TaskStatus.draft
    period: Period = Field(default_factory=Period)
    expected_result: Text | None = None
    person_opinion: Text | None = None


class Modality(StrEnum):
    """How a service is delivered (Anap guide, Pilier 2; ROR TemporaliteAccueil / MDPH
    mode de prise en charge)."""

    ordinary_environment = "ordinary_environment"  # milieu ordinaire
    day_care = "day_care"  # accueil de jour
    night_care = "night_care"  # accueil de nuit
    full_time_housing = "full_time_housing"  # hébergement complet
    temporary_housing = "temporary_housing"  # accueil temporaire
    sequential = "sequential"  # accueil séquentiel


class Place(StrEnum):
    home = "home"
    school = "school"
    workplace = "workplace"
    leisure_club = "leisure_club"
    platform_premises = "platform_premises"
    partner_premises = "partner_premises"
    health_facility = "health_facility"
    community = "community"


class ProviderKind(StrEnum):
    platform_team = "platform_team"
    mainstream_partner = "mainstream_partner"  # droit commun (school, housing, employment…)
    specialised_partner = "specialised_partner"  # another ESMS or health service


class Provider(Strict):
    kind: ProviderKind
    name: ShortText
    identifier: Identifier | None = None

    @model_validator(mode="after")
    def _partner_identified(self):
        if self.kind is not ProviderKind.platform_team and self.identifier is None:
            raise PydanticCustomError(
                "provider-identifier",
                "un partenaire doit être identifié (FINESS, SIRET, RPPS ou identifiant local)",
            )
        return self


class IntensityUnit(StrEnum):
    hours_per_week = "hours_per_week"
    half_days_per_week = "half_days_per_week"


class Intensity(Strict):
    value: Decimal = Field(gt=0, max_digits=6, decimal_places=2)
    unit: IntensityUnit

    @model_validator(mode="after")
    def _bounded(self):
        limit = 168 if self.unit is IntensityUnit.hours_per_week else 14
        if self.value > limit:
            raise PydanticCustomError(
                "intensity-bound",
                "intensité impossible : {value} au-delà de {limit} par semaine",
                {"value": str(self.value), "limit": limit},
            )
        return self


class Service(Strict):
    """A planned service (TDDUI `tddui-task-prestation`, `typePrestation` SERAFIN 2.x / 3.x)."""

    id: LocalId
    code: SerafinCode
    title: ShortText = Field(description="Titre de la prestation (input titre)")
    description: Text | None = None
    modality: Modality
    place: Place
    provider: Provider
    intensity: Intensity | None = None
    period: Period = Field(default_factory=Period)
    objective_ids: list[LocalId] = Field(default_factory=list)
    action_id: LocalId | None = Field(default=None, description="Action dont la prestation fait partie")
    status: TaskStatus = TaskStatus.draft


# ---------------------------------------------------------------- delivered activity


class Stay(Strict):
    """A stay in the structure (TDDUI `tddui-encounter-sejour`)."""

    id: LocalId
    admission_date: dt.date | None = None
    period: Period = Field(default_factory=Period)
    modality: Modality | None = None
    entry_mode: ShortText | None = None
    exit_mode: ShortText | None = None
    comment: Text | None = None


class EventStatus(StrEnum):
    """TDDUI Encounter.status: Planifié→planned, Validé→finished, Annulé→cancelled…"""

    planned = "planned"
    in_progress = "in_progress"
    finished = "finished"
    cancelled = "cancelled"


class Event(Strict):
    """A delivered (or scheduled) event or act typed with a SERAFIN-PH service
    (TDDUI `tddui-encounter-evenement`, `type[serafin]`)."""

    id: LocalId
    code: SerafinCode
    label: ShortText | None = None
    status: EventStatus = EventStatus.finished
    period: DateTimePeriod
    modality: Modality | None = None
    place: Place | None = None
    service_id: LocalId | None = Field(default=None, description="Prestation prévue réalisée")
    stay_id: LocalId | None = None
    professional_ids: list[LocalId] = Field(default_factory=list)
    outside_plan: bool = Field(default=False, description="Hors prestation prévue au projet")
    person_present: bool = True
    cancel_reason: ShortText | None = None
    report: Text | None = None
    transport_km: Decimal | None = Field(default=None, ge=0, le=5000)
    transport_minutes: int | None = Field(default=None, ge=0, le=1440)


class EvaluationItem(Strict):
    code: SerafinCode
    value: int = Field(ge=0, le=100)
    comment: Text | None = None


class SerafinEvaluation(Strict):
    """A SERAFIN evaluation (TDDUI QuestionnaireResponse on `tddui-questionnaire-serafin`)."""

    id: LocalId
    date: dt.date
    status: Literal["in_progress", "completed"] = "completed"
    assessor_id: LocalId | None = None
    items: list[EvaluationItem] = Field(min_length=1, max_length=200)


# --------------------------------------------------------- participation and agreement


class ParticipationMode(StrEnum):
    meeting_in_person = "meeting_in_person"
    facilitator = "facilitator"
    alternative_communication = "alternative_communication"
    written_contribution = "written_contribution"
    represented = "represented"


class Participation(Strict):
    """How the person took part in building the plan."""

    modes: list[ParticipationMode] = Field(min_length=1, max_length=5)
    facilitator: ShortText | None = Field(default=None, description="Facilitateur / pair-aidant")
    communication_means: list[ShortText] = Field(
        default_factory=list, description="Moyens de communication alternative (pictogrammes, LSF…)"
    )
    person_opinion: Text | None = None


class AgreementParty(StrEnum):
    """TDDUI CarePlan.supportingInfo slices `accordUsager` / `accordStructure`."""

    person = "person"  # the person or those around them
    structure = "structure"


class Agreement(Strict):
    """Agreement to the personalised project (TDDUI `tddui-consent-accord`)."""

    id: LocalId
    party: AgreementParty
    performer_kind: Literal["person", "representative", "professional"]
    performer_id: LocalId | None = Field(
        default=None, description="Représentant ou professionnel signataire (référence)"
    )
    date: dt.datetime
    period: Period = Field(default_factory=Period)

    @model_validator(mode="after")
    def _performer(self):
        if self.performer_kind != "person" and self.performer_id is None:
            raise PydanticCustomError(
                "agreement-performer", "l'accord doit désigner son signataire (performer_id)"
            )
        return self


class ReviewKind(StrEnum):
    scheduled = "scheduled"
    interim = "interim"
    requested_by_person = "requested_by_person"


class Review(Strict):
    date: dt.date
    kind: ReviewKind = ReviewKind.scheduled
    note: Text | None = None


# ------------------------------------------------------------------------------ plan


class PlanStatus(StrEnum):
    """Draft, validated by the team, agreed by the person; then suspended or closed
    (TDDUI CarePlan.status: draft / active / on-hold / completed)."""

    draft = "draft"
    validated = "validated"
    agreed = "agreed"
    suspended = "suspended"
    closed = "closed"


class Specialisation(StrEnum):
    neurodevelopmental = "neurodevelopmental"
    psychiatric = "psychiatric"
    motor_polyhandicap = "motor_polyhandicap"
    sensory = "sensory"


class Plan(Strict):
    """Projet personnalisé d'accompagnement unique."""

    schema_version: Literal["1.0"] = PLAN_SCHEMA_VERSION
    id: LocalId = Field(description="Identifiant du projet dans le DUI (ex. PPER-12)")
    title: ShortText
    status: PlanStatus
    version_label: ShortText | None = Field(
        default=None, description="Version du projet telle que le DUI la nomme"
    )
    category_code: ShortText | None = Field(
        default=None, description="Type de projet personnalisé (JDV_J367)"
    )
    period: Period = Field(description="Début et fin de mise en œuvre")
    established_on: dt.date
    next_review: dt.date | None = None
    reviews: list[Review] = Field(default_factory=list, max_length=100)
    specialisations: list[Specialisation] = Field(default_factory=list, max_length=4)
    person: Person
    platform: Platform
    professionals: list[Professional] = Field(default_factory=list, max_length=500)
    orientation_decisions: list[OrientationDecision] = Field(default_factory=list, max_length=50)
    life_project: LifeProject | None = None
    expectations: list[Expectation] = Field(default_factory=list, max_length=200)
    needs: list[Need] = Field(default_factory=list, max_length=200)
    objectives: list[Objective] = Field(default_factory=list, max_length=200)
    actions: list[Action] = Field(default_factory=list, max_length=500)
    services: list[Service] = Field(default_factory=list, max_length=500)
    stays: list[Stay] = Field(default_factory=list, max_length=100)
    events: list[Event] = Field(default_factory=list, max_length=5000)
    evaluations: list[SerafinEvaluation] = Field(default_factory=list, max_length=50)
    participation: Participation | None = None
    agreements: list[Agreement] = Field(default_factory=list, max_length=20)
    consent_refs: list[LocalId] = Field(
        default_factory=list, description="Consentements (vie privée) enregistrés dans Relais"
    )
    notes: Text | None = Field(default=None, description="Modes de communication (CarePlan.note)")
