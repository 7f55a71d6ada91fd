"""Hypothesis strategies: valid single support plans (every one passes `validate_plan` on TODAY).

`plans()` draws a plan as a JSON-shaped dict; `valid_plans()` the validated `Plan`. The shapes
follow the plan's own rules (gateway/plans/validate.py): unique ids and resolvable references,
SERAFIN-PH leaves of the right family, INS with a valid key, who may sign which agreement…
Generation is kept cheap (small lists, small alphabets) so that hundreds of examples run fast.

Conventions the TDDUI mapping relies on and real data follows too: birth given names hold no
whitespace (the INS list of given names is space separated), datetimes carry an offset, and a
birth order is only given when the INS (a NIR) does not already carry it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from gateway.model.identity import INS_OIDS, ins_check_key
from gateway.model.plan import (
    AssessmentMethod,
    ExpressedBy,
    IntensityUnit,
    LifeDomain,
    Modality,
    NeedLevel,
    ObjectiveStatus,
    Outcome,
    ParticipationMode,
    Place,
    ReviewKind,
    Specialisation,
    TaskStatus,
    ZoneKind,
)
from gateway.plans import validate_plan
from mappings.serafin import nomenclature

TODAY = dt.date(2026, 11, 26)

_terms = nomenclature()
NEED_CODES = [c.code for c in _terms.family("besoin") if c.is_leaf]
NEED_ANY = [c.code for c in _terms.family("besoin")]
SERVICE_CODES = [c.code for c in _terms if c.family != "besoin" and c.is_leaf]

_WORD = "abcdefghijklmnopqrstuvwxyzéèàçùôÉÀ'-"
words = st.text(alphabet=_WORD + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12).filter(
    lambda s: s[0].isalpha())
texts = st.lists(words, min_size=1, max_size=6).map(" ".join)
long_texts = st.one_of(texts, st.lists(texts, min_size=2, max_size=3).map("\n".join))
opt = lambda s: st.none() | s  # noqa: E731
dates = st.dates(min_value=dt.date(2015, 1, 1), max_value=dt.date(2027, 12, 31))
past_dates = st.dates(min_value=dt.date(2015, 1, 1), max_value=TODAY)
_OFFSETS = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2))]
datetimes = st.builds(
    lambda d, h, m, tz: dt.datetime(d.year, d.month, d.day, h, m, tzinfo=tz),
    past_dates, st.integers(6, 20), st.sampled_from([0, 15, 30, 45]), st.sampled_from(_OFFSETS),
)
decimals = st.builds(lambda n, places: Decimal(n).scaleb(-places), st.integers(1, 2000), st.integers(0, 2))


def _iso(value):
    return value.isoformat() if value is not None else None


@st.composite
def periods(draw, start=None):
    a = draw(opt(dates)) if start is None else start
    b = draw(opt(dates))
    if a and b and b < a:
        a, b = b, a
    return {k: _iso(v) for k, v in (("start", a), ("end", b)) if v is not None}


@st.composite
def ins(draw, birth: dt.date, sex: str):
    oid = draw(st.sampled_from(list(INS_OIDS)))
    first = {"male": "1", "female": "2"}.get(sex, draw(st.sampled_from("12")))
    if INS_OIDS[oid] == "INS-NIA":
        first = draw(st.sampled_from("78"))
    digits = (f"{first}{birth.year % 100:02d}{birth.month:02d}{draw(st.integers(1, 95)):02d}"
              f"{draw(st.integers(1, 999)):03d}{draw(st.integers(0, 999)):03d}")
    return {"value": f"{digits}{ins_check_key(digits):02d}", "oid": oid}


telecoms = st.lists(st.builds(lambda s, v: {"system": s, "value": v},
                              st.sampled_from(["phone", "email", "mssante"]), words), max_size=2)
addresses = st.builds(
    lambda lines, pc, city, insee: {k: v for k, v in (("lines", lines), ("postal_code", pc), ("city", city),
                                                      ("insee_code", insee)) if v},
    st.lists(texts, max_size=2), opt(st.from_regex(r"[0-9]{5}", fullmatch=True)), opt(words),
    opt(st.from_regex(r"[0-9]{5}", fullmatch=True)),
)


@st.composite
def persons(draw, adult: bool):
    year = draw(st.integers(1960, 2000) if adult else st.integers(2012, 2024))
    birth = dt.date(year, draw(st.integers(1, 12)), draw(st.integers(1, 28)))
    sex = draw(st.sampled_from(["male", "female", "unknown"]))
    status = draw(st.sampled_from(["PROV", "RECUP", "VALI", "QUAL"]))
    identity = draw(ins(birth, sex)) if status in ("RECUP", "QUAL") or draw(st.booleans()) else None
    person = {
        "local_id": draw(st.from_regex(r"U[0-9]{1,8}", fullmatch=True)),
        "identity_status": status,
        "birth_family_name": draw(texts).upper(),
        "birth_given_names": draw(st.lists(words, min_size=1, max_size=3)),
        "birth_date": birth.isoformat(),
        "sex": sex,
    }
    if identity:
        person["ins"] = identity
    if status == "QUAL" or draw(st.booleans()):
        person["birthplace_insee"] = draw(st.from_regex(r"(?:[0-9]{5}|2[AB][0-9]{3})", fullmatch=True))
    if identity is None or INS_OIDS[identity["oid"]] == "INS-NIA":
        order = draw(opt(st.integers(1, 999)))
        if order:
            person["birth_order"] = order
    for key, strat in (("used_family_name", texts), ("used_given_name", texts), ("address", addresses)):
        value = draw(opt(strat))
        if value:
            person[key] = value
    person["telecom"] = draw(telecoms)
    return person


def _rep(draw, rid: str, role: str) -> dict:
    rep = {"id": rid, "role": role, "family_name": draw(texts), "given_names": draw(st.lists(texts, min_size=1, max_size=2))}
    for key, strat in (("relationship", texts), ("organisation", texts), ("address", addresses)):
        value = draw(opt(strat))
        if value:
            rep[key] = value
    rep["telecom"] = draw(telecoms)
    rep["period"] = draw(periods())
    return rep


@st.composite
def plans(draw) -> dict:
    adult = draw(st.booleans())
    person = draw(persons(adult))
    reps = []
    if not adult:
        reps.append(_rep(draw, "R1", "parent"))
    else:
        measure = draw(st.sampled_from([None, "tutelle", "curatelle"]))
        if measure:
            scope = "representation" if measure == "tutelle" else "assistance"
            person["protection"] = {"kind": measure, "scope": scope, "period": draw(periods()),
                                    **({"judgement_reference": "RG-1"} if draw(st.booleans()) else {})}
            reps.append(_rep(draw, "R1", "guardian" if measure == "tutelle" else "curator"))
        elif draw(st.booleans()):
            reps.append(_rep(draw, "R1", "other_legal"))
    person["representatives"] = reps

    n_pros = draw(st.integers(1, 3))
    pros = []
    for i in range(n_pros):
        pro = {"id": f"P{i + 1}", "family_name": draw(texts), "role": draw(texts), "telecom": draw(telecoms)}
        for key, strat in (("given_name", texts), ("organisation", texts),
                           ("rpps", st.from_regex(r"[0-9]{11}", fullmatch=True))):
            value = draw(opt(strat))
            if value:
                pro[key] = value
        pros.append(pro)
    pro_ids = [p["id"] for p in pros]
    pick_pro = st.sampled_from(pro_ids)

    needs = [{"id": f"B{i}", "code": draw(st.sampled_from(NEED_CODES)), "description": draw(long_texts),
              "level": draw(st.sampled_from(list(NeedLevel))).value, "assessed_on": draw(past_dates).isoformat(),
              "method": draw(st.sampled_from(list(AssessmentMethod))).value,
              **({"assessor_id": draw(pick_pro)} if draw(st.booleans()) else {}),
              **({"tool": draw(texts)} if draw(st.booleans()) else {}),
              **({"analysis": draw(long_texts)} if draw(st.booleans()) else {})}
             for i in range(draw(st.integers(0, 3)))]
    need_ids = [n["id"] for n in needs]
    objectives = []
    for i in range(draw(st.integers(0, 3))):
        start, target = draw(opt(dates)), draw(opt(dates))
        if start and target and target < start:
            start, target = target, start
        obj = {"id": f"O{i}", "title": draw(texts), "description": draw(long_texts),
               "life_domain": draw(st.sampled_from(list(LifeDomain))).value,
               "need_ids": draw(st.lists(st.sampled_from(need_ids), max_size=2)) if need_ids else [],
               "status": draw(st.sampled_from(list(ObjectiveStatus))).value}
        for key, value in (("start_date", _iso(start)), ("target_date", _iso(target)),
                           ("expected_result", draw(opt(texts))), ("person_opinion", draw(opt(texts))),
                           ("strategy", draw(opt(texts))), ("outcome_note", draw(opt(texts))),
                           ("outcome", draw(opt(st.sampled_from(list(Outcome)))))):
            if value:
                obj[key] = value.value if hasattr(value, "value") else value
        objectives.append(obj)
    objective_ids = [o["id"] for o in objectives]
    pick_objectives = st.lists(st.sampled_from(objective_ids), max_size=2) if objective_ids else st.just([])
    actions = []
    for i in range(draw(st.integers(0, 2))):
        action = {"id": f"AC{i}", "title": draw(texts), "objective_ids": draw(pick_objectives),
                  "status": draw(st.sampled_from(list(TaskStatus))).value, "period": draw(periods())}
        for key, value in (("description", draw(opt(long_texts))), ("owner_id", draw(opt(pick_pro))),
                           ("owner_label", draw(opt(texts))), ("expected_result", draw(opt(texts))),
                           ("person_opinion", draw(opt(texts)))):
            if value:
                action[key] = value
        actions.append(action)
    action_ids = [a["id"] for a in actions]
    services = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["platform_team", "mainstream_partner", "specialised_partner"]))
        provider = {"kind": kind, "name": draw(texts)}
        if kind != "platform_team" or draw(st.booleans()):
            provider["identifier"] = {"system": draw(st.sampled_from(["finess", "siret", "rpps", "adeli", "local"])),
                                      "value": draw(words)}
        svc = {"id": f"S{i}", "code": draw(st.sampled_from(SERVICE_CODES)), "title": draw(texts),
               "modality": draw(st.sampled_from(list(Modality))).value, "place": draw(st.sampled_from(list(Place))).value,
               "provider": provider, "period": draw(periods()), "objective_ids": draw(pick_objectives),
               "status": draw(st.sampled_from(list(TaskStatus))).value}
        if draw(st.booleans()):
            unit = draw(st.sampled_from(list(IntensityUnit)))
            limit = 168 if unit is IntensityUnit.hours_per_week else 14
            svc["intensity"] = {"value": str(min(draw(decimals), Decimal(limit))), "unit": unit.value}
        for key, value in (("description", draw(opt(long_texts))),
                           ("action_id", draw(opt(st.sampled_from(action_ids))) if action_ids else None)):
            if value:
                svc[key] = value
        services.append(svc)
    service_ids = [s["id"] for s in services]
    stays = [{"id": f"SEJ{i}", "period": draw(periods()),
              **{k: v for k, v in (("admission_date", _iso(draw(opt(dates)))), ("entry_mode", draw(opt(texts))),
                                   ("exit_mode", draw(opt(texts))), ("comment", draw(opt(long_texts))),
                                   ("modality", draw(opt(st.sampled_from([m.value for m in Modality]))))) if v}}
             for i in range(draw(st.integers(0, 2)))]
    stay_ids = [s["id"] for s in stays]
    events = []
    for i in range(draw(st.integers(0, 3))):
        start = draw(datetimes)
        ev = {"id": f"EV{i}", "code": draw(st.sampled_from(SERVICE_CODES)),
              "status": draw(st.sampled_from(["planned", "in_progress", "finished", "cancelled"])),
              "period": {"start": start.isoformat(),
                         "end": (start + dt.timedelta(minutes=draw(st.integers(0, 600)))).isoformat()},
              "professional_ids": draw(st.lists(pick_pro, max_size=2)),
              "person_present": draw(st.booleans())}
        outside = draw(st.booleans())
        if outside:
            ev["outside_plan"] = True
        elif service_ids and draw(st.booleans()):
            ev["service_id"] = draw(st.sampled_from(service_ids))
        for key, value in (("label", draw(opt(texts))), ("report", draw(opt(long_texts))),
                           ("cancel_reason", draw(opt(texts))),
                           ("modality", draw(opt(st.sampled_from([m.value for m in Modality])))),
                           ("place", draw(opt(st.sampled_from([p.value for p in Place])))),
                           ("stay_id", draw(opt(st.sampled_from(stay_ids))) if stay_ids else None),
                           ("transport_km", str(draw(decimals)) if draw(st.booleans()) else None),
                           ("transport_minutes", draw(opt(st.integers(0, 1440))))):
            if value is not None:
                ev[key] = value
        events.append(ev)
    evaluations = [{"id": f"EVAL{i}", "date": draw(past_dates).isoformat(),
                    "status": draw(st.sampled_from(["in_progress", "completed"])),
                    **({"assessor_id": draw(pick_pro)} if draw(st.booleans()) else {}),
                    "items": [{"code": draw(st.sampled_from(NEED_ANY)), "value": draw(st.integers(0, 100)),
                               **({"comment": draw(texts)} if draw(st.booleans()) else {})}
                              for _ in range(draw(st.integers(1, 4)))]}
                   for i in range(draw(st.integers(0, 2)))]

    status = draw(st.sampled_from(["draft", "validated", "agreed", "suspended", "closed"]))
    agreements = [{"id": "ACC-S", "party": "structure", "performer_kind": "professional",
                   "performer_id": draw(pick_pro), "date": draw(datetimes).isoformat(), "period": draw(periods())}]
    signer = reps[0] if reps and reps[0]["role"] in ("parent", "guardian") else None
    person_agreement = {"id": "ACC-P", "party": "person", "date": draw(datetimes).isoformat(),
                        "performer_kind": "representative" if signer else "person"}
    if signer:
        person_agreement["performer_id"] = signer["id"]
    agreements.append(person_agreement)
    if status == "draft" and draw(st.booleans()):
        agreements = []

    start = draw(dates)
    plan = {
        "id": draw(st.from_regex(r"PP[A-Z]?-[0-9]{1,4}", fullmatch=True)),
        "title": draw(texts),
        "status": status,
        "period": draw(periods(start=start)),
        "established_on": draw(past_dates).isoformat(),
        "person": person,
        "platform": {
            "finess": draw(st.from_regex(r"(?:[0-9]{2}|2[AB])[0-9]{7}", fullmatch=True)),
            "name": draw(texts),
            "coordinator": {"professional_id": draw(pick_pro),
                            **({"since": draw(dates).isoformat()} if draw(st.booleans()) else {})},
            "intervention_zone": draw(st.lists(st.builds(
                lambda k, code, label: {"kind": k.value, "code": code, **({"label": label} if label else {})},
                st.sampled_from(list(ZoneKind)), st.from_regex(r"[0-9]{2,5}", fullmatch=True), opt(texts)),
                max_size=2)),
        },
        "professionals": pros,
        "needs": needs,
        "objectives": objectives,
        "actions": actions,
        "services": services,
        "stays": stays,
        "events": events,
        "evaluations": evaluations,
        "agreements": agreements,
        "specialisations": draw(st.lists(st.sampled_from([s.value for s in Specialisation]), max_size=2, unique=True)),
        "reviews": [{"date": draw(dates).isoformat(), "kind": draw(st.sampled_from(list(ReviewKind))).value,
                     **({"note": draw(texts)} if draw(st.booleans()) else {})}
                    for _ in range(draw(st.integers(0, 2)))],
        "expectations": [{"id": f"ATT{i}", "text": draw(long_texts),
                          "life_domain": draw(st.sampled_from(list(LifeDomain))).value,
                          "expressed_by": draw(st.sampled_from(list(ExpressedBy))).value,
                          **{k: v for k, v in (("expressed_on", _iso(draw(opt(past_dates)))),
                                               ("comment", draw(opt(texts)))) if v}}
                         for i in range(draw(st.integers(0, 2)))],
        "consent_refs": draw(st.lists(st.from_regex(r"C[0-9]{1,3}", fullmatch=True), max_size=2)),
    }
    if draw(st.booleans()):
        plan["platform"]["finess_legal_entity"] = draw(st.from_regex(r"[0-9]{9}", fullmatch=True))
    for key, value in (
        ("version_label", draw(opt(texts))),
        ("category_code", draw(opt(st.sampled_from(["PAI", "PPA", "PPIA", "PP", "PPI", "PA", "PI"])))),
        ("next_review", _iso(draw(opt(dates)))),
        ("notes", draw(opt(long_texts))),
        ("life_project", draw(opt(st.builds(
            lambda t, d, by: {"text": t, "expressed_by": by.value, **({"expressed_on": d.isoformat()} if d else {})},
            long_texts, opt(past_dates), st.sampled_from(list(ExpressedBy)))))),
        ("participation", draw(opt(st.builds(
            lambda modes, means, fac: {"modes": modes, "communication_means": means,
                                       **({"facilitator": fac} if fac else {})},
            st.lists(st.sampled_from([m.value for m in ParticipationMode]), min_size=1, max_size=2),
            st.lists(texts, max_size=2), opt(texts))))),
        ("orientation_decisions", draw(st.lists(st.builds(
            lambda n, d, v: {"id": f"DEC-{n}", "decision_number": f"CDAPH-{n}", "mdph": "51",
                             "decision_date": d.isoformat(), "orientation": "SESSAD",
                             "validity": {"start": v.isoformat(), "end": (v + dt.timedelta(days=700)).isoformat()}},
            st.integers(1, 9), past_dates, dates), max_size=1))),
    ):
        if value:
            plan[key] = value
    return plan


def valid_plans():
    """Validated `Plan` objects (the strategy's dicts pass `validate_plan` on TODAY)."""

    def check(data):
        plan, problems = validate_plan(data, TODAY)
        assert plan is not None, [p.line() for p in problems]
        return plan

    return plans().map(check)
