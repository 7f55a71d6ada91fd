"""The strict e-parcours peer's fast paths say exactly what the slow ones say: the JSON reader
(orjson on a body in orjson's own form, else the strict reader), the reference check, the
identifier index of conditional creates, a received Bundle stored in place rather than copied,
and the entries of a Bundle a gate accepted left without their own structure check — on the
fixture plans' Bundles and on hostile variants of them."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.sandbox import fhir_json
from connectors.sandbox.cds import ConditionalStore
from connectors.sandbox.eparcours import eparcours_sandbox
from connectors.sandbox.fhir_app import _check_references, _first_unresolved
from connectors.sandbox.fhir_json import loads_strict_object
from connectors.sandbox.fhir_store import FhirError, ResourceStore, identifier_matches
from connectors.sandbox.server import ThreadedServer
from gateway.model import Plan
from gateway.plans.jsoninput import JsonInputError, loads_object
from mappings.fhir.tddui import plan_to_bundle

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
PLANS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "plans").glob("*.json"))


def fixture_bundle(path: Path) -> dict:
    return plan_to_bundle(Plan.model_validate_json(path.read_bytes()), NOW)


@pytest.fixture(scope="module")
def bundles() -> list[dict]:
    return [fixture_bundle(p) for p in PLANS[::6]]


def verdict(read, raw):
    try:
        return "value", _typed(read(raw))
    except JsonInputError as exc:
        return "refused", exc.problem.model_dump()


def _typed(value):
    """The value with every scalar's type (1 and 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


# ------------------------------------------------------------------------------- strict JSON

def hostile_bodies(raw: bytes) -> list[bytes]:
    """The Bundle's own bytes changed in the ways the strict reader refuses (or reads otherwise)."""
    assert raw.startswith(b'{"resourceType":"Bundle"')
    head, tail = b'{"resourceType":"Bundle"', raw[len(b'{"resourceType":"Bundle"'):]
    deep = lambda n: b'{"a":' * (n - 1) + b"{}" + b"}" * (n - 1)  # noqa: E731 - n nested objects
    deep_list = lambda n: b'{"a":' + b"[" * (n - 1) + b"1" + b"]" * (n - 1) + b"}"  # noqa: E731
    return [
        head + b',"resourceType":"Bundle"' + tail,                   # duplicate key at the root
        raw.replace(b'"status":"active"', b'"status":"active","status":"draft"', 1),  # nested duplicate
        raw.replace(b'"type":"transaction"', b'"type":"transaction","type":"transaction"', 1),
        head + b',"x":NaN' + tail, head + b',"x":Infinity' + tail, head + b',"x":-Infinity' + tail,
        head + b',"x":1e400' + tail, head + b',"x":-1e400' + tail,
        head + b',"x":9223372036854775807' + tail,                   # int64's largest: read
        head + b',"x":-9223372036854775808' + tail,
        head + b',"x":9223372036854775808' + tail,                   # beyond: orjson reads it (u64)
        head + b',"x":18446744073709551615' + tail,
        head + b',"x":-9223372036854775809' + tail,
        head + b',"x":18446744073709551616' + tail,
        head + b',"x":{"y":[1,18446744073709551615]}' + tail,
        head + b',"x":1' + b"0" * 45 + tail,
        head + b',"x":0.' + b"0" * 45 + b"1" + tail,                 # a float of 48 characters
        head + b',"x":1.0000000000000000000000000000000000000001' + tail,
        head + b',"x":1.5e300,"y":-0.0,"z":1e-320' + tail,
        head + b',"x":-0' + tail, head + b',"x":1.50' + tail, head + b',"x":1E5' + tail,
        head + b',"x":"a\\u0000b"' + tail, head + b',"a\\u0000":1' + tail,
        head + b',"x":["\\u0000"]' + tail,
        head + b',"x":"\\\\u0000"' + tail,                           # a backslash, then u0000: text
        head + b',"x":"\\ud800"' + tail, head + b',"x":"\\udc00\\ud800"' + tail,
        head + b',"x":"\\ud83d\\ude00"' + tail, head + b',"x":"\\u00e9"' + tail,
        head + b',"x":"\xe9"' + tail, head + b',"x":"\xed\xa0\x80"' + tail,  # invalid UTF-8
        head + b',"x":"a\nb"' + tail, head + b',"x":"a\x1fb"' + tail, head + b',"x":"\x7f"' + tail,
        b"\xef\xbb\xbf" + raw, b" " + raw + b"\n", raw + b"x", raw + b"{}", raw[:-1],
        raw.replace(b":", b": ", 3), b"[" + raw + b"]", b'"' + raw.replace(b'"', b"'") + b'"',
        b"null", b"1", b"", b"{}", b"{'a':1}",
        head + b',"x":' + deep(30) + tail, head + b',"x":' + deep(31) + tail,
        deep(62), deep(63), deep(64), deep(65), deep(66),
        deep_list(62), deep_list(63), deep_list(64), deep_list(65),
        deep(64).replace(b"{}", b'{"b":1}'), deep(63).replace(b"{}", b'{"b":[]}'),
        deep(63).replace(b"{}", b'{"b":[1]}'),
        raw + b" " * (2 * 1024 * 1024 - len(raw)), raw + b" " * (2 * 1024 * 1024 + 1 - len(raw)),
        head + b',"x":"' + b"a" * (2 * 1024 * 1024) + b'"' + tail,
    ]


def test_the_fast_reader_reads_what_relais_sends_without_the_strict_reader(bundles, monkeypatch):
    calls = []
    monkeypatch.setattr(fhir_json, "loads_object", lambda raw: calls.append(raw) or loads_object(raw))
    for n, bundle in enumerate(bundles):  # as gateway/delivery/builtin_payloads.py renders them
        raw = orjson.dumps(bundle | {"identifier": {"system": "urn:ietf:rfc:3986",
                                                    "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}"}})
        assert verdict(loads_strict_object, raw) == verdict(loads_object, raw)
    assert calls == []


def test_the_fast_reader_gives_the_strict_verdict_on_hostile_bodies(bundles):
    for bundle in bundles[:4]:
        for raw in hostile_bodies(orjson.dumps(bundle)):
            assert verdict(loads_strict_object, raw) == verdict(loads_object, raw), raw[:80]


@pytest.mark.parametrize("seed", range(3))
def test_the_fast_reader_agrees_on_random_numbers_and_strings(seed):
    rng = random.Random(seed)
    numbers = [rng.choice([rng.randint(-2**70, 2**70), rng.randint(-2**64, 2**64), rng.randint(-99, 99),
                           rng.uniform(-1e300, 1e300), rng.random() * 10 ** rng.randint(-320, 300),
                           2**63 - rng.randint(-3, 3), -2**63 - rng.randint(-3, 3)]) for _ in range(400)]
    for number in numbers:
        for text in ({"float": float.__repr__, "int": int.__repr__}[type(number).__name__](number),):
            raw = b'{"resourceType":"Bundle","x":' + text.encode() + b"}"
            assert verdict(loads_strict_object, raw) == verdict(loads_object, raw), raw
            if isinstance(number, float) and math.isfinite(number):
                raw = orjson.dumps({"x": number})
                assert verdict(loads_strict_object, raw) == verdict(loads_object, raw), raw
    for _ in range(300):
        text = "".join(chr(rng.choice([rng.randint(0, 0x7f), rng.randint(0x80, 0xffff), rng.randint(0x10000, 0x10ffff)]))
                       for _ in range(rng.randint(0, 12)))
        if any(0xd800 <= ord(c) <= 0xdfff for c in text):
            continue
        raw = orjson.dumps({"resourceType": "Bundle", text: [text, {"k": text}]})
        assert verdict(loads_strict_object, raw) == verdict(loads_object, raw), raw


def test_a_reader_blind_to_one_refusal_is_caught(bundles, monkeypatch):
    """The comparison above would see a fast path that forgot the 64-bit bound (orjson reads up
    to 2**64 - 1)."""
    raw = orjson.dumps(bundles[0]).replace(b'"resourceType":"Bundle"', b'"resourceType":"Bundle","x":9223372036854775808', 1)
    monkeypatch.setattr(fhir_json, "INT64", 2**64)
    assert verdict(loads_strict_object, raw) != verdict(loads_object, raw)


# ---------------------------------------------------------------------------- references

def reference_outcome(check, bundle):
    try:
        check(bundle)
        return "resolved"
    except FhirError as exc:
        return ("FhirError", exc.status, exc.diagnostics, exc.expression)
    except Exception as exc:  # what the old walk raised on a malformed Bundle, it still raises
        return (type(exc).__name__, str(exc))


def hostile_reference_bundles(bundle: dict) -> list[dict]:
    def changed(change) -> dict:
        copy = orjson.loads(orjson.dumps(bundle))
        change(copy)
        return copy

    def entry(i):
        return lambda b: b["entry"][i]

    return [
        bundle,
        changed(lambda b: entry(-1)(b)["resource"].update(subject={"reference": "urn:uuid:nowhere"})),
        changed(lambda b: entry(1)(b)["resource"].update(x=[{"y": {"reference": "urn:uuid:nowhere"}}])),
        changed(lambda b: entry(2)(b)["resource"].update(x={"reference": {"reference": "urn:uuid:nowhere"}})),
        changed(lambda b: entry(2)(b)["resource"].update(x={"reference": ["urn:uuid:nowhere"]})),
        changed(lambda b: entry(2)(b)["resource"].update(x={"reference": 3})),
        changed(lambda b: entry(2)(b)["resource"].update(x={"reference": "Patient/123"})),
        changed(lambda b: entry(0)(b).pop("fullUrl")),
        changed(lambda b: entry(0)(b).update(fullUrl="")),
        changed(lambda b: entry(0)(b).update(fullUrl=["x"])),
        changed(lambda b: entry(0)(b).update(resource=["a", {"reference": "urn:uuid:nowhere"}])),
        changed(lambda b: entry(0)(b).update(resource=None)),
        changed(lambda b: entry(0)(b).pop("resource")),
        changed(lambda b: b["entry"].append("junk")),
        changed(lambda b: b["entry"].insert(0, None)),
        changed(lambda b: b.update(entry={"a": 1})),
        changed(lambda b: b.update(entry=None)),
        changed(lambda b: b.update(entry="abc")),
        changed(lambda b: b.pop("entry")),
        changed(lambda b: b.update(entry=[])),
    ]


def test_the_reference_check_gives_the_old_verdict(bundles):
    seen = set()
    for bundle in bundles:
        for hostile in hostile_reference_bundles(bundle):
            outcome = reference_outcome(_check_references, hostile)
            assert outcome == reference_outcome(_first_unresolved, hostile)
            seen.add(outcome[0] if isinstance(outcome, tuple) else outcome)
    assert seen == {"resolved", "FhirError", "AttributeError", "TypeError"}


# ------------------------------------------------------------------------- identifier index

def scanned(store: ResourceStore, rtype: str, query: str) -> set[str]:
    return {s.resource["id"] for s in store.search(rtype, lambda s: identifier_matches(s.resource, query))}


def indexed(store: ResourceStore, rtype: str, query: str):
    try:
        return {s.resource["id"] for s in store._identified(rtype, query)}
    except Exception as exc:  # a malformed identifier list: the scan fails the same way
        return type(exc).__name__


@pytest.mark.parametrize("seed", range(4))
def test_the_identifier_index_finds_what_a_scan_finds(seed):
    rng = random.Random(seed)
    store = ResourceStore()
    values = ["A", "B", "C", "D|E", ""]
    systems = ["urn:s1", "urn:s2", None]

    def identifiers():
        out = []
        for _ in range(rng.randint(0, 3)):
            ident = {"value": rng.choice(values + [3, None, ["A"]])}
            if (system := rng.choice(systems)) is not None:
                ident["system"] = system
            out.append(ident)
        malformed = [[{"value": "A"}, "A"], "A"] if seed == 3 else []  # the scan fails on these
        return rng.choice([out, out, out, None, {}, []] + malformed)

    for step in range(200):
        rtype = rng.choice(["Patient", "Organization"])
        resource = {"resourceType": rtype, "identifier": identifiers()}
        held = store.all(rtype)
        action = rng.random()
        if action < 0.5 or not held:
            store.create(resource)
        elif action < 0.75:
            store.update(rtype, rng.choice(held).resource["id"], resource)
        else:  # a transaction that stores, then fails: rolled back
            entries = [{"resource": dict(resource), "request": {"method": "PUT", "url": f"{rtype}/{rng.choice(held).resource['id']}"}},
                       {"resource": {"resourceType": rtype, "identifier": identifiers()}, "request": {"method": "POST", "url": rtype}},
                       {"resource": {"resourceType": rtype}, "request": {"method": "POST", "url": rtype}}]

            def fail_late(res, i, n=len(entries)):
                if i == n - 1:
                    raise FhirError(422, "processing", "refused")
            with pytest.raises(FhirError):
                store.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries}, fail_late)
        for rt in ("Patient", "Organization"):
            for value in values:
                for query in (value, f"|{value}", f"urn:s1|{value}", f"urn:s2|{value}", f"urn:s9|{value}"):
                    try:
                        expected = scanned(store, rt, query)
                    except Exception as exc:
                        expected = type(exc).__name__
                    assert indexed(store, rt, query) == expected, (step, rt, query)


def test_a_conditional_create_still_refuses_two_matches():
    store = ResourceStore()
    for _ in range(2):
        store.create({"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "X"}]})
    with pytest.raises(FhirError) as refused:
        store.create({"resourceType": "Patient"}, "identifier=urn:s|X")
    assert refused.value.status == 412


# ------------------------------------------------------------------------- stored in place

@pytest.fixture
def uuids(monkeypatch):
    """Deterministic resource ids, so two stores can be compared."""
    counter = iter(range(10**9))
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))

    def restart():
        nonlocal counter
        counter = iter(range(10**9))
    return restart


def test_a_bundle_stored_in_place_is_stored_as_a_copy_would_be(bundles, uuids):
    runs = []
    for owned in (False, True):
        uuids()
        sandbox = eparcours_sandbox()
        responses = []
        for bundle in bundles + bundles[:2]:  # the last two again: conditional matches, resends
            response = sandbox.store.transaction(orjson.loads(orjson.dumps(bundle)), sandbox.check_resource,
                                                 owned=owned)
            responses.append([{k: v for k, v in e["response"].items() if k != "lastModified"}
                              for e in response["entry"]])
        stored = {rtype: {rid: (s.version, _strip(s.resource), [_strip(h) for h in s.history])
                          for rid, s in by_id.items()} for rtype, by_id in sandbox.store._data.items()}
        runs.append((responses, stored))
    assert runs[0] == runs[1]
    assert sum(len(v) for v in runs[0][1].values()) > 30


def _strip(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k != "meta"} | {"meta": {
        k: v for k, v in resource.get("meta", {}).items() if k != "lastUpdated"}}


def test_a_resent_bundle_gets_its_first_answer_again_each_time_as_a_new_object(bundles):
    store = ConditionalStore()
    raw = orjson.dumps(bundles[0] | {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:b-1"}})
    first = store.transaction(orjson.loads(raw), owned=True)
    kept = orjson.dumps(first)
    first["entry"].clear()
    again = store.transaction(orjson.loads(raw), owned=True)
    assert orjson.dumps(again) == kept
    again["entry"].clear()
    assert orjson.dumps(store.transaction(orjson.loads(raw))) == kept


# ------------------------------------------------------------------ entries of a gated Bundle

STRUCTURE_BREAKS = [
    ("foo", 1), ("status", 3), ("status", ""), ("identifier", {}), ("identifier", [1]),
    ("identifier", [{"value": 3}]), ("identifier", [{"system": "urn:s", "value": "x", "bogus": 1}]),
    ("meta", {"profile": "x"}), ("meta", []), ("extension", [{"url": 1}]), ("extension", [{}]),
    ("text", {"status": "generated", "div": 5}), ("id", "bad id!"), ("id", 7), ("language", None),
    ("contained", [{"resourceType": "Nope"}]), ("contained", [{"id": "x"}]), ("contained", {}),
    ("birthDate", "2026-13-45"), ("period", {"start": "hier"}), ("subject", {"reference": 3}),
    ("subject", "Patient/1"), ("resourceType", "Basic"), ("modifierExtension", [{"url": "u"}]),
]


def entry_structure_problems(sandbox, bundle: dict) -> list:
    found = []
    for i, entry in enumerate(bundle["entry"]):
        try:
            sandbox.check_resource(entry["resource"], i)
        except FhirError as exc:
            found.append((i, exc.status, exc.diagnostics))
    return found


def gate_errors(sandbox, bundle: dict) -> list:
    issues = sandbox.personality.validate_bundle(bundle)
    return [i for i in issues or () if i["severity"] in ("error", "fatal")]


def broken_bundles(bundle: dict):
    for n, (key, value) in enumerate(STRUCTURE_BREAKS):
        for i in (n % len(bundle["entry"]), -1):
            copy = orjson.loads(orjson.dumps(bundle))
            copy["entry"][i]["resource"][key] = value
            yield copy


def test_an_entry_whose_structure_is_wrong_is_refused_by_the_gate_of_its_bundle(bundles):
    """What lets a gated Bundle's entries skip their own structure check: the gate refuses a
    Bundle whenever one of them would have refused an entry (it checks the Bundle's structure,
    the entries included)."""
    sandbox = eparcours_sandbox()
    refused = 0
    for bundle in bundles[:5]:
        assert gate_errors(sandbox, bundle) == [] and entry_structure_problems(sandbox, bundle) == []
        for broken in broken_bundles(bundle):
            problems = entry_structure_problems(sandbox, broken)
            refused += bool(problems)
            assert not problems or gate_errors(sandbox, broken), problems
    assert refused > 100


def test_a_gate_blind_to_structure_would_be_caught(bundles, monkeypatch):
    from gateway.conformance.fhir.gate import tddui_gate

    sandbox = eparcours_sandbox()
    monkeypatch.setattr(tddui_gate().validator, "structure", False)
    assert any(entry_structure_problems(sandbox, b) and not gate_errors(sandbox, b)
               for b in broken_bundles(bundles[0]))


def test_a_bundle_no_gate_judges_still_has_each_entry_structure_checked():
    sandbox = eparcours_sandbox()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "foo": 1}, "request": {"method": "POST", "url": "Patient"}}]}
    assert sandbox.personality.validate_bundle(bundle) is None
    sandbox.tokens.add("t")
    with ThreadedServer(sandbox.app) as server:
        answer = httpx.post(f"{server.url}/", content=orjson.dumps(bundle), headers={
            "Authorization": "Bearer t", "Content-Type": "application/fhir+json"})
    assert answer.status_code == 500  # the e-parcours tool's status for a refused transaction
    assert answer.json()["issue"][0]["code"] == "structure"
    assert answer.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.foo"]
