"""Demo step: the DMP (Mon espace santé). The persons informed by the platform also received the
written DMP notice (arrêté du 26/10/2023); each plan the consent engine allows goes to the
sandbox DMP as a CDA document (ITI-41 over mutual TLS with a signed VIHF, the submission set signed XAdES), is queried back
(ITI-18) and retrieved (ITI-43) and compared byte for byte with what was sent; then a second
version of one plan replaces the first (RPLC: the first becomes Deprecated)."""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from collections.abc import Callable

import httpx
import orjson

from connectors.dmp import iti18
from connectors.dmp.submission import loads
from connectors.sandbox.dmp_peer import DmpPeer
from gateway.consent import ConsentRegistry
from gateway.consent.model import InformationRecord
from gateway.consent.vocab import InformationMethod, InformationTopic
from gateway.delivery import outbox
from gateway.delivery.worker import Worker
from gateway.model import Plan
from gateway.storage import Store
from mappings.cda.constants import DOC_TYPE_CODE
from mappings.xds import patient_cx

LABEL = "DMP (Mon espace santé)"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _inform(store: Store, tenant, plans: list[Plan], now: dt.datetime) -> int:
    registry = ConsentRegistry(store)
    informed = 0
    for plan in plans:
        if not registry.list_information(tenant, plan.person.local_id):
            continue  # not informed at all yet: no DMP notice either
        registry.record_information(tenant, plan.person.local_id, InformationRecord(
            id=uuid.uuid4().hex, informed_at=now - dt.timedelta(days=30), method=InformationMethod.written,
            informed_by="coordinatrice de parcours", notice_version="notice-dmp-2026-01",
            topics=frozenset({InformationTopic.dmp})), actor="demo", now=now)
        informed += 1
    return informed


def _sent(store: Store, tenant) -> list:
    with store.reading() as conn:
        return [(e, outbox.payload_of(conn, tenant.id, e.id)[0])
                for e in outbox.listing(conn, tenant.id, status="sent", system="dmp", limit=10_000)]


def step(store: Store, tenant, http: httpx.Client, auth: dict, plans: list[Plan], now: dt.datetime,
         worker: Worker, *, post: Callable, settle: Callable, reasons: Callable) -> None:
    informed = _inform(store, tenant, plans, now)
    patients = set()
    for plan in plans:
        try:
            patients.add(patient_cx(plan))
        except ValueError:
            pass  # no qualified INS: no DMP can be addressed
    with tempfile.TemporaryDirectory(prefix="relais-demo-dmp-") as tmp, \
            DmpPeer(tmp, finess=tenant.finess, platform_name=tenant.name, patients=patients) as peer:
        connector = peer.connector()
        worker.connectors["dmp"] = connector
        try:
            _feed(store, tenant, http, auth, plans, connector, peer, informed, worker, post, settle, reasons)
        finally:
            worker.connectors.pop("dmp", None)
            connector.close()


def _feed(store, tenant, http, auth, plans, connector, peer, informed, worker, post, settle, reasons) -> None:
    from gateway.conformance.cda.gate import cda_gate

    cda_gate().warm_up()  # compile the CI-SIS schematrons once, before the API validates documents
    for plan in plans:
        post(http, auth, plan.person.local_id, "dmp", "cda-document")
    settle(worker, store, tenant)
    sent = _sent(store, tenant)
    same = 0
    for _, payload in sent:
        submission = loads(payload)
        found = [e for e in connector.find_documents(submission.patient, type_codes=(DOC_TYPE_CODE,))
                 if e.unique_id == submission.unique_id]
        if found and connector.retrieve(submission.patient, found[0].repository_unique_id,
                                        found[0].unique_id).content == submission.content:
            same += 1
    _say(f"\n8. DMP ({peer.url}, XDS.b SOAP/MTOM, TLS mutuel, VIHF signé, lot signé XAdES) : {informed} personnes ont reçu "
         f"la notice écrite DMP ; {len(sent)} projet(s) déposé(s) en CDA (ITI-41), relus (ITI-18 + ITI-43) : "
         f"{same}/{len(sent)} identiques octet pour octet")
    reasons(store, tenant, "dmp")
    if sent:
        _second_version(store, tenant, http, auth, connector, sent[0], post, settle, worker)


def _second_version(store, tenant, http, auth, connector, first, post, settle, worker) -> None:
    exchange, payload = first
    before = loads(payload)
    pid = exchange.person_local_id
    current = http.get(f"/persons/{pid}/plan", headers=auth)
    plan = orjson.loads(store.get_plan(tenant, pid).content)
    plan["notes"] = (plan.get("notes") or "") + " Révision du projet après la réunion de synthèse."
    http.put(f"/persons/{pid}/plan", content=orjson.dumps(plan),
             headers=dict(auth, **{"If-Match": current.headers["ETag"], "Content-Type": "application/json"}))
    post(http, auth, pid, "dmp", "cda-document")
    settle(worker, store, tenant)
    statuses = {e.unique_id: e.status for e in connector.find_documents(
        before.patient, statuses=(iti18.APPROVED, iti18.DEPRECATED), type_codes=(DOC_TYPE_CODE,))}
    new = [u for u, s in statuses.items() if s == iti18.APPROVED]
    _say(f"   nouvelle version du projet de {pid} : déposée avec RPLC, elle remplace la précédente "
         f"(ancienne : {statuses.get(before.unique_id, '?').rsplit(':', 1)[-1]}, "
         f"{len(new)} version approuvée dans le DMP)")
