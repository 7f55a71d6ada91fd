"""Flux 4 — StatutPersonneOrientee (st_flux4.md): the platform's status for the person.

The guide disagrees with itself (specs §11.5): the synthesis page says "first status POST,
updates PUT"; st_flux4.md, the 4.0.1 change log ("suppression de la requête http PUT pour la
mise à jour des tasks : 1 Task = 1 évènement http POST") and the SDOGestionnaire
CapabilityStatement (Task: create, search-type, read — no update) say POST only. Relais follows
the latter by default (`mode="post"`): every status change is a new Task, identified by the
event it states. `mode="put"` serves a server that follows the synthesis page: one Task per
(structure, decision), created by POST, then replaced by PUT.

Either way the write is idempotent: a conditional create on the business identifier
(`If-None-Exist`) finds what the same status already created, and the same status resent is
answered "duplicate" without a second Task or a new version.
"""

from __future__ import annotations

from connectors.base import PermanentError, Receipt
from connectors.fhirhttp import FhirClient
from connectors.viatrajectoire import resources, vocab
from connectors.viatrajectoire.consent import _reference, conditional

MODES = ("post", "put")


def keyed(task: dict, mode: str) -> dict:
    """The Task with the business identifier of `mode` (event for POST, dossier for PUT)."""
    ident = resources.status_event_identifier(task) if mode == "post" else resources.status_dossier_identifier(task)
    others = [i for i in task.get("identifier") or [] if not (isinstance(i, dict) and i.get("system") == vocab.RFC3986)]
    return {**task, "identifier": [*others, ident]}


def post(client: FhirClient, task: dict, encode, mode: str = "post") -> Receipt:
    """Send one status; `encode(resource) -> bytes`."""
    if mode not in MODES:
        raise PermanentError(f"mode de mise à jour inconnu : {mode!r}")
    task = keyed(task, mode)
    ident = next(i for i in task["identifier"] if i.get("system") == vocab.RFC3986)
    response = client.request("POST", "/Task", body=encode(task), headers={"If-None-Exist": conditional(ident)})
    stored = client.json(response) if response.content else {}
    reference = _reference(response, stored, "Task")
    if response.status_code == 201:
        return Receipt("accepted", reference, "statut enregistré par le SI-SDO (201)")
    if mode == "post":
        return Receipt("duplicate", reference, f"ce statut était déjà enregistré (HTTP {response.status_code})")
    # PUT mode: the dossier's Task exists; same status → nothing to do, otherwise replace it.
    if reference is None:
        raise PermanentError("le SI-SDO n'a pas indiqué la Task existante", code="malformed")
    if not stored.get("input"):
        stored = client.json(client.request("GET", f"/{reference}"))
    if resources.same_status(stored, task):
        return Receipt("duplicate", reference, "statut inchangé : déjà enregistré")
    task_id = reference.split("/", 1)[1]
    updated = client.json(client.request("PUT", f"/{reference}", body=encode({**task, "id": task_id})))
    version = (updated.get("meta") or {}).get("versionId")
    return Receipt("accepted", reference, f"statut mis à jour (PUT, version {version})" if version
                   else "statut mis à jour (PUT)")
