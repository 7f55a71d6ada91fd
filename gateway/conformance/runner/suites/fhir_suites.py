"""The FHIR suites: a TDDUI consumer (TDDUI 2.2.0 §1.1), a regional e-parcours server (cercle de
soins CDS 2.0.1, notification d'évènements NdE 3.0.0, and the TDDUI flow it receives — specs §6)
and an SI-SDO server (SDO 4.0.7 flows 1–5, specs §3). Every resource a suite sends is first
checked against the guide's profiles with the same rules Relais applies, and every resource a
server returns for a profiled flow is validated the same way."""

from __future__ import annotations

import copy
import datetime as dt

from gateway.conformance.runner.suites.base import Check, Endpoint, Skip, Suite
from gateway.conformance.runner.suites.fhir_session import FHIR_JSON, FhirSession

TDDUI_SD = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
# TDDUIConsommateur CapabilityStatement: read on these types, plus the system transaction (specs §1.1)
TDDUI_READ = ("Patient", "Organization", "Encounter", "Practitioner", "PractitionerRole", "Task",
              "QuestionnaireResponse", "CarePlan", "Goal", "ServiceRequest", "Consent")


def _catalog():
    from gateway.conformance.runner.catalog import Catalog

    global _CATALOG
    if _CATALOG is None:
        _CATALOG = Catalog([])
    return _CATALOG


_CATALOG = None


def validate_against_guide(s: FhirSession, resource: dict, where: str, profile: str | None = None) -> bool:
    """Errors of `resource` against its profiles, recorded on the current test; True when none."""
    from gateway.conformance.runner.fhir import validate_fhir

    issues, _, _ = validate_fhir(resource, _catalog(), profile=profile)
    errors = [i for i in issues if i.severity == "error"]
    for i in errors:
        s.issue(i.rule, f"{where} : {i.message}", location=i.location, source=i.source)
    return not errors


# --- shared checks ----------------------------------------------------------------------------------
def capability(s: FhirSession, types: tuple[str, ...], interactions: tuple[str, ...], *, transaction: bool,
               conditional: bool = False) -> dict | None:
    body = s.expect(s.request("GET", "metadata", auth=False), (200,), "CapabilityStatement", "GET [base]/metadata")
    if body is None:
        return None
    s.check(body.get("fhirVersion", "").startswith("4.0"), "capability-fhir-version",
            f"fhirVersion {body.get('fhirVersion')!r} : FHIR R4 (4.0.x) attendu")
    s.check(any(f in (body.get("format") or []) for f in (FHIR_JSON, "json", "application/json")), "capability-format",
            f"format {body.get('format')} : {FHIR_JSON} attendu")
    rest = next((r for r in body.get("rest") or [] if r.get("mode") == "server"), None)
    if not s.check(rest is not None, "capability-rest", "aucun rest.mode = server"):
        return body
    declared = {r.get("type"): r for r in rest.get("resource") or []}
    for rtype in types:
        entry = declared.get(rtype)
        if not s.check(entry is not None, "capability-resource", f"type {rtype} non déclaré"):
            continue
        codes = {i.get("code") for i in entry.get("interaction") or []}
        for code in interactions:
            s.check(code in codes, "capability-interaction", f"{rtype} : interaction {code} non déclarée")
        if conditional:
            s.check(bool(entry.get("conditionalCreate")), "capability-conditional-create",
                    f"{rtype} : conditionalCreate non déclaré")
    if transaction:
        s.check("transaction" in {i.get("code") for i in rest.get("interaction") or []}, "capability-transaction",
                "interaction système transaction non déclarée")
    return body


def unauthenticated_is_refused(s: FhirSession, path: str = "Patient/relais-conformance-absent") -> None:
    s.require_client()
    s.expect_outcome(s.request("GET", path, auth=False), (401, 403), f"GET {path} sans jeton")


def wrong_media_type_is_refused(s: FhirSession, path: str, body: dict) -> None:
    import orjson

    response = s.request("POST", path, orjson.dumps(body), content_type="text/plain")
    s.expect_outcome(response, (400, 406, 415), f"POST {path} en text/plain")


def malformed_json_is_refused(s: FhirSession, path: str) -> None:
    s.expect_outcome(s.request("POST", path, b'{"resourceType": "Bundle", "entry": ['), (400, 422),
                     f"POST {path} avec un JSON tronqué")


def unknown_read_is_404(s: FhirSession, rtype: str = "Patient") -> None:
    s.expect_outcome(s.request("GET", f"{rtype}/relais-absent-{s.run_id}"), (404, 410), f"GET {rtype}/inconnu")


# --- TDDUI ------------------------------------------------------------------------------------------
def tddui_bundle(s: FhirSession, *, broken: bool = False) -> dict:
    """The reference TDDUI 2.2.0 Bundle with this run's identifiers (and, broken, a CarePlan
    without its mandatory title)."""
    from gateway.conformance.fhir import examples as ex

    bundle = ex.bundle()
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] != "Patient":
            for ident in res.get("identifier") or []:
                ident["value"] = f"{ident['value']}-{s.run_id}{'-KO' if broken else ''}"
        if broken and res["resourceType"] == "CarePlan":
            del res["title"]
    return bundle


def _careplan_identifier(bundle: dict) -> dict:
    plan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    return plan["identifier"][0]


def tddui_transaction(s: FhirSession) -> None:
    bundle = tddui_bundle(s)
    if not validate_against_guide(s, bundle, "Bundle envoyé (auto-contrôle)"):
        s.fail("suite-self-check", "le Bundle de la suite n'est pas conforme à TDDUI 2.2.0")
    body = s.expect(s.request("POST", "", bundle), (200,), "Bundle", "POST [base] (transaction TDDUI)")
    if body is None:
        return
    s.check(body.get("type") == "transaction-response", "transaction-response",
            f"Bundle.type {body.get('type')!r} : transaction-response attendu")
    entries = body.get("entry") or []
    if not s.check(len(entries) == len(bundle["entry"]), "transaction-response",
                   f"{len(entries)} entrée(s) en réponse pour {len(bundle['entry'])} envoyée(s)"):
        return
    locations = []
    for i, entry in enumerate(entries):
        response = entry.get("response") or {}
        s.check(str(response.get("status", "")).startswith("201"), "transaction-entry-status",
                f"entry[{i}].response.status {response.get('status')!r} : 201 Created attendu",
                location=f"Bundle.entry[{i}].response.status")
        s.check(bool(response.get("location")), "transaction-entry-location", f"entry[{i}].response.location absent",
                location=f"Bundle.entry[{i}].response.location")
        locations.append((bundle["entry"][i]["resource"], response.get("location")))
    s.state["tddui-created"] = locations


def tddui_read_back(s: FhirSession) -> None:
    created = s.state.get("tddui-created")
    if not created:
        raise Skip("la transaction TDDUI n'a rien créé (test précédent)")
    for sent, location in created:
        if not location:
            continue
        rtype, rid = location.split("/")[-4:-2] if "/_history/" in location else location.split("/")[-2:]
        if rtype not in TDDUI_READ:
            continue
        body = s.expect(s.request("GET", f"{rtype}/{rid}"), (200,), rtype, f"GET {rtype}/{rid}")
        if body is not None and sent.get("identifier"):
            values = {i.get("value") for i in body.get("identifier") or []}
            s.check(sent["identifier"][0]["value"] in values, "read-back-identifier",
                    f"{rtype}/{rid} : l'identifiant envoyé n'est pas restitué")


def tddui_invalid_rejected_whole(s: FhirSession) -> None:
    bundle = tddui_bundle(s, broken=True)
    response = s.request("POST", "", bundle)
    s.expect_outcome(response, (400, 409, 412, 422, 500), "POST [base] (Bundle TDDUI sans CarePlan.title)")
    ident = _careplan_identifier(bundle)
    search = s.request("GET", f"CarePlan?identifier={ident['system']}|{ident['value']}")
    if search.status_code != 200:
        raise Skip("recherche CarePlan?identifier non prise en charge : atomicité non vérifiable")
    found = s.json(search, "GET CarePlan?identifier") or {}
    s.check(not found.get("entry"), "transaction-atomicity",
            "une transaction refusée a laissé des ressources créées (tout ou rien attendu)")


class TdduiConsumerSuite(Suite):
    name = "tddui-consommateur"
    title = "consommateur TDDUI 2.2.0 (flux 1 : transaction, lecture)"

    def session(self, endpoint: Endpoint) -> FhirSession:
        return FhirSession(endpoint, "TDDUI 2.2.0 (ans.fhir.fr.tddui) — TDDUIConsommateur")

    def checks(self) -> list[Check]:
        return [
            Check("capability", "CapabilityStatement : FHIR 4.0.1, JSON, read des types TDDUI, transaction",
                  lambda s: capability(s, TDDUI_READ, ("read",), transaction=True), "TDDUI §1.1"),
            Check("acces-sans-jeton", "requête sans jeton refusée (401/403 + OperationOutcome)",
                  lambda s: unauthenticated_is_refused(s), "PGSSI-S, securisation-transport"),
            Check("type-de-contenu", "corps en text/plain refusé (415 + OperationOutcome)",
                  lambda s: wrong_media_type_is_refused(s, "", tddui_bundle(s)), "FHIR http.html#mime-type"),
            Check("json-mal-forme", "JSON tronqué refusé (400 + OperationOutcome)",
                  lambda s: malformed_json_is_refused(s, ""), "FHIR http.html"),
            Check("transaction", "transaction TDDUI conforme : 200, transaction-response, 201 + location par entrée",
                  tddui_transaction, "TDDUI §1.1 flux 1"),
            Check("lecture", "chaque ressource créée se relit (read) avec son identifiant", tddui_read_back, "TDDUI §1.1"),
            Check("transaction-invalide", "Bundle non conforme refusé avec OperationOutcome, rien n'est créé",
                  tddui_invalid_rejected_whole, "TDDUI §1.1 (tout ou rien)"),
            Check("lecture-inconnue", "lecture d'une ressource inconnue : 404 + OperationOutcome",
                  lambda s: unknown_read_is_404(s), "FHIR http.html#read"),
        ]


# --- e-parcours (cercle de soins, notifications) ---------------------------------------------------------
CDS_SD = "https://interop.esante.gouv.fr/ig/fhir/cds/StructureDefinition/"


def _patient(s: FhirSession) -> dict:
    return {"resourceType": "Patient",
            "identifier": [{"system": "https://relais.example/conformance/patient", "value": f"P-{s.run_id}"}],
            "name": [{"family": "Conformité", "given": ["Test"]}], "gender": "unknown", "birthDate": "2010-01-01"}


def _careteam(s: FhirSession, patient_ref: str) -> dict:
    return {"resourceType": "CareTeam", "meta": {"profile": [CDS_SD + "cds-ihe-careteam"]},
            "identifier": [{"system": "https://relais.example/conformance/careteam", "value": f"CT-{s.run_id}"}],
            "status": "active", "name": "Cercle de soins (test de conformité)",
            "subject": {"reference": patient_ref}, "period": {"start": "2026-01-01"}}


def conditional_create(s: FhirSession) -> None:
    patient = _patient(s)
    ident = patient["identifier"][0]
    header = {"If-None-Exist": f"identifier={ident['system']}|{ident['value']}"}
    first = s.expect(s.request("POST", "Patient", patient, headers=header), (201,), "Patient", "POST Patient (1re fois)")
    second = s.request("POST", "Patient", patient, headers=header)
    again = s.expect(second, (200, 201, 304), None, "POST Patient (2e fois, If-None-Exist)")
    if first is not None:
        s.state["patient"] = f"Patient/{first.get('id')}"
        if again is not None and second.status_code != 304:
            s.check(second.status_code == 200 and again.get("id") == first.get("id"), "conditional-create",
                    f"création conditionnelle : une 2e ressource a été créée ({again.get('id')} ≠ {first.get('id')}) "
                    "ou le statut n'est pas 200")


def careteam_create_read_search(s: FhirSession) -> None:
    patient = s.state.get("patient")
    if not patient:
        raise Skip("aucun Patient créé (test précédent)")
    created = s.expect(s.request("POST", "CareTeam", _careteam(s, patient)), (201,), "CareTeam", "POST CareTeam")
    if created is None:
        return
    rid = created.get("id")
    s.check(bool(rid), "create-id", "CareTeam créée sans id")
    s.expect(s.request("GET", f"CareTeam/{rid}"), (200,), "CareTeam", f"GET CareTeam/{rid}")
    found = s.expect(s.request("GET", f"CareTeam?patient={patient}"), (200,), "Bundle", "GET CareTeam?patient=")
    if found is not None:
        s.check(found.get("type") == "searchset", "search-bundle", "Bundle.type searchset attendu")
        s.check(any((e.get("resource") or {}).get("id") == rid for e in found.get("entry") or []), "search-result",
                "la CareTeam créée n'est pas trouvée par CareTeam?patient=")


def cds_transaction_error(s: FhirSession) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:7a0b1d1e-0000-4000-8000-00000000c001",
        "resource": _careteam(s, "urn:uuid:7a0b1d1e-0000-4000-8000-0000000000ff"),
        "request": {"method": "POST", "url": "CareTeam"}}]}
    response = s.request("POST", "", bundle)
    s.expect_outcome(response, (400, 404, 409, 422, 500), "POST [base] (transaction CDS à référence non résolue)")


def notifications_search(s: FhirSession) -> None:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = s.expect(s.request("GET", f"CommunicationRequest?_lastUpdated=gt{since}"), (200,), "Bundle",
                    "GET CommunicationRequest?_lastUpdated=gt…")
    if body is not None:
        s.check(body.get("type") == "searchset", "search-bundle", "Bundle.type searchset attendu")


class EparcoursSuite(Suite):
    name = "eparcours"
    title = "serveur FHIR e-parcours (cercle de soins CDS 2.0.1, notifications NdE 3.0.0, flux TDDUI)"

    def session(self, endpoint: Endpoint) -> FhirSession:
        return FhirSession(endpoint, "e-parcours : CDS 2.0.1 / NdE 3.0.0 / TDDUI 2.2.0")

    def checks(self) -> list[Check]:
        return [
            Check("capability", "CapabilityStatement : CareTeam, Patient, RelatedPerson, PractitionerRole, Organization "
                  "(create, read, search-type, conditionalCreate), CommunicationRequest, transaction",
                  lambda s: capability(s, ("CareTeam", "Patient", "RelatedPerson", "PractitionerRole", "Organization"),
                                       ("create", "read", "search-type"), transaction=True, conditional=True)
                  and capability(s, ("CommunicationRequest",), ("search-type",), transaction=False), "CDS §6.1, NdE §6.2"),
            Check("acces-sans-jeton", "requête sans jeton refusée (401/403 + OperationOutcome)",
                  lambda s: unauthenticated_is_refused(s), "securisation-transport"),
            Check("creation-conditionnelle", "POST Patient avec If-None-Exist deux fois : 201 puis 200, une seule ressource",
                  conditional_create, "FHIR http.html#ccreate"),
            Check("cercle-de-soins", "CareTeam : création (201), lecture, recherche par patient", careteam_create_read_search,
                  "CDS §6.1 option REST"),
            Check("transaction-erreur", "transaction CDS invalide : erreur avec OperationOutcome (le guide CDS dit 500)",
                  cds_transaction_error, "CDS §6.1, specs §11.13"),
            Check("notifications", "recherche CommunicationRequest?_lastUpdated : searchset", notifications_search,
                  "NdE §6.2"),
            Check("transaction-tddui", "transaction TDDUI 2.2.0 acceptée (200, 201 par entrée)", tddui_transaction,
                  "TDDUI §1.1"),
            Check("transaction-tddui-invalide", "Bundle TDDUI non conforme refusé avec OperationOutcome, rien n'est créé",
                  tddui_invalid_rejected_whole, "TDDUI §1.1"),
            Check("type-de-contenu", "corps en text/plain refusé (415 + OperationOutcome)",
                  lambda s: wrong_media_type_is_refused(s, "Patient", _patient(s)), "FHIR http.html#mime-type"),
            Check("json-mal-forme", "JSON tronqué refusé (400 + OperationOutcome)",
                  lambda s: malformed_json_is_refused(s, "Patient"), "FHIR http.html"),
            Check("lecture-inconnue", "lecture d'une ressource inconnue : 404 + OperationOutcome",
                  lambda s: unknown_read_is_404(s, "CareTeam"), "FHIR http.html#read"),
        ]


# --- SDO (ViaTrajectoire SI-SDO) -------------------------------------------------------------------------
SDO = "https://interop.esante.gouv.fr/ig/fhir/sdo"
SDO_SD = SDO + "/StructureDefinition/"
INPUT_CS = SDO + "/CodeSystem/input-task-sdo-codesystem"
TRE_R357 = "https://mos.esante.gouv.fr/NOS/TRE_R357-StatutPersonnePriseCharge/FHIR/TRE-R357-StatutPersonnePriseCharge"


def _struct(s: FhirSession) -> str:
    finess = s.endpoint.options.get("finess")
    given = {k.lower(): v for k, v in s.endpoint.headers.items()}.get("struct_idnat")
    if given:
        return given
    if not finess:
        raise Skip("structure non donnée : --option finess=FINESS_EG (ou --header struct_idnat:1FINESS)")
    return "1" + finess


def _sdo_headers(s: FhirSession) -> dict:
    return {"struct_idnat": _struct(s)}


def sdo_without_struct_refused(s: FhirSession) -> None:
    _struct(s)
    response = s.request("GET", "Task?_lastUpdated=gt2020-01-01", drop=("struct_idnat",))
    s.expect_outcome(response, (400, 401, 403), "GET Task sans en-tête struct_idnat")


def sdo_search_decisions(s: FhirSession) -> None:
    since = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    body = s.expect(s.request("GET", f"DocumentReference?type=57830-2&_lastUpdated=gt{since}&_elements=id",
                              headers=_sdo_headers(s)), (200,), "Bundle", "flux 1.1 GET DocumentReference?type=57830-2")
    if body is None:
        return
    s.check(body.get("type") == "searchset", "search-bundle", "Bundle.type searchset attendu")
    ids = [(e.get("resource") or {}).get("id") for e in body.get("entry") or []]
    s.state["decisions"] = [i for i in ids if i]


def sdo_read_decision(s: FhirSession) -> None:
    ids = s.state.get("decisions")
    if not ids:
        raise Skip("aucune décision d'orientation adressée à cette structure (flux 1.1)")
    doc = s.expect(s.request("GET", f"DocumentReference/{ids[0]}", headers=_sdo_headers(s)), (200,),
                   "DocumentReference", f"flux 1.3 GET DocumentReference/{ids[0]}")
    if doc is None:
        return
    validate_against_guide(s, doc, "DocumentReference reçue", profile=SDO_SD + "esms-document-reference")
    national = next((i.get("value") for i in doc.get("identifier") or [] if i.get("use") == "official"), None)
    decision = next((i.get("value") for i in doc.get("identifier") or [] if i.get("use") == "usual"), None)
    s.check(bool(national), "sdo-idnat-decision", "identifier[use=official] (idNat_Decision) absent")
    s.state["decision"] = (decision, national)


def _evaluation_search(s: FhirSession) -> dict | None:
    _, national = s.state["decision"]
    return s.expect(s.request("GET", f"DocumentReference?identifier={national}&type=51848-0", headers=_sdo_headers(s)),
                    (200,), "Bundle", "flux 3.1 GET DocumentReference?identifier=…&type=51848-0")


def sdo_evaluation_before_consent(s: FhirSession) -> None:
    if not s.state.get("decision"):
        raise Skip("pas de décision lue (flux 1.3)")
    body = _evaluation_search(s)
    if body is not None:
        s.check(not body.get("entry"), "sdo-evaluation-before-consent",
                "l'évaluation est servie avant l'accord de la personne (flux 3 après flux 2)")


def sdo_consent(s: FhirSession) -> None:
    if not s.state.get("decision"):
        raise Skip("pas de décision lue (flux 1.3)")
    _, national = s.state["decision"]
    consent = {"resourceType": "Consent", "meta": {"source": _struct(s), "profile": [SDO_SD + "esms-consent"]},
               "status": "active",
               "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
               "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
               "dateTime": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "policy": [{"uri": "https://www.legifrance.gouv.fr/"}],
               "provision": {"data": [{"meaning": "related", "reference": {
                   "identifier": {"use": "official", "value": national}}}]}}
    validate_against_guide(s, consent, "Consent envoyé (auto-contrôle)")
    s.expect(s.request("POST", "Consent", consent, headers=_sdo_headers(s)), (201,), "Consent", "flux 2 POST Consent")
    body = _evaluation_search(s)
    if body is not None:
        s.check(len(body.get("entry") or []) == 1, "sdo-evaluation-after-consent",
                f"{len(body.get('entry') or [])} évaluation(s) après l'accord, 1 attendue (flux 3.2)")


def _task(s: FhirSession, *, broken: bool = False) -> dict:
    decision, national = s.state["decision"]

    def item(name, value):
        return {"type": {"coding": [{"system": INPUT_CS, "code": name}]}, **value}

    inputs = [item("idNat_Struct", {"valueIdentifier": {"value": _struct(s)}}),
              item("nomESMS", {"valueString": "ESMS du test de conformité"}),
              item("statutESMS", {"valueCodeableConcept": {"coding": [{"system": TRE_R357, "code": "41",
                                                                       "display": "Contact effectué"}]}}),
              item("dateStatutESMS", {"valueDate": dt.date.today().isoformat()}),
              item("idDecision", {"valueIdentifier": {"value": decision}}),
              item("idNat_Decision", {"valueIdentifier": {"value": national}})]
    if broken:
        inputs = inputs[:-1]
    return {"resourceType": "Task", "meta": {"lastUpdated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                             "profile": [SDO_SD + "esms-task"]},
            "status": "completed", "intent": "plan", "input": inputs}


def sdo_status(s: FhirSession) -> None:
    if not s.state.get("decision"):
        raise Skip("pas de décision lue (flux 1.3)")
    task = _task(s)
    validate_against_guide(s, task, "Task envoyée (auto-contrôle)")
    s.expect(s.request("POST", "Task", task, headers=_sdo_headers(s)), (201,), "Task", "flux 4 POST Task")


def sdo_invalid_status(s: FhirSession) -> None:
    if not s.state.get("decision"):
        raise Skip("pas de décision lue (flux 1.3)")
    body = s.expect_outcome(s.request("POST", "Task", _task(s, broken=True), headers=_sdo_headers(s)), (400, 422),
                            "flux 4 POST Task sans idNat_Decision")
    if body is not None:
        s.check(any(i.get("expression") or i.get("location") for i in body.get("issue") or []), "operation-outcome-location",
                "OperationOutcome sans expression (FHIRPath) désignant l'erreur", severity=_warning())


def _warning():
    from gateway.model.problem import Severity

    return Severity.warning


def sdo_poll_statuses(s: FhirSession) -> None:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = s.expect(s.request("GET", f"Task?_lastUpdated=gt{since}", headers=_sdo_headers(s)), (200,), "Bundle",
                    "flux 5.1 GET Task?_lastUpdated=gt…")
    if body is None:
        return
    s.check(body.get("type") == "searchset", "search-bundle", "Bundle.type searchset attendu")
    for n, entry in enumerate(body.get("entry") or []):
        task = copy.deepcopy(entry.get("resource") or {})
        task.setdefault("meta", {})["profile"] = [SDO_SD + "esms-task"]
        validate_against_guide(s, task, f"entry[{n}] (Task)")


class SdoSuite(Suite):
    name = "sdo"
    title = "serveur SI-SDO ViaTrajectoire (SDO 4.0.7, flux 1 à 5)"

    def session(self, endpoint: Endpoint) -> FhirSession:
        return FhirSession(endpoint, "SDO 4.0.7 (ans.fhir.fr.sdo) — SDOGestionnaire")

    def checks(self) -> list[Check]:
        return [
            Check("capability", "CapabilityStatement : DocumentReference (read, search), Consent (create), Task "
                  "(create, search)", lambda s: capability(s, ("DocumentReference",), ("read", "search-type"),
                                                            transaction=False)
                  and capability(s, ("Consent", "Task"), ("create",), transaction=False), "SDO §3.2"),
            Check("acces-sans-jeton", "requête sans jeton refusée (401/403 + OperationOutcome)",
                  lambda s: unauthenticated_is_refused(s, "Task?_lastUpdated=gt2020-01-01"), "SDO §3.1"),
            Check("struct-idnat", "requête sans en-tête struct_idnat refusée (+ OperationOutcome)",
                  sdo_without_struct_refused, "SDO §3.1"),
            Check("flux1-recherche", "flux 1.1 : recherche des décisions (searchset, _elements=id)", sdo_search_decisions,
                  "SDO §3.2 flux 1.1"),
            Check("flux1-lecture", "flux 1.3 : lecture d'une décision, conforme à esms-document-reference",
                  sdo_read_decision, "SDO §3.2 flux 1.3"),
            Check("flux3-avant-accord", "flux 3 : l'évaluation n'est pas servie avant l'accord",
                  sdo_evaluation_before_consent, "SDO §3.2 flux 3"),
            Check("flux2-accord", "flux 2 : POST Consent (esms-consent) 201, puis l'évaluation est servie (flux 3)",
                  sdo_consent, "SDO §3.2 flux 2-3"),
            Check("flux4-statut", "flux 4 : POST Task (esms-task) 201", sdo_status, "SDO §3.2 flux 4"),
            Check("flux4-invalide", "flux 4 : Task non conforme refusée (400/422 + OperationOutcome localisé)",
                  sdo_invalid_status, "SDO §3.2, erreurs"),
            Check("flux5-statuts", "flux 5 : Task?_lastUpdated, chaque Task conforme à esms-task", sdo_poll_statuses,
                  "SDO §3.2 flux 5"),
            Check("lecture-inconnue", "lecture d'une ressource inconnue : 404 + OperationOutcome",
                  lambda s: s.expect_outcome(s.request("GET", f"DocumentReference/absent-{s.run_id}",
                                                       headers=_sdo_headers(s)), (403, 404, 410),
                                             "GET DocumentReference/inconnu"), "FHIR http.html#read"),
        ]
