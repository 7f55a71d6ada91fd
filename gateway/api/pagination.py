"""Keyset pagination: `?limit=&<cursor>=` in, `{items, next}` plus a Link header out."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Query, Request, Response

LIMIT = Query(50, ge=1, le=200, description="Nombre d'éléments par page (1 à 200)")


def page(
    request: Request, response: Response, items: list, limit: int, cursor: str, value: object
) -> dict:
    """A full page links to the next one: the same query with `cursor=value`."""
    next_url = None
    if len(items) == limit:
        params = {**request.query_params, cursor: str(value)}
        next_url = f"{request.url.path}?{urlencode(params)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return {"items": items, "next": next_url}
