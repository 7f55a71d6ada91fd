"""The body of the plan's CDA document: one section per kind of plan element.

Each kind says which CDA act carries an element, which fields have a native CDA place
(id, SERAFIN-PH `code`, `text`, `effectiveTime`, `statusCode`, coded `value`) and which
narrative columns a professional reads. Every other field of the element travels as an
attribute observation (`codec.py`). SERAFIN-PH codes use code system `1.2.250.1.213.3.3.60`
(specs §2, §9): needs from JDV_J285, direct services J284, indirect services J283.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mappings.cda import constants as C


@dataclass(frozen=True)
class Kind:
    key: str  # list field of the plan
    arc: int  # template / identifier arc
    code: str  # section and entry code in the Relais code systems
    title: str  # section title (French)
    element: str  # CDA clinical statement
    class_code: str
    mood: str
    serafin: bool = False  # `code` is a SERAFIN-PH code
    text: str | None = None  # field carried in the entry's <text>
    value_at: str | None = None  # effectiveTime/@value
    low: str | None = None  # effectiveTime/low
    high: str | None = None  # effectiveTime/high
    datetime: bool = False  # times are date-times, not dates
    status: dict[str, str] = field(default_factory=dict)  # plan value -> ActStatus
    value_field: str | None = None  # enumeration carried as a coded <value>
    has_id: bool = True
    columns: tuple[tuple[str, str], ...] = ()  # (header, field) narrative columns

    @property
    def section_template(self) -> str:
        return C.relais_oid(1, 2, self.arc)

    @property
    def entry_template(self) -> str:
        return C.relais_oid(1, 3, self.arc)

    @property
    def id_root(self) -> str:
        return f"{C.ID_ELEMENT}.{self.arc}"


_TASK = {"draft": "new", "in_progress": "active", "completed": "completed", "cancelled": "cancelled"}
_GOAL = {"planned": "new", "active": "active", "completed": "completed", "cancelled": "cancelled"}
_EVENT = {"planned": "new", "in_progress": "active", "finished": "completed", "cancelled": "cancelled"}

# Order = order of the sections in the document.
KINDS: tuple[Kind, ...] = (
    Kind("orientation_decisions", 1, "DECISIONS_ORIENTATION", "Décisions d'orientation (CDAPH)",
         "act", "ACT", "EVN", text="orientation", value_at="decision_date",
         columns=(("Décision", "decision_number"), ("MDPH", "mdph"), ("Date", "decision_date"),
                  ("Orientation", "orientation"), ("Validité", "validity"), ("État", "status"))),
    Kind("expectations", 2, "ATTENTES", "Attentes de la personne et de son entourage",
         "observation", "OBS", "GOL", text="text", value_at="expressed_on",
         value_field="life_domain",
         columns=(("Attente", "text"), ("Domaine de vie", "life_domain"),
                  ("Exprimée par", "expressed_by"), ("Date", "expressed_on"))),
    Kind("needs", 3, "BESOINS", "Besoins évalués (SERAFIN-PH)",
         "observation", "OBS", "EVN", serafin=True, text="description", value_at="assessed_on",
         value_field="level",
         columns=(("Code", "code"), ("Besoin SERAFIN-PH", "code_label"), ("Description", "description"),
                  ("Intensité", "level"), ("Évalué le", "assessed_on"), ("Méthode", "method"))),
    Kind("objectives", 4, "OBJECTIFS", "Objectifs du projet",
         "observation", "OBS", "GOL", text="description", low="start_date", high="target_date",
         status=_GOAL, value_field="life_domain",
         columns=(("Objectif", "title"), ("Description", "description"), ("Besoins visés", "need_ids"),
                  ("Début", "start_date"), ("Échéance", "target_date"), ("Statut", "status"),
                  ("Résultat attendu", "expected_result"))),
    Kind("actions", 5, "ACTIONS", "Actions", "act", "ACT", "INT", text="title",
         low="period.start", high="period.end", status=_TASK,
         columns=(("Action", "title"), ("Objectifs", "objective_ids"), ("Période", "period"),
                  ("Statut", "status"))),
    Kind("services", 6, "PRESTATIONS", "Prestations (SERAFIN-PH)",
         "procedure", "PROC", "INT", serafin=True, text="title", low="period.start",
         high="period.end", status=_TASK, value_field=None,
         columns=(("Code", "code"), ("Prestation SERAFIN-PH", "code_label"), ("Intitulé", "title"),
                  ("Modalité", "modality"), ("Lieu", "place"), ("Intervenant", "provider"),
                  ("Intensité", "intensity"), ("Période", "period"), ("Objectifs", "objective_ids"))),
    Kind("stays", 7, "SEJOURS", "Séjours", "encounter", "ENC", "EVN", low="period.start",
         high="period.end",
         columns=(("Séjour", "id"), ("Admission", "admission_date"), ("Période", "period"),
                  ("Modalité", "modality"))),
    Kind("events", 8, "EVENEMENTS", "Évènements réalisés (SERAFIN-PH)", "encounter", "ENC", "EVN",
         serafin=True, text="label", low="period.start", high="period.end", datetime=True,
         status=_EVENT,
         columns=(("Code", "code"), ("Prestation SERAFIN-PH", "code_label"), ("Libellé", "label"),
                  ("Période", "period"), ("Statut", "status"), ("Prestation prévue", "service_id"))),
    Kind("evaluations", 9, "EVALUATIONS", "Évaluations SERAFIN-PH", "organizer", "CLUSTER", "EVN",
         value_at="date", status={"in_progress": "active", "completed": "completed"},
         columns=(("Évaluation", "id"), ("Date", "date"), ("Statut", "status"), ("Items", "items"))),
    Kind("agreements", 10, "ACCORDS", "Accords sur le projet", "act", "CONS", "EVN",
         value_at="date", datetime=True,
         columns=(("Accord", "party"), ("Signataire", "performer"), ("Date", "date"),
                  ("Période", "period"))),
    Kind("professionals", 11, "INTERVENANTS", "Professionnels intervenants", "act", "ACT", "EVN",
         text="role",
         columns=(("Nom", "family_name"), ("Prénom", "given_name"), ("Fonction", "role"),
                  ("Structure", "organisation"))),
    Kind("reviews", 12, "REVISIONS", "Révisions du projet", "act", "ACT", "EVN", text="note",
         value_at="date", has_id=False,
         columns=(("Date", "date"), ("Nature", "kind"), ("Note", "note"))),
)
BY_KEY = {kind.key: kind for kind in KINDS}
BY_SECTION_TEMPLATE = {kind.section_template: kind for kind in KINDS}

# Section for the plan itself: person, platform, life project, participation, everything of
# the plan that is neither a header element nor an element of the lists above.
PLAN_SECTION_ARC = 20
PLAN_SECTION_TEMPLATE = C.relais_oid(1, 2, PLAN_SECTION_ARC)
PLAN_ENTRY_TEMPLATE = C.relais_oid(1, 3, PLAN_SECTION_ARC)
PLAN_SECTION_CODE = "PROJET"
PLAN_SECTION_TITLE = "Projet personnalisé : personne, plateforme, projet de vie, participation"
ATTRIBUTE_TEMPLATE = C.relais_oid(1, 4)
