"""Cercle de soins 2.0.1 on the e-parcours sandbox (specs §6.1): the transaction Bundles are judged
with the rule set Relais ships (`mappings/fhir/profiles/cds-2.0.1.rules.json`, the same rules the
`cds-careteam` payload is validated with), and conditional updates are honoured.

Conditional update (FHIR R4 http.html#cond-update, in a transaction `request.url =
Type?criteria`): no match → the resource is created; one match → it is replaced; several →
412. The store resolves each such entry to a plain create or update before applying the
transaction, all under its lock.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import orjson

from connectors.sandbox.fhir_store import ResourceStore

CDS_SD = "https://interop.esante.gouv.fr/ig/fhir/cds/StructureDefinition/"
BUNDLE_PROFILES = frozenset({f"{CDS_SD}cds-bundle-transaction-creation", f"{CDS_SD}cds-bundle-transaction-maj"})
RULES = "cds-2.0.1.rules.json"


def is_cds_bundle(bundle: dict) -> bool:
    return any(str(p).split("|")[0] in BUNDLE_PROFILES for p in (bundle.get("meta") or {}).get("profile", []))


@cache
def _gate():
    from gateway.conformance.fhir.gate import Gate
    from gateway.conformance.fhir.rules import RuleSet

    return Gate(RuleSet(orjson.loads(resources.files("mappings.fhir.profiles").joinpath(RULES).read_bytes())))


def cds_issues(bundle: dict) -> list[dict]:
    """OperationOutcome issues of a cercle de soins transaction Bundle (errors answer 500)."""
    return [{"severity": p.severity.value, "code": "processing", "diagnostics": f"[{p.rule}] {p.message}",
             "expression": [p.location]} for p in _gate().validate(bundle)]


class ConditionalStore(ResourceStore):
    """The sandbox store, plus conditional updates inside transactions."""

    def transaction(self, bundle: dict, check=None, *, owned: bool = False) -> dict:
        with self._lock:
            return super().transaction(self._resolved(bundle), check, owned=owned)

    def _resolved(self, bundle: dict) -> dict:
        entries = []
        for entry in bundle.get("entry") or []:
            request = entry.get("request") if isinstance(entry, dict) else None
            url = (request or {}).get("url", "")
            if request and request.get("method") == "PUT" and "?" in url:
                rtype, _, criteria = url.partition("?")
                match = self._conditional(rtype, criteria)
                resolved = ({"method": "PUT", "url": f"{rtype}/{match.resource['id']}"} if match
                            else {"method": "POST", "url": rtype})
                entry = {**entry, "request": resolved}
            entries.append(entry)
        return {**bundle, "entry": entries}
