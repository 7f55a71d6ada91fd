"""The SI-SDO (ViaTrajectoire) peer for the sandbox: the SDO guide's server (specs §3), on loopback.

`make_sandbox(finess_eg)` → a `FhirSandbox` that accepts DocumentReference, Consent and Task,
requires the bearer token and `struct_idnat: 1<FINESS EG>`, checks what is POSTed/PUT against
esms-consent and sdo-task (rejecting with an OperationOutcome whose expressions are FHIRPath),
honours conditional creates, and serves each ESMS only what the SI-SDO would:

- the decision files addressed to it (flux 1);
- a decision's evaluation only after that ESMS posted the person's consent for it (flux 3);
- the Tasks about its files posted by other ESMS, and the SDO's own events on its files
  (admission impossible entérinée, cancellations…), never its own statuses (flux 5).

Seeding: `seed_decisions(store, plans, destination=…)` writes, for synthetic plans, a CDA
"Individu + Décision" mirroring the official structure (`write_decision_cda`, this module's
own small writer) and an evaluation document; `publish_status(store, …)` adds another ESMS'
status. Synthetic people only. Production code never imports this module.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from lxml import etree
from lxml.builder import ElementMaker

from connectors.sandbox.fhir_app import FhirSandbox, Personality
from connectors.sandbox.fhir_store import ResourceStore, Stored
from connectors.viatrajectoire import vocab

DESTINATION_TAG = "https://relais.invalid/sandbox/sdo/destinataire"  # which ESMS a file is sent to
SDO_EVENTS = frozenset({"37", "46", "49", "54"})  # statuses the SDO/MDPH sets on an ESMS's file
RESOURCE_TYPES = frozenset({"DocumentReference", "Consent", "Task"})
_ID_NAT_STRUCT = re.compile(r"^(?:1(?:[0-9]{2}|2[AB])[0-9]{7}|3[0-9]{14})$")

HL7 = "urn:hl7-org:v3"
CNSA = "urn:cnsaSDO"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_h = ElementMaker(namespace=HL7, nsmap={None: HL7, "cnsaSDO": CNSA, "xsi": XSI})
_s = ElementMaker(namespace=CNSA, nsmap={None: HL7, "cnsaSDO": CNSA, "xsi": XSI})


# ------------------------------------------------------------------------ the peer


def personality(finess_eg: str, *, known_decision: Callable[[str], bool] | None = None) -> Personality:
    """The SDO rules for the ESMS whose FINESS EG is `finess_eg`."""
    return Personality(
        name="SI-SDO ViaTrajectoire (bac à sable)",
        resource_types=RESOURCE_TYPES,
        transaction=False,
        validate=lambda resource: validate(resource, known_decision=known_decision),
        required_headers={"struct_idnat": "1" + finess_eg},
        visible=visible,
    )


def make_sandbox(finess_eg: str, store: ResourceStore | None = None) -> FhirSandbox:
    """The peer; `sandbox.store` may be replaced (a fresh store per test), the rules follow it."""
    holder: list[FhirSandbox] = []
    sandbox = FhirSandbox(personality(finess_eg, known_decision=lambda v: decision_known(holder[0].store, v)),
                          store or ResourceStore())
    holder.append(sandbox)
    return sandbox


def sdo_sandbox(finess_eg: str, plans: Iterable = (), *, now: dt.datetime | None = None) -> FhirSandbox:
    """The peer for the demo: the SI-SDO serving the decision files (and evaluations) of the
    given synthetic plans to the ESMS `finess_eg`. Run it with `ThreadedServer(peer.app, tls=…)`."""
    sandbox = make_sandbox(finess_eg)
    seed_decisions(sandbox.store, plans, destination=finess_eg, now=now)
    return sandbox


def _struct(headers: Mapping[str, str]) -> str:
    return headers.get("struct_idnat") or ""


def _destinations(resource: dict) -> set[str]:
    return {t.get("code") for t in (resource.get("meta") or {}).get("tag") or []
            if t.get("system") == DESTINATION_TAG}


def _official(resource: dict) -> str | None:
    return next((i.get("value") for i in resource.get("identifier") or [] if i.get("use") == "official"), None)


def _type_code(resource: dict) -> str | None:
    return next((c.get("code") for c in (resource.get("type") or {}).get("coding") or []), None)


def _inputs(task: dict) -> dict[str, dict]:
    out = {}
    for item in task.get("input") or []:
        for coding in (item.get("type") or {}).get("coding") or []:
            if coding.get("system") == vocab.INPUT_TASK_CS:
                out.setdefault(coding.get("code"), item)
    return out


def _input_value(task: dict, name: str) -> str | None:
    item = _inputs(task).get(name) or {}
    if "valueIdentifier" in item:
        return item["valueIdentifier"].get("value")
    if "valueCodeableConcept" in item:
        return next((c.get("code") for c in item["valueCodeableConcept"].get("coding") or []), None)
    return None


def decision_known(store: ResourceStore, national_id: str) -> bool:
    return any(_official(s.resource) == national_id and _type_code(s.resource) == vocab.DOC_DECISION
               for s in store.all("DocumentReference"))


def _addressed_to(store: ResourceStore, national_id: str | None, struct: str) -> bool:
    return national_id is not None and any(
        _official(s.resource) == national_id and struct in _destinations(s.resource)
        for s in store.all("DocumentReference"))


def consented(store: ResourceStore, national_id: str | None, struct: str) -> bool:
    """Has `struct` posted the person's consent for this decision (flux 2)?"""
    for stored in store.all("Consent"):
        consent = stored.resource
        data = ((consent.get("provision") or {}).get("data") or [{}])[0]
        ident = ((data.get("reference") or {}).get("identifier") or {})
        if (consent.get("meta") or {}).get("source") == struct and ident.get("value") == national_id \
                and consent.get("status") == "active":
            return True
    return False


def visible(store: ResourceStore, headers: Mapping[str, str], resource: dict) -> bool:
    """What the SI-SDO lets the requesting ESMS see (it filters by token and struct_idnat)."""
    struct = _struct(headers)
    kind = resource.get("resourceType")
    if kind == "DocumentReference":
        if struct not in _destinations(resource):
            return False
        if _type_code(resource) == vocab.DOC_EVALUATION:  # flux 3: only once authorised
            return consented(store, _official(resource), struct)
        return True
    if kind == "Task":
        if not _addressed_to(store, _input_value(resource, "idNat_Decision"), struct):
            return False
        return _input_value(resource, "idNat_Struct") != struct or \
            _input_value(resource, "statutESMS") in SDO_EVENTS
    if kind == "Consent":
        return (resource.get("meta") or {}).get("source") == struct
    return False


# ----------------------------------------------------------------- profile checks


def _issue(expression: str, diagnostics: str, code: str = "invalid", severity: str = "error") -> dict:
    return {"severity": severity, "code": code, "expression": [expression], "diagnostics": diagnostics}


def _has_coding(concept: dict | None, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in (concept or {}).get("coding") or [])


def validate(resource: dict, *, known_decision: Callable[[str], bool] | None = None) -> list[dict]:
    """OperationOutcome issues for the SDO profiles (specs §3.3)."""
    kind = resource.get("resourceType")
    if kind == "Consent":
        return validate_consent(resource, known_decision)
    if kind == "Task":
        return validate_task(resource, known_decision)
    if kind == "DocumentReference":
        return validate_document_reference(resource)
    return []


def validate_consent(consent: dict, known_decision: Callable[[str], bool] | None = None) -> list[dict]:
    """esms-consent 4.0.7 (and the R4 Consent invariant ppc-1)."""
    issues = []
    source = (consent.get("meta") or {}).get("source")
    if not source:
        issues.append(_issue("Consent.meta.source", "esms-consent : meta.source (idNat_Struct de l'ESMS) "
                                                    "est obligatoire", "required"))
    elif not _ID_NAT_STRUCT.match(source):
        issues.append(_issue("Consent.meta.source", f"esms-consent : meta.source {source!r} n'est pas un "
                                                    "idNat_Struct (1+FINESS ou 3+SIRET)", "value"))
    if consent.get("status") != "active":
        issues.append(_issue("Consent.status", "esms-consent : status doit valoir active", "value"))
    if not _has_coding(consent.get("scope"), vocab.CONSENT_SCOPE_CS, "patient-privacy"):
        issues.append(_issue("Consent.scope", "esms-consent : scope = consentscope#patient-privacy attendu", "value"))
    if not any(_has_coding(c, vocab.LOINC, vocab.CONSENT_CATEGORY) for c in consent.get("category") or []):
        issues.append(_issue("Consent.category", "esms-consent : category = LOINC 59284-0 attendue", "value"))
    if not consent.get("dateTime"):
        issues.append(_issue("Consent.dateTime", "esms-consent : dateTime (date de recueil) est obligatoire",
                             "required"))
    if not consent.get("policy") and not consent.get("policyRule"):
        issues.append(_issue("Consent", "ppc-1 : policy ou policyRule est obligatoire", "invariant"))
    provision = consent.get("provision")
    data = (provision or {}).get("data") or []
    if not provision:
        issues.append(_issue("Consent.provision", "esms-consent : provision est obligatoire", "required"))
    elif len(data) != 1:
        issues.append(_issue("Consent.provision.data", f"esms-consent : provision.data 1..1 ({len(data)} "
                                                       "reçu(s))", "structure"))
    else:
        item = data[0]
        where = "Consent.provision.data[0]"
        if item.get("meaning") != "related":
            issues.append(_issue(f"{where}.meaning", "esms-consent : meaning doit valoir related", "value"))
        ident = (item.get("reference") or {}).get("identifier")
        if not ident:
            issues.append(_issue(f"{where}.reference.identifier", "esms-consent : la décision est désignée par "
                                 "reference.identifier (idNat_Decision)", "required"))
        else:
            if ident.get("use") != "official":
                issues.append(_issue(f"{where}.reference.identifier.use",
                                     "esms-consent : identifier.use doit valoir official", "value"))
            if not ident.get("value"):
                issues.append(_issue(f"{where}.reference.identifier.value",
                                     "esms-consent : identifier.value (idNat_Decision) est obligatoire", "required"))
            elif known_decision is not None and not known_decision(ident["value"]):
                issues.append(_issue(f"{where}.reference.identifier.value",
                                     f"décision {ident['value']!r} inconnue du SI-SDO", "not-found"))
    return issues


def validate_task(task: dict, known_decision: Callable[[str], bool] | None = None) -> list[dict]:
    """sdo-task 4.0.2 / esms-task 4.0.7: fixed status/intent, sliced inputs, bindings, rules."""
    issues = []
    if not (task.get("meta") or {}).get("lastUpdated"):
        issues.append(_issue("Task.meta.lastUpdated", "sdo-task : meta.lastUpdated est obligatoire", "required"))
    if task.get("status") != "completed":
        issues.append(_issue("Task.status", "sdo-task : status doit valoir completed", "value"))
    if task.get("intent") != "plan":
        issues.append(_issue("Task.intent", "sdo-task : intent doit valoir plan", "value"))
    items = task.get("input") or []
    if len(items) < 4:
        issues.append(_issue("Task.input", f"sdo-task : au moins 4 input ({len(items)} reçu(s))", "structure"))
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"Task.input[{i}]"
        codes = [c.get("code") for c in (item.get("type") or {}).get("coding") or []
                 if c.get("system") == vocab.INPUT_TASK_CS]
        if not codes:
            continue  # open slicing: an input outside the guide's code system is allowed
        name = codes[0]
        if name not in vocab.TASK_INPUTS:
            issues.append(_issue(f"{where}.type", f"code {name!r} inconnu de input-task-sdo-codesystem", "code-invalid"))
            continue
        if name in seen:
            issues.append(_issue(where, f"sdo-task : input {name} 0..1 (répété, voir Task.input[{seen[name]}])",
                                 "structure"))
        seen[name] = i
        issues.extend(_check_input_value(item, name, where))
    for name in vocab.TASK_REQUIRED_INPUTS:
        if name not in seen:
            issues.append(_issue("Task.input", f"sdo-task : input {name} 1..1 absent", "required"))
    if "statutUnite" in seen:  # regle-StatutUnite
        missing = [n for n in vocab.UNIT_STATUS_REQUIRES if n not in seen]
        if missing:
            issues.append(_issue(f"Task.input[{seen['statutUnite']}]", "regle-StatutUnite : statutUnite exige "
                                 + ", ".join(missing), "invariant"))
    if not (seen.keys() & {"statutESMS", "statutUnite"}):
        issues.append(_issue("Task.input", "statut ESMS ou statut unité attendu", "business-rule"))
    struct = _input_value(task, "idNat_Struct")
    if struct and not _ID_NAT_STRUCT.match(struct):
        issues.append(_issue(f"Task.input[{seen['idNat_Struct']}].valueIdentifier.value",
                             f"idNat_Struct {struct!r} invalide (1+FINESS ou 3+SIRET)", "value"))
    national = _input_value(task, "idNat_Decision")
    if national and known_decision is not None and not known_decision(national):
        issues.append(_issue(f"Task.input[{seen['idNat_Decision']}].valueIdentifier.value",
                             f"décision {national!r} inconnue du SI-SDO", "not-found"))
    return issues


def _check_input_value(item: dict, name: str, where: str) -> list[dict]:
    expected = "value" + vocab.TASK_INPUTS[name][0].upper() + vocab.TASK_INPUTS[name][1:]
    present = [k for k in item if k.startswith("value")]
    if present != [expected]:
        return [_issue(f"{where}.value", f"input {name} : {expected} attendu (reçu {', '.join(present) or 'rien'})",
                       "structure")]
    value = item[expected]
    if expected == "valueIdentifier" and not value.get("value"):
        return [_issue(f"{where}.valueIdentifier.value", f"input {name} : identifiant vide", "required")]
    if expected in ("valueString", "valueDate") and not value:
        return [_issue(f"{where}.{expected}", f"input {name} : valeur vide", "required")]
    if expected != "valueCodeableConcept":
        return []
    codings = value.get("coding") or []
    system, allowed = vocab.TASK_BINDINGS[name]
    if name == "modePriseCharge" and len(codings) != 1:
        return [_issue(f"{where}.valueCodeableConcept.coding", "modePriseCharge : coding 1..1", "structure")]
    matching = [c for c in codings if c.get("system") == system]
    if not matching:
        return [_issue(f"{where}.valueCodeableConcept.coding", f"input {name} : code du système {system} attendu "
                       "(liaison required)", "code-invalid")]
    code = matching[0].get("code")
    if allowed is not None and code not in allowed:
        rule = "regle-ModePriseEnCharge" if name == "modePriseCharge" else "liaison required"
        return [_issue(f"{where}.valueCodeableConcept.coding[0].code",
                       f"input {name} : code {code!r} hors du jeu de valeurs ({rule})", "code-invalid")]
    if allowed is None and not re.fullmatch(r"\d{2,3}", code or ""):
        return [_issue(f"{where}.valueCodeableConcept.coding[0].code", f"input {name} : code {code!r} invalide",
                       "code-invalid")]
    return []


def validate_document_reference(docref: dict) -> list[dict]:
    """esms-document-reference: idDecision/idNat_Decision, type 57830-2 | 51848-0, one content
    whose title matches the type (regle-NomPieceJointe-type)."""
    issues = []
    uses = [i.get("use") for i in docref.get("identifier") or [] if i.get("value")]
    if "usual" not in uses or len(docref.get("identifier") or []) < 2:
        issues.append(_issue("DocumentReference.identifier", "identifier 2.. avec idDecision (use=usual)", "required"))
    codings = (docref.get("type") or {}).get("coding") or []
    if len(codings) != 1 or codings[0].get("system") != vocab.LOINC or \
            codings[0].get("code") not in (vocab.DOC_DECISION, vocab.DOC_EVALUATION):
        issues.append(_issue("DocumentReference.type", "type : un code LOINC 57830-2 ou 51848-0", "code-invalid"))
    contents = docref.get("content") or []
    if len(contents) != 1:
        issues.append(_issue("DocumentReference.content", "content 1..1", "structure"))
    else:
        title = (contents[0].get("attachment") or {}).get("title")
        expected = {vocab.DOC_DECISION: vocab.TITLE_DECISION, vocab.DOC_EVALUATION: vocab.TITLE_EVALUATION}
        wanted = expected.get(_type_code(docref))
        if not title:
            issues.append(_issue("DocumentReference.content[0].attachment.title", "title est obligatoire", "required"))
        elif wanted and title != wanted:
            issues.append(_issue("DocumentReference.content[0].attachment.title",
                                 f"regle-NomPieceJointe-type : titre {wanted!r} attendu", "invariant"))
    return issues


# ------------------------------------------------------------------ the CDA writer

# Synthetic coding of the fixtures' orientation labels (TRE_R420 codes of JDV_J402).
_RIGHT_TYPES = (("DITEP", "7.7"), ("SESSAD", "7.8"), ("IEM", "7.2"), ("IME", "7.1"), ("EEAP", "7.5"),
                ("SSEFS", "7.10"), ("sensorielle", "7.13"), ("ESAT", "11.5"), ("SAMSAH", "13.5"),
                ("SAVS", "13.4"), ("MAS", "13.3"), ("EANM", "13.1"), ("EAM", "13.2"))


def _right_type(label: str) -> str:
    for keyword, code in _RIGHT_TYPES:
        if re.search(rf"\b{re.escape(keyword)}\b", label, re.IGNORECASE):
            return code
    return "13.99"


def _care_mode(label: str) -> str | None:
    lowered = label.lower()
    if "semi-internat" in lowered or "accueil de jour" in lowered:
        return "47"
    if "internat" in lowered:
        return "46"
    return None


def mdph_oid(department: str) -> str:
    """The MDPH OID of the guide's annex (1.2.250.1.213.7.<n>) for a département."""
    special = {"2A": 20, "2B": 21, "971": 101, "972": 102, "973": 104, "974": 106, "975": 107, "976": 108}
    if department in special:
        return f"1.2.250.1.213.7.{special[department]}"
    number = int(department)
    return f"1.2.250.1.213.7.{number if number < 20 else number + 2 if number < 70 else number + 5}"


def _ts(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _data(plan) -> dict:
    return plan.model_dump(mode="json") if hasattr(plan, "model_dump") else plan


def write_decision_cda(plan, decision: Mapping, *, document_id: str, issued: dt.datetime) -> bytes:
    """A CDA "Individu + Décision" for one synthetic person and decision, shaped as the official
    CDA_SI-ESMS_Decision.xml (header, recordTarget with the cnsaSDO MDPH extensions, author and
    custodian ViaTrajectoire, section décision 1.2.250.1.213.1.1.2.235)."""
    person = _data(plan)["person"]
    department = decision["mdph"]
    mdph = mdph_oid(department)
    label = decision["orientation"]
    closing = decision.get("status") == "cancelled"
    issued_on = dt.date.fromisoformat(decision.get("notification_date") or decision["decision_date"])
    role = _h.patientRole()
    if person.get("ins"):
        role.append(_h.id(extension=person["ins"]["value"], root=person["ins"]["oid"]))
    role.append(_h.id(extension=f"DOSSIER-{person['local_id']}", root=mdph))
    address = person.get("address") or {}
    if address:
        addr = _h.addr(use="PHYS")
        for line in address.get("lines") or []:
            addr.append(_h.streetAddressLine(line))
        if address.get("postal_code"):
            addr.append(_h.postalCode(address["postal_code"]))
        if address.get("city"):
            addr.append(_h.city(address["city"]))
        role.append(addr)
    role.append(_s.idMDPHResponsable(extension=f"{department}-MDPH FICTIVE", root=mdph))
    name = _h.name(_h.family(person["birth_family_name"], qualifier="BR"),
                   _h.family(person.get("used_family_name") or person["birth_family_name"], qualifier="CL"),
                   _h.given(" ".join(person["birth_given_names"])),
                   _h.given(person["birth_given_names"][0], qualifier="BR"),
                   _h.given(person.get("used_given_name") or person["birth_given_names"][0], qualifier="CL"))
    patient = _h.patient(name, _h.administrativeGenderCode(
        code={"male": "M", "female": "F"}.get(person["sex"], "U"), codeSystem="2.16.840.1.113883.5.1"),
        _h.birthTime(value=_ts(dt.date.fromisoformat(person["birth_date"]))))
    if person.get("birthplace_insee"):
        patient.append(_h.birthplace(_h.place(_h.addr(_h.county(person["birthplace_insee"]), use="PHYS"))))
    role.append(patient)

    detail = _s.detailTypeDroitPrestation(
        _s.temporaliteAccueil(code="01" if "temporaire" in label.lower() else "02",
                              codeSystem="1.2.250.1.213.3.3.31"),
        _s.accueilSequentiel(value="true" if "séquentiel" in label.lower() else "false"))
    if decision.get("organisation_category_code"):
        detail.append(_s.categorieOrganisation(code=decision["organisation_category_code"],
                                               codeSystem="1.2.250.1.213.3.3.39"))
    for destination in decision.get("_destinations", ()):
        detail.append(_s.idNat(root="1.2.250.1.71.4.2.2", extension=destination))
    care_mode = decision.get("care_mode_code") or _care_mode(label)
    if care_mode:
        detail.append(_s.priseEnCharge(_s.modePriseEnCharge(code=care_mode, codeSystem="1.2.250.1.213.3.3.13")))
    content = _s.decision(
        _s.identifiantDecision(root=mdph, extension=decision["decision_number"]),
        _s.typeDeDecision(code="5" if closing else "1", displayName="Clôture de droit" if closing else "Attribution",
                          codeSystem="1.2.250.1.213.3.3.202"),
        _s.dateDeDecision(value=_ts(dt.date.fromisoformat(decision["decision_date"]))))
    if closing:
        content.append(_s.dateEffetDeLaDecisionDeCloture(value=_ts(dt.date.fromisoformat(decision["validity"]["end"]))))
    content.append(_s.droitPrestation(
        _s.typeDroitOuPrestation(code=decision.get("right_type_code") or _right_type(label), displayName=label,
                                 codeSystem="1.2.250.1.213.3.3.204"),
        _s.natureDroit(code="1", displayName="Nouveau droit", codeSystem="1.2.250.1.213.3.3.151"),
        _s.dateOuvertureDuDroit(value=_ts(dt.date.fromisoformat(decision["validity"]["start"]))),
        _s.dateEcheanceDuDroit(value=_ts(dt.date.fromisoformat(decision["validity"]["end"]))),
        detail))
    viatrajectoire = {"root": "1.2.250.1.213.8.1", "extension": "ViaTrajectoire"}
    document = _h.ClinicalDocument(
        _h.realmCode(code="FR"),
        _h.typeId(root="2.16.840.1.113883.1.3", extension="POCD_HD000040"),
        _h.templateId(root="1.2.250.1.213.1.1.1.4.8"),
        _h.templateId(root="2.16.840.1.113883.10.12.2"),
        _h.id(root="1.2.250.1.213.8.1.99", extension=document_id),
        # code and codeSystem as in the official example (specs §11.5: a FHIR ValueSet OID)
        _h.code(code="18825-0", codeSystem="2.16.840.1.113883.4.642.3.240",
                displayName="Medical social services attachment"),
        _h.title("Décision d'orientation (bac à sable)"),
        _h.effectiveTime(value=_ts(issued_on)),
        _h.confidentialityCode(code="N", codeSystem="2.16.840.1.113883.5.25"),
        _h.languageCode(code="fr-FR"),
        _h.setId(root="1.2.250.1.213.8.1.99", extension=document_id),
        _h.versionNumber(value="1"),
        _h.recordTarget(role),
        _h.author(_h.time(value=issued.strftime("%Y%m%d%H%M%S+0000")),
                  _h.assignedAuthor(_h.id(**viatrajectoire), classCode="ASSIGNED"),
                  contextControlCode="OP", typeCode="AUT"),
        _h.custodian(_h.assignedCustodian(_h.representedCustodianOrganization(_h.id(**viatrajectoire)))),
        _h.component(_h.structuredBody(_h.component(_h.section(
            _h.templateId(root="1.2.250.1.213.1.1.2.235"), content)))),
    )
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_evaluation_cda(plan, decision: Mapping, *, document_id: str) -> bytes:
    """A small CDA standing for the "Evaluation" document of flux 3 (synthetic content)."""
    person = _data(plan)["person"]
    role = _h.patientRole()
    if person.get("ins"):
        role.append(_h.id(extension=person["ins"]["value"], root=person["ins"]["oid"]))
    document = _h.ClinicalDocument(
        _h.realmCode(code="FR"), _h.typeId(root="2.16.840.1.113883.1.3", extension="POCD_HD000040"),
        _h.id(root="1.2.250.1.213.8.1.99", extension=document_id),
        _h.code(code=vocab.DOC_EVALUATION, codeSystem="2.16.840.1.113883.6.1", displayName="Evaluation note"),
        _h.title("Évaluation (bac à sable)"),
        _h.recordTarget(role),
        _h.component(_h.structuredBody(_h.component(_h.section(
            _h.title("Évaluation de la situation"),
            _h.text(f"Évaluation fictive liée à la décision {decision['decision_number']}.")))))
    )
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def document_reference(*, decision_number: str, national_id: str, cda: bytes, evaluation: bool,
                       destinations: Iterable[str]) -> dict:
    """An esms-document-reference carrying a CDA, tagged with the ESMS it is addressed to."""
    code = vocab.DOC_EVALUATION if evaluation else vocab.DOC_DECISION
    return {
        "resourceType": "DocumentReference",
        "meta": {"profile": [vocab.PROFILE_DOCUMENT_REFERENCE],
                 "tag": [{"system": DESTINATION_TAG, "code": d} for d in destinations]},
        "identifier": [{"use": "usual", "value": decision_number}, {"use": "official", "value": national_id}],
        "status": "current",
        "type": {"coding": [{"system": vocab.LOINC, "code": code,
                             "display": "Evaluation note" if evaluation else "Admission request Document"}]},
        "content": [{"attachment": {"contentType": "text/xml", "language": "fr",
                                    "title": vocab.TITLE_EVALUATION if evaluation else vocab.TITLE_DECISION,
                                    "data": base64.b64encode(cda).decode()}}],
    }


# ------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class SeededDecision:
    person: str  # the plan's person local_id
    decision: str  # the plan's decision id
    decision_number: str
    national_id: str
    document_reference: str  # "DocumentReference/<id>"
    evaluation: str


def national_id_for(decision: Mapping) -> str:
    """The decision's idNat_Decision, or a stable synthetic one when the plan has none."""
    if decision.get("national_id"):
        return decision["national_id"]
    digest = hashlib.sha256(decision["decision_number"].encode()).hexdigest()[:8].upper()
    return f"SDO-{decision['mdph']}-{digest}"


def seed_decisions(store: ResourceStore, plans: Iterable, *, destination: str,
                   now: dt.datetime | None = None) -> list[SeededDecision]:
    """For every orientation decision of the given synthetic plans, a decision file (CDA
    "Individu + Décision") and its evaluation, both addressed to the ESMS `destination`
    (FINESS EG or idNat_Struct)."""
    struct = destination if len(destination) != 9 else "1" + destination
    issued = now or dt.datetime.now(dt.UTC)
    seeded = []
    for plan in plans:
        data = _data(plan)
        for decision in data.get("orientation_decisions") or []:
            national = national_id_for(decision)
            cda = write_decision_cda(data, {**decision, "_destinations": (struct,)},
                                     document_id=f"{national}-D", issued=issued)
            doc, _ = store.create(document_reference(decision_number=decision["decision_number"],
                                                     national_id=national, cda=cda, evaluation=False,
                                                     destinations=(struct,)))
            evaluation_cda = write_evaluation_cda(data, decision, document_id=f"{national}-E")
            ev, _ = store.create(document_reference(decision_number=decision["decision_number"],
                                                    national_id=national, cda=evaluation_cda, evaluation=True,
                                                    destinations=(struct,)))
            seeded.append(SeededDecision(data["person"]["local_id"], decision["id"], decision["decision_number"],
                                         national, f"DocumentReference/{doc.resource['id']}",
                                         f"DocumentReference/{ev.resource['id']}"))
    return seeded


def publish_status(store: ResourceStore, *, structure: str, esms_name: str, decision_number: str,
                   national_id: str, status: str | None = None, unit_status: str | None = None,
                   status_date: dt.date | None = None, last_updated: dt.datetime | None = None) -> Stored:
    """A status Task as another ESMS (or the SDO itself) would have posted it, shaped as the
    guide's example (flux 5.2): value-only identifiers, codes of the national value sets.
    `last_updated` backdates it (for the J-30 / J-1 polling tests)."""
    def item(name: str, value: dict) -> dict:
        return {"type": {"coding": [{"system": vocab.INPUT_TASK_CS, "code": name}]}, **value}

    inputs = [item("idNat_Struct", {"valueIdentifier": {"value": structure if len(structure) != 9 else "1" + structure}}),
              item("nomESMS", {"valueString": esms_name}),
              item("idDecision", {"valueIdentifier": {"value": decision_number}}),
              item("idNat_Decision", {"valueIdentifier": {"value": national_id}})]
    if status:
        inputs.append(item("statutESMS", {"valueCodeableConcept": {"coding": [
            {"system": vocab.TRE_R357, "code": status, "display": vocab.STATUT_ESMS.get(status, "")}]}}))
        inputs.append(item("dateStatutESMS", {"valueDate": (status_date or dt.date.today()).isoformat()}))
    if unit_status:  # regle-StatutUnite: the unit's identity and modality come with its status
        inputs += [item("idUnite", {"valueIdentifier": {"value": f"UNITE-{structure}"}}),
                   item("nomUnite", {"valueString": f"Unité de {esms_name}"}),
                   item("categorieOrganisation", {"valueCodeableConcept": {"coding": [
                       {"system": vocab.TRE_R244, "code": "01"}]}}),
                   item("modePriseCharge", {"valueCodeableConcept": {"coding": [
                       {"system": vocab.TRE_R213, "code": "47", "display": vocab.MODE_PRISE_CHARGE["47"]}]}}),
                   item("statutUnite", {"valueCodeableConcept": {"coding": [
                       {"system": vocab.TRE_R357, "code": unit_status,
                        "display": vocab.STATUT_UNITE.get(unit_status, "")}]}}),
                   item("dateStatutUnite", {"valueDate": (status_date or dt.date.today()).isoformat()})]
    stored, _ = store.create({"resourceType": "Task", "meta": {"profile": [vocab.PROFILE_TASK]},
                              "status": "completed", "intent": "plan", "input": inputs})
    if last_updated is not None:
        stamp = last_updated.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        stored.last_updated = stamp
        stored.resource["meta"]["lastUpdated"] = stamp
    return stored
