"""Read and write the person's équipe de soins as a FHIR R4 `CareTeam`.

Shape of the ANS cercle de soins profile `cds-ihe-careteam` 2.0.1 (specs §6.1): `identifier`
1..1, `status`, `name`, `subject` = the person, `period.start`, and for each participant
`member` (PractitionerRole | RelatedPerson | Organization), `role` and `period.start`; a member
who leaves gets a `period.end`, one who comes back a new participant occurrence.

Relais declares its own profile (`relais-care-team`, vocab) following those constraints, with:
- members as logical references: `member.type` + `member.identifier` (RPPS, idNat_PS, FINESS,
  `mailto:` MSSanté address; any identifier for a RelatedPerson), since Relais does not hold
  the Annuaire Santé resources; `onBehalfOf.identifier` = the member's structure (FINESS);
- the member's R.1110-2 category as a `role` coding of the Relais r1110-2-category system
  (health / social / other), next to TRE_R260 role codes;
- the L.1110-12 membership basis in extension `care-team-membership-basis` (same-structure,
  recognised-by-person, formal-team; default formal-team).
`identifier` and `name` are supplied when absent (a neutral name: no personal data).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fhir.resources.R4B.careteam import CareTeam as FhirCareTeam
from pydantic import ValidationError

from gateway.consent.fhir_common import (
    FhirInputError,
    codings,
    identifier_token,
    parse_fhir_datetime,
    problem,
    structure_problems,
    token_identifier,
)
from gateway.consent.model import TeamMember, Token
from gateway.consent.vocab import (
    CARE_TEAM_PROFILE,
    CARE_TEAM_SOURCE,
    CS_PROFESSION_CATEGORY,
    EXT_MEMBERSHIP_BASIS,
    SID_CARE_TEAM,
    SID_LOCAL_PERSON,
    MembershipBasis,
    Profession,
    RecipientKind,
)
from gateway.model import Problem

STATUSES = ("proposed", "active", "suspended", "inactive", "entered-in-error")
MEMBER_KIND = {"PractitionerRole": RecipientKind.professional,
               "Practitioner": RecipientKind.professional,
               "Organization": RecipientKind.organisation,
               "RelatedPerson": RecipientKind.person}
MAX_PARTICIPANTS = 500


def _p(location: str, rule: str, fr: str, en: str) -> Problem:
    return problem(location, rule, fr, en, CARE_TEAM_SOURCE)


def read_care_team(resource: object, *, person_local_id: str,
                   validate: bool = True) -> tuple[dict, tuple[TeamMember, ...]]:
    """Check a CareTeam; return it normalised (identifier, name, profile) and its members.
    `validate=False` skips the FHIR structure check (stored versions, already checked)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "CareTeam":
        raise FhirInputError([_p("CareTeam.resourceType", "careteam-resource-type",
                                 "une ressource FHIR CareTeam est attendue",
                                 "a FHIR CareTeam resource is expected")])
    try:
        if validate:
            FhirCareTeam.model_validate(resource)
    except ValidationError as exc:
        raise FhirInputError(structure_problems("CareTeam", exc)) from None
    problems: list[Problem] = []
    if resource.get("status") not in STATUSES:
        problems.append(_p("CareTeam.status", "careteam-status",
                           "status est obligatoire : proposed, active, suspended ou inactive",
                           "status is required"))
    subject = resource.get("subject") or {}
    ident = subject.get("identifier") or {}
    if subject.get("reference") != f"Patient/{person_local_id}" and not (
            ident.get("system") == SID_LOCAL_PERSON
            and str(ident.get("value", "")).endswith(f"/{person_local_id}")):
        problems.append(_p("CareTeam.subject", "careteam-subject",
                           "subject doit désigner la personne de l'adresse (Patient/<identifiant local>)",
                           "subject must be the person addressed"))
    if not (resource.get("period") or {}).get("start"):
        problems.append(_p("CareTeam.period.start", "careteam-period",
                           "period.start (date de création du cercle de soins) est obligatoire",
                           "period.start is required"))
    participants = resource.get("participant") or []
    if len(participants) > MAX_PARTICIPANTS:
        problems.append(_p("CareTeam.participant", "careteam-size",
                           f"au plus {MAX_PARTICIPANTS} membres", f"at most {MAX_PARTICIPANTS} members"))
    members = []
    team_active = resource.get("status") == "active"
    for i, part in enumerate(participants[:MAX_PARTICIPANTS]):
        member = _member(part, f"CareTeam.participant[{i}]", problems)
        if member is not None and team_active:
            members.append(member)
    if problems:
        raise FhirInputError(problems)
    normalised = dict(resource)
    if not normalised.get("identifier"):
        normalised["identifier"] = [{"system": SID_CARE_TEAM, "value": uuid.uuid4().hex}]
    normalised.setdefault("name", "Cercle de soins")
    meta = dict(normalised.get("meta") or {})
    if CARE_TEAM_PROFILE not in (meta.get("profile") or []):
        meta["profile"] = [*(meta.get("profile") or []), CARE_TEAM_PROFILE]
    normalised["meta"] = meta
    return normalised, tuple(members)


def _member(part: dict, where: str, problems: list[Problem]) -> TeamMember | None:
    ref = part.get("member")
    if not isinstance(ref, dict):
        problems.append(_p(f"{where}.member", "careteam-member",
                           "member est obligatoire (cercle de soins)", "member is required"))
        return None
    kind = MEMBER_KIND.get(ref.get("type"))
    if kind is None:
        problems.append(_p(f"{where}.member.type", "careteam-member-type",
                           "member.type : PractitionerRole, Practitioner, Organization ou RelatedPerson",
                           "member.type must be PractitionerRole, Practitioner, Organization or RelatedPerson"))
        return None
    ident = ref.get("identifier") or {}
    token: Token | None = identifier_token(ident)
    if token is None and kind is RecipientKind.person and ident.get("value"):
        token = ("local", str(ident["value"]))
    if token is None or token[0] in ("system", "category"):
        problems.append(_p(f"{where}.member.identifier", "careteam-member-identifier",
                           "membre non identifié : RPPS, idNat_PS, FINESS ou adresse MSSanté (mailto:)",
                           "member must be identified by RPPS, FINESS or MSSanté address"))
        return None
    period = part.get("period") or {}
    if not period.get("start"):
        problems.append(_p(f"{where}.period.start", "careteam-participant-period",
                           "period.start (début de participation) est obligatoire",
                           "participant period.start is required"))
        return None
    try:
        start = parse_fhir_datetime(period["start"])
        end = parse_fhir_datetime(period["end"], end=True) if period.get("end") else None
    except ValueError:
        problems.append(_p(f"{where}.period", "careteam-participant-period", "période illisible",
                           "unreadable period"))
        return None
    profession, roles = None, []
    for concept in part.get("role") or []:
        for c in codings(concept):
            if c.get("system") == CS_PROFESSION_CATEGORY:
                if c.get("code") not in Profession.__members__:
                    problems.append(_p(f"{where}.role", "careteam-profession",
                                       "catégorie R.1110-2 : health, social ou other",
                                       "R.1110-2 category: health, social or other"))
                else:
                    profession = Profession(c["code"])
            elif c.get("code"):
                roles.append(str(c["code"]))
    basis = MembershipBasis.formal_team
    for ext in part.get("extension") or []:
        if ext.get("url") == EXT_MEMBERSHIP_BASIS:
            try:
                basis = MembershipBasis(ext.get("valueCode"))
            except ValueError:
                problems.append(_p(f"{where}.extension", "careteam-membership-basis",
                                   "fondement d'appartenance : same-structure, recognised-by-person "
                                   "ou formal-team (L.1110-12)", "unknown membership basis"))
    return TeamMember(kind=kind, tokens=frozenset({token}), profession=profession, basis=basis,
                      start=start, end=end, roles=tuple(roles))


@dataclass(frozen=True)
class MemberSpec:
    """A member to put in a CareTeam built by Relais (tests, CLI, demo)."""

    kind: str  # PractitionerRole | Organization | RelatedPerson
    identifier: Token
    profession: Profession | None = None
    start: str = "2026-01-01"
    end: str | None = None
    basis: MembershipBasis = MembershipBasis.formal_team
    organisation: str | None = None  # FINESS of the member's structure
    roles: tuple[tuple[str, str], ...] = ()  # (system, code)


def care_team_resource(person_local_id: str, members: list[MemberSpec], *,
                       start: str = "2026-01-01", status: str = "active") -> dict:
    participants = []
    for m in members:
        role = [{"coding": [{"system": s, "code": c}]} for s, c in m.roles]
        if m.profession is not None:
            role.append({"coding": [{"system": CS_PROFESSION_CATEGORY, "code": m.profession.value}]})
        part: dict = {
            "extension": [{"url": EXT_MEMBERSHIP_BASIS, "valueCode": m.basis.value}],
            "member": {"type": m.kind, "identifier": token_identifier(m.identifier)},
            "period": {"start": m.start, **({"end": m.end} if m.end else {})},
        }
        if role:
            part["role"] = role
        if m.organisation:
            part["onBehalfOf"] = {"type": "Organization",
                                  "identifier": token_identifier(("finess", m.organisation))}
        participants.append(part)
    return {
        "resourceType": "CareTeam",
        "meta": {"profile": [CARE_TEAM_PROFILE]},
        "status": status,
        "name": "Cercle de soins",
        "subject": {"reference": f"Patient/{person_local_id}"},
        "period": {"start": start},
        "participant": participants,
    }
