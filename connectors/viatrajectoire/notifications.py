"""Flux 5 — RechercheStatut (st_flux5.md): the other ESMS' statuses for the persons oriented to
this one (entry elsewhere: unit statuses 185/186) and events on its own files (46 admission
impossible entérinée, cancellations…). `GET [base]/Task?_lastUpdated=gt[instant]`: nominal
window J-1, J-30 on the first connection. Older pages of the guide ask for `_elements=id` then
a read per Task (flux 5.3, `GET [base]/Task/[id]`): an entry without inputs is read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from connectors.base import PermanentError
from connectors.fhirhttp import FhirClient
from connectors.viatrajectoire import searchset


def instant(moment: dt.datetime) -> str:
    """FHIR instant in UTC with milliseconds (the "+" of an offset would need escaping)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def search(client: FhirClient, since: dt.datetime) -> Iterator[dict]:
    """Flux 5.1/5.2 (and 5.3 when needed): Tasks updated after `since`."""
    for resource in searchset.resources(client, "/Task", {"_lastUpdated": f"gt{instant(since)}"},
                                        resource_type="Task"):
        if not resource.get("input") and resource.get("id"):
            resource = read(client, resource["id"])
        yield resource


def read(client: FhirClient, task_id: str) -> dict:
    resource = client.json(client.request("GET", f"/Task/{task_id}"))
    if resource.get("resourceType") != "Task":
        raise PermanentError(f"Task/{task_id} : réponse d'un autre type", code="malformed")
    return resource
