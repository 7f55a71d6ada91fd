"""The sandbox peer's transaction-response, written by orjson, has JSONResponse's bytes and
headers: on the answers to the fixture plans' Bundles (first sent and sent again) and on
strings holding what the two writers could escape differently."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.responses import JSONResponse

from connectors.sandbox.fhir_app import FHIR_JSON, transaction_response
from connectors.sandbox.fhir_store import ResourceStore
from gateway.model import Plan
from mappings.fhir.tddui import plan_to_bundle

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
PLANS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "plans").glob("*.json"))
AWKWARD = ["", "é à ç", "\"quoted\" \\back\\", "a/b", "\n\r\t\b\f", "\x00\x01\x1f\x7f", "\u2028\u2029",
           "😀", "\ufeffbom", "<script>&amp;</script>", "x" * 5000]


def same(content: dict) -> None:
    new, old = transaction_response(content), JSONResponse(content, media_type=FHIR_JSON)
    assert new.body == old.body
    assert new.status_code == old.status_code
    assert new.raw_headers == old.raw_headers


@pytest.mark.parametrize("path", PLANS[::4], ids=lambda p: p.name)
def test_the_store_answers_are_written_as_json_response_writes_them(path):
    store = ResourceStore()
    bundle = plan_to_bundle(Plan.model_validate_json(path.read_bytes()), NOW)
    bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:00000000-0000-4000-8000-000000000001"}
    first = store.transaction(bundle, None)
    assert first["entry"]
    same(first)
    same(store.transaction(bundle, None))  # sent again: the stored answer


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_strings_are_escaped_alike(text):
    same({"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "201 Created", "location": f"Patient/{text}/_history/1", "etag": 'W/"1"',
                      "lastModified": text}}]})
    same({"resourceType": "Bundle", "type": "transaction-response", "entry": [], text: [text, 1, True, None]})
