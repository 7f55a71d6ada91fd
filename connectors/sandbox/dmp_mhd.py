"""PDSm / MHD endpoint of the sandbox DMP (specs §5.5): ITI-65 Provide Document Bundle, ITI-67
Find Document References, ITI-68 Retrieve Document — over the same store as the XDS endpoint,
so a document fed one way is found the other way."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.routing import Route

FHIR_JSON = "application/fhir+json"


def outcome(status: int, code: str, text: str, expression: str | None = None) -> JSONResponse:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = [expression]
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status_code=status,
                        media_type=FHIR_JSON)


class MhdEndpoint:
    def __init__(self, sandbox):
        self.sandbox = sandbox

    def routes(self) -> list[Route]:
        return []
