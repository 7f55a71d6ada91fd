"""OpenAPI request bodies for routes that read their body themselves (strict JSON reading, then
a pydantic model): the model's JSON Schema with its `$defs` inlined, since a `#/$defs/…`
reference inside the OpenAPI document would point at the document's root and dangle."""

from __future__ import annotations

import copy

from pydantic import BaseModel


def _inline(node, defs: dict, seen: tuple[str, ...] = ()):
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:  # recursive model: leave an open object rather than loop
                return {"type": "object"}
            return _inline(copy.deepcopy(defs[name]), defs, (*seen, name))
        return {k: _inline(v, defs, seen) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs, seen) for v in node]
    return node


def json_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    return _inline(schema, schema.get("$defs", {}))


def json_body(model: type[BaseModel], *media_types: str) -> dict:
    """`openapi_extra` declaring a required JSON body shaped like `model`."""
    schema = json_schema(model)
    return {"requestBody": {"required": True, "content": {
        media: {"schema": schema} for media in (media_types or ("application/json",))}}}
