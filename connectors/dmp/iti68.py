"""ITI-68 Retrieve Document (IHE MHD; PDSm flux 07/08, PDSm4DMP TD3.2): GET the attachment URL
of a DocumentReference; the bytes are checked against its size and SHA-1 hash."""

from __future__ import annotations

import base64
import hashlib

from connectors.base import PermanentError
from connectors.dmp.iti65 import base_url, request


def retrieve(connector, document_reference: dict) -> bytes:
    attachment = document_reference["content"][0]["attachment"]
    url = attachment["url"]
    if not url.startswith(("http://", "https://")):
        url = f"{base_url(connector)}/{url.lstrip('/')}"
    content = request(connector, "GET", url).content
    if attachment.get("size") not in (None, len(content)) or (
            attachment.get("hash") and base64.b64decode(attachment["hash"]) != hashlib.sha1(content).digest()):
        raise PermanentError("document récupéré différent de sa DocumentReference (taille ou empreinte)",
                             code="XDSNonIdenticalHash")
    return content
