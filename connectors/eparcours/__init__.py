"""Regional e-parcours coordination tool over FHIR R4 REST (specs §6).

Outbound: the TDDUI personalised project as one transaction Bundle (`POST [base]/`, TDDUI flux 1,
create only), and the care team as a cercle de soins transaction (whose server answers 500 on
content errors too, specs §11.13). Inbound: the tool's event notifications, as
`CommunicationRequest` (notification d'évènements, profile nde-eventdeclaration), polled with
`_lastUpdated=gt…`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from connectors.base import Envelope, Inbound, PermanentError, Receipt, RetryPolicy
from connectors.fhirhttp import FhirClient, FhirEndpoint

SYSTEM = "eparcours"


class EparcoursConnector:
    system = SYSTEM
    payload_kinds = frozenset({"tddui-bundle", "cds-careteam"})
    # send is thread-safe: FhirClient (httpx.Client, token under a lock), no other shared state.
    max_in_flight = 4

    def __init__(self, endpoint: FhirEndpoint, retry: RetryPolicy | None = None):
        self.retry = retry or RetryPolicy()
        self.client = FhirClient(endpoint, server_error_may_be_content=True)
        self.cursor: str | None = None  # lastUpdated of the newest notification seen

    def send(self, envelope: Envelope) -> Receipt:
        if envelope.payload_kind not in self.payload_kinds:
            raise PermanentError(f"contenu {envelope.payload_kind!r} non pris en charge par e-parcours")
        response = self.client.request("POST", "/", body=envelope.payload)
        bundle = self.client.json(response)
        if bundle.get("type") != "transaction-response":
            raise PermanentError("réponse inattendue : un Bundle transaction-response était attendu")
        locations, statuses = [], set()
        for e in bundle.get("entry", []):
            answer = e.get("response", {})
            locations.append(answer.get("location", ""))
            statuses.add(answer.get("status", "")[:3])
        main = next((loc for loc in locations if loc.startswith(("CarePlan/", "CareTeam/"))), None)
        # 201 (created) and 200 (conditional create matched, conditional update applied) both
        # mean the tool now holds what was sent.
        return Receipt(
            status="accepted",
            peer_reference=main or (locations[0] if locations else None),
            detail=f"{len(locations)} ressource(s) : " + ", ".join(sorted(statuses)),
        )

    def poll(self) -> Iterable[Inbound]:
        params = {"_lastUpdated": f"gt{self.cursor}"} if self.cursor else {}
        bundle = self.client.json(self.client.request("GET", "/CommunicationRequest", params=params))
        for entry in bundle.get("entry", []) or []:
            resource = entry.get("resource") or {}
            meta = resource.get("meta") or {}
            updated = meta.get("lastUpdated", "")
            if self.cursor is None or updated > self.cursor:
                self.cursor = updated
            yield Inbound(system=SYSTEM, kind="nde-event", peer_reference=f"CommunicationRequest/{resource.get('id')}",
                          content_type="application/fhir+json",
                          payload=json.dumps(resource, ensure_ascii=False).encode(),
                          metadata={"lastUpdated": updated})

    def close(self) -> None:
        self.client.close()


def build(config: Mapping[str, object]) -> EparcoursConnector:
    retry = config.get("retry")
    return EparcoursConnector(FhirEndpoint.from_settings(config),
                              retry if isinstance(retry, RetryPolicy) else None)
