"""The person's care team → one cercle de soins transaction (ans.fhir.fr.cds 2.0.1, specs §6.1).

Input: the CareTeam the consent engine keeps (shape of cds-ihe-careteam, members as identifier
references — gateway/consent/fhir_careteam.py) and the plan (the person, the representatives,
the platform). Output: a `cds-bundle-transaction-creation` Bundle whose every resource declares
its profile and every reference is a `urn:uuid` of the Bundle, derived from business
identifiers (uuid5): the same care team and plan give the same Bundle.

Sending it again updates rather than duplicates (FHIR R4 conditional interactions):
- CareTeam: `PUT CareTeam?identifier=<cercle-de-soins>|3<FINESS>/<idUsager>` — created on the
  first sync, replaced afterwards, whatever the peer's logical id;
- RelatedPerson (the platform's own data about the representatives): `PUT …?identifier=`;
- Patient, Organization, PractitionerRole (shared with every contributor of the tool): `POST`
  with `ifNoneExist`, so Relais creates them when missing and never overwrites them.
The creation profile admits PUT (its `req-met` invariant: POST for a new element, PUT for one
that exists) and requires the CareTeam and the Patient, which every sync carries.
"""

from __future__ import annotations

from gateway.model import Plan, Problem
from mappings.fhir.cds import actors
from mappings.fhir.cds import constants as c
from mappings.fhir.tddui.common import full_url
from mappings.fhir.tddui.context import Ctx
from mappings.fhir.tddui.context import build as tddui_context

SOURCE = f"relais-cds {c.CDS_VERSION}"
_PROFESSIONAL_TYPES = ("PractitionerRole", "Practitioner")


class CareTeamUnmappable(ValueError):
    """The care team cannot become a cercle de soins transaction; `problems` say why (French)."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def _problem(location: str, rule: str, fr: str, en: str) -> Problem:
    return Problem(location=location, rule=rule, message=fr, message_en=en, source=SOURCE)


def care_team_identifier(plan: Plan) -> dict:
    return {"system": c.ID_CARE_TEAM, "value": f"3{plan.platform.finess}/{plan.person.local_id}"}


def _search(identifier: dict) -> str:
    return f"identifier={identifier['system']}|{identifier['value']}"


class _Entries:
    """The Bundle's entries by fullUrl, in order of first appearance."""

    def __init__(self):
        self.items: dict[str, dict] = {}

    def add(self, url: str, resource: dict, request: dict) -> str:
        if url not in self.items:
            self.items[url] = {"fullUrl": url, "resource": resource, "request": request}
        return url

    def create(self, url: str, resource: dict, key: dict) -> str:
        return self.add(url, resource, {"method": "POST", "url": resource["resourceType"],
                                        "ifNoneExist": _search(key)})

    def upsert(self, url: str, resource: dict, key: dict) -> str:
        return self.add(url, resource, {"method": "PUT", "url": f"{resource['resourceType']}?{_search(key)}"})


def _organization_url(identifier: dict) -> str:
    if identifier["system"] == c.FINESS:  # same key as the TDDUI mapping: one structure, one fullUrl
        return full_url(f"{c.IDNAT_STRUCT}|1{identifier['value']}")
    return full_url(f"Organization|{identifier['system']}|{identifier['value']}")


def _representative(ctx: Ctx, identifier: dict):
    """The plan's representative a RelatedPerson member designates: by local id (as the consent
    engine names them, `RelatedPerson/<id>`) or by the TDDUI representative identifier."""
    value = identifier.get("value")
    if not value:
        return None
    for rep in ctx.plan.person.representatives:
        if value == rep.id or identifier == actors.representative_identifier(ctx, rep):
            return rep
    return None


def _member(ctx: Ctx, entries: _Entries, part: dict, where: str, problems: list[Problem]) -> str | None:
    """The fullUrl of the entry a participant's member becomes (added once), or None (problem)."""
    member = part.get("member") or {}
    kind, identifier = member.get("type"), member.get("identifier") or {}
    if kind == "RelatedPerson":
        return _related_person(ctx, entries, identifier, where, problems)
    if not identifier.get("system") or not identifier.get("value"):
        problems.append(_problem(f"{where}.member.identifier", "cds-member-identifier",
                                 "membre du cercle de soins sans identifiant (système et valeur)",
                                 "care team member without identifier (system and value)"))
        return None
    if kind in _PROFESSIONAL_TYPES:
        structure = (part.get("onBehalfOf") or {}).get("identifier")
        url = full_url(f"PractitionerRole|{identifier['system']}|{identifier['value']}")
        return entries.create(url, actors.practitioner_role(ctx.plan, identifier, structure), identifier)
    if kind == "Organization":
        platform = ctx.plan.platform
        name = platform.name if identifier == {"system": c.FINESS, "value": platform.finess} else None
        return entries.create(_organization_url(identifier), actors.organization(identifier, name), identifier)
    problems.append(_problem(f"{where}.member.type", "cds-member-type",
                             f"type de membre non pris en charge par le cercle de soins : {kind!r} "
                             "(PractitionerRole, Organization ou RelatedPerson)",
                             f"member type not supported by the cercle de soins: {kind!r}"))
    return None


def _related_person(ctx: Ctx, entries: _Entries, identifier: dict, where: str,
                    problems: list[Problem]) -> str | None:
    rep = _representative(ctx, identifier)
    if rep is None:
        said = identifier.get("value") or "sans identifiant"
        problems.append(_problem(
            f"{where}.member.identifier", "cds-related-person-unknown",
            f"le membre {said} (RelatedPerson) n'est pas un représentant légal du projet : "
            "cds-fr-related-person exige son nom, un moyen de contact et son lien avec la personne",
            f"member {said} (RelatedPerson) is no legal representative of the plan"))
        return None
    if not rep.telecom:
        index = ctx.plan.person.representatives.index(rep)
        problems.append(_problem(
            f"$.person.representatives[{index}].telecom", "cds-related-person-telecom",
            f"le représentant légal {rep.id} n'a ni téléphone ni courriel : cds-fr-related-person "
            "exige au moins un moyen de contact (telecom 1..*)",
            f"legal representative {rep.id} has no telecom: cds-fr-related-person requires one"))
        return None
    resource = actors.related_person(ctx, rep, ctx.patient)
    return entries.upsert(ctx.urls["representative"][rep.id], resource, resource["identifier"][0])


def _roles(part: dict) -> list[dict]:
    """Role codings but Relais's own (the R.1110-2 category stays in the consent engine)."""
    out = []
    for concept in part.get("role") or []:
        kept = [x for x in concept.get("coding") or [] if not str(x.get("system", "")).startswith(c.RELAIS_BASE)]
        if kept:
            out.append({**{k: v for k, v in concept.items() if k != "coding"}, "coding": kept})
    return out


def _period(span: dict) -> dict:
    return {k: span[k] for k in ("start", "end") if span.get(k)}


# specs §6.1: cds-ihe-careteam — identifier 1..1, status, name, subject → Patient, period.start,
# participant.member → PractitionerRole | RelatedPerson | Organization with period.start (a
# member who left keeps the occurrence with its end; one who came back has a new occurrence).
def care_team_bundle(care_team: dict, plan: Plan) -> dict:
    ctx = tddui_context(plan)
    entries = _Entries()
    entries.create(ctx.patient, actors.patient(ctx), actors.patient_key(ctx))
    platform = {"system": c.FINESS, "value": plan.platform.finess}
    managing = entries.create(_organization_url(platform), actors.organization(platform, plan.platform.name), platform)

    problems: list[Problem] = []
    participants = []
    for i, part in enumerate(care_team.get("participant") or []):
        url = _member(ctx, entries, part, f"CareTeam.participant[{i}]", problems)
        if url is None:
            continue
        out: dict = {}
        roles = _roles(part)
        if roles:
            out["role"] = roles
        out["member"] = {"reference": url}
        span = _period(part.get("period") or {})
        if span:
            out["period"] = span
        participants.append(out)
    if not (care_team.get("period") or {}).get("start"):
        problems.append(_problem("CareTeam.period.start", "cds-period",
                                 "le cercle de soins n'a pas de date de début (period.start)",
                                 "the care team has no start (period.start)"))
    if problems:
        raise CareTeamUnmappable(problems)

    team: dict = {
        "resourceType": "CareTeam",
        "meta": actors.meta(c.CARE_TEAM),
        "identifier": [care_team_identifier(plan)],
        "status": care_team.get("status") or "active",
        "name": care_team.get("name") or "Cercle de soins",
        "subject": {"reference": ctx.patient},
        "period": _period(care_team["period"]),
    }
    if participants:
        team["participant"] = participants
    team["managingOrganization"] = [{"reference": managing}]
    first = _Entries()  # the CareTeam leads, as in the guide's example
    first.upsert(full_url(f"CareTeam|{c.ID_CARE_TEAM}|{team['identifier'][0]['value']}"), team, team["identifier"][0])
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [c.versioned(c.BUNDLE_CREATION)]},
        "type": "transaction",
        "entry": [*first.items.values(), *entries.items.values()],
    }
