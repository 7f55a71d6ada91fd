"""TDDUI transaction Bundle → plan (issue 4 item 2).

`bundle_to_plan(bundle, today)` returns `(plan | None, problems)`. Everything the plan holds comes
back; every element of the Bundle the plan cannot hold is reported (FHIRPath location, rule
`tddui-element-not-imported`, `warning`, or `information` for narrative, ids and metadata), never
dropped silently. Problems of the resulting plan come from `gateway.plans.validate_plan`
(JSON paths into the plan). Older TDDUI code system urls (2.1.0-ballot examples) are read and
reported as `information`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from gateway.model import Plan, Problem, Severity
from gateway.plans import validate_plan
from mappings.fhir.tddui import actors, careplan, encounters, goals, patient, questionnaire, tasks
from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import Node, Seen, code_of, drop_problem, dropped, problem

_BY_PROFILE = {
    c.P_PATIENT: "patient", c.P_PATIENT_INS: "patient", c.P_ORGANIZATION: "organization",
    c.P_PRACTITIONER: "practitioner", c.P_PRACTITIONER_ROLE: "role", c.P_RELATED_PERSON: "representative",
    c.P_CAREPLAN: "careplan", c.P_CONSENT: "agreement", c.P_NEED: "need", c.P_EXPECTATION: "expectation",
    c.P_OBJECTIVE: "objective", c.P_ACTION: "action", c.P_SERVICE: "service", c.P_STAY: "stay",
    c.P_EVENT: "event", c.P_EVALUATION: "evaluation",
}
_BY_TYPE = {"Patient": "patient", "Organization": "organization", "Practitioner": "practitioner",
            "PractitionerRole": "role", "RelatedPerson": "representative", "CarePlan": "careplan",
            "Consent": "agreement"}
_BY_SYSTEM = {system: kind for kind, (system, _) in (
    ("need", c.ID_NEED), ("expectation", c.ID_EXPECTATION), ("objective", c.ID_OBJECTIVE),
    ("action", c.ID_ACTION), ("service", c.ID_SERVICE), ("stay", c.ID_STAY), ("event", c.ID_EVENT),
    ("evaluation", c.ID_EVALUATION))}
_CODES = {"careplan": c.ID_CAREPLAN[1], "need": c.ID_NEED[1], "expectation": c.ID_EXPECTATION[1],
          "objective": c.ID_OBJECTIVE[1], "action": c.ID_ACTION[1], "service": c.ID_SERVICE[1],
          "stay": c.ID_STAY[1], "event": c.ID_EVENT[1], "evaluation": c.ID_EVALUATION[1],
          "agreement": c.ID_AGREEMENT_CODE, "representative": c.ID_REPRESENTATIVE_CODE}
_LOCAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
# The resource types TDDUI 2.2.0 profiles: only these are read (a resource of another type, e.g. not
# FHIR at all, has had no structure check of its values: not imported, whatever profile it claims)
_TDDUI_TYPES = frozenset({"CarePlan", "Consent", "Encounter", "Goal", "Organization", "Patient", "Practitioner",
                          "PractitionerRole", "QuestionnaireResponse", "RelatedPerson", "ServiceRequest", "Task"})


@dataclass
class Entry:
    index: int
    node: Node
    kind: str
    rtype: str
    local_id: str = ""


def _fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(ch))


def _classify(res: Node) -> str:
    rtype = res.peek("resourceType")
    if not isinstance(rtype, str) or rtype not in _TDDUI_TYPES:
        return "unsupported"
    for canonical in (res.peek("meta") or {}).get("profile", []) or []:
        base, _, _ = canonical.partition("|")
        if base.startswith(c.SD) and base[len(c.SD):] in _BY_PROFILE:
            return _BY_PROFILE[base[len(c.SD):]]
    if rtype in _BY_TYPE:
        return _BY_TYPE[rtype]
    idents = res.peek("identifier") or []
    idents = idents if isinstance(idents, list) else [idents]
    for ident in idents:
        kind = _BY_SYSTEM.get((ident or {}).get("system"))
        if kind:
            return kind
    if rtype == "QuestionnaireResponse" and questionnaire.is_serafin(res):
        return "evaluation"
    return "unsupported"


class Reader:
    """One import: the entries, their local ids, and the problems found on the way."""

    def __init__(self, bundle: dict):
        self.bundle = bundle
        self.seen = Seen()
        self.problems: list[Problem] = []
        self.entries: list[Entry] = []
        self.index: dict[str, Entry] = {}

    def warn(self, location: str, rule: str, fr: str, en: str, severity=Severity.warning) -> None:
        self.problems.append(problem(location, rule, fr, en, severity))

    # -------------------------------------------------------------------- the entries

    def read_entries(self) -> None:
        root = Node(self.bundle, "Bundle", self.seen)
        root.take("resourceType")
        root.take("id")
        root.take("timestamp")
        root.take("identifier")  # the sender's idempotency key (resend recognition), not plan content
        self._profiles(root, "Bundle")
        kind = root.get("type")
        if kind != "transaction":
            self.warn("Bundle.type", "tddui-bundle-type", f"Bundle de type « {kind} » : « transaction » attendu",
                      f"Bundle type {kind!r}, expected transaction")
        for i, entry in enumerate(root.nodes("entry")):
            res = entry.node("resource")
            if res is None:
                continue
            rtype = res.get("resourceType")
            kind = _classify(res)
            request = entry.node("request")
            if request is not None:
                method, url = request.get("method"), request.get("url")
                request.get("ifNoneExist")  # transport (conditional create), not plan content
                if method != "POST" or url != rtype:
                    self.warn(f"{entry.path}.request", "tddui-request",
                              f"requête {method} {url} : attendu POST {rtype} (type de ressource, specs §11.2)",
                              f"request {method} {url}: expected POST {rtype} (resource type)")
            if kind == "unsupported":
                self.seen.visited.discard(res.path)
                continue
            res.take("id")
            self._profiles(res, res.path)
            item = Entry(i, res, kind, rtype)
            self.entries.append(item)
            full = entry.get("fullUrl")
            for key in (full, f"{rtype}/{res.peek('id')}" if res.peek("id") else None):
                if key:
                    self.index[key] = item

    def _profiles(self, node: Node, path: str) -> None:
        meta = node.node("meta")
        if meta is None:
            return
        for canonical in meta.values("profile"):
            base, _, version = canonical.partition("|")
            if base.startswith(c.TDDUI_BASE) and version and version != c.TDDUI_VERSION:
                self.warn(f"{path}.meta.profile", "tddui-version",
                          f"profil déclaré en version {version} : lu selon TDDUI {c.TDDUI_VERSION}",
                          f"profile declared as version {version}, read as TDDUI {c.TDDUI_VERSION}",
                          Severity.information)

    def of(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def resolve(self, reference: str | None, *kinds: str) -> Entry | None:
        if not reference:
            return None
        entry = self.index.get(reference)
        if entry is None:
            match = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/.*)?$", reference)
            entry = self.index.get(match.group(1)) if match else None
        if entry is not None and (not kinds or entry.kind in kinds):
            return entry
        return None

    def ref_id(self, reference: str | None, location: str, *kinds: str) -> str | None:
        entry = self.resolve(reference, *kinds)
        if entry is None and reference:
            self.warn(location, "tddui-reference-unresolved",
                      f"référence {reference} introuvable dans le Bundle (ou d'un autre type) : lien non repris",
                      f"reference {reference} does not resolve in the Bundle: link not imported")
        return entry.local_id if entry else None

    # -------------------------------------------------------------------- local ids

    def assign_ids(self, prefix: str | None, finess: str | None) -> None:
        used: dict[str, set[str]] = {}
        for entry in self.entries:
            raw = None
            if entry.kind == "practitioner":
                raw = actors.professional_local_id(entry.node, finess)
            elif entry.kind in _CODES:
                raw = self._business_tail(entry, prefix)
            raw = raw or entry.node.peek("id") or f"{entry.kind[:3].upper()}{entry.index}"
            local = re.sub(r"[^A-Za-z0-9._\-]", "-", raw).lstrip("._-")[:64] or f"E{entry.index}"
            taken = used.setdefault("professional" if entry.kind == "role" else entry.kind, set())
            candidate, n = local, 2
            while candidate in taken:
                candidate, n = f"{local[:60]}-{n}", n + 1
            taken.add(candidate)
            entry.local_id = candidate

    def _business_tail(self, entry: Entry, prefix: str | None) -> str | None:
        code = _CODES[entry.kind]
        idents = entry.node.peek("identifier") or []
        idents = idents if isinstance(idents, list) else [idents]
        for ident in idents:
            value = (ident or {}).get("value") or ""
            if prefix and value.startswith(f"{prefix}-"):
                value = value[len(prefix) + 1:]
                return value[len(code) + 1:] if value.startswith(f"{code}-") and len(value) > len(code) + 1 else value
            marker = f"-{code}-"
            if marker in value:
                return value.split(marker, 1)[1]
        return None


def _expressed_by(text: str | None) -> str | None:
    folded = _fold(text or "")
    for key, label in c.EXPRESSED_BY_TEXT.items():
        if folded in (key, _fold(label)):
            return key
    for words, key in ((("usager", "personne"), "person"), (("famille", "entourage", "parent"), "family"),
                       (("representant", "tuteur", "curateur"), "legal_representative"),
                       (("professionnel",), "professional")):
        if any(w in folded for w in words):
            return key
    return None


def bundle_to_plan(bundle: dict, today: dt.date) -> tuple[Plan | None, list[Problem]]:
    """The plan a TDDUI Bundle carries, and every problem met (import, then plan validation)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return None, [problem("Bundle", "tddui-not-a-bundle", "le document n'est pas un Bundle FHIR",
                              "the document is not a FHIR Bundle", Severity.error)]
    reader = Reader(bundle)
    reader.read_entries()
    data = _assemble(reader)
    for path, value in dropped(bundle, "Bundle", reader.seen):
        reader.problems.append(_drop(path, value))
    reader.problems.extend(_legacy_systems(bundle))
    if data is None:
        return None, reader.problems
    plan, plan_problems = validate_plan(data, today)
    return plan, reader.problems + plan_problems


def _drop(path: str, value) -> Problem:
    if re.fullmatch(r"Bundle\.entry\[\d+\]\.resource", path) and isinstance(value, dict):
        meta = value.get("meta")
        profiles = meta.get("profile") if isinstance(meta, dict) else None
        profiles = ", ".join(p for p in profiles if isinstance(p, str)) if isinstance(profiles, list) else ""
        profiles = profiles or "sans profil"
        return problem(path, "tddui-resource-not-imported",
                       f"ressource {value.get('resourceType')} ({profiles}) sans équivalent dans le projet, non reprise",
                       f"{value.get('resourceType')} resource the plan cannot hold, not imported")
    return drop_problem(path, value)


def _legacy_systems(bundle: dict) -> list[Problem]:
    found: dict[str, int] = {}

    def walk(value):
        if isinstance(value, dict):
            system = value.get("system")
            if isinstance(system, str) and system in c.LEGACY_CODE_SYSTEMS:
                found[system] = found.get(system, 0) + 1
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(bundle)
    return [problem("Bundle", "tddui-legacy-code-system",
                    f"système de codes {old} (version antérieure du guide, {n} fois) lu comme {c.LEGACY_CODE_SYSTEMS[old]}",
                    f"older code system {old} ({n}x) read as {c.LEGACY_CODE_SYSTEMS[old]}", Severity.information)
            for old, n in sorted(found.items())]


def _assemble(r: Reader) -> dict | None:
    patients, careplans = r.of("patient"), r.of("careplan")
    if len(patients) != 1 or len(careplans) != 1:
        r.warn("Bundle.entry", "tddui-plan-incomplete",
               f"un Patient et un CarePlan projet personnalisé attendus (trouvés : {len(patients)} et {len(careplans)})",
               f"one Patient and one CarePlan expected (found {len(patients)} and {len(careplans)})", Severity.error)
        return None
    pat = patients[0].node
    pi, ins, status = patient.read_identity(pat)
    match = re.fullmatch(r"3([0-9AB]{9})/(.+)", pi or "")
    local_id = match.group(2) if match else (pi or pat.peek("id"))
    if match is None:
        r.warn(f"{pat.path}.identifier", "tddui-patient-pi",
               "identifiant local de l'usager (PI, 3+FINESS/id) absent ou mal formé",
               "the person's local identifier (PI, 3+FINESS/id) is missing or malformed")
    orgs = r.of("organization")
    legal_urls = {o.node.data.get("partOf", {}).get("reference") for o in orgs}
    legal = [o for o in orgs if any(r.resolve(u) is o for u in legal_urls if u)]
    platforms = [o for o in orgs if o not in legal]
    platform: dict = {}
    if platforms:
        platform = actors.read_organization(platforms[0].node, legal[0].node if legal else None)
    if "finess" not in platform and match:
        platform["finess"] = match.group(1)
    finess = platform.get("finess")
    prefix = f"3{finess}/{local_id}" if finess and local_id else None
    if match:
        prefix = f"3{match.group(1)}/{match.group(2)}"
    r.assign_ids(prefix, finess)

    person = patient.read_patient(pat)
    person["local_id"] = local_id
    if ins:
        person["ins"] = ins
    if status is None:
        r.warn(f"{pat.path}.extension", "tddui-identity-status",
               "statut de l'identité (RNIV) absent : « PROV » (provisoire) retenu",
               "identity status missing: PROV assumed")
        status = "PROV"
    person["identity_status"] = status
    if person.get("birth_order") is not None and ins and ins["oid"] != "1.2.250.1.213.1.4.9":
        if str(person["birth_order"]).zfill(3) == ins["value"][10:13]:
            del person["birth_order"]  # implied by the NIR
    person["representatives"] = [patient.read_representative(e.node, e.local_id) for e in r.of("representative")]

    roles = {}
    for role in r.of("role"):
        pract = r.resolve((role.node.peek("practitioner") or {}).get("reference"), "practitioner")
        if pract is not None and pract.local_id not in roles:
            roles[pract.local_id] = role
            role.local_id = pract.local_id
    professionals = []
    for pract in r.of("practitioner"):
        role = roles.get(pract.local_id)
        pro = actors.read_professional(pract.node, role.node if role else None, pract.local_id, finess)
        if "role" not in pro:
            r.warn(f"{pract.node.path}", "tddui-professional-role",
                   "fonction du professionnel absente (PractitionerRole.code) : « non renseignée »",
                   "professional's function missing: 'non renseignée'", Severity.information)
            pro["role"] = "non renseignée"
        professionals.append(pro)

    cp = careplans[0].node
    data: dict = careplan.read_careplan(cp)
    data["id"] = careplans[0].local_id
    status_value, fhir_status = careplan.plan_status(cp)
    if status_value:
        data["status"] = status_value
    cp.take("subject")
    author = cp.node("author")
    coordinator: dict = {}
    if author is not None:
        who = r.resolve(author.peek("reference"), "role", "practitioner")
        if who is not None:
            author.get("reference")
            coordinator["professional_id"] = who.local_id
        for ext in author.extensions(c.X_RELAIS_COORDINATOR_SINCE):
            if ext.peek("valueDate"):
                ext.mark()
                coordinator["since"] = ext.data["valueDate"]
    if "professional_id" not in coordinator:
        r.warn(f"{cp.path}.author", "tddui-no-coordinator",
               "le projet ne désigne pas de coordinateur (CarePlan.author → professionnel du Bundle)",
               "the plan names no coordinator (CarePlan.author to a professional of the Bundle)", Severity.error)
    platform["coordinator"] = coordinator
    data["platform"] = platform
    data["person"] = person
    data["professionals"] = professionals
    data["agreements"] = _agreements(r, cp)
    _elements(r, data)
    return data


def _agreements(r: Reader, cp: Node) -> list[dict]:
    out = []
    systems = (c.CS_DISCRIMINATOR, *[o for o, n in c.LEGACY_CODE_SYSTEMS.items() if n == c.CS_DISCRIMINATOR])
    for info in cp.nodes("supportingInfo"):
        slice_code = None
        for ext in info.extensions(c.X_DISCRIMINATOR):
            slice_code = code_of(ext.node("valueCodeableConcept"), systems)
            if slice_code:
                ext.mark()
        entry = r.resolve(info.peek("reference"), "agreement")
        if slice_code not in ("accordUsager", "accordStructure") or entry is None:
            continue
        info.get("reference")
        agreement = careplan.read_consent(entry.node, entry.local_id)
        agreement["party"] = "structure" if slice_code == "accordStructure" else "person"
        performers = entry.node.nodes("performer")
        target = r.resolve(performers[0].peek("reference") if performers else None)
        if target is None:
            r.warn(f"{entry.node.path}.performer", "tddui-agreement-performer",
                   "signataire de l'accord absent du Bundle : accord non repris",
                   "agreement performer not in the Bundle: agreement not imported", Severity.error)
            continue
        performers[0].get("reference")
        if target.kind == "patient":
            agreement["performer_kind"] = "person"
        elif target.kind == "representative":
            agreement["performer_kind"], agreement["performer_id"] = "representative", target.local_id
        elif target.kind in ("practitioner", "role"):
            agreement["performer_kind"], agreement["performer_id"] = "professional", target.local_id
        out.append(agreement)
    return out


def _elements(r: Reader, data: dict) -> None:
    data["needs"] = []
    for e in r.of("need"):
        need = goals.read_need(e.node, e.local_id)
        requester = e.node.node("requester")
        if requester is not None:
            need["assessor_id"] = r.ref_id(requester.get("reference"), f"{requester.path}", "practitioner", "role")
        data["needs"].append({k: v for k, v in need.items() if v is not None})
    data["expectations"] = []
    for e in r.of("expectation"):
        item = goals.read_expectation(e.node, e.local_id)
        if "expressed_by" in item:
            key = _expressed_by(item["expressed_by"])
            if key is None:
                r.warn(f"{e.node.path}.note", "tddui-expectation-origin",
                       f"origine de l'attente « {item['expressed_by']} » non reconnue : « person » retenu",
                       "unrecognised expectation origin: 'person' assumed")
            item["expressed_by"] = key or "person"
        data["expectations"].append(item)
    data["objectives"] = []
    for e in r.of("objective"):
        item = goals.read_objective(e.node, e.local_id)
        item["need_ids"] = [i for a in e.node.nodes("addresses")
                            if (i := r.ref_id(a.get("reference"), a.path, "need"))]
        data["objectives"].append(item)
    data["actions"] = []
    for e in r.of("action"):
        item, objective_refs, owner_ref = tasks.read_action(e.node, e.local_id)
        item["objective_ids"] = [i for ref in objective_refs if (i := r.ref_id(ref, e.node.path, "objective"))]
        if owner_ref:
            item["owner_id"] = r.ref_id(owner_ref, f"{e.node.path}.owner", "practitioner", "role")
        data["actions"].append({k: v for k, v in item.items() if v is not None})
    data["services"] = []
    for e in r.of("service"):
        item, objective_refs, action_ref = tasks.read_service(e.node, e.local_id)
        item["objective_ids"] = [i for ref in objective_refs if (i := r.ref_id(ref, e.node.path, "objective"))]
        if action_ref:
            item["action_id"] = r.ref_id(action_ref, f"{e.node.path}.partOf", "action")
        data["services"].append({k: v for k, v in item.items() if v is not None})
    data["stays"] = [encounters.read_stay(e.node, e.local_id) for e in r.of("stay")]
    data["events"] = []
    for e in r.of("event"):
        item, refs = encounters.read_event(e.node, e.local_id)
        if refs.get("service"):
            item["service_id"] = r.ref_id(refs["service"], e.node.path, "service")
        if refs.get("stay"):
            item["stay_id"] = r.ref_id(refs["stay"], f"{e.node.path}.partOf", "stay")
        item["professional_ids"] = [i for ref in refs["professionals"]
                                    if (i := r.ref_id(ref, f"{e.node.path}.participant", "practitioner", "role"))]
        data["events"].append({k: v for k, v in item.items() if v is not None})
    data["evaluations"] = []
    for e in r.of("evaluation"):
        item, assessor, unreadable = questionnaire.read_evaluation(e.node, e.local_id)
        if assessor:
            item["assessor_id"] = r.ref_id(assessor, f"{e.node.path}.source", "practitioner", "role")
            e.node.take("source")
        data["evaluations"].append({k: v for k, v in item.items() if v is not None})
