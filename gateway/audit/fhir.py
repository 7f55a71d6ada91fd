"""Audit entries as FHIR R4 AuditEvent following IHE BALP (Basic Audit Log Patterns).

Pure mapping `audit_event(record, leaf_hash, origin)` (no I/O, no clock) plus a reader of the
store's entries (`events_from_store`, page by page) and a collection Bundle built from them
(`bundle`) or written as they come (`write_bundle`). Per action (consent_audit §4.7):
- decision.permit / decision.deny -> IHE.BasicAudit.AuthZconsent: DCM 110113 Security Alert,
  subtype AuthZ-Consent, action E, outcome 0 (permit) / 8 (deny), rule ids in outcomeDesc;
- exchange.sent / exchange.acknowledged -> IHE.BasicAudit.PrivacyDisclosure.Source: DCM 110106
  Export, subtype iso-21089 disclose, action R, agents source (110153) and recipient (110152);
- inbound.received -> IHE.BasicAudit.PrivacyDisclosure.Recipient: DCM 110107 Import, action C;
- consent.* and plan.version.stored -> BALP Create/Update (rest create/update);
- console.viewed -> BALP Read (rest read, action R);
- the other actions (exchange.queued/failed/cancelled, audit.key.*) -> DCM 110100 Application
  Activity with Relais's own subtype code.
Every event carries the log coordinates (origin, index, leaf SHA-256) and the refs in an
entity's `detail` (R4 AuditEvent has no identifier). The person appears only as the tenant's
pseudonym: resolving it is the DPO console's job, not the export's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import BinaryIO

DCM = "http://dicom.nema.org/resources/ontology/DCM"
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
AUTHZ_SUBTYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
REST = "http://hl7.org/fhir/restful-interaction"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
RELAIS = "https://relais.example/fhir"
ACTION_CODES = f"{RELAIS}/CodeSystem/audit-action"
LOG_ENTITY = f"{RELAIS}/CodeSystem/audit-entity"


def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _shape(action: str) -> tuple[str | None, dict, list[dict], str]:
    """(BALP profile, type, subtypes, action code) of a Relais action."""
    own = _coding(ACTION_CODES, action)
    if action.startswith("decision."):
        return ("AuthZconsent", _coding(DCM, "110113", "Security Alert"),
                [_coding(AUTHZ_SUBTYPE, "AuthZ-Consent"), own], "E")
    if action in ("exchange.sent", "exchange.acknowledged"):
        return ("PrivacyDisclosure.Source", _coding(DCM, "110106", "Export"),
                [_coding(LIFECYCLE, "disclose"), own], "R")
    if action == "inbound.received":
        return ("PrivacyDisclosure.Recipient", _coding(DCM, "110107", "Import"),
                [_coding(LIFECYCLE, "disclose"), own], "C")
    if action in ("consent.recorded", "plan.version.stored"):
        return ("Create", _coding(EVENT_TYPE, "rest", "Restful Operation"),
                [_coding(REST, "create"), own], "C")
    if action == "consent.withdrawn":
        return ("Update", _coding(EVENT_TYPE, "rest", "Restful Operation"),
                [_coding(REST, "update"), own], "U")
    if action == "console.viewed":
        return ("Read", _coding(EVENT_TYPE, "rest", "Restful Operation"), [_coding(REST, "read"), own], "R")
    return None, _coding(DCM, "110100", "Application Activity"), [own], "E"


def _outcome(outcome: str) -> str:
    return "0" if outcome in ("success", "permit") else "8"


def _who(system: str, value: str) -> dict:
    return {"identifier": {"system": system, "value": value}}


def audit_event(record: dict, leaf_sha256: str, origin: str) -> dict:
    """One leaf record (entry.record's dict) as a FHIR R4 AuditEvent (JSON)."""
    profile, event_type, subtypes, action = _shape(record["action"])
    refs = record.get("refs", {})
    gateway_agent = {"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                     "who": _who(f"{RELAIS}/sid/audit-origin", origin), "requestor": False}
    agents = [{
        "type": {"coding": [_coding(DCM, "110150", "Application")]},
        "who": _who(f"{RELAIS}/sid/actor", record["actor"]),
        "requestor": True,
    }]
    if profile == "PrivacyDisclosure.Source":
        agents.append(gateway_agent)
        agents.append({"type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
                       "who": _who(f"{RELAIS}/sid/system", record.get("system", "inconnu")),
                       "requestor": False})
    elif profile == "PrivacyDisclosure.Recipient":
        agents.append({"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                       "who": _who(f"{RELAIS}/sid/system", record.get("system", "inconnu")),
                       "requestor": False})
        agents.append({**gateway_agent, "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]}})
    entities = []
    if record.get("subject"):
        entities.append({
            "what": _who(f"{RELAIS}/sid/pseudonym/{record['tenant']}", record["subject"]),
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient"),
        })
    details = [
        {"type": "tlog.origin", "valueString": origin},
        {"type": "tlog.index", "valueString": str(record["seq"])},
        {"type": "tlog.leaf_sha256", "valueString": leaf_sha256},
        {"type": "tenant", "valueString": record["tenant"]},
    ] + [{"type": f"ref.{key}", "valueString": value} for key, value in sorted(refs.items())]
    entities.append({
        "what": _who(f"{RELAIS}/sid/audit-entry", f"{origin}#{record['seq']}"),
        "type": _coding(LOG_ENTITY, "log-entry", "Entrée du journal d'audit"),
        "detail": details,
    })
    event = {
        "resourceType": "AuditEvent",
        "id": f"relais-audit-{record['seq']}",
        "type": event_type,
        "subtype": subtypes,
        "action": action,
        "recorded": record["at"],
        "outcome": _outcome(record["outcome"]),
        "agent": agents,
        "source": {"site": origin, "observer": _who(f"{RELAIS}/sid/audit-origin", origin),
                   "type": [_coding(SOURCE_TYPE, "4", "Application Server")]},
        "entity": entities,
    }
    if profile:
        event["meta"] = {"profile": [BALP + profile]}
    if record["outcome"] not in ("success", "permit"):
        event["outcomeDesc"] = f"{record['outcome']}" + (f" ({refs['rules']})" if "rules" in refs else "")
    if "purpose" in refs:
        event["purposeOfEvent"] = [{"coding": [_coding(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason", refs["purpose"])]}]
    return event


def bundle(events: Iterable[dict], now: dt.datetime) -> dict:
    """A collection Bundle of the events. No `total` (bdl-1: searchset and history Bundles only)
    and no `entry` when there is no event (FHIR arrays are never empty)."""
    out = _bundle_head(now)
    entries = [_bundle_entry(event) for event in events]
    if entries:
        out["entry"] = entries
    return out


def _bundle_head(now: dt.datetime) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "timestamp": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}


def _bundle_entry(event: dict) -> dict:
    return {"fullUrl": f"urn:relais:audit:{event['id']}", "resource": event}


def write_bundle(out: BinaryIO, events: Iterable[dict], now: dt.datetime) -> int:
    """`bundle(events, now)` as JSON on `out`, each entry on a line of its own, written as the
    events come (memory does not grow with their number); the number of entries."""
    import orjson

    head = orjson.dumps(_bundle_head(now))[:-1]
    count = 0
    for event in events:
        out.write(b",\n" if count else head + b',"entry":[\n')
        out.write(orjson.dumps(_bundle_entry(event)))
        count += 1
    out.write(b"\n]}\n" if count else head + b"}\n")
    return count


def events_from_store(engine, *, tenant_id: str | None = None, since: dt.datetime | None = None,
                      origin: str | None = None, page: int = 1000) -> Iterator[dict]:
    """The (tenant's) entries as AuditEvents, oldest first, read `page` rows at a time."""
    import json

    import sqlalchemy as sa

    from gateway.audit.merkle import leaf_hash
    from gateway.audit.tables import audit_entries
    from gateway.settings import settings

    origin = origin or settings().audit_origin
    query = sa.select(audit_entries.c.body).order_by(audit_entries.c.seq)
    if tenant_id is not None:
        query = query.where(audit_entries.c.tenant_id == tenant_id)
    if since is not None:
        query = query.where(audit_entries.c.at >= since)
    with engine.connect() as conn:
        for body in conn.execution_options(yield_per=page).execute(query).scalars():
            body = bytes(body)
            yield audit_event(json.loads(body), leaf_hash(body).hex(), origin)


def bundle_from_store(engine, *, tenant_id: str | None = None, since: dt.datetime | None = None,
                      origin: str | None = None) -> dict:
    """A Bundle of the (tenant's) entries, oldest first."""
    return bundle(events_from_store(engine, tenant_id=tenant_id, since=since, origin=origin), dt.datetime.now(dt.UTC))
