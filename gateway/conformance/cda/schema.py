"""CDA R2 schema validation with the French extensions (`CDA_extended.xsd`: SDTC, IHE lab,
pharmacy), loaded once from the configured TestContenuCDA directory."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from lxml import etree

from gateway.model import Problem, Severity

SCHEMA_FILE = "infrastructure/cda/CDA_extended.xsd"
_LOCK = threading.Lock()


class CdaSchema:
    def __init__(self, root: Path):
        self.path = root / SCHEMA_FILE
        if not self.path.is_file():
            raise FileNotFoundError(self.path)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        with _LOCK:
            self._schema = etree.XMLSchema(etree.parse(str(self.path), parser))
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.source = f"schéma CDA R2 étendu ({SCHEMA_FILE}, sha256 {self.sha256[:12]})"

    def validate(self, tree: etree._ElementTree) -> list[Problem]:
        with _LOCK:
            ok = self._schema.validate(tree)
            log = list(self._schema.error_log)
        if ok:
            return []
        return [Problem(location=_xpath(tree, e), rule="cda-schema", message=f"schéma CDA : {e.message}",
                        message_en=e.message, severity=Severity.error, source=self.source)
                for e in log]


def _xpath(tree: etree._ElementTree, error) -> str:
    path = error.path or f"ligne {error.line}"
    return path.replace("{urn:hl7-org:v3}", "cda:") if path else f"ligne {error.line}"
