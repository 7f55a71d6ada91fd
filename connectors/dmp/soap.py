"""SOAP 1.2 envelopes with WS-Addressing and WS-Security headers, and MTOM/XOP multipart
messages (IHE ITI TF-2x Appendix V: Web Services for IHE Transactions; W3C XOP/MTOM).

Build: `envelope(action, to, body, security=…)` → XML bytes; `mtom(envelope, attachments)` →
(content type, bytes). Parse: `read_message(content_type, body)` → `Message` (the envelope
tree and the attachments by Content-ID), refusing what a strict endpoint refuses
(`SoapRefused` with a SOAP fault code: malformed multipart, dangling `xop:Include`, wrong root
part type, not a SOAP 1.2 envelope). Parsing is safe (no entities, no network, size limits).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from lxml import etree

from mappings.cda.xmlsafe import UnsafeXml, parse_xml

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP = "http://www.w3.org/2004/08/xop/include"
SOAP_MEDIA = "application/soap+xml"
XOP_MEDIA = "application/xop+xml"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
NS = {"soap": SOAP, "wsa": WSA, "wsse": WSSE, "xop": XOP}
MAX_BYTES = 64 * 1024 * 1024


class SoapRefused(ValueError):
    """A message a strict SOAP endpoint refuses: `code` is the fault subcode it answers."""

    def __init__(self, code: str, reason: str, *, sender: bool = True):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.sender = sender  # env:Sender (the request's fault) or env:Receiver


@dataclass
class Message:
    root: etree._Element  # soap:Envelope
    attachments: dict[str, bytes] = field(default_factory=dict)  # Content-ID (no <>) → bytes
    attachment_types: dict[str, str] = field(default_factory=dict)
    mtom: bool = False

    def header(self, tag: str) -> etree._Element | None:
        return self.root.find(f"soap:Header/{tag}", NS)

    @property
    def action(self) -> str | None:
        node = self.header("wsa:Action")
        return node.text.strip() if node is not None and node.text else None

    @property
    def message_id(self) -> str | None:
        node = self.header("wsa:MessageID")
        return node.text.strip() if node is not None and node.text else None

    @property
    def body(self) -> etree._Element | None:
        body = self.root.find("soap:Body", NS)
        return body[0] if body is not None and len(body) else None

    def fault(self) -> tuple[str, str] | None:
        """(subcode or code, reason text) of a SOAP fault, if the body is one."""
        node = self.root.find("soap:Body/soap:Fault", NS)
        if node is None:
            return None
        codes = node.xpath("soap:Code//soap:Value/text()", namespaces=NS)
        reason = " ".join(t.strip() for t in node.xpath("soap:Reason/soap:Text/text()", namespaces=NS))
        return (codes[-1].strip() if codes else "soap:Fault"), reason

    def resolve(self, include: etree._Element) -> bytes:
        """The bytes an `xop:Include` stands for (its `href="cid:…"`)."""
        href = include.get("href", "")
        if not href.startswith("cid:"):
            raise SoapRefused("MtomError", f"xop:Include sans référence cid: ({href!r})")
        cid = unquote(href[4:])
        if cid not in self.attachments:
            raise SoapRefused("MtomError", f"partie MTOM absente pour xop:Include {href}")
        return self.attachments[cid]


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _el(parent, ns: str, tag: str, text: str | None = None, **attrs) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def envelope(action: str, body: etree._Element, *, to: str | None = None, message_id: str | None = None,
             relates_to: str | None = None, security: etree._Element | None = None) -> bytes:
    """A SOAP 1.2 envelope with the WS-Addressing headers an IHE endpoint requires (Action
    mustUnderstand, MessageID, ReplyTo anonymous, To) and, for requests, the WS-Security
    header holding the VIHF assertion (unchanged: it is signed)."""
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "wsa": WSA})
    header = _el(root, SOAP, "Header")
    _el(header, WSA, "Action", action).set(f"{{{SOAP}}}mustUnderstand", "true")
    _el(header, WSA, "MessageID", message_id or new_message_id())
    if relates_to:
        _el(header, WSA, "RelatesTo", relates_to)
    else:
        _el(_el(header, WSA, "ReplyTo"), WSA, "Address", ANONYMOUS)
    if to:
        _el(header, WSA, "To", to)
    if security is not None:
        holder = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
        holder.set(f"{{{SOAP}}}mustUnderstand", "true")
        holder.append(security)
    _el(root, SOAP, "Body").append(body)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def fault_envelope(code: str, reason: str, *, sender: bool = True, action: str | None = None,
                   relates_to: str | None = None) -> bytes:
    """A SOAP 1.2 fault: env:Sender / env:Receiver with the subcode (wsse:…, wsa:…)."""
    fault = etree.Element(f"{{{SOAP}}}Fault")
    code_node = _el(fault, SOAP, "Code")
    _el(code_node, SOAP, "Value", "soap:Sender" if sender else "soap:Receiver")
    _el(_el(code_node, SOAP, "Subcode"), SOAP, "Value", code)
    _el(_el(fault, SOAP, "Reason"), SOAP, "Text", reason).set("{http://www.w3.org/XML/1998/namespace}lang", "fr")
    return envelope(action or "http://www.w3.org/2005/08/addressing/soap/fault", fault, relates_to=relates_to)


def xop_include(parent: etree._Element, cid: str) -> etree._Element:
    return _el(parent, XOP, "Include", href=f"cid:{quote(cid, safe='@.-_')}")


def mtom(envelope_bytes: bytes, attachments: list[tuple[str, str, bytes]], *, action: str) -> tuple[str, bytes]:
    """A multipart/related MTOM message: root part the envelope (application/xop+xml), then one
    binary part per (Content-ID, media type, bytes). Returns (Content-Type, body)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"root.message@relais.{uuid.uuid4().hex[:8]}"
    chunks = [f"--{boundary}\r\nContent-Type: {XOP_MEDIA}; charset=UTF-8; type=\"{SOAP_MEDIA}\"\r\n"
              f"Content-Transfer-Encoding: binary\r\nContent-ID: <{start}>\r\n\r\n".encode(), envelope_bytes, b"\r\n"]
    for cid, media, data in attachments:
        chunks += [f"--{boundary}\r\nContent-Type: {media}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: <{cid}>\r\n\r\n".encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; boundary="{boundary}"; type="{XOP_MEDIA}"; start="<{start}>"; '
                    f'start-info="{SOAP_MEDIA}"; action="{action}"')
    return content_type, b"".join(chunks)


def soap_content_type(action: str) -> str:
    return f'{SOAP_MEDIA}; charset=UTF-8; action="{action}"'


_PARAM = re.compile(r';\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    head, _, rest = content_type.partition(";")
    params = {k.lower(): v.strip().strip('"') for k, v in _PARAM.findall(";" + rest)}
    return head.strip().lower(), params


def _parse_xml(data: bytes) -> etree._Element:
    # xmlsafe: no DOCTYPE in any encoding (hence no DTD, no entity), bounded depth and attributes.
    try:
        root = parse_xml(bytes(data), max_bytes=MAX_BYTES).getroot()
    except UnsafeXml as exc:
        what = "mal formée" if exc.problem.rule == "xml-not-well-formed" else "refusée"
        raise SoapRefused("InvalidEnvelope", f"enveloppe SOAP {what} : {exc.problem.message}") from None
    if root.tag != f"{{{SOAP}}}Envelope":
        raise SoapRefused("VersionMismatch" if root.tag.endswith("}Envelope") else "InvalidEnvelope",
                          f"une enveloppe SOAP 1.2 est attendue (reçu {root.tag})")
    if root.find("soap:Body", NS) is None:
        raise SoapRefused("InvalidEnvelope", "enveloppe SOAP sans corps (soap:Body)")
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise SoapRefused("InvalidEnvelope", "DTD et entités interdites dans un message SOAP")
    return root


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise SoapRefused("MtomError", "message MTOM mal formé : délimiteur de fin absent")
    parts = []
    for piece in pieces[1:-1]:
        if piece.startswith(b"\r\n"):
            piece = piece[2:]
        head, sep, content = piece.partition(b"\r\n\r\n")
        if not sep:
            raise SoapRefused("MtomError", "message MTOM mal formé : partie sans en-têtes")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def read_message(content_type: str, body: bytes, *, max_bytes: int = MAX_BYTES) -> Message:
    """Parse a SOAP 1.2 message, plain (`application/soap+xml`) or MTOM (`multipart/related`
    with an `application/xop+xml` root)."""
    if len(body) > max_bytes:
        raise SoapRefused("MessageTooLarge", f"message de {len(body)} octets (limite {max_bytes})")
    media, params = media_type(content_type or "")
    if media == SOAP_MEDIA:
        return Message(_parse_xml(body))
    if media != "multipart/related":
        raise SoapRefused("InvalidMediaType", f"type de contenu {media or 'absent'} : application/soap+xml ou "
                          "multipart/related (MTOM) attendu")
    boundary = params.get("boundary")
    if not boundary:
        raise SoapRefused("MtomError", "message MTOM sans paramètre boundary")
    if params.get("type", "").lower() != XOP_MEDIA:
        raise SoapRefused("MtomError", f"message MTOM : type={params.get('type')!r}, {XOP_MEDIA} attendu")
    parts = _parts(body, boundary)
    start = params.get("start", "").strip("<>")
    root_index = 0
    if start:
        ids = [h.get("content-id", "").strip("<>") for h, _ in parts]
        if start not in ids:
            raise SoapRefused("MtomError", f"message MTOM : partie racine <{start}> absente")
        root_index = ids.index(start)
    root_headers, root_bytes = parts[root_index]
    root_media, root_params = media_type(root_headers.get("content-type", ""))
    if root_media != XOP_MEDIA or root_params.get("type", "").lower() != SOAP_MEDIA:
        raise SoapRefused("MtomError", "partie racine MTOM : application/xop+xml; type=\"application/soap+xml\" attendu")
    message = Message(_parse_xml(root_bytes), mtom=True)
    for index, (headers, content) in enumerate(parts):
        if index == root_index:
            continue
        cid = headers.get("content-id", "").strip("<>")
        if not cid:
            raise SoapRefused("MtomError", f"partie MTOM n° {index + 1} sans Content-ID")
        if headers.get("content-transfer-encoding", "binary").lower() not in ("binary", "8bit"):
            raise SoapRefused("MtomError", f"partie MTOM <{cid}> : encodage {headers['content-transfer-encoding']} "
                              "non pris en charge (binary attendu)")
        message.attachments[cid] = content
        message.attachment_types[cid] = headers.get("content-type", "application/octet-stream")
    for include in message.root.iter(f"{{{XOP}}}Include"):
        message.resolve(include)  # every reference resolves
    return message
