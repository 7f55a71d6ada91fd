"""Reading untrusted XML (CDA from MSSanté, the DMP or an integrator) without being hurt by it.

Refused before any parsing: a DOCTYPE (hence every DTD, external entity and entity bomb — a CDA
never needs one) and oversized input. The parser itself resolves no entity, loads no DTD, reaches
no network and keeps libxml2's limits (`huge_tree=False`); nesting deeper than any CDA needs,
elements with hundreds of attributes and attribute values over 64 KiB are refused after parsing. Every refusal is a `Problem` with a French message.
"""

from __future__ import annotations

import re

from lxml import etree

from gateway.model import Problem

SOURCE = "relais-xml"
MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 64
MAX_ATTRIBUTES = 256  # per element: a CDA element carries a handful
MAX_ATTRIBUTE_CHARS = 64 * 1024  # codes, OIDs, display names; large content is element text
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXml(ValueError):
    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def _refuse(rule: str, message: str, message_en: str, location: str = "/") -> UnsafeXml:
    return UnsafeXml(Problem(location=location, rule=rule, message=message,
                             message_en=message_en, source=SOURCE))


def parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, dtd_validation=False, remove_comments=False)


def parse_xml(data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> etree._ElementTree:
    """Parse `data` or raise `UnsafeXml` (never expands an entity, never fetches anything)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse_xml attend des octets")
    if len(data) > max_bytes:
        raise _refuse("xml-too-large", f"document XML trop volumineux ({len(data)} octets, maximum {max_bytes})",
                      f"XML document too large ({len(data)} bytes, limit {max_bytes})")
    if _DOCTYPE.search(data):
        raise _refuse("xml-doctype-forbidden",
                      "déclaration DOCTYPE/ENTITY refusée (DTD, entités externes ou en expansion interdites dans un CDA)",
                      "DOCTYPE/ENTITY declaration refused (no DTD or entities in a CDA)")
    try:
        tree = etree.ElementTree(etree.fromstring(bytes(data), parser()))
    except etree.XMLSyntaxError as exc:
        raise _refuse("xml-not-well-formed", f"XML mal formé : {exc.msg} (ligne {exc.lineno})",
                      f"XML not well-formed: {exc.msg} (line {exc.lineno})") from None
    if tree.docinfo.doctype:
        raise _refuse("xml-doctype-forbidden", "déclaration DOCTYPE refusée", "DOCTYPE refused")
    check_shape(tree.getroot(), max_depth)
    return tree


def check_shape(root: etree._Element, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `max_depth`, and elements with too many or too large
    attributes (`UnsafeXml` naming the element's XPath)."""
    depth = _depth(root)
    if depth > max_depth:
        raise _refuse("xml-too-deep", f"imbrication XML trop profonde ({depth} niveaux, maximum {max_depth})",
                      f"XML nesting too deep ({depth} levels, limit {max_depth})")
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        attributes = node.attrib
        if len(attributes) > MAX_ATTRIBUTES:
            raise _refuse("xml-too-many-attributes", f"trop d'attributs ({len(attributes)}, maximum "
                          f"{MAX_ATTRIBUTES}) sur l'élément {xpath_of(node)}",
                          f"too many attributes ({len(attributes)}) on {xpath_of(node)}", xpath_of(node))
        for name, value in attributes.items():
            if len(value) > MAX_ATTRIBUTE_CHARS:
                where = f"{xpath_of(node)}/@{etree.QName(name).localname}"
                raise _refuse("xml-attribute-too-large", f"attribut trop long ({len(value)} caractères, "
                              f"maximum {MAX_ATTRIBUTE_CHARS}) : {where}",
                              f"attribute too long ({len(value)} characters) at {where}", where)


def _depth(root: etree._Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node if isinstance(child.tag, str))
    return deepest


def xpath_of(node: etree._Element, prefixes: dict[str, str] | None = None) -> str:
    """`/cda:ClinicalDocument/cda:component[1]/…`: an XPath a person can paste into a tool."""
    prefixes = prefixes or {"urn:hl7-org:v3": "cda"}
    steps = []
    while node is not None and isinstance(node.tag, str):
        qname = etree.QName(node)
        prefix = prefixes.get(qname.namespace or "", None)
        name = f"{prefix}:{qname.localname}" if prefix else (
            qname.localname if not qname.namespace else f"*[local-name()='{qname.localname}']")
        parent = node.getparent()
        if parent is None:
            steps.append(f"/{name}")
            break
        same = [c for c in parent if c.tag == node.tag]
        steps.append(f"/{name}[{same.index(node) + 1}]" if len(same) > 1 else f"/{name}")
        node = parent
    return "".join(reversed(steps))
