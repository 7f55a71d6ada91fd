"""The mailboxes of the sandbox MSSanté operator, shared by its SMTP and IMAP servers: SMTP
delivers into them, IMAP reads and flags them. UIDs are strictly ascending per mailbox and
never reused (RFC 3501 §2.3.1.1); UIDVALIDITY is fixed at creation."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_VALIDITY = itertools.count(int(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()))


@dataclass
class StoredMessage:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)
    internal_date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


@dataclass
class Mailbox:
    address: str
    password: str
    kind: str = "APP"  # TRE_R257: PER, ORG, APP, CAB
    uidvalidity: int = field(default_factory=lambda: next(_VALIDITY))
    next_uid: int = 1
    messages: list[StoredMessage] = field(default_factory=list)


class MailStore:
    """Thread-safe: the SMTP and IMAP servers run in their own threads."""

    def __init__(self, domains: tuple[str, ...] = ()):
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.domains = set(domains)
        self._listeners: list[Callable[[str, bytes], None]] = []

    def add(self, address: str, password: str, kind: str = "APP") -> Mailbox:
        with self.lock:
            box = Mailbox(address.lower(), password, kind)
            self.mailboxes[box.address] = box
            self.domains.add(box.address.rpartition("@")[2])
            return box

    def get(self, address: str) -> Mailbox | None:
        with self.lock:
            return self.mailboxes.get(address.lower())

    def authenticate(self, user: str, password: str) -> Mailbox | None:
        with self.lock:
            box = self.mailboxes.get(user.lower())
            return box if box is not None and box.password == password else None

    def is_local(self, address: str) -> bool:
        return address.lower().rpartition("@")[2] in self.domains

    def deliver(self, address: str, data: bytes) -> int:
        """Append to a mailbox; the listeners (the scripted correspondent) are told after."""
        with self.lock:
            box = self.mailboxes[address.lower()]
            uid = box.next_uid
            box.next_uid += 1
            box.messages.append(StoredMessage(uid, bytes(data)))
            listeners = list(self._listeners)
        for listener in listeners:
            listener(address.lower(), bytes(data))
        return uid

    def listen(self, listener: Callable[[str, bytes], None]) -> None:
        with self.lock:
            self._listeners.append(listener)

    def messages(self, address: str) -> list[StoredMessage]:
        with self.lock:
            box = self.mailboxes.get(address.lower())
            return list(box.messages) if box else []
