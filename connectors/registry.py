"""The one registration per connector: system name → factory (imported lazily).

A factory takes the connector's settings (a mapping from gateway configuration) and returns a
`connectors.base.Connector`. Adding a system = its own package + one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from connectors.base import Connector

FACTORIES: dict[str, str] = {
    "eparcours": "connectors.eparcours:build",
    "viatrajectoire": "connectors.viatrajectoire:build",
    "mss": "connectors.mss:build",
    "dmp": "connectors.dmp:build",
}


def systems() -> list[str]:
    return sorted(FACTORIES)


def factory(system: str) -> Callable[[Mapping[str, object]], Connector]:
    try:
        module_name, _, attr = FACTORIES[system].partition(":")
    except KeyError:
        raise KeyError(f"système inconnu : {system!r} (connus : {', '.join(systems())})") from None
    return getattr(importlib.import_module(module_name), attr)
