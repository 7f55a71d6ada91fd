"""ITI-65 Provide Document Bundle (IHE MHD; PDSm flux 01/02, PDSm4DMP TD2 / TD2.1): the plan's
CDA as a pdsm-comprehensive-provide-document-bundle, POSTed as a FHIR transaction. A refusal
is an OperationOutcome, read into the same error model as XDS (connectors/dmp/errors.py)."""

from __future__ import annotations

import httpx

from connectors.base import PermanentError, Receipt, TransientError
from connectors.dmp import errors as E
from connectors.dmp.mhd import provide_bundle
from connectors.dmp.submission import Submission

FHIR_JSON = "application/fhir+json"


def base_url(connector) -> str:
    return (connector.settings.mhd_url or connector.settings.base_url.rstrip("/") + "/fhir").rstrip("/")


def request(connector, method: str, url: str, **kwargs) -> httpx.Response:
    try:
        response = connector.http.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"DMP (PDSm) : délai dépassé ({type(exc).__name__})", code="timeout") from None
    except httpx.TransportError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # will not fix itself: no retry
            raise PermanentError("DMP (PDSm) : certificat du serveur non reconnu par le magasin de confiance",
                                 code="tls") from None
        raise TransientError(f"DMP (PDSm) injoignable : {type(exc).__name__} {exc}", code="network") from None
    if response.status_code >= 400:
        try:
            outcome = response.json()
        except ValueError:
            raise E.failure([E.from_http(response.status_code, response.text)], "DMP (PDSm)") from None
        raise E.failure(E.from_operation_outcome(outcome, response.status_code), "DMP (PDSm)")
    return response


def provide(connector, submission: Submission) -> Receipt:
    """POST the Bundle. As with ITI-41, a replacement is checked first (ITI-67): when the DMP
    does not hold the version being replaced, the document goes as an original."""
    from connectors.dmp import iti67

    replaces, note = submission.replaces, ""
    if replaces:
        current = iti67.find(connector, submission.patient)
        if not any((d.get("masterIdentifier") or {}).get("value") == f"urn:oid:{replaces}" for d in current):
            replaces, note = None, "version précédente absente du DMP : document déposé comme original ; "
    bundle = provide_bundle(submission.metadata, submission.content, submission.patient, replaces=replaces)
    response = request(connector, "POST", base_url(connector) + "/", json=bundle,
                       headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    statuses = [e.get("response", {}).get("status", "") for e in response.json().get("entry", [])]
    duplicate = response.status_code == 200 and statuses and all(s.startswith("200") for s in statuses)
    return Receipt(status="duplicate" if duplicate else "accepted", peer_reference=submission.unique_id,
                   detail=note + "ITI-65 : " + ", ".join(statuses), received_at=connector.clock())
