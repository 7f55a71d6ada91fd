"""Strict validation of a plan, explained: every problem has a JSON path, a rule id and a
plain French reason (English beside it).

Two passes: the pydantic model (structure, formats, INS check key, local invariants), then
the rules that need the SERAFIN-PH nomenclature or look across the plan (references, families,
leaves, who signed what). Pure: `today` is passed in, nothing is read from a clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

import orjson
from pydantic import ValidationError

from gateway.model import Plan, Problem, Severity, json_path
from gateway.model.identity import ProtectionScope, RepresentativeRole
from gateway.model.plan import PlanStatus
from gateway.plans.jsoninput import JsonInputError, loads_object
from mappings.serafin import nomenclature

SOURCE = "relais-plan 1.0"
_FAMILY_PLURAL = {
    "besoin": "besoins (1.x)",
    "prestation_directe": "prestations directes (2.x)",
    "prestation_indirecte": "prestations indirectes (3.x)",
}

# French wording for pydantic's built-in error types; custom errors already speak French.
_FR = {
    "missing": "champ obligatoire manquant",
    "extra_forbidden": "champ inconnu (non prévu par le modèle du projet)",
    "string_type": "une chaîne de caractères est attendue",
    "string_too_short": "valeur vide ou trop courte",
    "string_too_long": "valeur trop longue (au plus {max_length} caractères)",
    "string_pattern_mismatch": "format invalide (attendu : {pattern})",
    "date_parsing": "date invalide (attendu AAAA-MM-JJ)",
    "date_from_datetime_parsing": "date invalide (attendu AAAA-MM-JJ)",
    "date_from_datetime_inexact": "une date sans heure est attendue",
    "date_type": "une date est attendue (AAAA-MM-JJ)",
    "datetime_parsing": "date-heure invalide (attendu ISO 8601, ex. 2026-01-15T09:00:00+01:00)",
    "datetime_from_date_parsing": "date-heure invalide (attendu ISO 8601)",
    "datetime_type": "une date-heure ISO 8601 est attendue",
    "enum": "valeur non autorisée (attendu : {expected})",
    "literal_error": "valeur non autorisée (attendu : {expected})",
    "int_parsing": "un nombre entier est attendu",
    "int_type": "un nombre entier est attendu",
    "int_from_float": "un nombre entier est attendu",
    "decimal_parsing": "un nombre décimal est attendu",
    "decimal_type": "un nombre décimal est attendu",
    "decimal_max_digits": "trop de chiffres (au plus {max_digits})",
    "decimal_max_places": "trop de décimales (au plus {decimal_places})",
    "bool_parsing": "un booléen (true/false) est attendu",
    "bool_type": "un booléen (true/false) est attendu",
    "greater_than": "la valeur doit être supérieure à {gt}",
    "greater_than_equal": "la valeur doit être au moins {ge}",
    "less_than": "la valeur doit être inférieure à {lt}",
    "less_than_equal": "la valeur doit être au plus {le}",
    "too_short": "liste trop courte (au moins {min_length} élément(s))",
    "too_long": "liste trop longue (au plus {max_length} éléments)",
    "list_type": "une liste est attendue",
    "model_type": "un objet JSON est attendu",
    "model_attributes_type": "un objet JSON est attendu",
    "dict_type": "un objet JSON est attendu",
    "finite_number": "nombre non fini refusé",
    "string_unicode": "texte invalide (caractère Unicode isolé)",
    "json_invalid": "JSON invalide",
}


# Stable Relais rule ids for pydantic's error types (these are part of the output contract).
_RULES = {
    "missing": "required",
    "extra_forbidden": "unknown-field",
    "string_pattern_mismatch": "format",
    "string_unicode": "format",
    "enum": "value-not-allowed",
    "literal_error": "value-not-allowed",
    "string_too_short": "length",
    "string_too_long": "length",
    "too_short": "length",
    "too_long": "length",
}


def _rule(kind: str) -> str:
    if kind in _RULES:
        return _RULES[kind]
    if kind.startswith("datetime"):
        return "invalid-datetime"
    if kind.startswith("date"):
        return "invalid-date"
    if kind.startswith(("greater_than", "less_than", "decimal_max", "finite_number")):
        return "out-of-range"
    if kind.endswith(("_type", "_parsing", "_from_float")) or kind == "json_invalid":
        return "wrong-type"
    return kind.replace("_", "-")  # custom errors: their own id (ins-check-key, period-order…)


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        ctx = {k: v for k, v in (err.get("ctx") or {}).items()}
        template = _FR.get(kind)
        if template is not None:
            try:
                message = template.format(**ctx)
            except (KeyError, IndexError):
                message = template
        elif kind == "value_error":
            message = f"valeur invalide : {err['msg']}"
        else:
            message = err["msg"]  # custom errors (PydanticCustomError) carry French text
        problems.append(
            Problem(
                location=json_path(err["loc"]),
                rule=_rule(kind),
                message=message,
                message_en=err["msg"] if template is not None else "",
                source=SOURCE,
            )
        )
    return problems


def validate_plan(data: object, today: dt.date) -> tuple[Plan | None, list[Problem]]:
    """Return the plan (None when any error) and every problem found."""
    try:
        # Strict JSON-mode validation: a date must be an ISO string, never a number read as a
        # Unix timestamp; booleans must be true/false, not "yes" or 1.
        plan = Plan.model_validate_json(orjson.dumps(data, default=str), strict=True)
    except orjson.JSONEncodeError as exc:
        return None, [_p("$", "json-not-serialisable", f"document non sérialisable en JSON : {exc}",
                         f"not JSON-serialisable: {exc}")]
    except ValidationError as exc:
        return None, _pydantic_problems(exc)
    problems = list(_plan_rules(plan, today))
    has_error = any(p.severity is Severity.error for p in problems)
    return (None if has_error else plan), problems


# ------------------------------------------------------------------------- the rules


def _p(location: str, rule: str, message: str, message_en: str, warning: bool = False) -> Problem:
    return Problem(
        location=location,
        rule=rule,
        message=message,
        message_en=message_en,
        severity=Severity.warning if warning else Severity.error,
        source=SOURCE,
    )


def _serafin(location: str, code: str, families: tuple[str, ...], leaf: bool) -> Iterator[Problem]:
    """A SERAFIN-PH code must exist, be of the expected family, and be a leaf when asked."""
    terms = nomenclature()
    concept = terms.get(code)
    wanted = " ou ".join(_FAMILY_PLURAL[f] for f in families)
    if concept is None:
        hint = _cnsa_hint(code)
        yield _p(
            location,
            "serafin-unknown-code",
            f"code SERAFIN-PH inconnu : {code}{hint}",
            f"unknown SERAFIN-PH code: {code}",
        )
        return
    if concept.family not in families:
        yield _p(
            location,
            "serafin-wrong-family",
            f"le code {code} relève des {_FAMILY_PLURAL[concept.family]} ; attendu : {wanted}",
            f"code {code} is a {concept.family}, expected {' or '.join(families)}",
        )
    elif leaf and not concept.is_leaf:
        children = ", ".join(c.code for c in terms.children(code))
        yield _p(
            location,
            "serafin-not-leaf",
            f"le code {code} (« {concept.label} ») regroupe d'autres codes : "
            f"choisir le plus précis ({children})",
            f"code {code} is not a leaf; use one of {children}",
        )


def _cnsa_hint(code: str) -> str:
    """The CNSA 2016 documents number health needs 1.1.1.x where the national terminology
    says 1.1.x (specs §9, defect 12): point to the NOS code instead of guessing silently."""
    parts = code.split(".")
    if len(parts) == 4 and parts[:3] == ["1", "1", "1"]:
        nos = f"1.1.{parts[3]}"
        if nos in nomenclature():
            return f" (numérotation CNSA ? le code national est {nos})"
    return ""


def _ids(items: Iterable, path: str, what: str) -> tuple[set[str], list[Problem]]:
    seen: set[str] = set()
    problems = []
    for i, item in enumerate(items):
        if item.id in seen:
            problems.append(
                _p(
                    f"{path}[{i}].id",
                    "duplicate-id",
                    f"identifiant {item.id!r} en double dans {what}",
                    f"duplicate id {item.id!r} in {what}",
                )
            )
        seen.add(item.id)
    return seen, problems


def _refs(location: str, ref: str | None, known: set[str], what: str) -> Iterator[Problem]:
    if ref is not None and ref not in known:
        yield _p(
            location,
            "broken-reference",
            f"{ref!r} : {what} introuvable dans le projet",
            f"no {what} has id {ref!r}",
        )


def _plan_rules(plan: Plan, today: dt.date) -> Iterator[Problem]:
    directs = ("prestation_directe", "prestation_indirecte")
    pros, dup = _ids(plan.professionals, "$.professionals", "les professionnels")
    yield from dup
    reps, dup = _ids(plan.person.representatives, "$.person.representatives", "les représentants")
    yield from dup
    needs, dup = _ids(plan.needs, "$.needs", "les besoins")
    yield from dup
    objectives, dup = _ids(plan.objectives, "$.objectives", "les objectifs")
    yield from dup
    actions, dup = _ids(plan.actions, "$.actions", "les actions")
    yield from dup
    services, dup = _ids(plan.services, "$.services", "les prestations")
    yield from dup
    stays, dup = _ids(plan.stays, "$.stays", "les séjours")
    yield from dup
    for name, label in (("expectations", "les attentes"), ("events", "les évènements"),
                        ("evaluations", "les évaluations"), ("agreements", "les accords"),
                        ("orientation_decisions", "les décisions d'orientation")):
        yield from _ids(getattr(plan, name), f"$.{name}", label)[1]

    yield from _refs(
        "$.platform.coordinator.professional_id",
        plan.platform.coordinator.professional_id,
        pros,
        "professionnel",
    )
    if plan.person.birth_date > today:
        yield _p("$.person.birth_date", "birth-date-future", "date de naissance dans le futur",
                 "birth date in the future")
    yield from _representation_rules(plan, today)
    yield from _ins_traits(plan)

    for i, need in enumerate(plan.needs):
        yield from _serafin(f"$.needs[{i}].code", need.code, ("besoin",), leaf=True)
        yield from _refs(f"$.needs[{i}].assessor_id", need.assessor_id, pros, "professionnel")
        if need.assessed_on > today:
            yield _p(f"$.needs[{i}].assessed_on", "date-future",
                     "date d'évaluation dans le futur", "assessment date in the future")
    for i, obj in enumerate(plan.objectives):
        for j, ref in enumerate(obj.need_ids):
            yield from _refs(f"$.objectives[{i}].need_ids[{j}]", ref, needs, "besoin")
        if not obj.need_ids and plan.needs:
            yield _p(f"$.objectives[{i}].need_ids", "objective-without-need",
                     "objectif rattaché à aucun besoin évalué",
                     "objective addresses no assessed need", warning=True)
    for i, action in enumerate(plan.actions):
        for j, ref in enumerate(action.objective_ids):
            yield from _refs(f"$.actions[{i}].objective_ids[{j}]", ref, objectives, "objectif")
        yield from _refs(f"$.actions[{i}].owner_id", action.owner_id, pros, "professionnel")
    for i, svc in enumerate(plan.services):
        yield from _serafin(f"$.services[{i}].code", svc.code, directs, leaf=True)
        for j, ref in enumerate(svc.objective_ids):
            yield from _refs(f"$.services[{i}].objective_ids[{j}]", ref, objectives, "objectif")
        yield from _refs(f"$.services[{i}].action_id", svc.action_id, actions, "action")
    for i, event in enumerate(plan.events):
        yield from _serafin(f"$.events[{i}].code", event.code, directs, leaf=True)
        yield from _refs(f"$.events[{i}].service_id", event.service_id, services, "prestation")
        yield from _refs(f"$.events[{i}].stay_id", event.stay_id, stays, "séjour")
        for j, ref in enumerate(event.professional_ids):
            yield from _refs(f"$.events[{i}].professional_ids[{j}]", ref, pros, "professionnel")
        if event.outside_plan and event.service_id:
            yield _p(f"$.events[{i}].outside_plan", "event-outside-plan-linked",
                     "un évènement hors projet ne peut pas être rattaché à une prestation prévue",
                     "an event outside the plan cannot be linked to a planned service")
    for i, ev in enumerate(plan.evaluations):
        yield from _refs(f"$.evaluations[{i}].assessor_id", ev.assessor_id, pros, "professionnel")
        for j, item in enumerate(ev.items):
            yield from _serafin(f"$.evaluations[{i}].items[{j}].code", item.code, ("besoin",), leaf=False)
    yield from _agreement_rules(plan, reps, pros)


def _representation_rules(plan: Plan, today: dt.date) -> Iterator[Problem]:
    """Who may act for the person (consent_audit §1.10): parents for a minor, the protector
    named by the measure for a protected adult."""
    person = plan.person
    roles = {r.role for r in person.representatives}
    minor = person.age_on(today) < 18
    if minor and RepresentativeRole.parent not in roles and RepresentativeRole.guardian not in roles:
        yield _p("$.person.representatives", "minor-without-parental-authority",
                 "personne mineure sans titulaire de l'autorité parentale ni tuteur renseigné",
                 "minor with no holder of parental authority recorded", warning=True)
    if minor and person.protection is not None:
        yield _p("$.person.protection", "protection-on-minor",
                 "une mesure de protection juridique des majeurs ne s'applique pas à un mineur",
                 "an adult protection measure cannot apply to a minor")
    if person.protection is not None and not minor:
        wanted = (RepresentativeRole.guardian if person.protection.scope is ProtectionScope.representation
                  else RepresentativeRole.curator)
        if wanted not in roles and RepresentativeRole.other_legal not in roles:
            label = "tuteur (représentation)" if wanted is RepresentativeRole.guardian else "curateur (assistance)"
            yield _p("$.person.representatives", "protection-without-protector",
                     f"mesure de protection enregistrée sans {label} parmi les représentants",
                     f"protection measure recorded without its protector ({wanted.value})")
    for i, rep in enumerate(person.representatives):
        if rep.role is RepresentativeRole.parent and not minor:
            yield _p(f"$.person.representatives[{i}].role", "parental-authority-on-adult",
                     "l'autorité parentale prend fin à la majorité : rôle « parent » impossible",
                     "parental authority ends at 18")


def _ins_traits(plan: Plan) -> Iterator[Problem]:
    """The NIR encodes sex, birth year and month (INSEE): a mismatch with the traits usually
    means the INS belongs to someone else. A warning, since registry corrections exist."""
    person, ins = plan.person, plan.person.ins
    if ins is None or ins.kind == "INS-NIA":
        return
    sex_digit, yy, mm = ins.value[0], ins.value[1:3], ins.value[3:5]
    expected_sex = {"1": "male", "2": "female"}.get(sex_digit)
    if expected_sex and person.sex.value != "unknown" and person.sex.value != expected_sex:
        yield _p("$.person.ins.value", "ins-traits-mismatch",
                 "le 1er chiffre du matricule INS ne correspond pas au sexe de la personne",
                 "INS sex digit does not match the person's sex", warning=True)
    if yy != f"{person.birth_date.year % 100:02d}" or (
        "01" <= mm <= "12" and mm != f"{person.birth_date.month:02d}"
    ):
        yield _p("$.person.ins.value", "ins-traits-mismatch",
                 "l'année ou le mois de naissance codés dans le matricule INS ne correspondent pas "
                 "à la date de naissance",
                 "INS birth year or month does not match the birth date", warning=True)


def _agreement_rules(plan: Plan, reps: set[str], pros: set[str]) -> Iterator[Problem]:
    for i, agreement in enumerate(plan.agreements):
        where = f"$.agreements[{i}].performer_id"
        if agreement.party == "structure" and agreement.performer_kind != "professional":
            yield _p(f"$.agreements[{i}].performer_kind", "structure-agreement-by-professional",
                     "l'accord de la structure est signé par un professionnel qui la représente",
                     "the structure's agreement is given by one of its professionals")
        if agreement.performer_kind == "representative":
            yield from _refs(where, agreement.performer_id, reps, "représentant légal")
            rep = next((r for r in plan.person.representatives if r.id == agreement.performer_id), None)
            if rep is not None and rep.role is RepresentativeRole.curator:
                # An assistance measure cannot replace the person (consent_audit L17).
                yield _p(where, "curator-cannot-agree-alone",
                         "un curateur assiste la personne mais ne peut pas donner l'accord à sa place",
                         "a curator (assistance) cannot agree instead of the person")
        elif agreement.performer_kind == "professional":
            yield from _refs(where, agreement.performer_id, pros, "professionnel")
            if agreement.party == "person":
                yield _p(f"$.agreements[{i}].performer_kind", "person-agreement-by-professional",
                         "l'accord de l'usager ne peut pas être signé par un professionnel",
                         "the person's agreement cannot be given by a professional")
    if plan.status is not PlanStatus.draft and not any(a.party == "structure" for a in plan.agreements):
        # TDDUI 2.2.0 CarePlan.supportingInfo:accordStructure 1..*: a project leaves draft
        # only once the structure has agreed to it.
        yield _p("$.agreements", "missing-structure-agreement",
                 f"projet « {plan.status.value} » sans accord de la structure (obligatoire hors brouillon)",
                 "a non-draft plan needs the structure's agreement (TDDUI accordStructure 1..*)")
    if plan.status is PlanStatus.agreed and not any(a.party == "person" for a in plan.agreements):
        yield _p("$.status", "agreed-without-person-agreement",
                 "projet « agreed » sans accord de la personne ou de son représentant",
                 "plan marked agreed but no agreement by the person is recorded")


def validate_plan_json(raw: bytes | str, today: dt.date, **limits: int) -> tuple[Plan | None, list[Problem]]:
    """Strict JSON reading (jsoninput) then `validate_plan`."""
    try:
        data = loads_object(raw, **limits)
    except JsonInputError as exc:
        return None, [exc.problem]
    return validate_plan(data, today)
