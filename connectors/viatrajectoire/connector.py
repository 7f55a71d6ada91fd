"""The ESMS side of the SDO guide (specs §3) behind the `Connector` interface.

Outbound (`send`): `sdo-consent` (flux 2) and `sdo-status` (flux 4), each a FHIR JSON resource
built by `connectors.viatrajectoire.resources`. Inbound (`poll`): new or updated decision files
(flux 1.1 → 1.3/1.4), evaluations once authorised (flux 3.1/3.2), other ESMS' statuses and
events on this ESMS' files (flux 5.1/5.2).

Security (securite.md, specs §3.1): mutual TLS with the structure's certificate (FINESS EJ),
OAuth2 client credentials, then every call with `Authorization: Bearer` and
`struct_idnat: 1<FINESS EG>` — all through `connectors.fhirhttp`.

The poll cursor lives here but belongs to the caller: read `cursor` after a poll and persist it,
give it back (`cursor = …`) after a restart. Its JSON form:

    {"decisions":   {"since": "YYYY-MM-DD" | null, "seen": {"<DocumentReference id>": "<version>"}},
     "statuses":    {"since": "<instant>" | null,  "seen": {"<Task id>": "<lastUpdated>"}},
     "evaluations": {"<idNat_Decision>": "<instant the consent was accepted>"}}

`since` is when the last complete pass started; the next pass asks from one day before it
(the guide's nominal J-1, which also absorbs clock skew and late commits), or from J-30 on the
first connection, and `seen` drops what an overlapping window returns again unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from connectors.base import Envelope, Inbound, PermanentError, Receipt, RetryPolicy
from connectors.fhirhttp import FHIR_JSON, FhirClient, FhirEndpoint
from connectors.viatrajectoire import consent, decisions, evaluation, notifications, resources, status, vocab
from connectors.viatrajectoire.cda_decision import DecisionDocumentError

SYSTEM = "viatrajectoire"
KIND_CONSENT = "sdo-consent"
KIND_STATUS = "sdo-status"
INBOUND_DECISION = "sdo-decision"
INBOUND_DECISION_REJECTED = "sdo-decision-rejected"
INBOUND_EVALUATION = "sdo-evaluation"
INBOUND_EVALUATION_REFUSED = "sdo-evaluation-refused"
INBOUND_STATUS = "sdo-status"

FIRST_CONNECTION = dt.timedelta(days=30)  # st_flux5: J-30 on the first connection
NOMINAL_WINDOW = dt.timedelta(days=1)  # st_flux5: J-1 nominal
EVALUATION_WAIT = dt.timedelta(days=30)
GONE = {"403", "404", "410"}


def _instant(moment: dt.datetime) -> str:
    return notifications.instant(moment)


def _parse_instant(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _encode(resource: dict) -> bytes:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()


def _empty_cursor() -> dict:
    return {"decisions": {"since": None, "seen": {}}, "statuses": {"since": None, "seen": {}},
            "evaluations": {}}


class ViaTrajectoireConnector:
    system = SYSTEM
    payload_kinds = frozenset({KIND_CONSENT, KIND_STATUS})
    # send is thread-safe: FhirClient (httpx.Client, token under a lock), no other shared state but the
    # evaluation cursor, itself under a lock.
    max_in_flight = 4

    def __init__(self, endpoint: FhirEndpoint, *, struct_idnat: str, retry: RetryPolicy | None = None,
                 status_update: str = "post", clock: Callable[[], dt.datetime] | None = None):
        if status_update not in status.MODES:
            raise ValueError(f"status_update doit valoir {' ou '.join(status.MODES)}")
        self.struct_idnat = resources.id_nat_struct(struct_idnat)
        headers = {**endpoint.headers, "struct_idnat": self.struct_idnat}
        self.endpoint = dataclasses.replace(endpoint, headers=headers)
        self.client = FhirClient(self.endpoint)
        self.retry = retry or RetryPolicy()
        self.status_update = status_update
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._cursor = _empty_cursor()

    # ------------------------------------------------------------------- cursor

    @property
    def cursor(self) -> dict:
        with self._lock:
            return copy.deepcopy(self._cursor)

    @cursor.setter
    def cursor(self, value: Mapping | None) -> None:
        fresh = _empty_cursor()
        if value:
            for stream in ("decisions", "statuses"):
                part = value.get(stream) or {}
                since = part.get("since")
                fresh[stream]["since"] = since if isinstance(since, str) and since else None
                fresh[stream]["seen"] = {str(k): str(v) for k, v in (part.get("seen") or {}).items()}
            fresh["evaluations"] = {str(k): str(v) for k, v in (value.get("evaluations") or {}).items()}
        with self._lock:
            self._cursor = fresh

    def await_evaluation(self, national_decision_id: str) -> None:
        """Ask `poll` to fetch this decision's evaluation once it is served (flux 3)."""
        with self._lock:
            self._cursor["evaluations"].setdefault(national_decision_id, _instant(self.clock()))

    # --------------------------------------------------------------------- send

    def send(self, envelope: Envelope) -> Receipt:
        if envelope.payload_kind not in self.payload_kinds:
            raise PermanentError(f"contenu {envelope.payload_kind!r} non pris en charge par ViaTrajectoire")
        resource = self._resource(envelope)
        if envelope.payload_kind == KIND_CONSENT:
            receipt = self._send_consent(resource)
        else:
            receipt = self._send_status(resource)
        return dataclasses.replace(receipt, received_at=self.clock())

    def _resource(self, envelope: Envelope) -> dict:
        try:
            resource = json.loads(envelope.payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PermanentError("contenu illisible : JSON FHIR attendu", code="payload") from None
        if not isinstance(resource, dict):
            raise PermanentError("contenu illisible : une ressource FHIR attendue", code="payload")
        return resource

    def _send_consent(self, resource: dict) -> Receipt:
        if resource.get("resourceType") != "Consent":
            raise PermanentError("sdo-consent : une ressource Consent (esms-consent) est attendue", code="payload")
        source = (resource.get("meta") or {}).get("source")
        if source and source != self.struct_idnat:  # missing: the SI-SDO's profile check says so
            raise PermanentError(f"meta.source ({source!r}) n'est pas la structure connectée "
                                 f"({self.struct_idnat})", code="payload")
        resource = consent.with_identifier(resource)
        receipt = consent.post(self.client, resource, _encode(resource))
        decision = consent.decision_of(resource)
        if decision:
            self.await_evaluation(decision)  # flux 3 becomes possible
        return receipt

    def _send_status(self, resource: dict) -> Receipt:
        if resource.get("resourceType") != "Task":
            raise PermanentError("sdo-status : une ressource Task (sdo-task) est attendue", code="payload")
        struct = (resources.task_inputs(resource).get("idNat_Struct") or {}).get("valueIdentifier") or {}
        if struct.get("value") and struct.get("value") != self.struct_idnat:
            raise PermanentError(f"idNat_Struct ({struct.get('value')!r}) n'est pas la structure "
                                 f"connectée ({self.struct_idnat})", code="payload")
        return status.post(self.client, resource, _encode, self.status_update)

    # --------------------------------------------------------------------- poll

    def poll(self) -> Iterable[Inbound]:
        """New inbound items: decision files, evaluations, statuses (in that order)."""
        yield from self.poll_decisions()
        yield from self.poll_evaluations()
        yield from self.poll_statuses()

    def _window(self, since: str | None, started: dt.datetime) -> dt.datetime:
        earliest = started - FIRST_CONNECTION
        previous = _parse_instant(since) if since else None
        if previous is None:
            return earliest
        return max(previous - NOMINAL_WINDOW, earliest)

    def poll_decisions(self) -> Iterator[Inbound]:
        """Flux 1.1 then 1.3/1.4 for each file not seen in this version."""
        started = self.clock()
        with self._lock:
            since = self._cursor["decisions"]["since"]
        start = self._window(since, started).date()
        for doc_id in list(decisions.search(self.client, start)):
            try:
                docref = decisions.read(self.client, doc_id)
            except PermanentError as exc:
                if exc.code in GONE:  # withdrawn or no longer ours between search and read
                    continue
                raise
            marker = _marker(docref)
            with self._lock:
                previous = self._cursor["decisions"]["seen"].get(doc_id)
            if previous == marker:
                continue
            yield self._decision_inbound(docref, updated=previous is not None)
            with self._lock:
                self._cursor["decisions"]["seen"][doc_id] = marker
        with self._lock:
            self._cursor["decisions"]["since"] = started.date().isoformat()
            _prune(self._cursor["decisions"]["seen"], self._window(started.date().isoformat(), started))

    def decision(self, document_id: str) -> Inbound:
        """Flux 1.3/1.4 on demand (does not move the cursor)."""
        return self._decision_inbound(decisions.read(self.client, document_id), updated=False)

    def _decision_inbound(self, docref: dict, *, updated: bool) -> Inbound:
        meta = docref.get("meta") or {}
        metadata = {"flow": "1.4", "documentReference": f"DocumentReference/{docref.get('id')}",
                    "versionId": str(meta.get("versionId") or ""), "lastUpdated": str(meta.get("lastUpdated") or ""),
                    "update": "true" if updated else "false"}
        usual, official = decisions.identifiers(docref)
        metadata.update(idDecision=usual or "", idNat_Decision=official or "")
        payload = _encode(docref)
        try:
            found = decisions.decision_file(docref)
        except DecisionDocumentError as exc:
            return Inbound(SYSTEM, INBOUND_DECISION_REJECTED, metadata["documentReference"], FHIR_JSON, payload,
                           {**metadata, "reason": exc.reason, "location": exc.location or ""})
        doc = found.document
        rights = [r.right_type.code for r in doc.rights if r.right_type]
        metadata.update(mdph=doc.mdph or "", decisionDate=doc.decision_date.isoformat(),
                        decisionType=doc.decision_type.code, typeDroitOuPrestation=",".join(rights))
        return Inbound(SYSTEM, INBOUND_DECISION, metadata["documentReference"], FHIR_JSON, payload, metadata)

    def poll_evaluations(self) -> Iterator[Inbound]:
        """Flux 3.1/3.2 for each decision whose consent was accepted and not yet served."""
        now = self.clock()
        with self._lock:
            pending = dict(self._cursor["evaluations"])
        for national_id, added in pending.items():
            try:
                found = evaluation.find(self.client, national_id)
            except PermanentError as exc:  # said once, then dropped: it must not block the poll
                with self._lock:
                    self._cursor["evaluations"].pop(national_id, None)
                yield Inbound(SYSTEM, INBOUND_EVALUATION_REFUSED, f"DocumentReference?identifier={national_id}",
                              FHIR_JSON, b"", {"flow": "3.2", "idNat_Decision": national_id,
                                               "reason": exc.reason, "code": exc.code or ""})
                continue
            if found is None:
                since = _parse_instant(added)
                if since is not None and now - since > EVALUATION_WAIT:
                    with self._lock:
                        self._cursor["evaluations"].pop(national_id, None)
                continue
            yield self._evaluation_inbound(found, national_id)
            with self._lock:
                self._cursor["evaluations"].pop(national_id, None)

    def evaluation(self, national_decision_id: str) -> Inbound | None:
        """Flux 3.1/3.2 on demand: the evaluation, or None while the SI-SDO does not serve it."""
        found = evaluation.find(self.client, national_decision_id)
        return self._evaluation_inbound(found, national_decision_id) if found else None

    def _evaluation_inbound(self, docref: dict, national_id: str) -> Inbound:
        usual, _ = decisions.identifiers(docref)
        meta = docref.get("meta") or {}
        return Inbound(SYSTEM, INBOUND_EVALUATION, f"DocumentReference/{docref.get('id')}", FHIR_JSON,
                       _encode(docref), {"flow": "3.2", "idNat_Decision": national_id, "idDecision": usual or "",
                                         "lastUpdated": str(meta.get("lastUpdated") or "")})

    def poll_statuses(self) -> Iterator[Inbound]:
        """Flux 5.1/5.2: Tasks updated since the last pass (J-30 on the first one)."""
        started = self.clock()
        with self._lock:
            since = self._cursor["statuses"]["since"]
        for task in notifications.search(self.client, self._window(since, started)):
            task_id = str(task.get("id") or "")
            marker = _marker(task)
            with self._lock:
                if self._cursor["statuses"]["seen"].get(task_id) == marker:
                    continue
            yield self._status_inbound(task)
            with self._lock:
                self._cursor["statuses"]["seen"][task_id] = marker
        with self._lock:
            self._cursor["statuses"]["since"] = _instant(started)
            _prune(self._cursor["statuses"]["seen"], self._window(_instant(started), started))

    def _status_inbound(self, task: dict) -> Inbound:
        inputs = resources.task_inputs(task)

        def code(name):
            coding = ((inputs.get(name) or {}).get("valueCodeableConcept") or {}).get("coding") or [{}]
            return str(coding[0].get("code") or "")

        def ident(name):
            return str(((inputs.get(name) or {}).get("valueIdentifier") or {}).get("value") or "")

        struct = ident("idNat_Struct")
        unit_status = code("statutUnite")
        metadata = {
            "flow": "5.2", "lastUpdated": str((task.get("meta") or {}).get("lastUpdated") or ""),
            "idNat_Struct": struct, "idDecision": ident("idDecision"), "idNat_Decision": ident("idNat_Decision"),
            "statutESMS": code("statutESMS"), "motifESMS": code("motifESMS"),
            "dateStatutESMS": str((inputs.get("dateStatutESMS") or {}).get("valueDate") or ""),
            "statutUnite": unit_status, "motifUnite": code("motifUnite"),
            "own": "true" if struct == self.struct_idnat else "false",
            "entryElsewhere": "true" if struct != self.struct_idnat and unit_status in vocab.ENTRY_ELSEWHERE else "false",
        }
        return Inbound(SYSTEM, INBOUND_STATUS, f"Task/{task.get('id')}", FHIR_JSON, _encode(task), metadata)

    def close(self) -> None:
        self.client.close()


def _marker(resource: dict) -> str:
    """What tells one version of a resource from the next: lastUpdated/versionId, else a hash."""
    meta = resource.get("meta") or {}
    if meta.get("lastUpdated") or meta.get("versionId"):
        return f"{meta.get('lastUpdated') or ''}#{meta.get('versionId') or ''}"
    return "sha256:" + hashlib.sha256(_encode(resource)).hexdigest()


def _prune(seen: dict[str, str], window_start: dt.datetime) -> None:
    """Forget what the next window cannot return unchanged (older than its start)."""
    for key, marker in list(seen.items()):
        stamp = _parse_instant(marker.split("#", 1)[0]) if not marker.startswith("sha256:") else None
        if stamp is not None and stamp < window_start - dt.timedelta(days=1):
            del seen[key]


def build(config: Mapping[str, object]) -> ViaTrajectoireConnector:
    """Settings: the FhirEndpoint fields (base_url, token_url, client_id, client_secret, ca_file,
    client_cert, client_key, timeout), `finess_eg` (or `struct_idnat`), optional `status_update`
    ("post" | "put"), `retry` (RetryPolicy) and `cursor` (a persisted cursor)."""
    struct = config.get("struct_idnat") or config.get("finess_eg")
    if not isinstance(struct, str) or not struct:
        raise ValueError("ViaTrajectoire : finess_eg (FINESS de l'établissement) est obligatoire")
    retry = config.get("retry")
    connector = ViaTrajectoireConnector(
        FhirEndpoint.from_settings(config), struct_idnat=struct,
        retry=retry if isinstance(retry, RetryPolicy) else None,
        status_update=str(config.get("status_update") or "post"),
    )
    if isinstance(config.get("cursor"), Mapping):
        connector.cursor = config["cursor"]
    return connector
