"""DMP — Mon espace santé (specs §5): XDS.b over SOAP 1.2 / MTOM with a signed VIHF and mutual
TLS (ITI-41, ITI-18, ITI-43, ITI-57), and FHIR PDSm / MHD (ITI-65, ITI-67, ITI-68).
`build(config)` is the registry's factory; the payload kind is `cda-document`
(connectors/dmp/submission.py)."""

from connectors.dmp.connector import PAYLOAD_KIND, SYSTEM, DmpConnector, DmpSettings, build
from connectors.dmp.submission import CONTENT_TYPE, Submission

__all__ = ["CONTENT_TYPE", "PAYLOAD_KIND", "SYSTEM", "DmpConnector", "DmpSettings", "Submission", "build"]
