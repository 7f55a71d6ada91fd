"""Artefacts that hold other artefacts: an IHE XDM archive (ITI-32, specs §4.2) and an ITI-41
Provide and Register Document Set-b message (SOAP 1.2, inline or MTOM/XOP, specs §5.1). Each
gives its own problems and the documents found inside, which the runner validates in turn."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from pathlib import Path

from lxml import etree

from connectors.mss import xdm
from gateway.conformance.runner.results import Inputs, Issue, problem
from gateway.conformance.runner.xds import NS, check_metadata, document_entries, xpath
from gateway.model.problem import Severity
from mappings.cda.xmlsafe import UnsafeXml, parse_xml
from mappings.xds import metadata as M

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
ITI41_ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
SOURCE_ITI41 = "relais-iti41 (IHE ITI TF-2b §3.41, SOAP 1.2 / MTOM)"


def check_xdm(data: bytes, value_set_dir: Path | None) -> tuple[list[Issue], list[tuple[str, bytes]], Inputs]:
    """Layout, 8.3 names, METADATA.XML (XDS rules, plus hash, size and URI), hashes and sizes
    against the documents (connectors.mss.xdm), and the documents to validate."""
    inputs = Inputs()
    try:
        package = xdm.read(data)
    except xdm.XdmRefused as exc:
        return [Issue.of(problem(exc.rule, exc.reason, source=xdm.SOURCE))], [], inputs
    issues = [Issue.of(p) for p in xdm.check(package)]
    documents = []
    for subset in package.subsets:
        raw = package.file(f"{xdm.ROOT}/{subset}/{xdm.METADATA}")
        if raw is None:
            continue
        try:
            root = parse_xml(raw).getroot()
        except UnsafeXml:
            continue  # already reported by xdm.read
        found, more = check_metadata(root, value_set_dir, for_xdm=True, for_dmp=False)
        prefix = f"{xdm.ROOT}/{subset}/{xdm.METADATA}"
        for issue in found:
            issue.location = prefix + (issue.location if issue.location != "/" else "")
        issues += found
        inputs.merge(more)
    for entry in package.entries:
        if entry.content is not None:
            documents.append((f"{xdm.ROOT}/{entry.subset}/{entry.uri}", entry.content))
    return issues, documents, inputs


def _mime_parts(data: bytes) -> tuple[bytes | None, dict[str, bytes], str | None]:
    """(root part, parts by Content-ID, error) of a multipart/related (MTOM) message."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    if not message.is_multipart():
        return None, {}, "message MIME non multipart : multipart/related (MTOM/XOP) attendu"
    parts = [p for p in message.walk() if not p.is_multipart()]
    if not parts:
        return None, {}, "message MTOM sans partie"
    start = (message.get_param("start") or "").strip("<>")
    by_id = {}
    root = None
    for part in parts:
        cid = (part.get("Content-ID") or "").strip().strip("<>")
        payload = part.get_payload(decode=True) or b""
        by_id[cid] = payload
        if root is None and (cid == start or not start):
            root = payload
    return root, by_id, None


def check_iti41(data: bytes, value_set_dir: Path | None) -> tuple[list[Issue], list[tuple[str, bytes]], Inputs]:
    head = data.lstrip()[:200].lower()
    parts: dict[str, bytes] = {}
    issues: list[Issue] = []
    if not head.startswith(b"<"):
        envelope, parts, error = _mime_parts(data)
        if error or envelope is None:
            return [Issue.of(problem("iti41-mime", error or "partie racine introuvable", source=SOURCE_ITI41))], [], Inputs()
    else:
        envelope = data
    try:
        root = parse_xml(envelope).getroot()
    except UnsafeXml as exc:
        return [Issue.of(exc.problem)], [], Inputs()

    def add(rule, node, fr, severity=Severity.error):
        issues.append(Issue.of(problem(rule, fr, location=xpath(node) if node is not None else "/",
                                       severity=severity, source=SOURCE_ITI41)))

    request = root
    if etree.QName(root).localname == "Envelope":
        if etree.QName(root).namespace != SOAP12:
            add("iti41-soap-version", root, f"enveloppe SOAP {etree.QName(root).namespace} : SOAP 1.2 ({SOAP12}) exigé par ITI-41")
        header = root.find(f"{{{SOAP12}}}Header")
        action = header.findtext(f"{{{WSA}}}Action", "").strip() if header is not None else ""
        if action != ITI41_ACTION:
            add("iti41-wsa-action", header if header is not None else root,
                f"wsa:Action {action or 'absent'} : {ITI41_ACTION} attendu")
        if header is None or not header.xpath(".//*[local-name()='Assertion']"):
            add("iti41-vihf-missing", header if header is not None else root,
                "aucune assertion VIHF (SAML 2.0) dans l'en-tête WS-Security : le DMP l'exige (specs §5.1)",
                Severity.warning)
        body = root.find(f"{{{SOAP12}}}Body") if etree.QName(root).namespace == SOAP12 else root.find(
            f"{{{etree.QName(root).namespace}}}Body")
        request = body.find(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest") if body is not None else None
    if request is None or etree.QName(request).localname != "ProvideAndRegisterDocumentSetRequest":
        add("iti41-request-missing", root, "xdsb:ProvideAndRegisterDocumentSetRequest absent du corps SOAP")
        return issues, [], Inputs()
    submit = request.find(f"{{{M.LCM}}}SubmitObjectsRequest")
    inputs = Inputs()
    if submit is None:
        add("iti41-metadata-missing", request, "lcm:SubmitObjectsRequest absent de la requête")
        return issues, [], inputs
    found, inputs = check_metadata(submit, value_set_dir, for_dmp=True)
    issues += found
    documents: dict[str, bytes] = {}
    for node in request.findall(f"{{{XDSB}}}Document"):
        include = node.find(f"{{{XOP}}}Include")
        if include is not None:
            cid = (include.get("href") or "").removeprefix("cid:")
            from urllib.parse import unquote

            content = parts.get(cid) or parts.get(unquote(cid))
            if content is None:
                add("iti41-xop-part-missing", include, f"partie MIME {cid} référencée par xop:Include absente")
                continue
        else:
            try:
                content = base64.b64decode("".join((node.text or "").split()), validate=True)
            except ValueError:
                add("iti41-document-base64", node, f"document {node.get('id')} : base64 invalide")
                continue
        documents[node.get("id") or ""] = content
    out = []
    for entry in document_entries(submit):
        eid = entry.get("id")
        content = documents.pop(eid, None)
        if content is None:
            add("iti41-document-missing", entry, f"DocumentEntry {eid} sans xdsb:Document de même id")
            continue
        hashes = entry.xpath("rim:Slot[@name='hash']/rim:ValueList/rim:Value/text()", namespaces=NS)
        sizes = entry.xpath("rim:Slot[@name='size']/rim:ValueList/rim:Value/text()", namespaces=NS)
        if hashes and hashes[0].strip().lower() != hashlib.sha1(content).hexdigest():
            add("iti41-hash-mismatch", entry, f"empreinte SHA-1 du document {eid} différente du slot hash")
        if sizes and sizes[0].strip() != str(len(content)):
            add("iti41-size-mismatch", entry, f"taille du document {eid} ({len(content)} octets) différente du slot size "
                f"({sizes[0].strip()})")
        out.append((f"xdsb:Document[@id='{eid}']", content))
    for eid in documents:
        add("iti41-document-not-described", request, f"xdsb:Document {eid} décrit par aucun DocumentEntry")
    return issues, out, inputs
