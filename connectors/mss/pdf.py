"""The PDF rendering attached beside IHE_XDM.zip (Référentiel socle MSSanté #2 ECO.2.1.1 /
ECO.2.1.5: the CDA header — title, type, date, author, organisation — and a faithful
transcription of the narrative), written without any external tool.

The text comes from the same printable rendering as `relais cda render`
(mappings/cda/render.py): its HTML is reduced to headings, key/value rows, table rows and
paragraphs, then laid out on A4 pages in a plain PDF 1.4 with the standard Helvetica fonts
(WinAnsiEncoding: every French letter). Decision (README "MSSanté"): the file is NOT PDF/A-1 —
PDF/A-1 needs embedded fonts and an ICC output intent, which need font and colour-profile
files Relais does not ship; the gap is recorded there. Pure: same CDA and time → same bytes.
"""

from __future__ import annotations

import datetime as dt
import textwrap
import zlib
from html.parser import HTMLParser

PAGE_W, PAGE_H, MARGIN = 595, 842, 50
_STYLES = {"h1": ("F2", 15, 20), "h2": ("F2", 12, 17), "k": ("F2", 9.5, 12.5), "p": ("F1", 9.5, 12.5),
           "small": ("F1", 8, 11)}
_WIDTH = {"h1": 62, "h2": 78, "k": 100, "p": 100, "small": 118}  # characters per line


class _Blocks(HTMLParser):
    """HTML of render.cda_to_html → [(style, text)]."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._buffer: list[str] = []
        self._cells: list[str] | None = None
        self._style = "p"
        self._skip = 0
        self._in_meta = False

    def _flush(self, style: str | None = None) -> None:
        text = " ".join("".join(self._buffer).split())
        self._buffer = []
        if text:
            self.blocks.append((style or self._style, text))

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "title", "head"):
            self._skip += 1
        elif tag in ("h1", "h2"):
            self._flush()
            self._style = tag
        elif tag == "table":
            self._in_meta = ("class", "meta") in attrs
        elif tag == "tr":
            self._flush()
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._buffer = []
        elif tag in ("p", "li", "footer", "br", "section"):
            self._flush()
            self._style = "small" if tag == "footer" else "p"
            if tag == "li":
                self._buffer.append("• ")

    def handle_endtag(self, tag):
        if tag in ("style", "title", "head"):
            self._skip -= 1
        elif tag in ("h1", "h2"):
            self._flush(tag)
            self._style = "p"
        elif tag in ("td", "th") and self._cells is not None:
            self._cells.append(" ".join("".join(self._buffer).split()))
            self._buffer = []
        elif tag == "tr" and self._cells is not None:
            cells = [c for c in self._cells if c]
            if self._in_meta and len(cells) == 2:
                self.blocks.append(("k", f"{cells[0]} : {cells[1]}"))
            elif cells:
                self.blocks.append(("p", " | ".join(cells)))
            self._cells = None
        elif tag in ("p", "li", "footer"):
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            self._buffer.append(data)


def _escape(text: str) -> bytes:
    raw = text.replace("→", "->").replace("’", "'").encode("cp1252", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _pages(blocks: list[tuple[str, str]]) -> list[bytes]:
    pages, ops, y = [], [], PAGE_H - MARGIN
    for style, text in blocks:
        font, size, leading = _STYLES[style]
        lines = textwrap.wrap(text, _WIDTH[style]) or [""]
        if style in ("h1", "h2"):
            y -= 6
        for line in lines:
            if y - leading < MARGIN:
                pages.append(b"\n".join(ops))
                ops, y = [], PAGE_H - MARGIN
            y -= leading
            ops.append(b"BT /%s %.1f Tf %d %.1f Td (%s) Tj ET" % (font.encode(), size, MARGIN, y, _escape(line)))
    pages.append(b"\n".join(ops))
    return pages


def text_to_pdf(blocks: list[tuple[str, str]], *, title: str, now: dt.datetime) -> bytes:
    """A4 PDF 1.4 of styled text blocks (`h1`, `h2`, `k`, `p`, `small`)."""
    contents = _pages(blocks)
    n = len(contents)
    # objects: 1 catalog, 2 pages, 3 F1, 4 F2, 5 info, then (page, content) pairs
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (6 + 2 * i) for i in range(n)), n),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title (%s) /Producer (Relais) /CreationDate (D:%s) >>"
        % (_escape(title), now.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%SZ").encode()),
    ]
    for i, content in enumerate(contents):
        stream = zlib.compress(content, 9)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 3 0 R "
                       b"/F2 4 0 R >> >> /Contents %d 0 R >>" % (PAGE_W, PAGE_H, 7 + 2 * i))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def cda_to_pdf(cda: bytes, *, now: dt.datetime) -> bytes:
    """The CDA's printable rendering as a PDF (raises xmlsafe.UnsafeXml on hostile input)."""
    from mappings.cda.render import cda_to_html

    parser = _Blocks()
    parser.feed(cda_to_html(cda))
    parser.close()
    title = next((text for style, text in parser.blocks if style == "h1"), "Document")
    return text_to_pdf(parser.blocks, title=title, now=now)
