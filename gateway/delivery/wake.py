"""In-process wake-up of the workers: a submission that queued an item tells the workers of this
process that poll the same database, so they claim it now instead of at their next poll.

Polling stays the rule: workers in other processes (`relais worker`), items due later (a retry)
and anything this signal could miss are found by the next poll, as before. The signal only
shortens the wait of an idle worker; it never decides what is claimed.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_listeners: dict[str, set[threading.Event]] = {}


def database_of(store) -> str:
    """The key of a store's database (its engine URL, password hidden)."""
    return str(store.engine.url)


def listen(database: str, event: threading.Event) -> None:
    """Set `event` whenever this process queues an item in `database` (see database_of)."""
    with _lock:
        _listeners.setdefault(database, set()).add(event)


def unlisten(database: str, event: threading.Event) -> None:
    with _lock:
        listeners = _listeners.get(database)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del _listeners[database]


def queued(database: str) -> None:
    """Called after the transaction that queued an item has committed."""
    with _lock:
        listeners = tuple(_listeners.get(database, ()))
    for event in listeners:
        event.set()
