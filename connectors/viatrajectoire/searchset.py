"""Reading a FHIR searchset from the SI-SDO: every page (`link[relation=next]`, on the same
server only), every entry's resource."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from connectors.base import PermanentError
from connectors.fhirhttp import FhirClient

MAX_PAGES = 200


def resources(client: FhirClient, path: str, params: Mapping[str, str], *,
              resource_type: str) -> Iterator[dict]:
    """Yield the `resource_type` resources of a search, page after page."""
    base = urlsplit(client.endpoint.base_url)
    url, query = path, dict(params)
    for _ in range(MAX_PAGES):
        bundle = client.json(client.request("GET", url, params=query))
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            raise PermanentError("réponse inattendue : un Bundle searchset était attendu", code="malformed")
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            search = (entry.get("search") or {}) if isinstance(entry, dict) else {}
            if isinstance(resource, dict) and resource.get("resourceType") == resource_type \
                    and search.get("mode", "match") == "match":
                yield resource
        following = next((link.get("url") for link in bundle.get("link") or []
                          if isinstance(link, dict) and link.get("relation") == "next"), None)
        if not following:
            return
        target = urlsplit(following)
        if target.netloc and (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise PermanentError(f"page suivante sur un autre serveur refusée : {target.netloc}")
        url, query = following, {}
    raise PermanentError(f"recherche interrompue après {MAX_PAGES} pages")
