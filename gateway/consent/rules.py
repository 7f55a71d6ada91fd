"""The French rules, one small named function each.

A rule reads the evaluation context and returns a `Reason` whose effect is "permit",
"deny" or "note" (explains without deciding), or None when it does not apply. Rule ids are
stable (they go to the audit trail) and start with the checklist number of
consent_audit §1.11 when there is one. Each rule cites its legal source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.consent.fhir_common import PARIS
from gateway.consent.matching import (
    DMP_BTG,
    DMP_FEED,
    ECHANGE,
    OUTSIDE_TEAM,
    PERSON,
    TEAM_SHARING,
    Context,
)
from gateway.consent.model import Reason
from gateway.consent.vocab import (
    ALLOWLIST,
    CONSENT_KIND_LABEL,
    DATA_LABEL,
    DENIED_PURPOSES,
    LABEL_MINOR_SECRET,
    PROFESSION_LABEL,
    PURPOSE_PARENT,
    SYSTEM_PURPOSES,
    DataCategory,
    Flow,
    InformationMethod,
    InformationTopic,
    Profession,
    RecipientKind,
    System,
)


@dataclass(frozen=True)
class Rule:
    id: str
    source: str
    check: Callable[[Context], Reason | None]


RULES: list[Rule] = []


def rule(rule_id: str, source: str):
    def register(fn: Callable[[Context, str, str], Reason | None]) -> Callable:
        RULES.append(Rule(rule_id, source, lambda ctx: fn(ctx, rule_id, source)))
        return fn

    return register


def _r(rule_id: str, source: str, effect: str, fr: str, en: str, consents=()) -> Reason:
    return Reason(rule_id, effect, fr, en, source, tuple(consents))


def _day(value) -> str:
    return value.astimezone(PARIS).strftime("%d/%m/%Y") if value is not None else "?"


# ------------------------------------------------------------------ gates


# RNIV EXI SI 07 and the INS référentiel: only a qualified identity may be referenced by
# its INS; no DMP feeding and no mail to the person's own mailbox without it (L9, L13).
@rule("L13-ins-qualified", "RNIV EXI SI 07 ; référentiel INS ; CSP L.1111-15 (checklist L9, L13)")
def ins_qualified(ctx: Context, rid: str, src: str) -> Reason | None:
    if not ctx.names_ins:
        return None
    status = ctx.state.person.identity_status
    if status == "QUAL":
        return _r(rid, src, "note", "identité qualifiée (QUAL) : l'INS peut être utilisé",
                  "qualified identity: the INS may be used")
    where = {System.dmp: "le DMP ne peut pas être alimenté"}.get(ctx.request.system, "")
    if ctx.request.recipient.kind is RecipientKind.person:
        where = "la messagerie de la personne, adressée par son INS, ne peut pas être utilisée"
    return _r(rid, src, "deny",
              f"identité non qualifiée (statut {status}) : l'INS ne peut pas être utilisé"
              + (f" ; {where}" if where else " ; envoyer sans INS ou qualifier l'identité"),
              f"identity not qualified ({status}): the INS may not be used")


# consent_audit §2.5: the channel and the operation determine the purpose of use; payment,
# research, marketing and legal purposes are out of scope (deny by default).
@rule("purpose-of-use", "HL7 v3 ActReason ; consent_audit §2.5 (table des finalités par canal)")
def purpose_of_use(ctx: Context, rid: str, src: str) -> Reason | None:
    purpose, system = ctx.request.purpose, ctx.request.system
    if purpose not in PURPOSE_PARENT:
        return _r(rid, src, "deny", f"finalité inconnue : {purpose}", f"unknown purpose {purpose}")
    if purpose in DENIED_PURPOSES:
        return _r(rid, src, "deny", f"finalité {purpose} exclue des flux de la passerelle",
                  f"purpose {purpose} is never served")
    if purpose not in SYSTEM_PURPOSES[system]:
        allowed = ", ".join(sorted(SYSTEM_PURPOSES[system]))
        return _r(rid, src, "deny",
                  f"finalité {purpose} non prévue pour le canal {system.value} (prévues : {allowed})",
                  f"purpose {purpose} is not foreseen for {system.value}")
    return None


# L.1110-4 II–III and the arrêté of 25 Nov 2016: an échange goes to clearly identified
# recipients; no anonymous broadcast (L1).
@rule("L1-identified-recipient", "CSP L.1110-4 II–III ; arrêté du 25/11/2016 (checklist L1)")
def identified_recipient(ctx: Context, rid: str, src: str) -> Reason | None:
    recipient = ctx.request.recipient
    if recipient.kind is RecipientKind.system:
        if ctx.flow is Flow.echange:
            return _r(rid, src, "deny",
                      "un échange s'adresse à des destinataires clairement identifiés, pas à un "
                      "espace partagé", "an exchange goes to identified recipients")
        return None
    if not recipient.identifiers:
        return _r(rid, src, "deny", "destinataire non identifié (RPPS, FINESS ou adresse MSSanté)",
                  "recipient not identified")
    return None


# R.1110-2: only health professionals (1°) and the listed social / médico-social
# professionals (2°) may receive information covered by secrecy (L8).
@rule("L8-recipient-profession", "CSP R.1110-2 (checklist L8)")
def recipient_profession(ctx: Context, rid: str, src: str) -> Reason | None:
    recipient = ctx.request.recipient
    if recipient.kind not in (RecipientKind.professional, RecipientKind.organisation):
        return None
    if recipient.profession in (Profession.health, Profession.social):
        return _r(rid, src, "note", f"destinataire : {PROFESSION_LABEL[recipient.profession]}",
                  f"recipient category: {recipient.profession.value}")
    if recipient.profession is None:
        return _r(rid, src, "deny",
                  "catégorie professionnelle du destinataire inconnue : elle doit relever de "
                  "l'article R.1110-2 (santé 1° ou social / médico-social 2°)",
                  "recipient's professional category unknown")
    return _r(rid, src, "deny",
              "le destinataire ne relève d'aucune catégorie de l'article R.1110-2 : il ne peut "
              "recevoir d'informations couvertes par le secret",
              "recipient is outside the R.1110-2 categories")


# R.1110-1 (double limit) and L.1110-4 II: only information strictly necessary, per the
# DPO-approved allowlist of the channel (L2).
@rule("L2-strictly-necessary", "CSP L.1110-4 II ; R.1110-1 (checklist L2)")
def strictly_necessary(ctx: Context, rid: str, src: str) -> Reason | None:
    categories = ctx.request.data_categories
    if not categories:
        return _r(rid, src, "deny", "les catégories de données envoyées doivent être déclarées",
                  "the data categories sent must be declared")
    unknown = sorted(c for c in categories if c not in DataCategory.__members__)
    if unknown:
        return _r(rid, src, "deny", f"catégories de données inconnues : {', '.join(unknown)}",
                  f"unknown data categories: {', '.join(unknown)}")
    extra = sorted(c for c in categories if c not in ALLOWLIST[ctx.request.system])
    if extra:
        labels = ", ".join(DATA_LABEL[DataCategory(c)] for c in extra)
        return _r(rid, src, "deny",
                  f"données non nécessaires pour le canal {ctx.request.system.value} : {labels}",
                  f"data not strictly necessary for {ctx.request.system.value}: {', '.join(extra)}")
    return None


# L.1111-5 / L.1111-5-1: a minor may keep some care secret from the holders of parental
# authority; such documents never go to parent-facing channels (a minor's own mailbox is
# managed by the parents) and DMP deposits are INVISIBLE_REPRESENTANTS_LEGAUX (L12).
@rule("L12-minor-secrecy", "CSP L.1111-5, L.1111-5-1 ; homologation DMP EX_2.1-1050 (checklist L12)")
def minor_secrecy(ctx: Context, rid: str, src: str) -> Reason | None:
    if LABEL_MINOR_SECRET not in ctx.request.labels or not ctx.minor:
        return None
    recipient = ctx.request.recipient
    to_parents = recipient.kind is RecipientKind.person or bool(
        set(recipient.identifiers) & ctx.state.person.representative_tokens)
    if to_parents:
        return _r(rid, src, "deny",
                  "document couvert par le secret demandé par la personne mineure : jamais vers un "
                  "canal lu par les titulaires de l'autorité parentale",
                  "document under a minor's secrecy: never to a parent-facing channel")
    if ctx.request.system is System.dmp:
        ctx.obligations.append("dmp-invisible-representants-legaux")
        return _r(rid, src, "note",
                  "dépôt DMP avec le masquage INVISIBLE_REPRESENTANTS_LEGAUX (secret du mineur)",
                  "DMP deposit flagged INVISIBLE_REPRESENTANTS_LEGAUX")
    return None


# L.1110-4 IV, GDPR art. 21, R.1111-46, arrêté 26/10/2023: the person's opposition (or any
# deny provision of their directives) wins over every permit, at once (L7).
@rule("L7-opposition", "CSP L.1110-4 IV ; R.1111-46 ; RGPD art. 21 (checklist L7)")
def opposition(ctx: Context, rid: str, src: str) -> Reason | None:
    denies = ctx.denies
    if not denies:
        return None
    labels = "; ".join(sorted({CONSENT_KIND_LABEL[v.directive.kind] for v in denies}))
    return _r(rid, src, "deny",
              f"la personne s'y oppose ({labels}) : son opposition l'emporte sur toute autorisation",
              "the person objects: the opposition overrides any permission",
              [v.directive.ref for v in denies])


# GDPR art. 7(3): a withdrawn consent stops counting for every later decision (L16).
@rule("L16-withdrawn-consent", "RGPD art. 7(3) (checklist L16)")
def withdrawn_consent(ctx: Context, rid: str, src: str) -> Reason | None:
    if not ctx.withdrawn:
        return None
    when = ", ".join(f"{d.id} le {_day(d.changed_at)}" for d in ctx.withdrawn)
    return _r(rid, src, "note", f"consentement retiré, sans effet désormais : {when}",
              "withdrawn consent no longer counts", [d.ref for d in ctx.withdrawn])


# Ordonnance 2020-232, Code civil 371-1: a representative's permit lapses with their
# capacity (majority reached, measure ended) (L17).
@rule("L17-representative-capacity", "CSP L.1111-2, L.1111-4 ; Code civil 371-1, 440 (checklist L17)")
def representative_capacity(ctx: Context, rid: str, src: str) -> Reason | None:
    if not ctx.lapsed:
        return None
    return _r(rid, src, "note",
              "consentement donné par un représentant qui n'a plus qualité (majorité atteinte ou "
              "mesure terminée) : il ne compte plus", "consent given by a representative who no "
              "longer has capacity", [d.ref for d in ctx.lapsed])


# ------------------------------------------------------------------ regimes


# L.1111-7: the person's own access; the INS gate (L13) applies to their mailbox.
@rule("L1111-7-communication-to-person", "CSP L.1111-7")
def communication_to_person(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime != PERSON:
        return None
    return _r(rid, src, "permit", "envoi à la personne elle-même (droit d'accès, L.1111-7)",
              "sending to the person themself (right of access)")


# L.1111-15, L.1111-17 III, arrêté 26/10/2023: the DMP is fed after written information of
# the person (once for the follow-up); QUAL (L13) and no DMP opposition (L7) also apply (L9).
@rule("L9-dmp-feeding", "CSP L.1111-15, L.1111-17 III ; arrêté du 26/10/2023 (checklist L9)")
def dmp_feeding(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime != DMP_FEED:
        return None
    records = [r for r in ctx.state.information
               if InformationTopic.dmp in r.topics and r.informed_at <= ctx.now]
    written = [r for r in records if r.method is not InformationMethod.oral]
    if written:
        ctx.obligations.append("dmp-masking-flags")
        return _r(rid, src, "permit",
                  f"personne informée par écrit de l'alimentation de son DMP le "
                  f"{_day(written[-1].informed_at)} (notice {written[-1].notice_version})",
                  "the person received written information about DMP feeding")
    if records:
        return _r(rid, src, "deny",
                  "l'information préalable à l'alimentation du DMP doit être écrite (papier ou "
                  "électronique) : seule une information orale est enregistrée",
                  "information before DMP feeding must be written")
    return _r(rid, src, "deny",
              "la personne n'a pas reçu l'information préalable à l'alimentation de son DMP",
              "the person was not informed before DMP feeding")


# L.1111-17 I, homologation EX_0.3-1050: break-glass access only for a health professional,
# person unable to express their will and at immediate risk, with a justification, and no
# prior express opposition (the latter by L7) (L11).
@rule("L11-break-glass", "CSP L.1111-17 I ; homologation DMP EX_0.3-1050 (checklist L11)")
def break_glass(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime != DMP_BTG:
        return None
    missing = []
    if ctx.request.recipient.profession is not Profession.health:
        missing.append("réservé aux professionnels de santé")
    if not ctx.request.urgency:
        missing.append("la personne doit être hors d'état d'exprimer sa volonté, en situation d'urgence")
    if not (ctx.request.justification or "").strip():
        missing.append("justification obligatoire")
    if missing:
        return _r(rid, src, "deny", "accès d'urgence (bris de glace) refusé : " + " ; ".join(missing),
                  "break-glass access refused")
    ctx.obligations += ["notify-person-after-break-glass", "alert-dpo"]
    return _r(rid, src, "permit", "accès d'urgence (bris de glace) justifié, sans opposition préalable",
              "justified break-glass access, no prior opposition")


def _information(ctx: Context, topic: InformationTopic, *, match_recipient: bool) -> bool:
    for r in ctx.state.information:
        if topic in r.topics and r.informed_at <= ctx.now:
            if not match_recipient or r.recipient is None or r.recipient in ctx.tokens:
                return True
    return False


# L.1110-4 II and L.1110-12: an échange is lawful with professionals who take part in the
# person's care; membership of the équipe de soins is the source of truth (L3).
@rule("L3-exchange-care-participant", "CSP L.1110-4 II ; L.1110-12 (checklist L3)")
def exchange_care_participant(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.flow is not Flow.echange or ctx.regime not in (ECHANGE, OUTSIDE_TEAM):
        return None
    if ctx.regime == OUTSIDE_TEAM:
        return _r(rid, src, "note",
                  "le destinataire ne participe pas à la prise en charge (absent de l'équipe de soins)",
                  "the recipient takes no part in the person's care")
    m = ctx.membership
    return _r(rid, src, "permit",
              f"le destinataire participe à la prise en charge (équipe de soins, fondement "
              f"{m.basis.value}" + (f", depuis le {_day(m.since)}" if m.since else "") + ")",
              "the recipient takes part in the person's care")


# L.1110-4 III al. 1 and IV, R.1110-3 II: sharing within the équipe de soins after the
# person was informed (of the sharing and of their right to oppose) (L3, L5).
@rule("L3-L5-care-team-sharing", "CSP L.1110-4 III al. 1 et IV ; R.1110-3 II (checklist L3, L5)")
def care_team_sharing(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime != TEAM_SHARING:
        return None
    if _information(ctx, InformationTopic.care_team_sharing, match_recipient=False) \
            or ctx.explicit_permits():
        return _r(rid, src, "permit",
                  "partage au sein de l'équipe de soins, la personne ayant été informée",
                  "sharing within the care team after information")
    if ctx.request.urgency:
        ctx.waived_information = True
        return _r(rid, src, "permit", "partage au sein de l'équipe de soins en urgence : "
                  "information à délivrer dès que possible (R.1110-3 III)",
                  "urgent sharing within the team: inform afterwards")
    return _r(rid, src, "deny",
              "la personne n'a pas été informée du partage au sein de l'équipe de soins ni de son "
              "droit de s'y opposer", "the person was not informed of care-team sharing")


# R.1110-3 I–II: before information passes between a health professional (1°) and a social
# or médico-social one (2°), the person is informed of its nature and of the recipient (L5).
@rule("L5-cross-category-information", "CSP R.1110-3 I–II (checklist L5)")
def cross_category_information(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime not in (ECHANGE, TEAM_SHARING):
        return None
    mine, theirs = ctx.request.requester.profession, ctx.request.recipient.profession
    pair = {mine, theirs}
    if pair != {Profession.health, Profession.social}:
        return None
    if _information(ctx, InformationTopic.cross_category_exchange, match_recipient=True) \
            or ctx.explicit_permits():
        return _r(rid, src, "note",
                  "échange entre professionnels de santé et du social : la personne en a été informée",
                  "cross-category exchange: the person was informed")
    if ctx.request.urgency:
        ctx.waived_information = True
        return _r(rid, src, "note", "échange entre catégories en urgence : information à délivrer "
                  "dès que possible (R.1110-3 III)", "urgent cross-category exchange: inform afterwards")
    return _r(rid, src, "deny",
              "échange entre un professionnel de santé et un professionnel du social ou du "
              "médico-social sans information préalable de la personne (nature des informations "
              "et destinataire)", "cross-category exchange without prior information of the person")


# L.1110-4 III al. 2 and D.1110-3-1: outside the équipe de soins, information may be shared
# only with the person's prior consent naming the recipients (L4).
@rule("L4-outside-team-prior-consent", "CSP L.1110-4 III al. 2 ; D.1110-3-1 (checklist L4)")
def outside_team_prior_consent(ctx: Context, rid: str, src: str) -> Reason | None:
    if ctx.regime != OUTSIDE_TEAM:
        return None
    permits = ctx.explicit_permits()
    if permits:
        first = permits[0].directive
        return _r(rid, src, "permit",
                  f"destinataire hors de l'équipe de soins : consentement préalable de la personne "
                  f"(recueilli le {_day(first.date_time)})",
                  "recipient outside the care team: prior consent on file",
                  [v.directive.ref for v in permits])
    return _r(rid, src, "deny",
              "destinataire hors de l'équipe de soins : le partage exige le consentement préalable "
              "de la personne, qui n'est pas enregistré",
              "recipient outside the care team: prior consent required and not on file")


# R.1110-3 III: when the person cannot express their will, urgency exempts from prior
# information; the person is informed afterwards and this is recorded (L6).
@rule("L6-urgency-inform-later", "CSP R.1110-3 III (checklist L6)")
def urgency_inform_later(ctx: Context, rid: str, src: str) -> Reason | None:
    if not ctx.waived_information:
        return None
    ctx.obligations.append("inform-person-afterwards")
    return _r(rid, src, "note", "urgence : la personne sera informée a posteriori, et cela sera "
              "consigné dans son dossier", "urgency: the person is informed afterwards")


DEFAULT_DENY = ("default-deny", "IHE PCF (option implicite absente : tout refuser) ; consent_audit §2.6.1")
