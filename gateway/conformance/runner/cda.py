"""A CDA R2 document: `CDA_extended.xsd`, then every CI-SIS schematron set its templateIds call
for (gateway/conformance/cda judges), each named with its version and sha256.

One addition: elements of a namespace the CDA schema does not define (e.g. `urn:cnsaSDO`, the
SDO documents' extension, whose XSD bundle `20250123_XSD_MS.zip` is not public — specs §3.4)
cannot be judged by it; their schema errors are replaced by one error per namespace saying the
input is missing — neither a false failure of the document nor a silent pass.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from gateway.conformance.cda.gate import CdaGate
from gateway.conformance.cda.schema import SCHEMA_FILE
from gateway.conformance.runner.results import Inputs, Issue, problem

# namespaces CDA_extended.xsd defines (HL7 v3, SDTC, IHE pharmacy, IHE lab, DICOM)
SCHEMA_NAMESPACES = {"urn:hl7-org:v3", "urn:hl7-org:sdtc", "urn:ihe:pharm:medication",
                     "urn:oid:1.3.6.1.4.1.19376.1.3.2", "urn:dicom-org:ps3-20"}
KNOWN_EXTENSIONS = {"urn:cnsaSDO": "extension SDO/ViaTrajectoire, schéma 20250123_XSD_MS.zip (specs §3.4)"}
_ELEMENT_NS = re.compile(r"Element '\{([^}]*)\}")


@cache
def gate(directory: str, cache_dir: str) -> CdaGate:
    """One gate per set directory in a process (its XSLT compiled once); the process's own gate
    (`cda_gate()`) when it is the same directory, so nothing is compiled twice."""
    from gateway.conformance.cda.gate import cda_gate

    shared = cda_gate()
    if shared.directory.resolve() == Path(directory).resolve() and shared.cache_dir.resolve() == Path(cache_dir).resolve():
        return shared
    return CdaGate(Path(directory), Path(cache_dir))


def validate_cda(data: bytes, cda_gate: CdaGate) -> tuple[list[Issue], str, Inputs]:
    inputs = Inputs()
    cda_gate.last_reports = []  # the gate keeps the previous document's when no set applies
    problems = cda_gate.validate(data)
    foreign: dict[str, int] = {}
    kept = []
    for p in problems:
        found = _ELEMENT_NS.search(p.message) if p.rule == "cda-schema" else None
        if found and found.group(1) not in SCHEMA_NAMESPACES:
            foreign[found.group(1)] = foreign.get(found.group(1), 0) + 1
            continue
        kept.append(p)
    for ns, count in sorted(foreign.items()):
        what = KNOWN_EXTENSIONS.get(ns, "extension hors du schéma CDA")
        kept.append(problem(
            "cda-extension-schema-missing",
            f"{count} élément(s) de l'espace de noms {ns} ({what}) : leur schéma n'est pas fourni, ils n'ont pas "
            "été validés — le document n'est pas déclaré conforme",
            f"{count} element(s) in namespace {ns}: their schema is not available, they were not validated",
            source=f"schéma CDA R2 étendu ({SCHEMA_FILE})"))
    if cda_gate.available:
        schema = cda_gate.directory / SCHEMA_FILE
        if schema.is_file():
            inputs.schemas.append({"file": str(schema), "sha256": _sha256(schema)})
        for report in cda_gate.last_reports:
            inputs.schematrons.append({"name": report.name, "file": report.file, "version": report.version,
                                       "sha256": report.sha256, "directory": str(cda_gate.directory)})
    names = [r.name for r in cda_gate.last_reports] if cda_gate.available else []
    detail = "schéma CDA" + (f" + schématrons : {', '.join(names)}" if names else "")
    return [Issue.of(p) for p in kept], detail, inputs


@cache
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
