"""The one Saxon processor of the process (SaxonC-HE via saxonche), for XSLT 3.0.

Compiled stylesheets are kept by their callers and reused for every document; the input is
handed over as text that `xmlsafe.parse_xml` has already accepted (no DTD, no entity)."""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

_LOCK = threading.Lock()


@cache
def _processor():
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


def compile_xslt(path: Path, documents: dict[str, str] | None = None):
    """Compile once; value-set documents (param name -> file URI) are parsed once here and
    bound to the executable, so no transformation parses them again."""
    from gateway.conformance.cda.sch_compile import SchematronSetError

    with _LOCK:
        xslt = _processor().new_xslt30_processor()
        try:
            executable = xslt.compile_stylesheet(stylesheet_file=str(path))
        except Exception as exc:  # saxonche raises PySaxonApiError with the compiler's message
            raise SchematronSetError(f"compilation XSLT impossible ({path.name}) : {exc}") from exc
        for name, uri in (documents or {}).items():
            try:
                node = _processor().parse_xml(xml_uri=uri)
            except Exception as exc:
                raise SchematronSetError(f"fichier de jeu de valeurs illisible : {uri} ({exc})") from exc
            executable.set_parameter(name, node)
        return executable


def parse(xml: bytes):
    """Build Saxon's tree once per document; every schematron set then reads the same tree."""
    with _LOCK:
        return _processor().parse_xml(xml_text=xml.decode("utf-8"))


def transform(executable, node) -> bytes:
    with _LOCK:
        result = executable.transform_to_string(xdm_node=node)
    return result.encode("utf-8")
