"""The CDA validation gate: safe parsing, the CDA R2 schema with the French extensions, then
every CI-SIS schematron set that applies to the document's templateIds.

`cda_gate().validate(xml) -> list[Problem]` (XPath locations). The reference directory is an
input (`RELAIS_CDA_SCHEMAS`, default `../shared/reference/official/cda/TestContenuCDA-3-0` next to
the repository): when it is absent the gate says so with an error naming the path — it never
passes silently. Each applied set is named, with its version and sha256, in an information
problem; the set's own notes (case-insensitive include, rebuilt value set) come as warnings.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from gateway.conformance.cda.schema import CdaSchema
from gateway.conformance.cda.schematron import SchematronSetError, SchematronSets, SetReport
from gateway.model import Problem, Severity
from mappings.cda import constants as C
from mappings.cda.xmlsafe import UnsafeXml, parse_xml

SOURCE = "relais-cda-gate"
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO_ROOT.parent / "shared" / "reference" / "official" / "cda" / "TestContenuCDA-3-0"


def _problem(rule: str, message: str, message_en: str, severity=Severity.error, location="/",
             source: str = SOURCE) -> Problem:
    return Problem(location=location, rule=rule, message=message, message_en=message_en,
                   severity=severity, source=source)


class CdaGate:
    def __init__(self, directory: Path | None = None, cache_dir: Path | None = None):
        self.directory = Path(directory) if directory else DEFAULT_DIR
        self.cache_dir = Path(cache_dir) if cache_dir else Path("./var/cache/schematron")
        self.available = (self.directory / "schematrons").is_dir()
        self._schema: CdaSchema | None = None
        self._sets = SchematronSets(self.directory, self.cache_dir) if self.available else None
        self._lock = threading.Lock()
        self.last_reports: list[SetReport] = []

    def missing(self) -> Problem:
        return _problem("cda-schematron-set-missing",
                        f"jeu de schématrons introuvable : {self.directory} (RELAIS_CDA_SCHEMAS) — "
                        "le document n'a pas été validé",
                        f"schematron set not found: {self.directory} — the document was not validated")

    def schema(self) -> CdaSchema:
        with self._lock:
            if self._schema is None:
                self._schema = CdaSchema(self.directory)
            return self._schema

    def warm_up(self) -> list[SetReport]:
        """Compile the generic CI-SIS sets now (first use otherwise pays for it)."""
        if not self.available:
            return []
        sets = self._sets.all_generic()
        for item in sets:
            item.compile()
        return [item.report for item in sets]

    def validate(self, xml: bytes) -> list[Problem]:
        try:
            tree = parse_xml(xml)
        except UnsafeXml as exc:
            return [exc.problem]
        if not self.available:
            return [self.missing()]
        problems: list[Problem] = []
        try:
            problems += self.schema().validate(tree)
        except (FileNotFoundError, OSError) as exc:
            problems.append(_problem("cda-schema-missing", f"schéma CDA introuvable : {exc}",
                                     f"CDA schema not found: {exc}"))
        templates = set(tree.getroot().xpath("cda:templateId/@root", namespaces=C.XPATH_NS))
        try:
            sets = self._sets.applicable(templates)
        except SchematronSetError as exc:
            return problems + [_problem("cda-schematron-set-unusable", f"jeu de schématrons inutilisable : {exc}",
                                        f"schematron set unusable: {exc}")]
        if not sets:
            problems.append(_problem("cda-no-applicable-schematron",
                                     "aucun schématron CI-SIS ne s'applique (templateId CI-SIS 1.2.250.1.213.1.1.1.1 absent)",
                                     "no CI-SIS schematron applies", Severity.warning))
            return problems
        from gateway.conformance.cda.saxon import parse

        node = parse(bytes(xml))
        reports = []
        for item in sets:
            try:
                found = item.run(node=node)
            except SchematronSetError as exc:
                problems.append(_problem("cda-schematron-set-unusable", f"jeu de schématrons inutilisable : {exc}",
                                         f"schematron set unusable: {exc}", source=f"schematron {item.name}"))
                continue
            report = item.report
            report.fired = len(found)
            reports.append(report)
            errors = sum(1 for p in found if p.severity is Severity.error)
            problems.append(_problem(
                "cda-schematron-applied",
                f"{report.name} appliqué ({report.file}, version {report.version or 'non déclarée'}, "
                f"sha256 {report.sha256[:12]}) : {errors} erreur(s), {len(found) - errors} autre(s) constat(s)",
                f"{report.name} applied: {errors} error(s)", Severity.information, source=report.source))
            for note in report.notes:
                problems.append(_problem("cda-schematron-set-note", note, note, Severity.warning,
                                         source=report.source))
            problems += found
        self.last_reports = reports
        return problems


@cache
def cda_gate() -> CdaGate:
    """The process's gate, configured by `RELAIS_CDA_SCHEMAS` (settings.cda_schemas)."""
    from gateway.settings import settings

    return CdaGate(settings().cda_schemas)
