"""Human-readable narrative (`section/text`, CDA NarrativeBlock) built from the same data as
the entries, with French labels: what a professional reads in any CDA viewer."""

from __future__ import annotations

from typing import Any

from lxml import etree

from mappings.cda import constants as C
from mappings.serafin import nomenclature

LABELS = {
    # need levels
    "none": "aucun", "light": "léger", "moderate": "modéré", "severe": "sévère", "complete": "complet",
    # statuses
    "draft": "en préparation", "in_progress": "en cours", "completed": "terminé",
    "cancelled": "annulé", "planned": "prévu", "active": "actif", "finished": "réalisé",
    "notified": "notifiée", "implemented": "mise en œuvre", "expired": "expirée",
    "validated": "validé", "agreed": "accepté", "suspended": "suspendu", "closed": "clos",
    # methods
    "interview": "entretien", "observation": "observation", "standardised_tool": "outil standardisé",
    "multidisciplinary_meeting": "réunion pluridisciplinaire", "document_review": "étude de documents",
    # who
    "person": "la personne", "family": "la famille", "legal_representative": "le représentant légal",
    "professional": "un professionnel", "structure": "la structure", "representative": "le représentant",
    # life domains
    "health": "santé", "daily_living": "vie quotidienne",
    "communication_relationships": "communication et relations",
    "decisions_safety": "décisions et sécurité", "mobility": "mobilité",
    "rights_citizenship": "droits et citoyenneté", "housing": "logement", "education": "scolarité",
    "employment": "emploi", "family_affective_life": "vie familiale et affective",
    "social_life_leisure": "vie sociale et loisirs", "resources": "ressources",
    # modalities and places
    "ordinary_environment": "milieu ordinaire", "day_care": "accueil de jour",
    "night_care": "accueil de nuit", "full_time_housing": "hébergement complet",
    "temporary_housing": "accueil temporaire", "sequential": "accueil séquentiel",
    "home": "domicile", "school": "école", "workplace": "lieu de travail",
    "leisure_club": "club de loisirs", "platform_premises": "locaux de la plateforme",
    "partner_premises": "locaux d'un partenaire", "health_facility": "établissement de santé",
    "community": "cité",
    # review kinds
    "scheduled": "programmée", "interim": "intermédiaire", "requested_by_person": "à la demande de la personne",
    # participation, protection, representatives
    "meeting_in_person": "réunion en présence", "facilitator": "avec un facilitateur",
    "alternative_communication": "communication alternative", "written_contribution": "contribution écrite",
    "represented": "représentée", "sauvegarde_de_justice": "sauvegarde de justice",
    "curatelle": "curatelle", "curatelle_renforcee": "curatelle renforcée", "tutelle": "tutelle",
    "habilitation_familiale": "habilitation familiale", "mandat_protection_future": "mandat de protection future",
    "representation": "représentation", "assistance": "assistance", "parent": "parent",
    "guardian": "tuteur / représentant", "curator": "curateur", "other_legal": "autre représentant légal",
    # identity status (RNIV)
    "PROV": "provisoire", "RECUP": "récupérée", "VALI": "validée", "QUAL": "qualifiée",
}
UNITS = {"hours_per_week": "h/semaine", "half_days_per_week": "demi-journées/semaine"}


def label(value: Any) -> str:
    if isinstance(value, bool):
        return "oui" if value else "non"
    return LABELS.get(value, str(value)) if isinstance(value, str) else str(value)


def serafin_label(code: str) -> str:
    concept = nomenclature().get(code)
    return concept.label if concept else "(code inconnu)"


def cell(item: dict, name: str) -> str:
    """The text of one narrative cell for field `name` of a plan element (JSON form)."""
    if name == "code_label":
        return serafin_label(item.get("code", ""))
    value = item.get(name)
    if value is None or value == []:
        if name == "performer":
            who = item.get("performer_kind")
            ref = item.get("performer_id")
            return label(who) + (f" ({ref})" if ref else "")
        return ""
    if name in ("period", "validity"):
        return f"{value.get('start') or '…'} → {value.get('end') or '…'}"
    if name == "provider":
        return f"{value['name']} ({label(value['kind']).replace('_', ' ')})"
    if name == "intensity":
        return f"{value['value']} {UNITS.get(value['unit'], value['unit'])}"
    if name == "items":
        return " ; ".join(f"{i['code']} = {i['value']}" for i in value)
    if isinstance(value, list):
        return ", ".join(label(v) for v in value)
    return label(value)


def table(parent: etree._Element, headers: list[str], rows: list[tuple[str | None, list[str]]]) -> None:
    """Append a NarrativeBlock table; each row may carry an ID the entries can point to."""
    tbl = etree.SubElement(parent, f"{{{C.NS}}}table", border="1")
    head = etree.SubElement(etree.SubElement(tbl, f"{{{C.NS}}}thead"), f"{{{C.NS}}}tr")
    for text in headers:
        etree.SubElement(head, f"{{{C.NS}}}th").text = text
    body = etree.SubElement(tbl, f"{{{C.NS}}}tbody")
    for row_id, cells in rows:
        tr = etree.SubElement(body, f"{{{C.NS}}}tr")
        if row_id:
            tr.set("ID", row_id)
        for text in cells:
            etree.SubElement(tr, f"{{{C.NS}}}td").text = text


def paragraph(parent: etree._Element, text: str) -> None:
    etree.SubElement(parent, f"{{{C.NS}}}paragraph").text = text
