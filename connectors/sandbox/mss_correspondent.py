"""A scripted MSSanté correspondent of the sandbox: when an XDM message reaches its mailbox it
reads the CDA (mappings.cda), answers with the processing MDN when one was asked for, and
replies with a CDA of its own — the plan it received, amended as a partner would (a review
date moved, an expectation added), packed as a new version (RPLC, XDM action `C`) — which
Relais must show as a proposed update. It can also answer with an integration error (902…).
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from dataclasses import dataclass, field

from connectors.mss import message as M
from connectors.mss import xdm
from connectors.mss.mdn import IntegrationError, build_mdn
from connectors.mss.pdf import cda_to_pdf
from connectors.sandbox.mailstore import MailStore


@dataclass
class Correspondent:
    address: str
    name: str
    kind: str = "professional"  # "professional" (Practitioner, PER) | "organisation" (Organization, ORG)
    identifier: str = ""  # RPPS (11 digits) or FINESS
    reply: bool = True  # answer with an amended CDA
    error: IntegrationError | None = None  # answer the MDN with this error instead
    received: list[bytes] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)


def amend(plan, now: dt.datetime):
    """What the partner changes: the next review one month later, and a note of its own."""
    from gateway.model import Plan

    data = plan.model_dump(mode="json", exclude_none=True)
    review = plan.next_review or now.date()
    data["next_review"] = (review + dt.timedelta(days=31)).isoformat()
    data["version_label"] = f"{plan.version_label or 'V1'}-partenaire"
    return Plan.model_validate(data)


class CorrespondentDesk:
    """Listens to the mail store; answers in its own thread (never inside the SMTP handler)."""

    def __init__(self, store: MailStore, correspondents: list[Correspondent]):
        self.store = store
        self.by_address = {c.address.lower(): c for c in correspondents}
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sandbox-correspondent")
        self.errors: list[str] = []
        self.idle = threading.Event()
        self.idle.set()
        store.listen(self._delivered)

    def start(self) -> "CorrespondentDesk":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _delivered(self, address: str, data: bytes) -> None:
        if address in self.by_address:
            self.idle.clear()
            self._queue.put((self.by_address[address], data))

    def wait(self, timeout: float = 10) -> bool:
        """Until every delivered message has been answered."""
        return self.idle.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.answer(*item)
            except Exception as exc:  # noqa: BLE001 - the sandbox reports, never dies
                self.errors.append(f"{type(exc).__name__}: {exc}")
            if self._queue.empty():
                self.idle.set()

    def answer(self, correspondent: Correspondent, raw: bytes) -> None:
        correspondent.received.append(raw)
        received = M.parse(raw)
        if received.xdm is None or received.header("Auto-Submitted").startswith("auto-"):
            return
        now = dt.datetime.now(dt.timezone.utc)
        if received.disposition_notification_to:
            mdn = build_mdn(received, mailbox=correspondent.address, error=correspondent.error, now=now,
                            message_id=M.new_message_id(correspondent.address),
                            reporting_ua=f"sandbox; {correspondent.name}")
            self.store.deliver(received.disposition_notification_to, mdn)
        if correspondent.error is not None or not correspondent.reply:
            return
        reply = self.reply_to(correspondent, received, now)
        if reply is not None:
            correspondent.replies.append(reply)
            self.store.deliver(received.sender, reply)

    def reply_to(self, correspondent: Correspondent, received: M.Received, now: dt.datetime) -> bytes | None:
        from mappings.cda import document_ids
        from mappings.cda.import_ import cda_to_plan

        package = xdm.read(received.xdm.data)
        entry = next((e for e in package.entries if e.content is not None), None)
        if entry is None:
            return None
        result = cda_to_plan(entry.content)
        if result.plan is None:
            return None
        version = int(_version(entry.content)) + 1
        plan = amend(result.plan, now)
        packed = xdm.pack_plan(plan, now=now, ids=document_ids(plan, version))
        text, html = M.bodies(plan.title, correspondent.name)
        body = M.build(subject=M.subject_for(plan.title, plan), text=text, html=html, xdm=packed.archive,
                       cda_codes=[xdm.cda_code(packed.cda) or ""], qualified_ins=bool(xdm.read(packed.archive).entries[0].ins),
                       pdf=cda_to_pdf(packed.cda, now=now), pdf_name=M.pdf_filename(plan, "Projet personnalisé"),
                       now=now)
        head = M.address(body, sender=correspondent.address, to=[received.sender],
                         message_id=M.new_message_id(correspondent.address), mdn_to=correspondent.address)
        threading_headers = (f"In-Reply-To: {received.message_id}\r\nReferences: {received.message_id}\r\n"
                             if received.message_id else "")
        return threading_headers.encode("ascii") + head


def _version(cda: bytes) -> str:
    from mappings.cda import constants as C
    from mappings.cda.xmlsafe import parse_xml

    node = parse_xml(cda).getroot().find(f"{{{C.NS}}}versionNumber")
    return node.get("value", "1") if node is not None else "1"
