"""The `cda-document` payload: what the delivery spine queues for the DMP, one JSON object
(`application/vnd.relais.dmp-submission+json`, UTF-8), built by gateway/delivery/payload_dmp.py:

    {"format": "relais-dmp-submission/1",
     "patient": "<INS as CX: matricule^^^&OID&ISO^NH>",
     "document": {"uniqueId", "entryUUID", "setId", "version", "replaces" (uniqueId or null),
                  "mimeType": "text/xml", "sha1", "size"},
     "confidentiality": "N" | "R" | "V",
     "visibility": ["INVISIBLE_REPRESENTANTS_LEGAUX", …],   # TRE_A07 codes, from the consent decision
     "secret_connection": false,                            # VIHF connexion secrète (minor's secrecy)
     "obligations": ["dmp-masking-flags", …],               # the consent obligations they come from
     "metadata": "<lcm:SubmitObjectsRequest …>",            # mappings.xds, as text
     "content": "<the CDA R2 document, base64>"}

The same bytes go out on every retry, so the peer recognises a resend by the document uniqueId.
The connector sends it as ITI-41 (XDS.b) or, with the MHD transport, as an ITI-65 Bundle.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson

FORMAT = "relais-dmp-submission/1"
CONTENT_TYPE = "application/vnd.relais.dmp-submission+json"


class SubmissionError(ValueError):
    pass


@dataclass(frozen=True)
class Submission:
    patient: str
    unique_id: str
    entry_uuid: str
    set_id: str
    version: int
    replaces: str | None
    mime_type: str
    confidentiality: str
    visibility: tuple[str, ...]
    secret_connection: bool
    obligations: tuple[str, ...]
    metadata: bytes
    content: bytes

    def dumps(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "patient": self.patient,
            "document": {"uniqueId": self.unique_id, "entryUUID": self.entry_uuid, "setId": self.set_id,
                         "version": self.version, "replaces": self.replaces, "mimeType": self.mime_type,
                         "sha1": hashlib.sha1(self.content).hexdigest(), "size": len(self.content)},
            "confidentiality": self.confidentiality, "visibility": list(self.visibility),
            "secret_connection": self.secret_connection, "obligations": list(self.obligations),
            "metadata": self.metadata.decode("utf-8"), "content": base64.b64encode(self.content).decode("ascii"),
        })


def loads(payload: bytes) -> Submission:
    try:
        data = orjson.loads(payload)
        if data.get("format") != FORMAT:
            raise SubmissionError(f"format {data.get('format')!r} : {FORMAT} attendu")
        doc = data["document"]
        content = base64.b64decode(data["content"], validate=True)
        submission = Submission(
            patient=data["patient"], unique_id=doc["uniqueId"], entry_uuid=doc["entryUUID"], set_id=doc["setId"],
            version=int(doc["version"]), replaces=doc.get("replaces"), mime_type=doc.get("mimeType", "text/xml"),
            confidentiality=data.get("confidentiality", "N"), visibility=tuple(data.get("visibility", [])),
            secret_connection=bool(data.get("secret_connection")), obligations=tuple(data.get("obligations", [])),
            metadata=data["metadata"].encode("utf-8"), content=content)
    except SubmissionError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SubmissionError(f"contenu DMP illisible : {type(exc).__name__} {exc}") from None
    if hashlib.sha1(content).hexdigest() != doc.get("sha1") or len(content) != doc.get("size"):
        raise SubmissionError("contenu DMP incohérent : empreinte ou taille du document")
    return submission
