"""Who may consent for the person (checklist L17), judged when a consent is recorded and
again when it is used (parental authority ends at 18; a measure ends).

Sources (consent_audit §1.10): CSP L.1111-2 II and L.1111-4 as rewritten by ordonnance
2020-232; Code civil 371-1, 372-2 (parental authority), 440 (tutelle represents, curatelle
assists), 459 (personal decisions of a protected adult).

- The person may always oppose, withdraw or restrict (a deny never widens what leaves).
- A **minor** does not grant a permit alone: the holders of parental authority (or the
  minor's guardian / a third party given authority by a judge) do. One parent is enough for
  usual coordination (Code civil 372-2 presumption; consent_audit §1.10 recommendation).
- An **adult** consents themself. Under a measure **with representation**, the protector may
  consent only when the consent records that the person cannot express their will
  (extension consent-person-can-express-will = false); otherwise the person's own consent
  must be sought. Under a measure **with assistance** (curatelle), the curator helps but never
  consents instead of the person: a curator as sole performer is refused.
- A parent of an adult, a professional or an organisation never consents for the person.
- A representative acts only within the period of office the plan records for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.consent.model import Effect, PersonFacts, Performer
from gateway.consent.vocab import ConsentKind

SOURCE = "CSP L.1111-2, L.1111-4 (ordonnance 2020-232) ; Code civil 372-2, 440, 459"


@dataclass(frozen=True)
class Refusal:
    rule_id: str
    message: str
    message_en: str


def _protection_active(person: PersonFacts, day: dt.date) -> bool:
    if person.protection_scope is None:
        return False
    start, end = person.protection_start, person.protection_end
    return (start is None or start <= day) and (end is None or day <= end)


def performer_refusal(person: PersonFacts, performer: Performer, *, effect: Effect | None,
                      kind: ConsentKind, day: dt.date,
                      can_express_will: bool | None) -> Refusal | None:
    """None when this performer may give this consent on `day`; else why not."""
    restricting = effect is Effect.deny
    minor = person.minor_on(day)
    if performer.kind == "person":
        if minor and not restricting and kind is not ConsentKind.agreement:
            return Refusal("L17-minor-cannot-consent-alone",
                           "une personne mineure ne consent pas seule au partage : les titulaires "
                           "de l'autorité parentale consentent (CSP L.1111-2 II) ; elle peut en "
                           "revanche s'opposer",
                           "a minor does not consent alone; holders of parental authority do")
        return None
    if performer.kind != "representative":
        return Refusal("L17-performer-not-person-or-representative",
                       "seuls la personne ou son représentant légal consentent ; un professionnel "
                       "ou une structure recueille le consentement mais ne le donne pas",
                       "only the person or a legal representative may consent")
    role = person.representative_role(performer.ref)
    if role is None:
        return Refusal("L17-representative-unknown",
                       f"le représentant {performer.ref!r} n'est pas enregistré dans le projet de la "
                       "personne", "the representative is not recorded in the person's plan")
    if not person.representative_in_office(performer.ref, day):
        return Refusal("L17-representative-not-in-office",
                       "le représentant n'était pas en fonction à cette date (période du mandat "
                       "enregistrée dans le projet)", "the representative was not in office on that date")
    if role == "curator":
        return Refusal("L17-curator-cannot-consent-instead",
                       "une mesure d'assistance (curatelle) ne permet pas au curateur de consentir "
                       "à la place de la personne : la personne consent elle-même, assistée "
                       "(Code civil 440, ordonnance 2020-232)",
                       "a curator (assistance) cannot consent instead of the person")
    if role == "parent":
        if not minor:
            return Refusal("L17-parental-authority-ended",
                           "l'autorité parentale prend fin à la majorité : un parent ne consent pas "
                           "pour une personne majeure (Code civil 371-1)",
                           "a parent cannot consent for an adult")
        return None
    if role in ("guardian", "other_legal"):
        if minor:
            return None  # guardian of a minor / third party given authority by a judge
        if role == "other_legal" or not _protection_active(person, day) \
                or person.protection_scope != "representation":
            return Refusal("L17-no-representation-measure",
                           "aucune mesure de protection avec représentation relative à la personne "
                           "n'est en cours : le représentant ne peut consentir à sa place",
                           "no measure with representation is in force")
        if can_express_will is not False and not restricting:
            return Refusal("L17-person-must-consent-if-able",
                           "mesure avec représentation : le consentement de la personne doit être "
                           "recherché si elle peut exprimer sa volonté ; le tuteur ne consent à sa "
                           "place qu'en l'indiquant (extension consent-person-can-express-will = "
                           "false) (CSP L.1111-4, ordonnance 2020-232)",
                           "under representation the person consents if able to express their will")
        return None
    return Refusal("L17-representative-role",
                   f"rôle de représentant non reconnu : {role}", f"unknown representative role {role}")


def consent_refusals(person: PersonFacts, performers: tuple[Performer, ...], *,
                     effect: Effect | None, kind: ConsentKind, day: dt.date,
                     can_express_will: bool | None) -> list[Refusal]:
    """The consent stands if at least one performer may give it; otherwise every reason."""
    refusals = [performer_refusal(person, p, effect=effect, kind=kind, day=day,
                                  can_express_will=can_express_will) for p in performers]
    if any(r is None for r in refusals) or not performers:
        return []
    return [r for r in refusals if r is not None]


def still_capable(person: PersonFacts, performers: tuple[Performer, ...], day: dt.date) -> bool:
    """At decision time: does one performer of a permit still have capacity? (The person
    always; a parent only while the person is a minor; a guardian while the measure runs.)"""
    return any(performer_refusal(person, p, effect=Effect.permit, kind=ConsentKind.generic,
                                 day=day, can_express_will=False) is None for p in performers)
