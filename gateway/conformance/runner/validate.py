"""`relais conformance validate PATH…`: find the files, detect each artefact's kind, validate it
(and the documents inside XDM archives and ITI-41 messages, recursively), in parallel across
cores for folders — each worker loads the packages index and compiles schematrons once — with
results in a deterministic order (the order of the paths, then of the files, sorted)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.conformance.runner import detect as D
from gateway.conformance.runner.results import (
    CDA, FHIR_JSON, FHIR_XML, ITI41, UNKNOWN, XDM, XDS, Artefact, Inputs, Issue, problem)
from gateway.model.problem import Severity

SUFFIXES = {".json", ".xml", ".zip", ".mime", ".soap", ".mtom"}
PARALLEL_FROM = 12  # files: below this, one process is faster than starting workers
MAX_DEPTH = 3  # documents inside archives inside messages…
MAX_FILE_BYTES = 100 * 1024 * 1024  # an artefact file; read no further (a 10 GB file, /dev/zero)


class RunStopped(Exception):
    """A given input is missing or unusable: nothing is validated without it."""


@dataclass(frozen=True)
class Options:
    packages: tuple[str, ...] = ()
    profile: str | None = None
    schematron: str | None = None  # TestContenuCDA directory (schemas, schematrons, jeuxDeValeurs)
    cache_dir: str | None = None
    use_fhir_cache: bool = True
    use_shipped: bool = True
    best_practice: bool = False
    jobs: int | None = None  # default: the machine's cores


@dataclass
class Run:
    artefacts: list[Artefact] = field(default_factory=list)
    inputs: Inputs = field(default_factory=Inputs)
    started: str = ""
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped before validating
    command: str = "validate"

    @property
    def errors(self) -> int:
        return sum(a.errors for a in self.artefacts) + (1 if self.stopped else 0)

    @property
    def ok(self) -> bool:
        return self.errors == 0


class Context:
    """What one process loads once: the packages catalog, the CDA gate, the value-set folder."""

    def __init__(self, options: Options):
        self.options = options
        self._catalog = None
        self._gate = None

    @property
    def catalog(self):
        if self._catalog is None:
            from gateway.conformance.runner.catalog import Catalog, CatalogError

            try:
                self._catalog = Catalog(list(self.options.packages), cache_dir=self.options.cache_dir,
                                        use_fhir_cache=self.options.use_fhir_cache, use_shipped=self.options.use_shipped)
            except CatalogError as exc:
                raise RunStopped(str(exc)) from None
        return self._catalog

    @property
    def cda_directory(self) -> Path:
        if self.options.schematron:
            return Path(self.options.schematron)
        from gateway.conformance.cda.gate import DEFAULT_DIR
        from gateway.settings import settings

        return Path(settings().cda_schemas or DEFAULT_DIR)

    @property
    def gate(self):
        if self._gate is None:
            from gateway.conformance.runner.cda import gate

            cache = Path(self.options.cache_dir) / "schematron" if self.options.cache_dir else Path(
                "./var/cache/schematron")
            self._gate = gate(str(self.cda_directory), str(cache))
        return self._gate

    @property
    def value_set_dir(self) -> Path | None:
        directory = self.cda_directory
        return directory if (directory / "jeuxDeValeurs").is_dir() else None


def check_inputs(options: Options) -> None:
    """Stop before validating anything when a given input does not exist."""
    for package in options.packages:
        if not Path(package).expanduser().exists():
            raise RunStopped(f"paquet FHIR introuvable : {package}")
    if options.schematron and not (Path(options.schematron) / "schematrons").is_dir():
        raise RunStopped(f"jeu de schématrons introuvable : {options.schematron} (dossier TestContenuCDA attendu : "
                         "schematrons/, infrastructure/cda/, jeuxDeValeurs/)")


def expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(given)
    return out


# --- one artefact ------------------------------------------------------------------------------
def validate_bytes(data: bytes, path: str, ctx: Context, parent: str | None = None,
                   depth: int = 0) -> tuple[list[Artefact], Inputs]:
    started = time.perf_counter()
    kind = D.detect(data)
    artefact = Artefact(path, kind, parent=parent)
    inputs = Inputs()
    inner: list[tuple[str, bytes]] = []
    if kind in (FHIR_JSON, FHIR_XML):
        resource, problems = _read_fhir(data, kind, ctx)
        artefact.add(problems)
        if resource is not None:
            from gateway.conformance.runner.fhir import validate_fhir

            issues, artefact.detail, inputs = validate_fhir(resource, ctx.catalog, profile=ctx.options.profile,
                                                            best_practice=ctx.options.best_practice)
            artefact.add(issues)
    elif kind == CDA:
        from gateway.conformance.runner.cda import validate_cda

        issues, artefact.detail, inputs = validate_cda(data, ctx.gate)
        artefact.add(issues)
    elif kind == XDS:
        from gateway.conformance.runner.xds import check_metadata
        from mappings.cda.xmlsafe import UnsafeXml, parse_xml

        try:
            issues, inputs = check_metadata(parse_xml(data).getroot(), ctx.value_set_dir, for_dmp=True)
        except UnsafeXml as exc:
            issues = [Issue.of(exc.problem)]
        artefact.add(issues)
        artefact.detail = "métadonnées XDS pour le DMP (ITI-41)"
    elif kind in (XDM, ITI41):
        from gateway.conformance.runner.containers import check_iti41, check_xdm

        check = check_xdm if kind == XDM else check_iti41
        issues, inner, inputs = check(data, ctx.value_set_dir)
        artefact.add(issues)
        artefact.detail = f"{len(inner)} document(s) à l'intérieur"
    else:
        artefact.add([problem("artefact-unknown", "type d'artefact non reconnu (attendu : ressource ou Bundle FHIR "
                              "JSON/XML, CDA R2, archive IHE XDM, SubmitObjectsRequest XDS, message ITI-41)",
                              "unknown artefact kind")])
    artefact.seconds = time.perf_counter() - started
    out = [artefact]
    for name, content in inner:
        if depth >= MAX_DEPTH:
            artefact.add([problem("artefact-too-deep", f"{name} : imbrication trop profonde, non validé", location=name)])
            continue
        found, more = validate_bytes(content, f"{path}!{name}", ctx, parent=path, depth=depth + 1)
        out += found
        inputs.merge(more)
    return out, inputs


def _read_fhir(data: bytes, kind: str, ctx: Context):
    from gateway.plans.jsoninput import JsonInputError, loads_object
    from gateway.settings import settings

    if kind == FHIR_JSON:
        try:
            return loads_object(data, max_bytes=max(settings().max_body_bytes, 50 * 1024 * 1024)), []
        except JsonInputError as exc:
            return None, [exc.problem]
    from gateway.conformance.runner.fhirxml import FhirXmlError, to_json
    from mappings.cda.xmlsafe import UnsafeXml, parse_xml

    try:
        return to_json(parse_xml(data)), []
    except UnsafeXml as exc:
        return None, [exc.problem]
    except FhirXmlError as exc:
        return None, [problem("fhir-xml", str(exc))]


def validate_path(path: str, ctx: Context) -> tuple[list[Artefact], Inputs]:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        artefact = Artefact(path, UNKNOWN)
        artefact.add([problem("file-unreadable", f"fichier illisible ({exc.strerror or type(exc).__name__})")])
        return [artefact], Inputs()
    if len(data) > MAX_FILE_BYTES:
        artefact = Artefact(path, UNKNOWN)
        artefact.add([problem("file-too-large", f"fichier trop volumineux (plus de {MAX_FILE_BYTES} octets)",
                              f"file too large (over {MAX_FILE_BYTES} bytes)")])
        return [artefact], Inputs()
    return validate_bytes(data, path, ctx)


# --- workers -----------------------------------------------------------------------------------
_WORKER: Context | None = None


def _init_worker(options: Options) -> None:
    global _WORKER
    _WORKER = Context(options)


def _work(path: str) -> bytes:
    try:
        artefacts, inputs = validate_path(path, _WORKER)
        return orjson.dumps({"artefacts": [a.to_json() for a in artefacts], "inputs": inputs.to_json()})
    except RunStopped as exc:
        return orjson.dumps({"stopped": str(exc)})


def _context() -> multiprocessing.context.BaseContext:
    # fork is fast; a process that already started Saxon must not be forked
    if "saxonche" in sys.modules or sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def run_validate(paths: list[str], options: Options = Options()) -> Run:
    run = Run(started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    started = time.perf_counter()
    try:
        check_inputs(options)
        files = expand(paths)
        jobs = options.jobs or os.cpu_count() or 1
        if jobs > 1 and len(files) >= PARALLEL_FROM:
            chunk = max(1, min(16, len(files) // (jobs * 4)))
            with ProcessPoolExecutor(jobs, mp_context=_context(), initializer=_init_worker,
                                     initargs=(options,)) as pool:
                for raw in pool.map(_work, files, chunksize=chunk):
                    result = orjson.loads(raw)
                    if "stopped" in result:
                        raise RunStopped(result["stopped"])
                    run.artefacts += [Artefact.from_json(a) for a in result["artefacts"]]
                    run.inputs.merge(Inputs.from_json(result["inputs"]))
        else:
            ctx = Context(options)
            for path in files:
                artefacts, inputs = validate_path(path, ctx)
                run.artefacts += artefacts
                run.inputs.merge(inputs)
        if not files:
            run.stopped = "aucun fichier à valider dans les chemins donnés"
    except RunStopped as exc:
        run.stopped = str(exc)
    run.seconds = time.perf_counter() - started
    return run


__all__ = ["Options", "Run", "RunStopped", "run_validate", "validate_bytes", "Context", "Severity"]
