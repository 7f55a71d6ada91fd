"""Payload kinds: how a plan becomes the bytes a connector sends, and the profile check those
bytes must pass before they are queued (issue 5 §1: map → validate the output)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.model import Plan, Problem


class UnknownPayloadKind(KeyError):
    """A payload kind no module registered (a KeyError, as before; caught apart from a bug's)."""


class BuildError(ValueError):
    """The plan cannot give this payload (e.g. no decision received from the SI-SDO): the
    exchange is recorded as invalid with these problems."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class BuildContext:
    tenant_slug: str
    tenant_finess: str | None
    plan_version: int
    now: dt.datetime
    idempotency_key: str
    extras: dict = field(default_factory=dict)  # what the kind's `load` read (e.g. the care team)


@dataclass(frozen=True)
class PayloadKind:
    name: str
    content_type: str
    build: Callable[[Plan, BuildContext], bytes]
    validate: Callable[[bytes], list[Problem]]
    # Reads what the payload needs beyond the plan:
    # (store, tenant, person local id, *, labels=request's security labels) -> dict.
    load: Callable[..., dict] | None = None


_KINDS: dict[str, PayloadKind] = {}


def register(kind: PayloadKind) -> None:
    _KINDS[kind.name] = kind


def kind(name: str) -> PayloadKind:
    if name not in _KINDS:
        _load_builtin()
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownPayloadKind(f"type de contenu inconnu : {name!r} (connus : {', '.join(sorted(_KINDS))})") from None


def _load_builtin() -> None:
    """The kinds Relais ships, registered on first use (their modules import heavy mappings)."""
    from gateway.delivery import builtin_payloads  # noqa: F401
