"""Read and write FHIR R4 `Consent` for Relais's privacy-directive profile.

Profile `https://relais.example/fhir/StructureDefinition/relais-privacy-consent` (vocab):
parent FR Core Consent, with the IHE PCF constraints (consent_audit §2.2, §4.10):
- `status` active when recorded (withdrawal = a new version with `inactive`);
- `scope` = consentscope#patient-privacy; `category` contains LOINC 59284-0 and at most one
  Relais category (consent-category: opposition, outside-team consent, DMP consultation,
  team recognition, DMP emergency-access opposition); no Relais category = generic directive;
- `patient` designates the person (`Patient/<local id>`, or the TDDUI local identifier
  `3<FINESS>/<local id>`); `dateTime` and `performer` are required; `policy` or `policyRule`
  (R4 invariant ppc-1);
- the root decision comes from `provision.type` (PCF / FR Core / R5 form) or, when absent,
  from `policyRule` OPTIN/OPTINR (permit) or OPTOUT/OPTOUTE (deny) — the R4 form;
  both present and contradicting is an error;
- nested provisions: one level only (PCF), each with `type`; `actor.role` = IRCP and
  `actor.reference.identifier` RPPS / idNat_PS / FINESS / `mailto:` (MSSanté) / a Relais
  target system / an R.1110-2 category; `purpose` from v3-ActReason; `class` from the Relais
  data-category code system; `period`.
- `securityLabel`, `code`, `data`, `dataPeriod`, `action` are kept but not evaluated: such a
  provision matches for deny and never for permit (consent_audit §2.6.4).
TDDUI agreement Consents (tddui-consent / tddui-consent-accord) are accepted as agreement
evidence only: no provision, never a privacy rule (consent_audit §2.4).

Errors carry a FHIRPath location, a rule id and a French message.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from fhir.resources.R4B.consent import Consent as FhirConsent
from pydantic import ValidationError

from gateway.consent.fhir_common import (
    FhirInputError,
    codings,
    has_coding,
    identifier_token,
    parse_fhir_datetime,
    problem,
    structure_problems,
)
from gateway.consent.model import Directive, Effect, Performer, Provision, Token
from gateway.consent.vocab import (
    CS_ACT_CODE,
    CS_ACT_REASON,
    CS_CONSENT_CATEGORY,
    CS_CONSENT_SCOPE,
    CS_DATA_CATEGORY,
    CS_LOINC,
    CS_PARTICIPATION_TYPE,
    EXT_CAN_EXPRESS_WILL,
    KIND_ROOT_EFFECT,
    LOINC_CONSENT_DOCUMENT,
    PRIVACY_CONSENT_PROFILE,
    PROFILE_SOURCE,
    PURPOSE_PARENT,
    SID_LOCAL_PERSON,
    TDDUI_AGREEMENT_PROFILES,
    ConsentKind,
    DataCategory,
)
from gateway.model import Problem, Severity

STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
POLICY_RULE_EFFECT = {"OPTIN": Effect.permit, "OPTINR": Effect.permit,
                      "OPTOUT": Effect.deny, "OPTOUTE": Effect.deny}
UNEVALUATED = ("securityLabel", "code", "data", "dataPeriod", "action")
MAX_NESTED = 50


@dataclass(frozen=True)
class ParsedConsent:
    kind: ConsentKind
    date_time: dt.datetime
    performers: tuple[Performer, ...]
    root: Provision | None
    person_can_express_will: bool | None
    warnings: tuple[Problem, ...]


def _p(location: str, rule: str, fr: str, en: str, warning: bool = False) -> Problem:
    return problem(location, rule, fr, en, PROFILE_SOURCE, warning)


def check_structure(resource: object) -> None:
    """FHIR R4 structure (cardinalities, types, unknown elements), via fhir.resources."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise FhirInputError([_p("Consent.resourceType", "consent-resource-type",
                                 "une ressource FHIR Consent est attendue",
                                 "a FHIR Consent resource is expected")])
    try:
        FhirConsent.model_validate(resource)
    except ValidationError as exc:
        raise FhirInputError(structure_problems("Consent", exc)) from None


def read_consent(resource: dict, *, person_local_id: str, now: dt.datetime,
                 recording: bool = True) -> ParsedConsent:
    """Check the Relais profile and compile the provision tree.
    `recording=True` applies the rules for a new consent (status active, dateTime not in
    the future); stored versions are re-read with recording=False."""
    problems: list[Problem] = []
    profiles = set((resource.get("meta") or {}).get("profile") or [])
    agreement = bool(profiles & TDDUI_AGREEMENT_PROFILES)

    status = resource.get("status")
    if status not in STATUSES:
        problems.append(_p("Consent.status", "consent-status",
                           f"statut inconnu : {status!r}", "unknown status"))
    elif recording and status != "active":
        problems.append(_p("Consent.status", "consent-status",
                           "un consentement s'enregistre avec le statut « active » ; pour le "
                           "retirer, utiliser l'opération $withdraw",
                           "record consents as active; withdraw with $withdraw"))

    date_time = _date_time(resource, now, recording, problems)
    performers = _performers(resource, person_local_id, problems)
    _patient(resource, person_local_id, agreement, problems)

    if agreement:
        if resource.get("provision") is not None:
            problems.append(_p("Consent.provision", "agreement-has-no-provision",
                               "un accord TDDUI sur le projet personnalisé ne porte aucune "
                               "règle de partage (provision interdite)",
                               "a TDDUI agreement carries no privacy provision"))
        _raise_errors(problems)
        return ParsedConsent(ConsentKind.agreement, date_time, performers, None, None,
                             tuple(problems))

    scope = resource.get("scope")
    if not has_coding([scope], CS_CONSENT_SCOPE, "patient-privacy"):
        problems.append(_p("Consent.scope", "consent-scope",
                           "scope doit valoir patient-privacy (consentscope)",
                           "scope must be consentscope#patient-privacy"))
    categories = resource.get("category") or []
    if not has_coding(categories, CS_LOINC, LOINC_CONSENT_DOCUMENT):
        problems.append(_p("Consent.category", "consent-category",
                           "category doit contenir LOINC 59284-0 (document de consentement)",
                           "category must contain LOINC 59284-0"))
    kind = _kind(categories, problems)
    if not resource.get("policy") and not resource.get("policyRule"):
        problems.append(_p("Consent", "ppc-1",
                           "policy ou policyRule est obligatoire (invariant FHIR ppc-1)",
                           "either policy or policyRule is required (ppc-1)"))
    root = _root(resource, problems)
    if root is not None:
        expected = KIND_ROOT_EFFECT.get(kind)
        if expected is not None and root.effect.value != expected:
            problems.append(_p("Consent.provision.type", "consent-category-decision",
                               f"une catégorie « {kind.value} » impose la décision racine "
                               f"« {expected} »",
                               f"category {kind.value} requires root decision {expected}"))
        if kind in (ConsentKind.outside_team, ConsentKind.team_recognition) and not _names_actor(root):
            problems.append(_p("Consent.provision.actor", "consent-recipient-required",
                               "ce consentement doit désigner ses destinataires (provision.actor) : "
                               "le consentement préalable au partage porte sur des destinataires "
                               "identifiés (L.1110-4 III, D.1110-3-1)",
                               "this consent must name its recipients (provision.actor)"))
    if resource.get("sourceAttachment") is None and resource.get("sourceReference") is None:
        problems.append(_p("Consent.source[x]", "consent-evidence",
                           "aucune pièce justificative (source[x]) : recommandé pour prouver le "
                           "recueil (RGPD art. 7(1), PCF)",
                           "no source[x] evidence (recommended)", warning=True))
    _raise_errors(problems)
    return ParsedConsent(kind, date_time, performers, root, _can_express_will(resource),
                         tuple(problems))


def compile_directive(resource: dict, *, consent_id: str, version: int, sha256: str,
                      person_local_id: str, changed_at: dt.datetime | None = None) -> Directive:
    """A stored version → the PDP's Directive (no recording-time checks)."""
    parsed = read_consent(resource, person_local_id=person_local_id,
                          now=dt.datetime.max.replace(tzinfo=dt.UTC), recording=False)
    return Directive(id=consent_id, version=version, sha256=sha256, kind=parsed.kind,
                     status=resource["status"], date_time=parsed.date_time,
                     performers=parsed.performers, root=parsed.root, changed_at=changed_at)


# ------------------------------------------------------------------ pieces


def _raise_errors(problems: list[Problem]) -> None:
    if any(p.severity is Severity.error for p in problems):
        raise FhirInputError(problems)


def _date_time(resource: dict, now: dt.datetime, recording: bool,
               problems: list[Problem]) -> dt.datetime:
    value = resource.get("dateTime")
    if value is None:
        problems.append(_p("Consent.dateTime", "consent-datetime",
                           "dateTime (date du recueil) est obligatoire",
                           "dateTime is required"))
        return now
    try:
        parsed = parse_fhir_datetime(value)
    except ValueError:
        problems.append(_p("Consent.dateTime", "consent-datetime",
                           "dateTime illisible", "unreadable dateTime"))
        return now
    if recording and parsed > now + dt.timedelta(minutes=5):
        problems.append(_p("Consent.dateTime", "consent-datetime-future",
                           "la date du recueil est dans le futur",
                           "dateTime is in the future"))
    return parsed


def _reference_id(ref: dict, resource_type: str) -> str | None:
    text = ref.get("reference")
    if isinstance(text, str) and text.startswith(f"{resource_type}/"):
        return text.split("/", 1)[1].split("/_history")[0]
    if ref.get("type") == resource_type and isinstance(ref.get("identifier"), dict):
        value = ref["identifier"].get("value")
        return value if isinstance(value, str) else None
    return None


def _performers(resource: dict, local_id: str, problems: list[Problem]) -> tuple[Performer, ...]:
    refs = resource.get("performer") or []
    if not refs:
        problems.append(_p("Consent.performer", "consent-performer",
                           "performer (qui consent : la personne ou son représentant) est obligatoire",
                           "performer is required"))
    out = []
    for ref in refs:
        patient = _reference_id(ref, "Patient")
        related = _reference_id(ref, "RelatedPerson")
        if patient is not None and patient == local_id:
            out.append(Performer("person", local_id))
        elif related is not None:
            out.append(Performer("representative", related))
        else:
            out.append(Performer("other", str(ref.get("reference") or ref.get("type") or "?")))
    return tuple(out)


def _patient(resource: dict, local_id: str, agreement: bool, problems: list[Problem]) -> None:
    ref = resource.get("patient")
    if ref is None:
        if not agreement:  # TDDUI agreements are found from the care plan, not the patient
            problems.append(_p("Consent.patient", "consent-patient",
                               "patient est obligatoire (Patient/<identifiant local>)",
                               "patient is required"))
        return
    ident = ref.get("identifier") or {}
    if _reference_id(ref, "Patient") == local_id:
        return
    if ident.get("system") == SID_LOCAL_PERSON and str(ident.get("value", "")).endswith(f"/{local_id}"):
        return
    problems.append(_p("Consent.patient", "consent-patient-mismatch",
                       "le consentement ne désigne pas la personne de l'adresse "
                       "(attendu Patient/<identifiant local>)",
                       "the consent's patient is not the person addressed"))


def _kind(categories: list, problems: list[Problem]) -> ConsentKind:
    found = [c.get("code") for concept in categories for c in codings(concept)
             if c.get("system") == CS_CONSENT_CATEGORY]
    known = {k.value: k for k in ConsentKind if k not in (ConsentKind.generic, ConsentKind.agreement)}
    for code in found:
        if code not in known:
            problems.append(_p("Consent.category", "consent-category-unknown",
                               f"catégorie Relais inconnue : {code!r}",
                               f"unknown Relais category {code!r}"))
    kinds = {known[c] for c in found if c in known}
    if len(kinds) > 1:
        problems.append(_p("Consent.category", "consent-category-single",
                           "une seule catégorie Relais par consentement",
                           "one Relais category per consent"))
    return next(iter(kinds)) if len(kinds) == 1 else ConsentKind.generic


def _root(resource: dict, problems: list[Problem]) -> Provision | None:
    rule_effects = set()
    for i, c in enumerate(codings(resource.get("policyRule"))):
        if c.get("system") == CS_ACT_CODE and c.get("code") in POLICY_RULE_EFFECT:
            rule_effects.add(POLICY_RULE_EFFECT[c["code"]])
        else:
            problems.append(_p(f"Consent.policyRule.coding[{i}]", "consent-policy-rule",
                               "policyRule : code attendu OPTIN, OPTINR, OPTOUT ou OPTOUTE "
                               "(v3-ActCode)", "policyRule must be v3-ActCode OPTIN/OPTOUT"))
    if len(rule_effects) > 1:
        problems.append(_p("Consent.policyRule", "consent-policy-rule",
                           "policyRule contradictoire", "contradictory policyRule"))
    rule_effect = next(iter(rule_effects)) if len(rule_effects) == 1 else None
    node = resource.get("provision")
    declared = node.get("type") if isinstance(node, dict) else None
    if declared is not None and declared not in ("permit", "deny"):
        problems.append(_p("Consent.provision.type", "consent-provision-type",
                           "provision.type vaut permit ou deny", "type is permit or deny"))
        return None
    effect = Effect(declared) if declared else rule_effect
    if declared and rule_effect and Effect(declared) is not rule_effect:
        problems.append(_p("Consent.provision.type", "consent-root-decision-conflict",
                           "provision.type contredit policyRule (OPTIN = permit, OPTOUT = deny)",
                           "provision.type contradicts policyRule"))
    if effect is None:
        problems.append(_p("Consent.provision.type", "consent-root-decision",
                           "décision racine absente : provision.type (permit/deny) ou "
                           "policyRule OPTIN/OPTOUT", "no root decision"))
        return None
    if not isinstance(node, dict):
        return Provision(effect=effect, path="Consent.policyRule")
    children = []
    nested = node.get("provision") or []
    if len(nested) > MAX_NESTED:
        problems.append(_p("Consent.provision.provision", "consent-provision-count",
                           f"au plus {MAX_NESTED} exceptions", f"at most {MAX_NESTED} exceptions"))
    for i, child in enumerate(nested[:MAX_NESTED]):
        path = f"Consent.provision.provision[{i}]"
        if child.get("provision"):
            problems.append(_p(f"{path}.provision", "consent-provision-depth",
                               "un seul niveau d'exceptions (IHE PCF : provision.provision.provision "
                               "interdit)", "one level of nested provisions only (IHE PCF)"))
        if child.get("type") not in ("permit", "deny"):
            problems.append(_p(f"{path}.type", "consent-provision-type",
                               "une exception porte obligatoirement type = permit ou deny (R4)",
                               "nested provisions require type (R4)"))
            continue
        children.append(_node(child, Effect(child["type"]), path, (), problems))
    return _node(node, effect, "Consent.provision", tuple(children), problems)


def _node(node: dict, effect: Effect, path: str, children: tuple[Provision, ...],
          problems: list[Problem]) -> Provision:
    start = end = None
    period = node.get("period") or {}
    try:
        start = parse_fhir_datetime(period["start"]) if period.get("start") else None
        end = parse_fhir_datetime(period["end"], end=True) if period.get("end") else None
    except ValueError:
        problems.append(_p(f"{path}.period", "consent-period", "période illisible",
                           "unreadable period"))
    if start and end and end < start:
        problems.append(_p(f"{path}.period", "consent-period",
                           "la fin de la période précède son début", "period ends before it starts"))
    return Provision(
        effect=effect, path=path, start=start, end=end,
        actors=_actors(node, path, problems),
        purposes=_purposes(node, path, problems),
        classes=_classes(node, path, problems),
        unevaluated=tuple(name for name in UNEVALUATED if node.get(name)),
        children=children,
    )


def _actors(node: dict, path: str, problems: list[Problem]) -> frozenset[Token] | None:
    actors = node.get("actor") or []
    if not actors:
        return None
    tokens = set()
    for i, actor in enumerate(actors):
        where = f"{path}.actor[{i}]"
        if not has_coding([actor.get("role")], CS_PARTICIPATION_TYPE, "IRCP"):
            problems.append(_p(f"{where}.role", "consent-actor-role",
                               "actor.role vaut IRCP (destinataire de l'information, IHE PCF)",
                               "actor.role is fixed to IRCP (IHE PCF)"))
        ref = actor.get("reference") or {}
        token = identifier_token(ref.get("identifier") or {})
        if token is None:
            problems.append(_p(f"{where}.reference.identifier", "consent-actor-identifier",
                               "destinataire non reconnu : identifier attendu RPPS, idNat_PS, FINESS, "
                               "mailto: (MSSanté), système cible Relais ou catégorie R.1110-2",
                               "actor must be identified by RPPS, FINESS, mailto:, a target "
                               "system or an R.1110-2 category"))
        else:
            tokens.add(token)
    return frozenset(tokens)


def _purposes(node: dict, path: str, problems: list[Problem]) -> frozenset[str] | None:
    purposes = node.get("purpose") or []
    if not purposes:
        return None
    out = set()
    for i, c in enumerate(purposes):
        if c.get("system") != CS_ACT_REASON or c.get("code") not in PURPOSE_PARENT:
            problems.append(_p(f"{path}.purpose[{i}]", "consent-purpose",
                               f"finalité inconnue : {c.get('code')!r} (v3-ActReason : TREAT, COC, "
                               "HOPERAT, PATRQT…)", "unknown purpose of use"))
        else:
            out.add(c["code"])
    return frozenset(out)


def _classes(node: dict, path: str, problems: list[Problem]) -> frozenset[str] | None:
    classes = node.get("class") or []
    if not classes:
        return None
    out = set()
    for i, c in enumerate(classes):
        if c.get("system") != CS_DATA_CATEGORY or c.get("code") not in DataCategory.__members__:
            problems.append(_p(f"{path}.class[{i}]", "consent-class",
                               f"catégorie de données inconnue : {c.get('code')!r} (attendu l'une de "
                               f"{', '.join(DataCategory.__members__)})", "unknown data category"))
        else:
            out.add(c["code"])
    return frozenset(out)


def _names_actor(root: Provision) -> bool:
    return root.actors is not None or any(c.actors is not None for c in root.children)


def _can_express_will(resource: dict) -> bool | None:
    for ext in resource.get("extension") or []:
        if ext.get("url") == EXT_CAN_EXPRESS_WILL and isinstance(ext.get("valueBoolean"), bool):
            return ext["valueBoolean"]
    return None


def with_profile(resource: dict, kind: ConsentKind) -> dict:
    """Declare the Relais profile on privacy directives (agreements keep theirs)."""
    if kind is ConsentKind.agreement:
        return resource
    meta = dict(resource.get("meta") or {})
    profiles = list(meta.get("profile") or [])
    if PRIVACY_CONSENT_PROFILE not in profiles:
        profiles.append(PRIVACY_CONSENT_PROFILE)
    meta["profile"] = profiles
    return {**resource, "meta": meta}


def consent_full_url(consent_id: str) -> str:
    """Bundle.entry.fullUrl of a stored Consent: an absolute URI, as FHIR R4 requires of it
    (Bundle.entry.fullUrl), here the urn:uuid of its id (a UUID in hex, see ConsentRegistry)."""
    return f"urn:uuid:{uuid.UUID(hex=consent_id)}"
