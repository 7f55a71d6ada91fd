"""MSSanté (specs §4): CDA documents in IHE XDM archives over SMTP/IMAP with TLS, MDN
acknowledgements, and the FHIR mailbox directory. `build(config)` is the registry's factory."""

from connectors.mss.connector import PAYLOAD_KIND, MssConnector, MssSettings, build

__all__ = ["PAYLOAD_KIND", "MssConnector", "MssSettings", "build"]
