"""The `dmp` suite: a DMP XDS.b endpoint (Mon espace santé, specs §5.1) tested as Relais's DMP
connector uses it — ITI-41 feed and replacement (RPLC), ITI-18 FindDocuments / GetDocuments,
ITI-43 retrieve, ITI-57 deprecation — and its refusals: each defect a real DMP must refuse, sent
once, with the error code the standards give (IHE ITI TF-3 Table 4.2.4.1-2 RegistryErrors,
WS-Security 1.1 and WS-Addressing 1.0 SOAP faults).

The documents are Relais's own (a fixture plan → CDA R2 + XDS metadata, the submission set
signed XAdES with the seal certificate), for the test patient given (`--option ins=…`), with
identifiers unique to the run. The suite leaves one deprecated document and its replacement,
itself deprecated at the end (`retrait`), in that patient's DMP."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from gateway.conformance.runner.suites.base import Check, Endpoint, Skip, Suite
from gateway.conformance.runner.suites.dmp_session import WSS_FAULTS, DmpSession

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS = {"rim": RIM}


# --- documents --------------------------------------------------------------------------------------
def _plan(s: DmpSession, tag: str, patient: str):
    """A fixture plan made this run's and this patient's: its document ids are unique to (run, tag)."""
    from gateway.conformance.runner.samples import fixture_plan
    from gateway.model import Plan

    data = fixture_plan(0).model_dump(mode="json", exclude_none=True)
    value, _, rest = patient.partition("^^^&")
    data["id"] = f"CONF-{s.run_id}-{tag}"
    data["platform"]["finess"] = s.settings.finess
    data["person"]["ins"] = {"value": value, "oid": rest.partition("&")[0]}
    data["person"]["identity_status"] = "QUAL"
    return Plan.model_validate(data)


def submission(s: DmpSession, tag: str, *, version: int = 1, patient: str | None = None):
    from gateway.delivery.payload_dmp import build_submission

    key = (tag, version, patient)
    if key not in s.state.setdefault("submissions", {}):
        plan = _plan(s, tag, patient or s.patient)
        s.state["submissions"][key] = build_submission(plan, version=version, now=dt.datetime.now(dt.UTC))
    return s.state["submissions"][key]


def iti41_body(s: DmpSession, sub, metadata: bytes | None = None):
    """The ITI-41 body and MTOM parts: the CDA and, as the DMP requires (specs §5.1), the
    submission set's XAdES signature document."""
    from connectors.dmp import iti41, xades
    from mappings.cda.constants import derived_oid
    from mappings.xds import metadata as M

    metadata = metadata or sub.metadata
    documents = [iti41.Document(sub.entry_uuid, sub.content, sub.mime_type)]
    if s.settings.sign_submission:
        now = dt.datetime.now(dt.UTC)
        signature = xades.sign([(sub.unique_id, sub.content)], s.seal())
        unique_id = derived_oid("submission-signature", sub.unique_id, now.isoformat())
        metadata = M.add_signature(metadata, signature, unique_id=unique_id, now=now)
        documents.append(iti41.Document(M.entry_uuid(unique_id), signature, "text/xml"))
    return iti41.request(metadata, documents)


def edited(metadata: bytes, edit) -> bytes:
    root = etree.fromstring(metadata, etree.XMLParser(resolve_entities=False, no_network=True))
    edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _set_slot(name: str, value: str):
    def edit(root):
        root.xpath(f"//rim:ExtrinsicObject/rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=NS)[0].text = value
    return edit


def provide(s: DmpSession, sub, *, metadata: bytes | None = None, vihf_mode: str = "signed", action: str | None = None,
            where: str = "ITI-41"):
    from connectors.dmp import iti41

    body, attachments = iti41_body(s, sub, metadata)
    return s.post(s.settings.repository_path, action or iti41.ACTION, body, patient=sub.patient,
                  attachments=attachments, vihf_mode=vihf_mode, where=where)


def query(s: DmpSession, request: etree._Element, patient: str, where: str):
    """ITI-18 answered Success: the DocumentEntries (or the test fails)."""
    from connectors.dmp import iti18

    answer = s.post(s.settings.registry_path, iti18.ACTION, request, patient=patient, where=where)
    if not s.expect_success(answer, iti18.RESPONSE_ACTION, where):
        s.fail("iti18-failed", f"{where} : la requête n'a pas abouti")
    return [iti18.read_entry(node) for node in answer.registry().iterfind(f"{{{RIM}}}RegistryObjectList/"
                                                                          f"{{{RIM}}}ExtrinsicObject")]


def get_documents(s: DmpSession, unique_id: str, patient: str, where: str):
    from connectors.dmp import iti18

    return query(s, iti18.get_documents(unique_ids=(unique_id,)), patient, where)


def not_registered(s: DmpSession, sub, where: str) -> None:
    """After a refusal: the registry does not hold the document (all or nothing)."""
    found = [e for e in get_documents(s, sub.unique_id, s.patient, f"{where}, puis ITI-18 GetDocuments")]
    s.check(not found, "refused-but-registered",
            f"{where} : refusé, mais le document {sub.unique_id} est enregistré (tout ou rien attendu, "
            "IHE ITI TF-2b §3.41)")


def comparable(node: etree._Element) -> dict:
    """What must come back unchanged from the registry: ids, mimeType, title, every slot sent,
    every classification (code, scheme, slots)."""

    def values(holder, name):
        return tuple(holder.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS))

    out = {"mimeType": node.get("mimeType"),
           "title": tuple(node.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS))}
    for ident in node.iterfind("rim:ExternalIdentifier", NS):
        out[f"ExternalIdentifier {ident.get('identificationScheme')}"] = ident.get("value")
    for slot in node.iterfind("rim:Slot", NS):
        name = slot.get("name")
        value = values(node, name)
        out[f"Slot {name}"] = tuple(v.lower() for v in value) if name == "hash" else value
    classes: dict[str, list] = {}
    for c in node.iterfind("rim:Classification", NS):
        slots = tuple(sorted((sl.get("name"), values(c, sl.get("name"))) for sl in c.iterfind("rim:Slot", NS)))
        classes.setdefault(c.get("classificationScheme"), []).append((c.get("nodeRepresentation") or "", slots))
    out.update({f"Classification {k}": tuple(sorted(v)) for k, v in classes.items()})
    return out


# --- tests ------------------------------------------------------------------------------------------
def configuration(s: DmpSession) -> None:
    if s.missing:
        s.fail("dmp-options", "options requises absentes : " + ", ".join(f"--option {m}=…" for m in s.missing)
               + " (structure, patient de test ayant un DMP, certificat de cachet qui signe le VIHF)")
    if s.config_error:
        s.fail("dmp-options", s.config_error)
    try:
        s.seal().private_key  # noqa: B018 - loads and checks the key
    except (OSError, ValueError, TypeError) as exc:
        s.fail("dmp-seal", f"certificat de cachet illisible ({type(exc).__name__} : {exc})")


def _ready(s: DmpSession) -> None:
    if s.missing or s.config_error:
        raise Skip("configuration incomplète (voir le test « configuration »)")


def mutual_tls(s: DmpSession) -> None:
    import httpx

    if not s.base.startswith("https://"):
        s.fail("dmp-https", f"{s.base} : le DMP n'est servi qu'en HTTPS avec authentification mutuelle (specs §5.1, §8)")
    if not s.endpoint.client_cert:
        raise Skip("aucun certificat client donné (--client-cert/--client-key) : l'authentification mutuelle ne "
                   "peut pas être vérifiée")
    url = s.base + s.settings.registry_path
    try:
        with httpx.Client(verify=s.tls_context(with_client_cert=False), timeout=s.endpoint.timeout) as bare:
            response = bare.post(url, content=b"", headers={"Content-Type": "application/soap+xml"})
    except httpx.TransportError:
        return  # refused during or right after the handshake: what a DMP does
    s.check(response.status_code in (401, 403, 495, 496), "dmp-mutual-tls",
            f"POST {url} sans certificat client : HTTP {response.status_code} ; la connexion devait être refusée "
            "(TLS mutuel avec le certificat de la structure, specs §8)")


def feed(s: DmpSession) -> None:
    from connectors.dmp import iti41

    _ready(s)
    sub = submission(s, "depot")
    answer = provide(s, sub, where="ITI-41 d'un document valide")
    if s.expect_success(answer, iti41.RESPONSE_ACTION, "ITI-41 d'un document valide"):
        s.state["fed"] = sub


def find(s: DmpSession) -> None:
    from connectors.dmp import iti18

    sub = s.state.get("fed")
    if sub is None:
        raise Skip("aucun document déposé (test « depot »)")
    entries = query(s, iti18.find_documents(s.patient), s.patient, "ITI-18 FindDocuments (Approved)")
    found = [e for e in entries if e.unique_id == sub.unique_id]
    if not found:
        s.fail("find-documents", f"ITI-18 FindDocuments : le document déposé ({sub.unique_id}) n'est pas parmi les "
               f"{len(entries)} renvoyés")
    entry = found[0]
    s.check(entry.approved, "find-documents-status", f"statut {entry.status}, Approved attendu")
    s.check(bool(entry.repository_unique_id), "find-documents-repository",
            "slot repositoryUniqueId absent (nécessaire à ITI-43, IHE ITI TF-3 §4.2.3.2)")
    sent = comparable(etree.fromstring(sub.metadata).find(f".//{{{RIM}}}ExtrinsicObject"))
    back = comparable(entry.element)
    for name, value in sent.items():
        s.check(back.get(name) == value, "find-documents-metadata",
                f"métadonnée {name} : envoyée {value!r}, renvoyée {back.get(name)!r} (le registre restitue ce qui a "
                "été enregistré, IHE ITI TF-3 §4.2.3.2)")
    s.state["entry"] = entry


def retrieve(s: DmpSession) -> None:
    from connectors.dmp import iti43

    sub, entry = s.state.get("fed"), s.state.get("entry")
    if sub is None or entry is None:
        raise Skip("document non déposé ou non trouvé (tests « depot », « recherche »)")
    where = "ITI-43 du document déposé"
    answer = s.post(s.settings.repository_path, iti43.ACTION, iti43.request(entry.repository_unique_id, [sub.unique_id]),
                    patient=s.patient, attachments=[], where=where)
    if not s.expect_success(answer, iti43.RESPONSE_ACTION, where):
        return
    try:
        documents = iti43.parse_response(answer.message).documents
    except Exception as exc:  # noqa: BLE001 - a malformed answer is the endpoint's failure
        s.fail("iti43-response", f"{where} : réponse illisible ({type(exc).__name__} : {exc})")
    if not s.check(len(documents) == 1, "iti43-documents", f"{where} : {len(documents)} document(s) renvoyé(s), 1 attendu"):
        return
    doc = documents[0]
    s.check(doc.content == sub.content, "iti43-bytes",
            f"{where} : {len(doc.content)} octets renvoyés, différents des {len(sub.content)} déposés (octets identiques "
            "attendus, IHE ITI TF-2b §3.43)")
    s.check(doc.unique_id == sub.unique_id and doc.mime_type == sub.mime_type, "iti43-metadata",
            f"{where} : uniqueId {doc.unique_id!r} / mimeType {doc.mime_type!r} ≠ {sub.unique_id!r} / {sub.mime_type!r}")


def replace(s: DmpSession) -> None:
    from connectors.dmp import iti18, iti41
    from mappings.xds import metadata as M

    entry = s.state.get("entry")
    if entry is None:
        raise Skip("document d'origine non déposé ou non trouvé (tests « depot », « recherche »)")
    sub = submission(s, "depot", version=2)

    def target(root):
        for association in root.xpath(f"//rim:Association[@associationType='{M.RPLC}']", namespaces=NS):
            association.set("targetObject", entry.entry_uuid)

    where = "ITI-41 de la version 2 (association RPLC)"
    if not s.expect_success(provide(s, sub, metadata=edited(sub.metadata, target), where=where),
                            iti41.RESPONSE_ACTION, where):
        return
    approved = {e.unique_id for e in query(s, iti18.find_documents(s.patient), s.patient, "ITI-18 FindDocuments")}
    s.check(sub.unique_id in approved, "rplc-new-approved", "la version 2 n'est pas parmi les documents Approved")
    s.check(entry.unique_id not in approved, "rplc-old-deprecated",
            "la version 1 remplacée est toujours Approved (RPLC : l'ancienne entrée devient Deprecated, "
            "IHE ITI TF-3 §4.2.2.2.3)")
    old = get_documents(s, entry.unique_id, s.patient, "ITI-18 GetDocuments (version 1)")
    s.check(bool(old) and old[0].status == iti18.DEPRECATED, "rplc-old-deprecated",
            f"version 1 : statut {old[0].status if old else 'introuvable'}, Deprecated attendu")
    s.state["replacement"] = sub


def _refused(s: DmpSession, tag: str, where: str, requirement: str, *, codes=(), faults=frozenset(), patient=None,
             **kw) -> None:
    _ready(s)
    sub = submission(s, tag, patient=patient)
    metadata = edited(sub.metadata, kw.pop("edit")) if "edit" in kw else None
    answer = provide(s, sub, metadata=metadata, where=where, **kw)
    if codes:
        s.expect_registry_error(answer, codes, where, requirement)
    else:
        s.expect_fault(answer, faults, where, requirement)
    if patient is None:
        not_registered(s, sub, where)


def wrong_hash(s: DmpSession) -> None:
    _refused(s, "hash", "ITI-41 avec un hash SHA-1 faux", "le dépôt vérifie l'empreinte déclarée (IHE ITI TF-2b "
             "§3.41 ; XDSNonIdenticalHash, TF-3 Table 4.2.4.1-2)", codes=("XDSNonIdenticalHash",),
             edit=_set_slot("hash", "0" * 40))


def wrong_size(s: DmpSession) -> None:
    _refused(s, "size", "ITI-41 avec une taille fausse", "le dépôt vérifie la taille déclarée (IHE ITI TF-2b "
             "§3.41 ; XDSNonIdenticalSize, TF-3 Table 4.2.4.1-2)", codes=("XDSNonIdenticalSize",),
             edit=_set_slot("size", "12"))


def unknown_patient(s: DmpSession) -> None:
    _refused(s, "inconnu", f"ITI-41 pour un INS sans DMP ({s.unknown_patient.partition('^')[0]})",
             "un document n'est déposé que dans un DMP ouvert (specs §5.1 TD0.2 ; XDSUnknownPatientId, IHE ITI TF-3 "
             "Table 4.2.4.1-2)", codes=("XDSUnknownPatientId",), patient=s.unknown_patient)


def missing_vihf(s: DmpSession) -> None:
    _refused(s, "sans-vihf", "ITI-41 sans VIHF (pas d'en-tête wsse:Security)",
             "toute requête porte un VIHF signé (specs §5.1 ; faute WS-Security 1.1 §12)", faults=WSS_FAULTS,
             vihf_mode="none")


def tampered_vihf(s: DmpSession) -> None:
    _refused(s, "vihf-altere", "ITI-41 avec un VIHF modifié après signature",
             "la signature XML-DSig du VIHF est vérifiée (specs §5.1 ; wsse:FailedCheck, WS-Security 1.1 §12)",
             faults=WSS_FAULTS, vihf_mode="tampered")


def unknown_action(s: DmpSession) -> None:
    _refused(s, "action", "ITI-41 avec une action WS-Addressing inconnue",
             "l'action WS-Addressing désigne la transaction (IHE ITI TF-2x annexe V ; wsa:ActionNotSupported, "
             "WS-Addressing 1.0 SOAP Binding §6.4.4)", faults=frozenset({"ActionNotSupported"}),
             action="urn:relais:conformance:action-inconnue")


def unknown_stored_query(s: DmpSession) -> None:
    from connectors.dmp import iti18

    _ready(s)
    request = iti18.find_documents(s.patient)
    request.find(f"{{{RIM}}}AdhocQuery").set("id", "urn:uuid:00000000-0000-4000-8000-00000000c0de")
    where = "ITI-18 avec une requête stockée inconnue"
    answer = s.post(s.settings.registry_path, iti18.ACTION, request, patient=s.patient, where=where)
    s.expect_registry_error(answer, ("XDSUnknownStoredQuery",), where, "IHE ITI TF-2a §3.18 ; TF-3 Table 4.2.4.1-2")


def unknown_document(s: DmpSession) -> None:
    from connectors.dmp import iti43

    entry = s.state.get("entry")
    repository = s.options.get("repository-id") or (entry.repository_unique_id if entry else "")
    if not repository:
        raise Skip("identifiant de l'entrepôt inconnu (test « recherche », ou --option repository-id=…)")
    where = "ITI-43 d'un document inconnu"
    request = iti43.request(repository, [f"1.2.250.1.213.1.1.9.999.{int(s.run_id, 16)}"])
    answer = s.post(s.settings.repository_path, iti43.ACTION, request, patient=s.patient, attachments=[], where=where)
    s.expect_registry_error(answer, ("XDSDocumentUniqueIdError",), where, "IHE ITI TF-2b §3.43 ; TF-3 Table 4.2.4.1-2")


def withdraw(s: DmpSession) -> None:
    from connectors.dmp import iti18, iti57

    sub = s.state.get("replacement") or s.state.get("fed")
    if sub is None:
        raise Skip("aucun document déposé à retirer")
    found = [e for e in get_documents(s, sub.unique_id, s.patient, "ITI-18 GetDocuments") if e.approved]
    if not found:
        s.fail("iti57-target", f"document {sub.unique_id} introuvable ou non Approved avant son retrait")
    update = iti57.status_update(found[0], iti18.DEPRECATED, finess=s.settings.finess,
                                 platform_name=s.settings.platform_name, now=dt.datetime.now(dt.UTC))
    where = "ITI-57 UpdateAvailabilityStatus → Deprecated"
    body = etree.fromstring(update, etree.XMLParser(resolve_entities=False, no_network=True))
    if not s.expect_success(s.post(s.settings.registry_path, iti57.ACTION, body, patient=s.patient, where=where),
                            iti57.RESPONSE_ACTION, where):
        return
    approved = {e.unique_id for e in query(s, iti18.find_documents(s.patient), s.patient, "ITI-18 FindDocuments")}
    s.check(sub.unique_id not in approved, "iti57-deprecated", "le document retiré est toujours Approved")


class DmpSuite(Suite):
    name = "dmp"
    title = "point d'accès DMP XDS.b (TLS mutuel, VIHF, ITI-41, ITI-18, ITI-43, ITI-57)"

    def session(self, endpoint: Endpoint) -> DmpSession:
        return DmpSession(endpoint)

    def checks(self) -> list[Check]:
        return [
            Check("configuration", "options de la suite : finess, ins (patient de test ayant un DMP), seal-cert, "
                  "seal-key", configuration, "specs §5.1"),
            Check("tls-mutuel", "HTTPS ; sans le certificat de la structure, la connexion est refusée", mutual_tls,
                  "specs §5.1, §8"),
            Check("depot", "ITI-41 d'un document valide (CDA, lot signé XAdES, VIHF) : Success", feed,
                  "specs §5.1 TD2.1 ; IHE ITI TF-2b §3.41"),
            Check("recherche", "ITI-18 FindDocuments le renvoie, Approved, avec les métadonnées envoyées", find,
                  "specs §5.1 TD3.1 ; IHE ITI TF-2a §3.18"),
            Check("recuperation", "ITI-43 renvoie les mêmes octets", retrieve, "specs §5.1 TD3.2 ; IHE ITI TF-2b §3.43"),
            Check("remplacement", "ITI-41 d'une version 2 (RPLC) : Success, la version 1 devient Deprecated", replace,
                  "specs §5.1 TD2.1 remplacement ; IHE ITI TF-3 §4.2.2.2.3"),
            Check("empreinte-fausse", "hash faux : Failure XDSNonIdenticalHash, rien d'enregistré", wrong_hash,
                  "IHE ITI TF-2b §3.41 ; TF-3 Table 4.2.4.1-2"),
            Check("taille-fausse", "taille fausse : Failure XDSNonIdenticalSize, rien d'enregistré", wrong_size,
                  "IHE ITI TF-2b §3.41 ; TF-3 Table 4.2.4.1-2"),
            Check("patient-inconnu", "INS sans DMP ouvert : Failure XDSUnknownPatientId", unknown_patient,
                  "specs §5.1 TD0.2 ; IHE ITI TF-3 Table 4.2.4.1-2"),
            Check("vihf-absent", "requête sans VIHF : faute SOAP WS-Security, rien d'enregistré", missing_vihf,
                  "specs §5.1 (VIHF)"),
            Check("vihf-altere", "VIHF modifié après signature : faute SOAP WS-Security, rien d'enregistré",
                  tampered_vihf, "specs §5.1 (VIHF signé XML-DSig)"),
            Check("action-inconnue", "action WS-Addressing inconnue : faute wsa:ActionNotSupported, rien d'enregistré",
                  unknown_action, "WS-Addressing 1.0 SOAP Binding §6.4.4"),
            Check("requete-inconnue", "ITI-18 d'une requête stockée inconnue : XDSUnknownStoredQuery",
                  unknown_stored_query, "IHE ITI TF-2a §3.18 ; TF-3 Table 4.2.4.1-2"),
            Check("document-inconnu", "ITI-43 d'un document inconnu : XDSDocumentUniqueIdError", unknown_document,
                  "IHE ITI TF-2b §3.43 ; TF-3 Table 4.2.4.1-2"),
            Check("retrait", "ITI-57 : le document de test est retiré (Deprecated)", withdraw,
                  "specs §5.1 TD3.3 ; IHE ITI TF-2b §3.57"),
        ]
