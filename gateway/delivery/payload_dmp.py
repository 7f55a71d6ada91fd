"""Payload kind `cda-document` (the DMP, specs §5): the plan → CDA R2 (mappings.cda) + XDS
metadata (mappings.xds) in a `relais-dmp-submission/1` JSON object (connectors/dmp/submission.py).
The document version is the plan version: version n > 1 replaces version n - 1 (RPLC in the CDA
and in the metadata; the connector checks the DMP holds it).

Visibility flags are never guessed: they come from the consent engine's obligations for a DMP
feed of this person (`load`: the pure PDP on the person's stored consent record — the spine's
own decision, audited, follows when the exchange is queued), mapped by `visibility_for`:
- `dmp-invisible-representants-legaux` (rule L12, a minor's secrecy) → INVISIBLE_REPRESENTANTS_LEGAUX
  and the VIHF "connexion secrète";
- `dmp-masking-flags` (rule L9) says the flags must be decided explicitly: the payload lists them
  (possibly none) with the obligations they come from;
- MASQUE_PS and INVISIBLE_PATIENT are set only when an obligation asks for them: neither the plan
  nor the consent record carries such a request today, so Relais never sets them.

Validation: the submission's own coherence (hash, size, ids, INS patientId, visibility codes),
then the CDA gate — schema and CI-SIS schematrons — when its reference set is present. Without
it the CDA R2 schema cannot run either (it ships in the same set): an information problem names
what could not be run ("jeu de schématrons introuvable …") and the payload is not blocked, so the
demo runs on a fresh machine; the sandbox DMP still checks the CDA header against the metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from gateway.delivery.payloads import BuildContext, BuildError, PayloadKind, register
from gateway.model import Plan, Problem, Severity

KIND = "cda-document"
SOURCE = "relais-dmp-payload"
OBLIGATION_SECRET = "dmp-invisible-representants-legaux"
OBLIGATION_FLAGS = "dmp-masking-flags"
# obligation → TRE_A07 code (only the codes an obligation asks for are ever set)
OBLIGATION_FLAG = {OBLIGATION_SECRET: "INVISIBLE_REPRESENTANTS_LEGAUX",
                   "dmp-masque-ps": "MASQUE_PS", "dmp-invisible-patient": "INVISIBLE_PATIENT"}


def _problem(rule: str, message: str, severity=Severity.error, location: str = "/") -> Problem:
    return Problem(location=location, rule=rule, message=message, severity=severity, source=SOURCE)


def visibility_for(obligations: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The DMP visibility codes the consent obligations ask for (sorted, no duplicates)."""
    return tuple(sorted({OBLIGATION_FLAG[o] for o in obligations if o in OBLIGATION_FLAG}))


def build_submission(plan: Plan, *, version: int, now: dt.datetime, obligations: tuple[str, ...] = ()):
    """The plan's DMP submission (connectors.dmp.Submission) for these consent obligations."""
    from connectors.dmp.submission import Submission
    from mappings.cda import document_ids, plan_to_cda
    from mappings.xds import Destination, MetadataError, entry_uuid, patient_cx, submit_objects_request

    ids = document_ids(plan, max(1, version))
    visibility = visibility_for(obligations)
    try:
        patient = patient_cx(plan, require_ins=True)
        cda = plan_to_cda(plan, now=now, ids=ids)
        metadata = submit_objects_request(plan, cda, ids, now=now, destination=Destination(visibility=visibility))
    except MetadataError as exc:
        raise BuildError([_problem("dmp-no-qualified-ins", str(exc), location="$.person.ins")]) from None
    return Submission(patient=patient, unique_id=ids.document_id, entry_uuid=entry_uuid(ids.document_id),
                      set_id=ids.set_id, version=ids.version, replaces=ids.replaces, mime_type="text/xml",
                      confidentiality="N", visibility=visibility,
                      secret_connection="INVISIBLE_REPRESENTANTS_LEGAUX" in visibility,
                      obligations=tuple(obligations), metadata=metadata, content=cda)


def build_document(plan: Plan, context: BuildContext) -> bytes:
    obligations = tuple(context.extras.get("obligations", ()))
    return build_submission(plan, version=context.plan_version, now=context.now, obligations=obligations).dumps()


def load_obligations(store, tenant, person_local_id: str, *, labels=()) -> dict:
    """The consent engine's obligations for a DMP feed of this person, from the stored consent
    record (pure PDP, not audited: the spine's decision is). A denial yields no obligation —
    the spine's own decision then refuses the exchange."""
    from gateway.consent import DecisionRequest, Recipient, Requester, decide
    from gateway.consent.registry import ConsentRegistry

    from gateway.storage.store import NotFound

    try:
        state = ConsentRegistry(store).policy_state(tenant.id, person_local_id)
    except NotFound:  # no plan stored for the person: the spine's decision refuses anyway
        return {"obligations": []}
    decision = decide(state, DecisionRequest(
        tenant_id=tenant.id, person_local_id=person_local_id, recipient=Recipient.from_identifier("system", "dmp"),
        system="dmp", purpose="COC", data_categories=frozenset({"identity", "plan"}),
        requester=Requester(actor="relais:payload-dmp"), names_ins=True, labels=frozenset(labels)))
    return {"obligations": list(decision.obligations) if decision.permitted else []}


def validate_submission(payload: bytes, *, use_cda_gate: bool = True) -> list[Problem]:
    from connectors.dmp.submission import SubmissionError, loads
    from lxml import etree
    from mappings.xds import entry_uuid
    from mappings.xds import metadata as M

    try:
        submission = loads(payload)
    except SubmissionError as exc:
        return [_problem("dmp-payload", str(exc))]
    problems: list[Problem] = []
    root = etree.fromstring(submission.metadata, etree.XMLParser(resolve_entities=False, no_network=True))
    ns = {"rim": M.RIM}
    (entry,) = root.xpath("//rim:ExtrinsicObject", namespaces=ns) or [None]
    if entry is None:
        return problems + [_problem("dmp-metadata", "métadonnées XDS sans DocumentEntry")]
    if entry.get("id") != submission.entry_uuid or submission.entry_uuid != entry_uuid(submission.unique_id):
        problems.append(_problem("dmp-entry-uuid", "entryUUID incohérent avec l'identifiant du document"))
    values = {s.get("name"): s.xpath("rim:ValueList/rim:Value/text()", namespaces=ns) for s in entry.iterfind("rim:Slot", ns)}
    if values.get("hash") != [hashlib.sha1(submission.content).hexdigest()] or values.get("size") != [str(len(submission.content))]:
        problems.append(_problem("dmp-hash-size", "empreinte ou taille des métadonnées ≠ document"))
    ids = entry.xpath(f"rim:ExternalIdentifier[@identificationScheme='{M.DE_PATIENT_ID}']/@value", namespaces=ns)
    if ids != [submission.patient] or "&ISO^NH" not in submission.patient:
        problems.append(_problem("dmp-patient-id", "patientId des métadonnées ≠ INS de la soumission"))
    unique = entry.xpath(f"rim:ExternalIdentifier[@identificationScheme='{M.DE_UNIQUE_ID}']/@value", namespaces=ns)
    if unique != [submission.unique_id]:
        problems.append(_problem("dmp-unique-id", "uniqueId des métadonnées ≠ identifiant du document"))
    flags = sorted(entry.xpath(f"rim:Classification[@classificationScheme='{M.DE_CONFIDENTIALITY}']"
                               f"[rim:Slot/rim:ValueList/rim:Value='{M.TRE_A07}']/@nodeRepresentation", namespaces=ns))
    if flags != sorted(submission.visibility) or tuple(flags) != visibility_for(submission.obligations):
        problems.append(_problem("dmp-visibility", "indicateurs de visibilité ≠ obligations de la décision de "
                                 f"consentement ({', '.join(flags) or 'aucun'})"))
    if use_cda_gate:
        problems += _cda_problems(submission.content)
    return problems


def _cda_problems(cda: bytes) -> list[Problem]:
    from gateway.conformance.cda.gate import cda_gate

    gate = cda_gate()
    if not gate.available:
        missing = gate.missing()
        return [missing.model_copy(update={
            "severity": Severity.information,
            "message": missing.message + " ; ni le schéma CDA ni les schématrons CI-SIS n'ont pu être appliqués "
                       "(contrôles faits : cohérence des métadonnées XDS ; en-tête CDA contrôlé par le DMP)"})]
    return gate.validate(cda)


register(PayloadKind(name=KIND, content_type="application/vnd.relais.dmp-submission+json",
                     build=build_document, validate=validate_submission, load=load_obligations))
