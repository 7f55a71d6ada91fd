"""CDA R2 document -> plan (documents received from MSSanté or read back from the DMP).

Reverse of `export.py` (CI-SIS header, specs §2/§7; Relais body sections). A Relais document
comes back whole. Another producer's CDA (e.g. a TDDUI export, templateId …1.1.1.58) gives what
its header carries — person, INS, platform, period — and every section or entry the plan cannot
hold is reported as a warning naming it, never dropped silently.

What cannot be read (a missing code or value, a date or number that is not one, an unexpected
xsi:type) is an error naming its XPath and the reason, never quoting the value (a birth date, a
name: personal data); the document then gives no plan, never half of one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from pydantic import ValidationError

from gateway.model import Plan, Problem, Severity, json_path
from mappings.cda import constants as C
from mappings.cda.codec import assign, parse_ts
from mappings.cda.sections import (
    ATTRIBUTE_TEMPLATE,
    BY_SECTION_TEMPLATE,
    PLAN_ENTRY_TEMPLATE,
    PLAN_SECTION_TEMPLATE,
    Kind,
)
from mappings.cda.xmlsafe import UnsafeXml, parse_xml, xpath_of

SOURCE = "relais-cda-import"
_X = C.XPATH_NS
_SEX = {"M": "male", "F": "female", "U": "unknown"}
_ITEM_TEMPLATE = C.relais_oid(1, 5)
_XSI_TYPE = f"{{{C.XSI}}}type"
_TYPES = ("BL", "INT", "REAL", "ST")  # what export.py writes (attribute observations)
# XSD lexical forms, ASCII digits only (int() would take "1_0" or "١٢").
_INT = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
_REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}", re.ASCII)
_OID = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,40}){0,40}", re.ASCII)
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", re.ASCII)


@dataclass
class ImportResult:
    plan: Plan | None
    data: dict  # what could be read, in the plan's JSON form (even when `plan` is None)
    problems: list[Problem] = field(default_factory=list)


def _problem(rule: str, node, message: str, message_en: str, severity=Severity.warning) -> Problem:
    location = xpath_of(node) if isinstance(node, etree._Element) else str(node)
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=severity, source=SOURCE)


class _Unreadable(Exception):
    """A node the reader cannot read: its place and the reason, never its value."""

    def __init__(self, rule: str, location: str, message: str, message_en: str):
        super().__init__(message)
        self.problem = Problem(location=location, rule=rule, message=message, message_en=message_en,
                               severity=Severity.error, source=SOURCE)


def _first(node, path: str):
    found = node.xpath(path, namespaces=_X)
    return found[0] if found else None


def _text(node, path: str) -> str | None:
    found = _first(node, path)
    if found is None:
        return None
    value = found if isinstance(found, str) else found.text
    return value.strip() if value and value.strip() else None


def _iso(ts: str | None, want_datetime: bool = False) -> str | None:
    if not ts:
        return None
    value = parse_ts(ts)
    if want_datetime and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not want_datetime and isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat()


def _date(node, problems: list[Problem], want_datetime: bool = False) -> str | None:
    """ISO form of the HL7 TS `node/@value`; None when absent. Unreadable: an error naming the
    attribute, not quoting it (a birthTime is personal data)."""
    ts = node.get("value") if node is not None else None
    if ts is None:
        return None
    try:
        return _iso(ts, want_datetime)
    except ValueError as exc:
        problems.append(_problem("cda-date-invalid", f"{xpath_of(node)}/@value", f"date illisible : {exc}",
                                 "unreadable HL7 date (YYYYMMDD[hhmm[ss]][+-hhmm] expected, existing day and time)",
                                 Severity.error))
        return None


def _typed(node, what: str, what_en: str, expect: tuple[str, ...] = _TYPES) -> Any:
    """The value of `<value xsi:type=…>` as export.py wrote it (BL, INT, REAL, ST)."""
    kind = node.get(_XSI_TYPE, "ST").split(":")[-1]
    if kind not in expect:
        named = _TOKEN.fullmatch(kind) is not None  # an HL7 type name is shown, anything else is not
        raise _Unreadable("cda-value-type-unexpected", f"{xpath_of(node)}/@xsi:type",
                          f"{what} : type de valeur{f' « {kind} »' if named else ''} non pris en charge "
                          f"(attendu : {', '.join(expect)})",
                          f"{what_en}: value type{f' {kind}' if named else ''} not supported "
                          f"(expected {', '.join(expect)})")
    if kind == "ST":
        return node.text or ""
    raw = node.get("value")
    text = raw.strip(" \t\r\n") if raw is not None else ""
    if kind == "BL" and raw in ("true", "false"):
        return raw == "true"
    if kind == "INT" and _INT.fullmatch(text):
        return int(text)
    if kind == "REAL" and _REAL.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    expected = {"BL": ("true ou false", "true or false"), "INT": ("un entier", "a whole number"),
                "REAL": ("un nombre décimal fini", "a finite decimal number")}[kind]
    missing = raw is None
    raise _Unreadable(f"cda-value-{'missing' if missing else 'invalid'}", f"{xpath_of(node)}/@value",
                      f"{what} : valeur {kind} {'absente' if missing else 'illisible'} ({expected[0]} attendu)",
                      f"{what_en}: {kind} value {'missing' if missing else 'unreadable'} ({expected[1]} expected)")


def _attribute(target: dict, obs) -> None:
    code = _first(obs, "cda:code")
    value = _first(obs, "cda:value")
    if code is None or not code.get("code"):
        raise _Unreadable("cda-attribute-incomplete", xpath_of(obs) if code is None else f"{xpath_of(code)}/@code",
                          "observation d'attribut sans code (chemin du champ du projet)",
                          "attribute observation without a code (the plan field's path)")
    if value is None:
        raise _Unreadable("cda-attribute-incomplete", xpath_of(obs), "observation d'attribut sans valeur (cda:value)",
                          "attribute observation without a value (cda:value)")
    typed = _typed(value, "attribut", "attribute")
    try:
        assign(target, code.get("code"), typed)
    except (ValueError, TypeError) as exc:
        raise _Unreadable("cda-attribute-invalid", f"{xpath_of(code)}/@code", f"attribut illisible : {exc}",
                          "unreadable attribute: not a field path of the plan, or list indices out of order") from None


def _apply_attributes(target: dict, holder, relation: str, problems: list[Problem]) -> None:
    for obs in holder.xpath(f"cda:{relation}/cda:observation[cda:templateId/@root='{ATTRIBUTE_TEMPLATE}']",
                            namespaces=_X):
        try:
            _attribute(target, obs)
        except _Unreadable as exc:
            problems.append(exc.problem)


def _evaluation_item(obs) -> dict:
    code = _first(obs, "cda:code")
    if code is None or not code.get("code"):
        raise _Unreadable("cda-item-code-missing", xpath_of(obs) if code is None else f"{xpath_of(code)}/@code",
                          "item d'évaluation sans code SERAFIN-PH (cda:code/@code)",
                          "evaluation item without a SERAFIN-PH code (cda:code/@code)")
    value = _first(obs, "cda:value")
    if value is None:
        raise _Unreadable("cda-item-value-missing", xpath_of(obs), "item d'évaluation sans valeur (cda:value)",
                          "evaluation item without a value (cda:value)")
    entry = {"code": code.get("code"), "value": _typed(value, "item d'évaluation", "evaluation item", ("INT",))}
    comment = _text(obs, "cda:text")
    if comment is not None:
        entry["comment"] = comment
    return entry


def _entry(kind: Kind, act, problems: list[Problem]) -> dict:
    item: dict = {}
    if kind.has_id:
        ident = _first(act, "cda:id")
        if ident is not None and ident.get("extension"):
            item["id"] = ident.get("extension")
    if kind.serafin:
        code = _first(act, "cda:code")
        if code is not None:
            system = code.get("codeSystem")
            if system != C.SERAFIN_CS:  # shown when it is an OID: never echo arbitrary text
                shown = f" (système {system})" if system and _OID.fullmatch(system) else ""
                problems.append(_problem("cda-serafin-code-system", code, f"code hors SERAFIN-PH{shown}",
                                         "code outside SERAFIN-PH", Severity.error))
            item["code"] = code.get("code")
    text = _first(act, "cda:text")
    if kind.text and text is not None and _first(text, "cda:reference") is None and text.text:
        item[kind.text] = text.text
    status = _first(act, "cda:statusCode")
    if kind.status and status is not None:
        reverse = {v: k for k, v in kind.status.items()}
        if status.get("code") in reverse:
            item["status"] = reverse[status.get("code")]
        elif status.get("code") is not None:
            problems.append(_problem("cda-status-unknown", f"{xpath_of(status)}/@code",
                                     f"statut inconnu (attendus : {', '.join(reverse)})",
                                     f"unknown status (expected {', '.join(reverse)})", Severity.error))
    time = _first(act, "cda:effectiveTime")
    if time is not None:
        if kind.value_at:
            value = _date(time, problems, kind.datetime)
            if value:
                assign(item, kind.value_at, value)
        for bound, path in (("low", kind.low), ("high", kind.high)):
            value = _date(_first(time, f"cda:{bound}[@value]"), problems, kind.datetime) if path else None
            if value:
                assign(item, path, value)
    if kind.value_field:
        value = _first(act, "cda:value")
        if value is not None and value.get("code"):
            item[kind.value_field] = value.get("code")
    if kind.key == "evaluations":
        items = []
        for obs in act.xpath(f"cda:component/cda:observation[cda:templateId/@root='{_ITEM_TEMPLATE}']",
                             namespaces=_X):
            try:
                items.append(_evaluation_item(obs))
            except _Unreadable as exc:
                problems.append(exc.problem)
        item["items"] = items
        _apply_attributes(item, act, "component", problems)
    else:
        _apply_attributes(item, act, "entryRelationship", problems)
    return item


def _person(role, problems: list[Problem]) -> tuple[dict, str | None]:
    person: dict = {}
    finess = None
    for ident in role.xpath("cda:id", namespaces=_X):
        root, ext = ident.get("root"), ident.get("extension")
        if root in C.INS_ROOTS and ext:
            person["ins"] = {"value": ext, "oid": root}
        elif root == C.ID_PERSON_LOCAL and ext and "/" in ext:
            finess, person["local_id"] = ext.split("/", 1)
        elif ext and "local_id" not in person:
            person["local_id"] = ext.replace("/", "-")[:64]
    if "local_id" not in person and "ins" in person:
        person["local_id"] = person["ins"]["value"]
    # CI-SIS INS annex: an INS is only sent for a qualified identity.
    person["identity_status"] = "QUAL" if "ins" in person else "PROV"
    addr = _first(role, "cda:addr")
    if addr is not None:
        address: dict = {}
        lines = [t.text for t in addr.xpath("cda:streetAddressLine", namespaces=_X) if t.text]
        if not lines:
            parts = [_text(addr, f"cda:{p}") for p in ("houseNumber", "streetName")]
            lines = [" ".join(p for p in parts if p)] if any(parts) else []
            lines += [t.text for t in addr.xpath("cda:additionalLocator", namespaces=_X) if t.text]
        if lines:
            address["lines"] = lines
        for key, tag in (("postal_code", "postalCode"), ("city", "city")):
            if _text(addr, f"cda:{tag}"):
                address[key] = _text(addr, f"cda:{tag}")
        country = _text(addr, "cda:country")
        if country and len(country) == 2:
            address["country"] = country
        elif country:  # not quoted: part of an address
            problems.append(_problem("cda-country-not-iso", _first(addr, "cda:country"),
                                     "pays non codé ISO 3166 (2 lettres) : ignoré",
                                     "country not an ISO 3166 code (2 letters): ignored"))
        if address:
            person["address"] = address
    patient = _first(role, "cda:patient")
    if patient is None:
        return person, finess
    name = _first(patient, "cda:name")
    if name is not None:
        person["birth_family_name"] = (_text(name, "cda:family[@qualifier='BR']")
                                       or _text(name, "cda:family[not(@qualifier)]") or _text(name, "cda:family"))
        all_given = _text(name, "cda:given[not(@qualifier)]")
        first = _text(name, "cda:given[@qualifier='BR']")
        person["birth_given_names"] = all_given.split() if all_given else ([first] if first else [])
        if _text(name, "cda:family[@qualifier='CL']"):
            person["used_family_name"] = _text(name, "cda:family[@qualifier='CL']")
        if _text(name, "cda:given[@qualifier='CL']"):
            person["used_given_name"] = _text(name, "cda:given[@qualifier='CL']")
    sex = _first(patient, "cda:administrativeGenderCode/@code")
    if sex:
        person["sex"] = _SEX.get(sex, "unknown")
    birth = _date(_first(patient, "cda:birthTime[@value]"), problems)
    if birth:
        person["birth_date"] = birth
    order = _first(patient, "sdtc:multipleBirthOrderNumber[@value]")
    if order is not None and re.fullmatch(r"[0-9]{1,3}", order.get("value"), re.ASCII):
        person["birth_order"] = int(order.get("value"))
    elif order is not None:
        problems.append(_problem("cda-birth-order-invalid", f"{xpath_of(order)}/@value",
                                 "rang de naissance illisible (entier attendu)",
                                 "unreadable birth order (whole number expected)", Severity.error))
    county = _text(patient, "cda:birthplace/cda:place/cda:addr/cda:county")
    if county:
        person["birthplace_insee"] = county
    reps = []
    for guardian in patient.xpath("cda:guardian", namespaces=_X):
        rep: dict = {}
        rid = _first(guardian, "cda:id/@extension")
        rep["id"] = rid or f"R{len(reps) + 1}"
        rep["role"] = "other_legal"  # a Relais document restores it from its attributes
        rep["family_name"] = _text(guardian, "cda:guardianPerson/cda:name/cda:family")
        rep["given_names"] = [g.text for g in guardian.xpath("cda:guardianPerson/cda:name/cda:given",
                                                             namespaces=_X) if g.text]
        reps.append(rep)
    if reps:
        person["representatives"] = reps
    return person, finess


def cda_to_plan(xml: bytes) -> ImportResult:
    """Read a CDA document into the plan. Never raises on bad input: problems say what is wrong."""
    try:
        tree = parse_xml(xml)
    except UnsafeXml as exc:
        return ImportResult(None, {}, [exc.problem])
    doc = tree.getroot()
    if doc.tag != f"{{{C.NS}}}ClinicalDocument":
        return ImportResult(None, {}, [_problem("cda-not-clinical-document", doc,
                                                "la racine n'est pas un ClinicalDocument HL7 CDA R2",
                                                "root is not an HL7 CDA R2 ClinicalDocument", Severity.error)])
    problems: list[Problem] = []
    templates = set(doc.xpath("cda:templateId/@root", namespaces=_X))
    relais = C.TEMPLATE_RELAIS_DOCUMENT in templates
    if not relais:
        problems.append(_problem("cda-foreign-document", doc,
                                 "document non produit par Relais : seul ce que le projet peut porter est repris",
                                 "document not produced by Relais: only what the plan can hold is read"))
    plan: dict = {}
    title = _text(doc, "cda:title")
    if title:
        plan["title"] = title[:200]
    event = _first(doc, "cda:documentationOf/cda:serviceEvent")
    plan_id = _first(event, "cda:id/@extension") if event is not None else None
    if plan_id and "/" in plan_id:
        plan["id"] = plan_id.split("/", 1)[1]
    else:
        set_id = _first(doc, "cda:setId/@root") or _first(doc, "cda:id/@root") or "inconnu"
        plan["id"] = f"CDA-{set_id}"[-64:].lstrip(".")
    period: dict = {}
    for bound, key in (("low", "start"), ("high", "end")):
        value = _date(_first(event, f"cda:effectiveTime/cda:{bound}[@value]"), problems) if event is not None else None
        if value:
            period[key] = value
    plan["period"] = period
    role = _first(doc, "cda:recordTarget/cda:patientRole")
    finess = None
    if role is not None:
        plan["person"], finess = _person(role, problems)
    custodian = _first(doc, "cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization")
    platform: dict = {}
    if custodian is not None:
        ext = _first(custodian, f"cda:id[@root='{C.IDNAT_STRUCT}']/@extension")
        if ext and ext.startswith("1"):
            platform["finess"] = ext[1:]
        name = _text(custodian, "cda:name")
        if name:
            platform["name"] = name
    if finess and "finess" not in platform:
        platform["finess"] = finess
    plan["platform"] = platform
    if not relais:
        created = _date(_first(doc, "cda:effectiveTime[@value]"), problems)
        plan.setdefault("status", "draft")
        if created:
            plan["established_on"] = created

    body = _first(doc, "cda:component/cda:structuredBody")
    if body is None:
        problems.append(_problem("cda-no-structured-body", doc,
                                 "document sans corps structuré : aucun élément du projet à reprendre",
                                 "no structured body: no plan element to read"))
    for section in (body.xpath("cda:component/cda:section", namespaces=_X) if body is not None else []):
        roots = set(section.xpath("cda:templateId/@root", namespaces=_X))
        if PLAN_SECTION_TEMPLATE in roots:
            for act in section.xpath(f"cda:entry/cda:act[cda:templateId/@root='{PLAN_ENTRY_TEMPLATE}']",
                                     namespaces=_X):
                _apply_attributes(plan, act, "entryRelationship", problems)
            continue
        kind = next((BY_SECTION_TEMPLATE[r] for r in roots if r in BY_SECTION_TEMPLATE), None)
        if kind is None:
            title = _text(section, "cda:title") or "(sans titre)"
            title = title if len(title) <= 80 else title[:79] + "…"
            code = _first(section, "cda:code")
            coded = f" [{code.get('code')}]" if code is not None and _CODE.fullmatch(code.get("code") or "") else ""
            problems.append(_problem("cda-section-not-carried", section,
                                     f"section « {title} »{coded} non reprise : le projet personnalisé n'a pas d'élément pour elle",
                                     f"section '{title}'{coded} not carried: the plan has no element for it"))
            continue
        items = plan.setdefault(kind.key, [])
        for act in section.xpath(f"cda:entry/cda:{kind.element}[cda:templateId/@root='{kind.entry_template}']",
                                 namespaces=_X):
            items.append(_entry(kind, act, problems))
    person = plan.get("person", {})
    if person.get("identity_status") == "RECUP" and "ins" not in person:
        # RNIV: the INS of a non-qualified identity is not exchanged (export.py), so the
        # receiver holds the identity without INS: provisional.
        person["identity_status"] = "PROV"
        problems.append(_problem("cda-identity-recup-without-ins", role if role is not None else doc,
                                 "identité « récupérée » transmise sans INS (non qualifiée) : lue comme provisoire (PROV)",
                                 "recovered identity sent without INS (not qualified): read as provisional",
                                 Severity.information))
    try:
        result = Plan.model_validate(plan)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(Problem(location=json_path(error["loc"]), rule=f"cda-plan-{error['type']}",
                                    message=f"le projet lu du CDA est incomplet ou invalide : {error['msg']}",
                                    message_en=error["msg"], source=SOURCE))
        return ImportResult(None, plan, problems)
    if any(p.severity is Severity.error for p in problems):  # part of it unreadable: no plan, not half of one
        return ImportResult(None, plan, problems)
    return ImportResult(result, plan, problems)
