"""`relais conformance validate`: the official examples give no false error (every error on them
is a documented defect of the official material, listed here with its reason), every broken copy
is caught by the right rule, inputs are pinned in every report and a missing input stops the run.
Tests that need ../shared/reference skip, saying so, when it is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main as relais
from gateway.conformance.runner import samples as S
from gateway.conformance.runner.validate import Context, Options, run_validate, validate_bytes

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
OFFICIAL = REFERENCE / "official"
PACKAGES = REFERENCE / "fhir-packages"
CDA_SET = OFFICIAL / "cda" / "TestContenuCDA-3-0"
TDDUI_EXAMPLE = OFFICIAL / "tddui" / "Bundle-tddui-pp-ime-bundle-example.json"
QR_EXAMPLE = OFFICIAL / "tddui" / "QuestionnaireResponse-tddui-questionnaire-response-serafin-precision-example.no-narrative.json"
SDO_EXAMPLE = OFFICIAL / "sdo" / "Bundle-exemple-sdo-bundle-resultat-recherche-notifications-esms.no-narrative.json"
CISIS_EXAMPLES = sorted((CDA_SET / "ExemplesCDA").glob("*.xml")) if CDA_SET.is_dir() else []

needs_official = pytest.mark.skipif(not TDDUI_EXAMPLE.is_file(), reason=f"official examples absent ({OFFICIAL})")
needs_packages = pytest.mark.skipif(not PACKAGES.is_dir(), reason=f"FHIR packages absent ({PACKAGES})")
needs_cda_set = pytest.mark.skipif(not CDA_SET.is_dir(), reason=f"TestContenuCDA set absent ({CDA_SET})")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("conformance-cache"))


@pytest.fixture(scope="module")
def ctx(cache) -> Context:
    return Context(Options(cache_dir=cache, use_fhir_cache=False))


@pytest.fixture(scope="module")
def bases():
    return S.bases(REFERENCE if REFERENCE.is_dir() else None)


def errors_of(artefacts):
    return [(a.path, i) for a in artefacts for i in a.issues if i.severity == "error"]


# --- official examples: no false errors -------------------------------------------------------------
# Every error Relais reports on the official TDDUI example, with the documented defect behind it.
TDDUI_EXAMPLE_ERRORS = {
    # §11.2: profile names instead of resource types in entry.request.url
    **{(f"Bundle.entry[{n}].request.url", "request-url"): "§11.2" for n in range(7)},
    # §11.3: CodeSystem URLs of 2.1.0-ballot (tddui-discriminator-cs, input-tddui-task-action-codesystem)…
    ("Bundle.entry[2].resource.supportingInfo[0].extension[0].valueCodeableConcept", "binding-required"): "§11.3",
    ("Bundle.entry[3].resource.note[0].extension[0].valueCodeableConcept", "binding-required"): "§11.3",
    ("Bundle.entry[4].resource.note[0].extension[0].valueCodeableConcept", "binding-required"): "§11.3",
    ("Bundle.entry[5].resource.input[0].type", "binding-required"): "§11.3",
    ("Bundle.entry[6].resource.input[0].type", "binding-required"): "§11.3",
    # …so the slices they discriminate stay empty (same defect, said beside the error)
    ("Bundle.entry[2].resource.supportingInfo", "slice-cardinality"): "§11.3",
    ("Bundle.entry[3].resource.note", "slice-cardinality"): "§11.3",
    ("Bundle.entry[4].resource.note", "slice-cardinality"): "§11.3",
    ("Bundle.entry[5].resource.input", "slice-cardinality"): "§11.3",
    ("Bundle.entry[6].resource.input", "slice-cardinality"): "§11.3",
}


@needs_official
def test_official_tddui_example_errors_are_all_documented_defects(ctx):
    artefacts, _ = validate_bytes(TDDUI_EXAMPLE.read_bytes(), "tddui", ctx)
    found = {(i.location, i.rule): i.defect for _, i in errors_of(artefacts)}
    assert found == TDDUI_EXAMPLE_ERRORS
    assert all(f"défaut {d}" in i.message for _, i in errors_of(artefacts) for d in [i.defect])


@needs_official
def test_official_serafin_questionnaire_response_is_valid(ctx):
    artefacts, _ = validate_bytes(QR_EXAMPLE.read_bytes(), "qr", ctx)
    assert errors_of(artefacts) == []
    assert "tddui-questionnaire-response" in artefacts[0].detail


@needs_official
def test_official_sdo_example_declares_profiles_of_a_version_not_available(ctx):
    """Made for SDO 4.0.2 (sdo-task…); only 4.0.7 (esms-*) is available: a missing input, said so,
    neither a pass nor a judgement against another version."""
    artefacts, _ = validate_bytes(SDO_EXAMPLE.read_bytes(), "sdo", ctx)
    errors = [i for _, i in errors_of(artefacts)]
    assert errors and {i.rule for i in errors} == {"profile-package-missing"}
    assert all("SDO 4.0.2" in i.message and "renommé esms-" in i.message for i in errors)


@needs_cda_set
@pytest.mark.parametrize("path", CISIS_EXAMPLES, ids=lambda p: p.stem)
def test_ci_sis_cda_examples_are_valid_and_name_their_schematron_sets(ctx, path):
    artefacts, inputs = validate_bytes(path.read_bytes(), path.name, ctx)
    assert errors_of(artefacts) == []
    assert inputs.schemas and inputs.schematrons
    assert all(s["version"] and len(s["sha256"]) == 64 for s in inputs.schematrons)


@needs_cda_set
def test_cda_extension_without_its_schema_is_a_missing_input_not_a_false_failure(ctx):
    artefacts, _ = validate_bytes((OFFICIAL / "sdo" / "CDA_SI-ESMS_Decision.xml").read_bytes(), "sdo-cda", ctx)
    rules = {i.rule for _, i in errors_of(artefacts)}
    assert rules == {"cda-extension-schema-missing"}
    assert "urn:cnsaSDO" in errors_of(artefacts)[0][1].message


# --- what Relais emits passes ------------------------------------------------------------------------
@needs_cda_set
@pytest.mark.parametrize("name", ["tddui.json", "tddui.xml", "cda.xml", "metadata.xml", "IHE_XDM.zip", "iti41.xml"])
def test_relais_own_artefacts_pass(ctx, bases, name):
    artefacts, _ = validate_bytes(bases[name], name, ctx)
    assert errors_of(artefacts) == []


@needs_cda_set
def test_mtom_message_and_xdm_archive_are_opened_and_their_documents_validated(ctx):
    made = S.relais_artefacts()
    for name in ("iti41.mime", "IHE_XDM.zip"):
        artefacts, _ = validate_bytes(made[name], name, ctx)
        assert [a.kind for a in artefacts] == [("iti41" if name.endswith("mime") else "xdm"), "cda"]
        assert artefacts[1].parent == name and errors_of(artefacts) == []


def test_fhir_xml_is_judged_like_its_json(ctx, bases):
    broken = next(b for b in S.BROKEN if b.id == "xml-careplan-sans-titre")
    as_xml, _ = validate_bytes(broken.mutate(bases["tddui.xml"]), "x.xml", ctx)
    as_json, _ = validate_bytes(S.BROKEN[0].mutate(bases["tddui.json"]), "x.json", ctx)
    assert [(i.location, i.rule) for _, i in errors_of(as_xml)] == [(i.location, i.rule) for _, i in errors_of(as_json)]


# --- broken copies: each caught by the right rule ------------------------------------------------------
@pytest.mark.parametrize("broken", S.BROKEN, ids=lambda b: b.id)
def test_broken_copy_is_caught_by_the_right_rule(ctx, bases, broken):
    if broken.base not in bases:
        pytest.skip(f"base {broken.base} needs the official examples ({OFFICIAL})")
    if broken.base in ("cda.xml", "ldl-ses.xml", "IHE_XDM.zip", "iti41.xml", "metadata.xml") and not CDA_SET.is_dir():
        pytest.skip(f"needs the TestContenuCDA set ({CDA_SET})")
    original, _ = validate_bytes(bases[broken.base], broken.base, ctx)
    assert errors_of(original) == []
    artefacts, _ = validate_bytes(broken.mutate(bases[broken.base]), broken.base, ctx)
    assert broken.rule in {i.rule for _, i in errors_of(artefacts)}, broken.what


def test_there_are_at_least_25_broken_copies():
    assert len(S.BROKEN) >= 25 and len({b.id for b in S.BROKEN}) == len(S.BROKEN)


# --- inputs and the command contract ----------------------------------------------------------------------
def test_unknown_profile_without_package_is_a_missing_input_error(ctx, bases):
    broken = next(b for b in S.BROKEN if b.id == "profil-inconnu")
    artefacts, _ = validate_bytes(broken.mutate(bases["tddui.json"]), "x", ctx)
    (issue,) = [i for _, i in errors_of(artefacts)]
    assert issue.rule == "profile-package-missing" and "--package" in issue.message


def test_missing_package_stops_the_run(tmp_path, cache):
    run = run_validate([str(tmp_path)], Options(packages=(str(tmp_path / "absent.tgz"),), cache_dir=cache))
    assert run.stopped and "introuvable" in run.stopped and not run.ok and run.artefacts == []


def test_missing_schematron_directory_stops_the_run(tmp_path, cache):
    run = run_validate([str(tmp_path)], Options(schematron=str(tmp_path / "nope"), cache_dir=cache))
    assert run.stopped and "schématrons" in run.stopped


@needs_packages
def test_packages_are_indexed_once_and_rules_compiled_once_on_disk(tmp_path, bases):
    from gateway.conformance.runner.catalog import Catalog

    tddui = PACKAGES / "ans.fhir.fr.tddui#2.2.0.tgz"
    first = Catalog([PACKAGES], cache_dir=tmp_path, use_fhir_cache=False, use_shipped=False)
    entry, _ = first.find("https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-bundle")
    assert entry.path == str(tddui) and entry.origin == "--package"
    first.rules(entry)
    compiled = list((tmp_path / "rules").glob("*.rules.json"))
    assert len(compiled) == 1 and len(list((tmp_path / "index").glob("*.json"))) == len(list(PACKAGES.glob("*.tgz")))
    again = Catalog([PACKAGES], cache_dir=tmp_path, use_fhir_cache=False, use_shipped=False)
    stamp = compiled[0].stat().st_mtime_ns
    again.rules(again.find("https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-bundle")[0])
    assert compiled[0].stat().st_mtime_ns == stamp


@needs_packages
def test_packages_from_the_fhir_cache_are_used_and_reported(tmp_path, bases):
    import tarfile

    cache_dir = tmp_path / "fhir"
    target = cache_dir / "ans.fhir.fr.tddui#2.2.0"
    target.mkdir(parents=True)
    with tarfile.open(PACKAGES / "ans.fhir.fr.tddui#2.2.0.tgz") as tar:
        tar.extractall(target, filter="data")
    from gateway.conformance.runner.catalog import Catalog

    catalog = Catalog([], cache_dir=tmp_path / "c", fhir_cache=[cache_dir], use_shipped=False)
    entry, _ = catalog.find("https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-bundle")
    assert entry.origin == "cache FHIR" and entry.sha256.startswith("folder:")


def test_json_report_contract_and_exit_codes(tmp_path, bases, cache):
    folder = tmp_path / "in"
    folder.mkdir()
    good, bad = folder / "good.json", folder / "bad.json"
    good.write_bytes(bases["tddui.json"])
    bad.write_bytes(S.BROKEN[0].mutate(bases["tddui.json"]))
    out = tmp_path / "r.json"
    assert relais(["conformance", "validate", str(good), "--cache", cache, "--json", str(out), "-q"]) == 0
    code = relais(["conformance", "validate", str(folder), "--cache", cache, "--json", str(out),
                   "--junit", str(tmp_path / "r.xml"), "--html", str(tmp_path / "r.html"), "-q"])
    assert code == 1
    report = json.loads(out.read_text())
    assert report["relais"]["version"] and report["inputs"]["packages"]
    files = {f["path"]: f for f in report["files"]}
    (issue,) = [i for i in files[str(bad)]["issues"] if i["severity"] == "error"]
    assert set(issue) >= {"severity", "location", "rule", "source", "message"}
    assert issue["source"].endswith("|2.2.0") and files[str(good)]["valid"]
    junit = (tmp_path / "r.xml").read_text()
    assert 'failures="1"' in junit and "cardinality-min" in junit
    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and "ans.fhir.fr.tddui" in page and "cardinality-min" in page


def test_each_issue_is_reported_once(ctx, bases):
    data = S.BROKEN[0].mutate(bases["tddui.json"])
    artefacts, _ = validate_bytes(data, "x", ctx)
    keys = [(i.location, i.rule, i.message) for a in artefacts for i in a.issues]
    assert len(keys) == len(set(keys))


def test_folder_is_validated_in_parallel_in_a_deterministic_order(tmp_path, bases, cache):
    for n in range(14):
        data = bases["tddui.json"] if n % 3 else S.BROKEN[n % len(S.BROKEN[:5])].mutate(bases["tddui.json"])
        (tmp_path / f"f{n:02d}.json").write_bytes(data)
    serial = run_validate([str(tmp_path)], Options(cache_dir=cache, jobs=1, use_fhir_cache=False))
    parallel = run_validate([str(tmp_path)], Options(cache_dir=cache, jobs=2, use_fhir_cache=False))
    assert [a.to_json() for a in serial.artefacts] == [a.to_json() for a in parallel.artefacts]
    assert [a.path for a in serial.artefacts] == sorted(str(p) for p in tmp_path.glob("*.json"))


def test_unknown_file_kind_is_an_error(tmp_path, cache):
    f = tmp_path / "x.json"
    f.write_text('{"not": "fhir"}')
    run = run_validate([str(f)], Options(cache_dir=cache))
    assert [i.rule for i in run.artefacts[0].issues] == ["artefact-unknown"] and not run.ok


def test_an_endless_or_huge_file_is_refused_without_being_read_whole(ctx, tmp_path, monkeypatch):
    """/dev/zero (or a 10 GB file) as an artefact: refused by its size, read no further."""
    from gateway.conformance.runner import validate as runner

    monkeypatch.setattr(runner, "MAX_FILE_BYTES", 1024)
    big = tmp_path / "grand.json"
    big.write_bytes(b" " * 1025)
    for path in ("/dev/zero", str(big)):
        (artefact,), _ = runner.validate_path(path, ctx)
        assert [(i.rule, i.message) for i in artefact.issues] == [
            ("file-too-large", "fichier trop volumineux (plus de 1024 octets)")]
    big.write_bytes(b" " * 1024)  # at the limit: read, then judged as it is
    (artefact,), _ = runner.validate_path(str(big), ctx)
    assert "file-too-large" not in [i.rule for i in artefact.issues]
