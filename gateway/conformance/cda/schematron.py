"""The CI-SIS schematron sets: which apply to a document, compiled once, run with saxonche.

Sets are inputs read from a configurable directory (`RELAIS_CDA_SCHEMAS`, TestContenuCDA-3-0
layout), never copied into the project. Each set is compiled to XSLT once per process (memory)
and once per content (disk cache `./var/cache/schematron/<sha256>.xsl`); every report names the
set, its version and the sha256 of all the files it is made of.

Applicability by the document's templateIds: the CI-SIS generic sets (structuration minimale
1.2.250.1.213.1.1.1.1 for the header, IHE and CI-SIS body rules, which fire on the section and
entry templateIds they know) apply to every CI-SIS document; a document-type set applies when
the document declares that volet's templateId (table below, from the official example CDAs and
the `Entete_*` schematrons). TDDUI (…1.1.1.58) has no dedicated schematron (specs §2).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.conformance.cda import sch_compile
from gateway.conformance.cda.sch_compile import (
    COMPILER_VERSION,
    SVRL,
    Compiled,
    SchematronSetError,
    compile_schematron,
)
from gateway.model import Problem, Severity

CISIS = "1.2.250.1.213.1.1.1.1"
GENERIC = (
    ("CI-SIS structuration minimale", "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch"),
    ("IHE (sections et entrées)", "schematrons/profils/IHE.sch"),
    ("CI-SIS modèles de contenus CDA", "schematrons/profils/CI-SIS_ModelesDeContenusCDA.sch"),
    ("CI-SIS modèles ANS", "schematrons/profils/CI-SIS_Modeles_ANS.sch"),
)
BY_DOCUMENT_TEMPLATE = {
    "1.2.250.1.213.1.1.1.22": ("CI-SIS DLU-EHPAD 2022.01", "schematrons/CI-SIS_DLU-EHPAD-DLU_2022.01.sch"),
    "1.2.250.1.213.1.1.1.21": ("CI-SIS LDL-EES 2022.01", "schematrons/CI-SIS_LDL-EES_2022.01.sch"),
    "1.2.250.1.213.1.1.1.29": ("CI-SIS LDL-SES 2022.01", "schematrons/CI-SIS_LDL-SES_2022.01.sch"),
    "1.2.250.1.213.1.1.1.13": ("CI-SIS VSM 2023.01", "schematrons/CI-SIS_VSM_2023.01.sch"),
}
_ROLE = {"error": Severity.error, "fatal": Severity.error, "warning": Severity.warning,
         "info": Severity.information, "information": Severity.information}


@dataclass
class SetReport:
    name: str
    file: str
    version: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    fired: int = 0

    @property
    def source(self) -> str:
        return f"schematron {self.name} ({self.file}, version {self.version or 'non déclarée'}, sha256 {self.sha256[:12]})"


class SchematronSet:
    """One compiled schematron, ready to run many times."""

    def __init__(self, name: str, main: Path, root: Path, cache: Path):
        self.name, self.main, self.root, self.cache = name, main, root, cache
        self._executable = None
        self.report: SetReport | None = None
        self._lock = threading.Lock()

    def _version(self, compiled: Compiled) -> str:
        mapping = self.main.parent / "ASIP-STRUCT-MIN-instance2schematron.xml"
        if mapping.is_file():  # ART-DECOR release label
            release = etree.parse(str(mapping)).find("release")
            if release is not None and release.get("versionLabel"):
                return f"{release.get('versionLabel')} ({release.get('date', '')})"
        return f"{compiled.version or self.main.name} ({self.root.name})"

    def compile(self) -> None:
        """Once per process (memory); once per content of the set directory (disk cache)."""
        with self._lock:
            if self._executable is not None:
                return
            from gateway.conformance.cda.saxon import compile_xslt

            key = self.tree_digest()[:16]
            cached = self.cache / f"{self.main.stem}-{key}.xsl"
            sidecar = cached.with_suffix(".json")
            if cached.is_file() and sidecar.is_file():
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
            else:
                compiled = compile_schematron(self.main, value_sets=self.root / "jeuxDeValeurs",
                                              cache=self.cache)
                digest = hashlib.sha256()
                for path in sorted(set(compiled.files)):
                    digest.update(_relative(path, self.root).encode())
                    digest.update(path.read_bytes())
                meta = {"version": self._version(compiled), "sha256": digest.hexdigest(),
                        "notes": compiled.notes, "files": len(set(compiled.files)),
                        "documents": compiled.documents}
                self.cache.mkdir(parents=True, exist_ok=True)
                for stale in self.cache.glob(f"{self.main.stem}-*.*"):
                    stale.unlink(missing_ok=True)
                cached.write_text(compiled.xslt, encoding="utf-8")
                sidecar.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
            self._executable = compile_xslt(cached, meta.get("documents", {}))
            self.report = SetReport(self.name, _relative(self.main, self.root), meta["version"],
                                    meta["sha256"], list(meta["notes"]))

    def tree_digest(self) -> str:
        return _tree_digest(self.root)

    def run(self, xml: bytes | None = None, *, node=None) -> list[Problem]:
        """Run on the document's bytes, or on a tree from `saxon.parse` shared by several sets."""
        self.compile()
        from gateway.conformance.cda.saxon import parse, transform

        svrl = etree.fromstring(transform(self._executable, node if node is not None else parse(xml)))
        problems = []
        source = self.report.source
        for node in svrl:
            tag = etree.QName(node).localname
            if tag not in ("failed-assert", "successful-report"):
                continue
            text = " ".join("".join(node.itertext()).split())
            severity = _ROLE.get((node.get("role") or "error").lower(), Severity.error)
            rule = node.get("id") or node.get("pattern") or "schematron"
            problems.append(Problem(location=_location(node.get("location", "")), rule=rule,
                                    message=text, message_en=f"schematron assertion: {node.get('test')}",
                                    severity=severity, source=source))
        return problems


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


@functools.cache
def _tree_digest(root: Path) -> str:
    """sha256 of the compiler and of every schematron and value-set file of the directory:
    the disk cache key (any change upstream or in the compiler recompiles)."""
    digest = hashlib.sha256(COMPILER_VERSION.encode())
    digest.update(Path(sch_compile.__file__).read_bytes())
    for folder in ("schematrons", "jeuxDeValeurs"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                digest.update(_relative(path, root).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _location(path: str) -> str:
    return path.replace("Q{urn:hl7-org:v3}", "cda:").replace("Q{}", "").replace(
        "Q{urn:hl7-org:sdtc}", "sdtc:")


class SchematronSets:
    """The sets of one TestContenuCDA directory, compiled lazily and kept."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache = root.resolve(), cache.resolve()
        self._sets: dict[str, SchematronSet] = {}

    def _get(self, name: str, relative: str) -> SchematronSet:
        if relative not in self._sets:
            main = self.root / relative
            if not main.is_file():
                raise SchematronSetError(f"schématron introuvable : {main}")
            self._sets[relative] = SchematronSet(name, main, self.root, self.cache)
        return self._sets[relative]

    def applicable(self, template_ids: set[str]) -> list[SchematronSet]:
        chosen = []
        if CISIS in template_ids:
            chosen += [self._get(name, rel) for name, rel in GENERIC]
        for template, (name, rel) in BY_DOCUMENT_TEMPLATE.items():
            if template in template_ids:
                chosen.append(self._get(name, rel))
        return chosen

    def all_generic(self) -> list[SchematronSet]:
        return [self._get(name, rel) for name, rel in GENERIC]


__all__ = ["SchematronSet", "SchematronSetError", "SchematronSets", "SetReport", "SVRL"]
