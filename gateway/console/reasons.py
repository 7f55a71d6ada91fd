"""What each consent rule means, in plain French, for the decisions page.

The decision log (`consent_decisions`) keeps the ids of the rules that decided, not their
circumstantial wording; the console explains each id with the sentence below and the legal
source the rule declares (gateway.consent.rules). When the decision was taken for an exchange,
the exact reasons worded at decision time are also shown (stored with the exchange).
"""

from __future__ import annotations

from dataclasses import dataclass

RULE_TEXT = {
    "L13-ins-qualified": "identité non qualifiée : l'INS ne peut pas désigner la personne dans un envoi",
    "purpose-of-use": "finalité inconnue, exclue des flux de la passerelle ou non prévue pour ce canal",
    "L1-identified-recipient": "destinataire non clairement identifié (RPPS, FINESS ou adresse MSSanté)",
    "L8-recipient-profession": "le destinataire ne relève d'aucune catégorie de l'article R.1110-2",
    "L2-strictly-necessary": "données non strictement nécessaires, non déclarées ou inconnues pour ce canal",
    "L12-minor-secrecy": "secret demandé par la personne mineure : jamais vers un canal lu par ses parents",
    "L7-opposition": "la personne (ou son représentant) s'y oppose : l'opposition l'emporte",
    "L16-withdrawn-consent": "le consentement invoqué a été retiré",
    "L17-representative-capacity": "le consentement invoqué a été donné par quelqu'un qui n'en avait pas (ou plus) le pouvoir",
    "L1111-7-communication-to-person": "communication à la personne elle-même de ses propres informations",
    "L9-dmp-feeding": "alimentation du DMP sans information écrite préalable de la personne",
    "L11-break-glass": "accès d'urgence (bris de glace) : conditions non réunies",
    "L3-exchange-care-participant": "échange avec un professionnel participant à la prise en charge",
    "L3-L5-care-team-sharing": "partage au sein de l'équipe de soins : la personne doit en avoir été informée",
    "L5-cross-category-information": "échange entre professionnels de santé et du social sans information préalable",
    "L4-outside-team-prior-consent": "partage hors de l'équipe de soins sans consentement préalable",
    "L6-urgency-inform-later": "urgence ou impossibilité d'informer : information à donner ensuite",
    "default-deny": "aucune règle n'autorise ce flux : refus par défaut",
    "pdp-error": "erreur du moteur de décision : refus par précaution",
}

REGIME_TEXT = {
    "echange": ("échange avec un professionnel participant à la prise en charge",
                "CSP L.1110-4 II ; RGPD art. 9(2)(h)"),
    "partage-equipe": ("partage au sein de l'équipe de soins, après information de la personne",
                       "CSP L.1110-4 III al. 1 ; R.1110-3 ; RGPD art. 9(2)(h)"),
    "hors-equipe": ("partage hors de l'équipe de soins, avec le consentement préalable de la personne",
                    "CSP L.1110-4 III al. 2 ; RGPD art. 9(2)(h)"),
    "dmp-alimentation": ("alimentation du DMP de la personne", "CSP L.1111-15 ; RGPD art. 9(2)(h)"),
    "dmp-bris-de-glace": ("accès d'urgence au DMP", "CSP L.1111-17 I ; RGPD art. 9(2)(c)"),
    "communication-personne": ("communication à la personne elle-même", "CSP L.1111-7 ; RGPD art. 15"),
    "erreur": ("erreur du moteur de décision", "—"),
}


@dataclass(frozen=True)
class RuleReason:
    rule_id: str
    text: str
    source: str


def _sources() -> dict[str, str]:
    from gateway.consent.rules import DEFAULT_DENY, RULES

    out = {r.id: r.source for r in RULES}
    out[DEFAULT_DENY[0]] = DEFAULT_DENY[1]
    out["pdp-error"] = "consent_audit §2.6.1 (refus en cas d'erreur)"
    return out


def explain(rule_ids: list[str]) -> list[RuleReason]:
    sources = _sources()
    return [RuleReason(rid, RULE_TEXT.get(rid, "règle sans description"), sources.get(rid, "")) for rid in rule_ids]


def regime(code: str) -> tuple[str, str]:
    """(French description, legal basis) of a decision's regime."""
    return REGIME_TEXT.get(code, (code, ""))
