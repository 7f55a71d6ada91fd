"""In-memory FHIR resource store for the sandbox servers: versions, conditional create,
transactions (all or nothing), and the few searches the French guides use."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson


class FhirError(Exception):
    """Rejected request → OperationOutcome with this HTTP status."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: list[str] | None = None,
                 issues: list[dict] | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression or []
        self.issues = issues

    def outcome(self) -> dict:
        issues = self.issues or [{
            "severity": "error", "code": self.code, "diagnostics": self.diagnostics,
            **({"expression": self.expression} if self.expression else {}),
        }]
        return {"resourceType": "OperationOutcome", "issue": issues}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Stored:
    resource: dict
    version: int
    last_updated: str
    history: list[dict] = field(default_factory=list)


def identifier_matches(resource: dict, query: str) -> bool:
    """FHIR token search on identifier: `system|value`, `|value`, or `value`."""
    system, bar, value = query.partition("|")
    if not bar:
        system, value = None, query
    for ident in resource.get("identifier", []) or []:
        if ident.get("value") == value and (system is None or system == "" or ident.get("system") == system):
            return True
    return False


class ResourceStore:
    def __init__(self):
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, Stored]] = {}
        # (type, identifier value) → ids that held it: conditional creates look there instead of
        # scanning every stored resource of the type (that grew with the store, ~3 ms a TDDUI
        # Bundle after 300). A superset (a rollback or an update leaves stale ids): every
        # candidate is matched again. Types holding an identifier list it cannot read are scanned.
        self._by_identifier: dict[tuple[str, str], set[str]] = {}
        self._unindexed: set[str] = set()
        self._bundles: dict[str, bytes] = {}  # Bundle.identifier → transaction-response (resend)

    # ---------------------------------------------------------------- basic interactions

    def read(self, rtype: str, rid: str) -> Stored:
        with self._lock:
            try:
                return self._data[rtype][rid]
            except KeyError:
                raise FhirError(404, "not-found", f"{rtype}/{rid} inconnu") from None

    def all(self, rtype: str) -> list[Stored]:
        with self._lock:
            return list(self._data.get(rtype, {}).values())

    def count(self, rtype: str | None = None) -> int:
        with self._lock:
            if rtype:
                return len(self._data.get(rtype, {}))
            return sum(len(v) for v in self._data.values())

    def search(self, rtype: str, predicate: Callable[[Stored], bool]) -> list[Stored]:
        return [s for s in self.all(rtype) if predicate(s)]

    def _put(self, rtype: str, rid: str, resource: dict, *, owned: bool = False) -> Stored:
        """`owned`: no caller keeps `resource` (a transaction's entry, relinked), stored as it is;
        otherwise it is copied first."""
        if not owned:
            resource = copy.deepcopy(resource)
        resource["id"] = rid
        previous = self._data.setdefault(rtype, {}).get(rid)
        version = previous.version + 1 if previous else 1
        now = _now()
        resource["meta"] = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": now}
        stored = Stored(resource, version, now, (previous.history + [previous.resource]) if previous else [])
        self._data[rtype][rid] = stored
        self._index(rtype, rid, resource)
        return stored

    def _index(self, rtype: str, rid: str, resource: dict) -> None:
        idents = resource.get("identifier", []) or []
        if not (isinstance(idents, list) and all(isinstance(i, dict) for i in idents)):
            self._unindexed.add(rtype)  # identifier_matches fails or reads it its own way: scan
            return
        for ident in idents:
            value = ident.get("value")
            if isinstance(value, str):  # another value never equals a query's string
                self._by_identifier.setdefault((rtype, value), set()).add(rid)

    def create(self, resource: dict, if_none_exist: str | None = None) -> tuple[Stored, bool]:
        """Returns (stored, created). `If-None-Exist: identifier=system|value` (FHIR R4 §3.1.0.8.1)."""
        rtype = resource["resourceType"]
        with self._lock:
            if if_none_exist:
                match = self._conditional(rtype, if_none_exist)
                if match is not None:
                    return match, False
            return self._put(rtype, uuid.uuid4().hex, resource), True

    def update(self, rtype: str, rid: str, resource: dict) -> Stored:
        if resource.get("id") not in (None, rid):
            raise FhirError(400, "invalid", f"l'id du corps ({resource.get('id')}) diffère de l'URL ({rid})")
        with self._lock:
            return self._put(rtype, rid, resource)

    def _conditional(self, rtype: str, criteria: str) -> Stored | None:
        name, _, value = criteria.partition("=")
        if name != "identifier" or not value:
            raise FhirError(400, "not-supported", f"critère conditionnel non pris en charge : {criteria}")
        found = self._identified(rtype, value)
        if len(found) > 1:
            raise FhirError(412, "duplicate", f"{len(found)} ressources correspondent à {criteria}")
        return found[0] if found else None

    def _identified(self, rtype: str, query: str) -> list[Stored]:
        """`search(rtype, identifier_matches(…, query))`, through the index (same result but
        for the order, which no caller uses: one match or a count)."""
        if rtype in self._unindexed:
            return self.search(rtype, lambda s: identifier_matches(s.resource, query))
        _, bar, value = query.partition("|")
        held = self._data.get(rtype, {})
        candidates = (held.get(rid) for rid in self._by_identifier.get((rtype, value if bar else query), ()))
        return [s for s in candidates if s is not None and identifier_matches(s.resource, query)]

    # ------------------------------------------------------------------- transactions

    def transaction(self, bundle: dict, check: Callable[[dict, int], None] | None = None, *,
                    owned: bool = False) -> dict:
        """Process a transaction Bundle all or nothing (FHIR R4 http.html#transaction):
        urn:uuid fullUrls are rewritten to the ids assigned here. `owned`: nobody else holds
        `bundle` (a request body just read): its resources are stored themselves, their
        references rewritten in place, instead of copies (a TDDUI Bundle's ~700 dicts and lists,
        the garbage collector's to traverse too); a rejected Bundle is left half-rewritten."""
        key = _bundle_key(bundle)
        with self._lock:
            if key and key in self._bundles:
                return orjson.loads(self._bundles[key])  # the same Bundle sent again: a new copy
            # Stored versions are never changed in place (`_put` makes a new one), so copying
            # the two dict levels is a full snapshot — a deep copy made every transaction cost
            # O(everything held), 0.1-0.4 s per Bundle once a few hundred were stored.
            snapshot = {rtype: dict(stored) for rtype, stored in self._data.items()}
            try:
                response = self._apply(bundle, check, owned)
            except Exception:
                self._data = snapshot
                raise
            if key:
                self._bundles[key] = orjson.dumps(response)  # its strings only: a frozen copy
            return response

    def _apply(self, bundle: dict, check, owned: bool = False) -> dict:
        entries = bundle.get("entry") or []
        assigned: dict[str, str] = {}
        plans = []
        for i, entry in enumerate(entries):
            resource = entry.get("resource")
            request = entry.get("request") or {}
            if not isinstance(resource, dict) or "resourceType" not in resource:
                raise FhirError(400, "required", "entrée sans ressource", [f"Bundle.entry[{i}].resource"])
            method = request.get("method")
            url = request.get("url", "")
            if method not in ("POST", "PUT"):
                raise FhirError(400, "not-supported", f"méthode {method!r} non prise en charge",
                                [f"Bundle.entry[{i}].request.method"])
            rtype = resource["resourceType"]
            if method == "POST" and url != rtype:
                raise FhirError(400, "invalid",
                                f"request.url doit être le type de ressource ({rtype}), reçu {url!r}",
                                [f"Bundle.entry[{i}].request.url"])
            if check is not None:
                check(resource, i)
            if method == "POST":
                match = self._conditional(rtype, request["ifNoneExist"]) if request.get("ifNoneExist") else None
                rid = match.resource["id"] if match else uuid.uuid4().hex
            else:
                rtype_url, _, rid = url.partition("/")
                if rtype_url != rtype or not rid:
                    raise FhirError(400, "invalid", f"URL de mise à jour invalide : {url!r}",
                                    [f"Bundle.entry[{i}].request.url"])
                match = None
            if entry.get("fullUrl"):
                assigned[entry["fullUrl"]] = f"{rtype}/{rid}"
            plans.append((rtype, rid, resource, match, method))
        out = []
        for rtype, rid, resource, match, method in plans:
            if match is not None:
                out.append({"response": {"status": "200 OK", "location": f"{rtype}/{rid}/_history/{match.version}"}})
                continue
            if not owned:
                resource = copy.deepcopy(resource)
            _relink(resource, assigned)
            stored = self._put(rtype, rid, resource, owned=True)
            status = "201 Created" if stored.version == 1 else "200 OK"
            out.append({"response": {"status": status, "location": f"{rtype}/{rid}/_history/{stored.version}",
                                     "etag": f'W/"{stored.version}"', "lastModified": stored.last_updated}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}


def _bundle_key(bundle: dict) -> str | None:
    ident = bundle.get("identifier") or {}
    if ident.get("value"):
        return f"{ident.get('system', '')}|{ident['value']}"
    return None


def _relink(node, assigned: dict[str, str]) -> None:
    """The Bundle's references replaced in `node` itself (a resource the store now owns)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                if v in assigned:
                    node[k] = assigned[v]
            elif isinstance(v, (dict, list)):
                _relink(v, assigned)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _relink(v, assigned)


def references(node, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (FHIRPath-ish location, reference) in a resource."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield path, v
            else:
                yield from references(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from references(v, f"{path}[{i}]")
