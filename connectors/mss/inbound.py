"""From a received MSSanté message to `connectors.base.Inbound` items, and from a received CDA
to a plan update *proposed* to the coordinator (never applied here).

- An acknowledgement (MDN, DSN, standard error mail) → one `mss-acknowledgement`, matched to
  Relais' own exchange by Original-Message-ID / In-Reply-To (`message.key_of`).
- A message with IHE_XDM.zip → one `mss-document` per document of METADATA.XML: the CDA bytes,
  with its metadata; the person is identified by the INS of `patientId` in METADATA.XML
  (Ref#2 ECO.2.1.2, specs §4.1), never by the mail's subject or body.
- A hostile or non-conformant archive, or a message that cannot be read → `mss-quarantined`
  with the rule and reason (the original stays in the archive), and error 906 for the sender.
- Anything else (a plain reply from a professional) → `mss-message`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import Inbound
from connectors.mss import xdm
from connectors.mss.mdn import IntegrationError, read_acknowledgement
from connectors.mss.message import Received, key_of
from gateway.model import Plan, Problem, Severity

SYSTEM = "mss"
KIND_DOCUMENT = "mss-document"
KIND_ACKNOWLEDGEMENT = "mss-acknowledgement"
KIND_MESSAGE = "mss-message"
KIND_QUARANTINED = "mss-quarantined"
CDA_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml")


@dataclass
class Reading:
    items: list[Inbound]
    error: IntegrationError | None = None  # found while reading: the sender is told at once
    acknowledgeable: bool = True  # False for acknowledgements themselves (no MDN loops)


def quarantined(message_id: str, digest: str, rule: str, reason: str) -> Inbound:
    return Inbound(SYSTEM, KIND_QUARANTINED, message_id or f"sha256:{digest}", "message/rfc822", b"",
                   {"message_id": message_id, "archive_sha256": digest, "rule": rule, "reason": reason})


def read_message(received: Received, *, digest: str, exchange_of: Callable[[str], str | None]) -> Reading:
    base = {"message_id": received.message_id, "sender": received.sender, "archive_sha256": digest}
    ack = read_acknowledgement(received)
    if ack is not None:
        metadata = {**base, "acknowledgement": ack.kind, "original_message_id": ack.original_message_id,
                    "idempotency_key": ack.idempotency_key or "", "exchange": exchange_of(ack.original_message_id) or "",
                    "ok": "true" if ack.ok else "false", "disposition": ack.disposition,
                    "error_code": ack.error_code, "error_text": ack.error_text,
                    "final_recipient": ack.final_recipient}
        return Reading([Inbound(SYSTEM, KIND_ACKNOWLEDGEMENT, received.message_id or f"sha256:{digest}",
                                "message/rfc822", b"", metadata)], acknowledgeable=False)
    attachment = received.xdm
    if attachment is None:
        return Reading([Inbound(SYSTEM, KIND_MESSAGE, received.message_id or f"sha256:{digest}", "message/rfc822",
                                b"", {**base, "in_reply_to": received.in_reply_to,
                                      "idempotency_key": key_of(received.in_reply_to) or ""})])
    try:
        package = xdm.read(attachment.data)
    except xdm.XdmRefused as exc:
        return Reading([quarantined(received.message_id, digest, exc.rule, exc.reason)],
                       IntegrationError("906", f"archive IHE_XDM.zip refusée : {exc.reason}"))
    errors = [p for p in xdm.check(package) if p.severity is Severity.error]
    if errors:
        first = errors[0]
        return Reading([quarantined(received.message_id, digest, first.rule, first.message)],
                       IntegrationError("906", f"archive IHE_XDM.zip non conforme : {first.message}"))
    documents = [e for e in package.entries if e.content is not None and e.mime_type in CDA_TYPES]
    if not documents:
        return Reading([quarantined(received.message_id, digest, "xdm-no-cda", "aucun document CDA dans l'archive")],
                       IntegrationError("906", "aucun document CDA dans l'archive IHE_XDM.zip"))
    items = []
    reference = received.message_id or f"sha256:{digest}"  # without Message-ID: the message's own bytes
    for entry in documents:
        ins = entry.ins
        items.append(Inbound(SYSTEM, KIND_DOCUMENT, f"{reference}#{entry.subset}/{entry.uri}",
                             entry.mime_type, entry.content, {
                                 **base, "document_id": entry.unique_id, "entry_uuid": entry.entry_uuid,
                                 "uri": f"{entry.subset}/{entry.uri}", "type_code": entry.type_code,
                                 "action": entry.action or "", "patient_id": entry.patient_id,
                                 "ins": ins[0] if ins else "", "ins_oid": ins[1] if ins else "",
                                 "in_reply_to": received.in_reply_to,
                                 "idempotency_key": key_of(received.in_reply_to) or "",
                                 "disposition_notification_to": received.disposition_notification_to or ""}))
    return Reading(items)


# ----------------------------------------------------------------------------- proposals

@dataclass
class Proposal:
    """A plan update for the coordinator's review: never stored or applied by Relais itself."""

    plan: Plan | None
    data: dict
    patch: list[dict] = field(default_factory=list)  # RFC 6902, from the current plan
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        """French, one line per proposed change."""
        verbs = {"add": "ajouter", "remove": "retirer", "replace": "modifier"}
        out = []
        for op in self.patch:
            value = op.get("value")
            shown = "" if op["op"] == "remove" else f" : {_short(value)}"
            out.append(f"{verbs.get(op['op'], op['op'])} {op['path']}{shown}")
        return out


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "…"


# What a CDA never carries by rule, so its absence proposes nothing: the INS of an identity that
# is not qualified (RNIV, mappings/cda/export.py).
_NOT_CARRIED = frozenset({"/person/ins"})


def propose(cda: bytes, current: Plan | None) -> Proposal:
    """Read the CDA into a plan (mappings.cda) and compare it with the current one."""
    import jsonpatch

    from mappings.cda.import_ import cda_to_plan

    result = cda_to_plan(cda)
    if result.plan is None:
        return Proposal(None, result.data, [], result.problems)
    proposed = result.plan.model_dump(mode="json", exclude_none=True)
    patch = []
    if current is not None:
        patch = [op for op in jsonpatch.make_patch(current.model_dump(mode="json", exclude_none=True), proposed)
                 if not (op["op"] == "remove" and op["path"] in _NOT_CARRIED)]
    return Proposal(result.plan, proposed, patch, result.problems)
