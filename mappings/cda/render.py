"""Printable HTML rendering of a CDA document for humans: the header (person, INS, platform,
author, dates, version) and every section's narrative. Self-contained (inline CSS, no script,
no external asset); every text is escaped, only the CDA NarrativeBlock structure is kept."""

from __future__ import annotations

from html import escape

from lxml import etree

from mappings.cda import constants as C
from mappings.cda.codec import parse_ts
from mappings.cda.xmlsafe import parse_xml

_X = C.XPATH_NS
_BLOCKS = {"table": "table", "thead": "thead", "tbody": "tbody", "tfoot": "tfoot", "tr": "tr",
           "th": "th", "td": "td", "paragraph": "p", "list": "ul", "item": "li", "caption": "caption",
           "content": "span", "sub": "sub", "sup": "sup"}
_CSS = """
body{font-family:Arial,Helvetica,sans-serif;font-size:11pt;color:#111;margin:2em;max-width:60em}
h1{font-size:16pt;margin-bottom:.2em}h2{font-size:13pt;border-bottom:1px solid #888;margin-top:1.5em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #999;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#eee}.meta td{border:none;padding:1px 8px 1px 0}
.meta td:first-child{color:#555;white-space:nowrap}footer{margin-top:2em;font-size:9pt;color:#555}
@media print{body{margin:0}h2{page-break-after:avoid}tr{page-break-inside:avoid}}
"""


def _t(node, path: str) -> str:
    found = node.xpath(path, namespaces=_X)
    if not found:
        return ""
    value = found[0]
    return (value if isinstance(value, str) else "".join(value.itertext())).strip()


def _date(ts: str) -> str:
    if not ts:
        return ""
    try:
        value = parse_ts(ts)
    except ValueError:
        return ts
    return value.strftime("%d/%m/%Y %H:%M") if hasattr(value, "hour") else value.strftime("%d/%m/%Y")


def _narrative(node) -> str:
    out = []
    if node.text:
        out.append(escape(node.text))
    for child in node:
        if not isinstance(child.tag, str):
            if child.tail:
                out.append(escape(child.tail))
            continue
        name = etree.QName(child).localname
        if name == "br":
            out.append("<br>")
        elif name in _BLOCKS:
            tag = _BLOCKS[name]
            out.append(f"<{tag}>{_narrative(child)}</{tag}>")
        else:  # renderMultiMedia, linkHtml, footnote…: their text only
            out.append(escape("".join(child.itertext())))
        if child.tail:
            out.append(escape(child.tail))
    return "".join(out)


def cda_to_html(xml: bytes) -> str:
    """The document as one HTML page (raises `xmlsafe.UnsafeXml` on hostile input)."""
    doc = parse_xml(xml).getroot()
    patient = "patientRole/cda:patient"
    birth_names = " ".join(filter(None, [_t(doc, f"cda:recordTarget/cda:{patient}/cda:name/cda:family[@qualifier='BR']")
                                         or _t(doc, f"cda:recordTarget/cda:{patient}/cda:name/cda:family"),
                                         _t(doc, f"cda:recordTarget/cda:{patient}/cda:name/cda:given[not(@qualifier)]")]))
    ins = [i for i in doc.xpath("cda:recordTarget/cda:patientRole/cda:id", namespaces=_X) if i.get("root") in C.INS_ROOTS]
    ins_text = f"{ins[0].get('extension')} (OID {ins[0].get('root')})" if ins else "non transmis (identité non qualifiée)"
    rows = [
        ("Personne", birth_names),
        ("Née / né le", _date(_t(doc, f"cda:recordTarget/cda:{patient}/cda:birthTime/@value"))),
        ("INS", ins_text),
        ("Structure", _t(doc, "cda:custodian//cda:representedCustodianOrganization/cda:name")),
        ("Auteur", _t(doc, "cda:author/cda:assignedAuthor/cda:assignedAuthoringDevice/cda:softwareName")
         or _t(doc, "cda:author/cda:assignedAuthor/cda:assignedPerson/cda:name")),
        ("Validé par", " ".join(_t(doc, f"cda:legalAuthenticator/cda:assignedEntity/cda:assignedPerson/cda:name/cda:{p}")
                                for p in ("given", "family")).strip()),
        ("Période", " → ".join(filter(None, [_date(_t(doc, "cda:documentationOf/cda:serviceEvent/cda:effectiveTime/cda:low/@value")),
                                             _date(_t(doc, "cda:documentationOf/cda:serviceEvent/cda:effectiveTime/cda:high/@value"))]))),
        ("Document", f"{_t(doc, 'cda:code/@displayName')} ({_t(doc, 'cda:code/@code')}), version "
                     f"{_t(doc, 'cda:versionNumber/@value')}, créé le {_date(_t(doc, 'cda:effectiveTime/@value'))}"),
        ("Confidentialité", _t(doc, "cda:confidentialityCode/@displayName") or _t(doc, "cda:confidentialityCode/@code")),
    ]
    parts = ["<!DOCTYPE html>", '<html lang="fr"><head><meta charset="utf-8">',
             f"<title>{escape(_t(doc, 'cda:title'))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{escape(_t(doc, 'cda:title'))}</h1>", '<table class="meta">']
    parts += [f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows if v]
    parts.append("</table>")
    for section in doc.xpath("cda:component/cda:structuredBody/cda:component/cda:section", namespaces=_X):
        parts.append(f"<section><h2>{escape(_t(section, 'cda:title'))}</h2>")
        text = section.find(f"{{{C.NS}}}text")
        if text is not None:
            parts.append(_narrative(text))
        parts.append("</section>")
    if not doc.xpath("cda:component/cda:structuredBody", namespaces=_X):
        parts.append("<p>Document non structuré : son contenu (pièce jointe) n'est pas reproduit ici.</p>")
    parts.append(f"<footer>Identifiant du document : {escape(_t(doc, 'cda:id/@root'))} — "
                 f"lot de versions : {escape(_t(doc, 'cda:setId/@root'))}</footer></body></html>")
    return "\n".join(parts)
