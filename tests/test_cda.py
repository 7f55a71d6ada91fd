"""The plan as a CDA R2 document: header rules, body, round trip, hostile XML, validation gate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from lxml import etree

from gateway.model import IdentityStatus, Plan, Severity
from mappings.cda import constants as C
from mappings.cda import document_ids, plan_to_cda
from mappings.cda.import_ import cda_to_plan
from mappings.cda.sections import BY_KEY, KINDS

ROOT = Path(__file__).resolve().parent.parent
PLANS = sorted((ROOT / "fixtures" / "plans").glob("*.json"))
REFERENCE = ROOT.parent / "shared" / "reference" / "official" / "cda"
TCDA = REFERENCE / "TestContenuCDA-3-0"
TDDUI_EXAMPLE = REFERENCE / "tddui" / "CDA_TDDUI_Exemple_v1.0.1.xml"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
X = C.XPATH_NS

needs_reference = pytest.mark.skipif(
    not (TCDA / "schematrons").is_dir(),
    reason=f"jeu de référence CDA absent ({TCDA}) : validation schéma + schématrons non exécutée",
)


def load(path: Path) -> Plan:
    return Plan.model_validate(json.loads(path.read_text(encoding="utf-8")))


def by_status(status: IdentityStatus) -> Plan:
    return next(p for p in map(load, PLANS) if p.person.identity_status is status and p.person.ins)


@pytest.fixture(scope="module")
def p001() -> Plan:
    return load(PLANS[0])


@pytest.fixture(scope="module")
def doc(p001) -> etree._Element:
    return etree.fromstring(plan_to_cda(p001, now=NOW))


def one(node, path: str):
    found = node.xpath(path, namespaces=X)
    assert len(found) == 1, f"{path}: {len(found)} found"
    return found[0]


# ------------------------------------------------------------------------- header


def test_header_declares_hl7_france_cisis_and_relais_templates(doc):
    roots = doc.xpath("cda:templateId/@root", namespaces=X)
    assert roots[:2] == [C.TEMPLATE_HL7_FRANCE, C.TEMPLATE_CISIS]
    assert C.TEMPLATE_RELAIS_DOCUMENT in roots and C.TEMPLATE_TDDUI not in roots
    assert one(doc, "cda:realmCode/@code") == "FR"
    assert one(doc, "cda:typeId/@extension") == "POCD_HD000040"


def test_document_type_is_loinc_personalised_support_plan(doc):
    code = one(doc, "cda:code")
    assert (code.get("code"), code.get("codeSystem")) == ("80788-3", C.LOINC)


def test_confidentiality_language_and_creation_time(doc, p001):
    assert one(doc, "cda:confidentialityCode/@code") == "N"
    assert one(doc, "cda:languageCode/@code") == "fr-FR"
    assert one(doc, "cda:effectiveTime/@value") == "20261126100000+0100"
    restricted = etree.fromstring(plan_to_cda(p001, now=NOW, confidentiality="R"))
    assert one(restricted, "cda:confidentialityCode/@code") == "R"


def test_author_is_the_dui_software_of_the_platform(doc, p001):
    author = one(doc, "cda:author/cda:assignedAuthor")
    assert one(author, "cda:code/@code") == "LOGICIEL_DUI"
    assert one(author, "cda:assignedAuthoringDevice/cda:softwareName").text == "Relais"
    assert one(author, "cda:representedOrganization/cda:id/@extension") == "1" + p001.platform.finess


def test_custodian_is_the_platform_by_finess(doc, p001):
    org = one(doc, "cda:custodian/cda:assignedCustodian/cda:representedCustodianOrganization")
    assert one(org, "cda:id/@root") == C.IDNAT_STRUCT
    assert one(org, "cda:id/@extension") == "1" + p001.platform.finess


def test_documentation_of_carries_plan_period_and_medico_social_setting(doc, p001):
    event = one(doc, "cda:documentationOf/cda:serviceEvent")
    assert one(event, "cda:effectiveTime/cda:low/@value") == p001.period.start.strftime("%Y%m%d")
    assert one(event, ".//cda:standardIndustryClassCode/@code") == "ESSMS"
    assert one(doc, "cda:legalAuthenticator/cda:signatureCode/@code") == "S"


def test_qualified_identity_carries_ins_and_the_ins_traits(doc, p001):
    ins = one(doc, f"cda:recordTarget/cda:patientRole/cda:id[@root='{p001.person.ins.oid}']")
    assert ins.get("extension") == p001.person.ins.value
    name = one(doc, "cda:recordTarget/cda:patientRole/cda:patient/cda:name")
    assert one(name, "cda:family[@qualifier='BR']").text == p001.person.birth_family_name
    assert one(name, "cda:given[@qualifier='BR']").text == p001.person.birth_given_names[0]
    assert one(name, "cda:given[not(@qualifier)]").text == " ".join(p001.person.birth_given_names)
    county = one(doc, "//cda:patient/cda:birthplace/cda:place/cda:addr/cda:county")
    assert county.text == p001.person.birthplace_insee


@pytest.mark.parametrize("status", [IdentityStatus.RECUP, IdentityStatus.VALI])
def test_unqualified_identity_never_sends_its_ins(status):
    plan = by_status(status)
    doc = etree.fromstring(plan_to_cda(plan, now=NOW))
    assert plan.person.ins.value.encode() not in plan_to_cda(plan, now=NOW)
    roots = doc.xpath("cda:recordTarget/cda:patientRole/cda:id/@root", namespaces=X)
    assert roots == [C.ID_PERSON_LOCAL]


def test_identity_reliability_travels_with_the_document(p001):
    attrs = etree.fromstring(plan_to_cda(p001, now=NOW)).xpath(
        "//cda:observation[cda:code/@code='person.identity_status']/cda:value", namespaces=X)
    assert [a.text for a in attrs] == ["QUAL"]


def test_legal_representatives_are_guardians(doc, p001):
    guardians = doc.xpath("//cda:patient/cda:guardian", namespaces=X)
    assert [one(g, "cda:id/@extension") for g in guardians] == [r.id for r in p001.person.representatives]
    assert one(guardians[0], "cda:guardianPerson/cda:name/cda:family").text == p001.person.representatives[0].family_name


def test_first_version_has_no_related_document(doc, p001):
    assert one(doc, "cda:versionNumber/@value") == "1"
    assert not doc.xpath("cda:relatedDocument", namespaces=X)
    assert one(doc, "cda:setId/@root") == document_ids(p001).set_id


def test_new_version_keeps_set_id_and_replaces_the_previous_document(p001):
    v1, v2 = document_ids(p001, 1), document_ids(p001, 2)
    doc = etree.fromstring(plan_to_cda(p001, now=NOW, ids=v2))
    assert one(doc, "cda:setId/@root") == v1.set_id
    assert one(doc, "cda:versionNumber/@value") == "2"
    assert one(doc, "cda:id/@root") not in (v1.document_id,)
    related = one(doc, "cda:relatedDocument")
    assert related.get("typeCode") == "RPLC"
    assert one(related, "cda:parentDocument/cda:id/@root") == v1.document_id


def test_document_ids_are_deterministic_oids(p001):
    ids = document_ids(p001, 3)
    assert ids == document_ids(p001, 3)
    for oid in (ids.document_id, ids.set_id, ids.replaces):
        assert oid.startswith("2.25.") and all(part.isdigit() for part in oid.split("."))


# --------------------------------------------------------------------------- body


@pytest.mark.parametrize("key,family", [("needs", "1"), ("services", "2"), ("events", None)])
def test_sections_carry_serafin_codes_in_the_serafin_code_system(key, family):
    kind = BY_KEY[key]
    p001 = next(p for p in map(load, PLANS) if getattr(p, key))
    doc = etree.fromstring(plan_to_cda(p001, now=NOW))
    codes = doc.xpath(f"//cda:section[cda:templateId/@root='{kind.section_template}']"
                      f"/cda:entry/*/cda:code", namespaces=X)
    expected = [item.code for item in getattr(p001, key)]
    assert [c.get("code") for c in codes] == expected
    assert {c.get("codeSystem") for c in codes} == {C.SERAFIN_CS}
    assert all(c.get("displayName") for c in codes)
    if family:
        assert all(c.get("code").startswith(family) for c in codes)


def test_every_section_has_a_readable_narrative(doc, p001):
    sections = doc.xpath("//cda:section", namespaces=X)
    assert len(sections) >= 1 + sum(1 for k in KINDS if getattr(p001, k.key))
    for section in sections:
        assert one(section, "cda:title").text
        rows = section.xpath("cda:text/cda:table/cda:tbody/cda:tr", namespaces=X)
        assert rows, one(section, "cda:title").text
    needs = one(doc, f"//cda:section[cda:templateId/@root='{BY_KEY['needs'].section_template}']")
    text = "".join(needs.xpath("cda:text//text()", namespaces=X))
    assert p001.needs[0].description in text and "Besoin" in text


def test_export_is_deterministic(p001):
    assert plan_to_cda(p001, now=NOW) == plan_to_cda(load(PLANS[0]), now=NOW)


# --------------------------------------------------------------------- round trip


def _expected(plan: Plan) -> dict:
    """What the CDA carries: everything, except the INS of a non-qualified identity (RNIV),
    so a RECUP identity reads back as PROV."""
    data = plan.model_dump(mode="json")
    if plan.person.identity_status is not IdentityStatus.QUAL:
        data["person"]["ins"] = None
        if data["person"]["identity_status"] == "RECUP":
            data["person"]["identity_status"] = "PROV"
    return data


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_round_trip_plan_cda_plan_is_identity(path):
    plan = load(path)
    result = cda_to_plan(plan_to_cda(plan, now=NOW))
    assert result.plan is not None, [p.line() for p in result.problems]
    assert result.plan.model_dump(mode="json") == _expected(plan)
    assert not [p for p in result.problems if p.severity is Severity.error]


# ---------------------------------------------------------------- hostile input

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>"""
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
                     for i in range(1, 10))
          + b']><ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>')
DTD = b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument SYSTEM "http://example.org/cda.dtd"><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
DEEP = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a>" * 200 + b"</a>" * 200 + b"</ClinicalDocument>"


@pytest.mark.parametrize("payload,rule", [
    (XXE, "xml-doctype-forbidden"), (LAUGHS, "xml-doctype-forbidden"), (DTD, "xml-doctype-forbidden"),
    (DEEP, "xml-too-deep"), (b"<ClinicalDocument", "xml-not-well-formed"),
], ids=["external-entity", "billion-laughs", "dtd", "too-deep", "not-well-formed"])
def test_hostile_xml_is_refused_with_a_clear_error(payload, rule):
    result = cda_to_plan(payload)
    assert result.plan is None
    assert [p.rule for p in result.problems] == [rule]
    assert result.problems[0].message and result.problems[0].severity is Severity.error


def test_huge_input_is_refused_before_parsing():
    from mappings.cda.xmlsafe import UnsafeXml, parse_xml

    with pytest.raises(UnsafeXml) as caught:
        parse_xml(b"<a>" + b" " * 2048 + b"</a>", max_bytes=1024)
    assert caught.value.problem.rule == "xml-too-large"


def test_not_a_clinical_document_is_refused():
    result = cda_to_plan(b'<Bundle xmlns="http://hl7.org/fhir"/>')
    assert result.plan is None and result.problems[0].rule == "cda-not-clinical-document"


# -------------------------------------------------------- official TDDUI example


@pytest.mark.skipif(not TDDUI_EXAMPLE.is_file(), reason=f"exemple officiel TDDUI CDA absent ({TDDUI_EXAMPLE})")
def test_official_tddui_cda_imports_as_far_as_the_plan_can_hold():
    result = cda_to_plan(TDDUI_EXAMPLE.read_bytes())
    person = result.data["person"]
    assert person["ins"] == {"value": "147720425367411", "oid": C.INS_NIR}
    assert person["birth_family_name"] == "DUPONT"
    assert person["birth_given_names"] == ["Jean", "Stéphane", "Patrick"]
    assert person["birth_date"] == "1947-04-03" and person["sex"] == "male"
    assert result.data["platform"]["finess"] == "480787529"
    not_carried = [p for p in result.problems if p.rule == "cda-section-not-carried"]
    titles = " ".join(p.message for p in not_carried)
    for section in ("Séjour", "Evènements", "Evaluations", "Documents ajoutés"):
        assert section in titles
    assert all(p.location.startswith("/cda:ClinicalDocument") for p in not_carried)
    assert any(p.rule == "cda-foreign-document" for p in result.problems)


# ------------------------------------------------------------ validation gate


@pytest.fixture(scope="session")
def gate(tmp_path_factory):
    from gateway.conformance.cda.gate import CdaGate

    return CdaGate(TCDA, ROOT / "var" / "cache" / "schematron")


@needs_reference
@pytest.mark.parametrize("path", PLANS[::12], ids=[p.stem for p in PLANS[::12]])
def test_relais_cda_passes_schema_and_applicable_cisis_schematrons(gate, path):
    problems = gate.validate(plan_to_cda(load(path), now=NOW))
    errors = [p.line() for p in problems if p.severity is Severity.error]
    assert errors == []
    applied = [p for p in problems if p.rule == "cda-schematron-applied"]
    names = " ".join(p.message for p in applied)
    for name in ("structuration minimale", "IHE", "modèles de contenus", "modèles ANS"):
        assert name in names
    assert all("version" in p.message and "sha256" in p.message for p in applied)


@needs_reference
def test_gate_reports_schema_errors_with_xpath(gate, p001):
    doc = etree.fromstring(plan_to_cda(p001, now=NOW))
    doc.remove(one(doc, "cda:title"))
    etree.SubElement(doc, f"{{{C.NS}}}bogus")
    errors = [p for p in gate.validate(etree.tostring(doc)) if p.severity is Severity.error]
    assert any(p.rule == "cda-schema" for p in errors)
    assert any("title" in p.message for p in errors if p.source.startswith("schematron"))


@needs_reference
def test_gate_reports_the_case_defect_of_ihe_sch(gate, p001):
    notes = [p.message for p in gate.validate(plan_to_cda(p001, now=NOW)) if p.rule == "cda-schematron-set-note"]
    assert any("E_directiveanticipee_int.sch" in n for n in notes)


def test_gate_without_reference_set_says_so_and_never_passes(tmp_path, p001):
    from gateway.conformance.cda.gate import CdaGate

    problems = CdaGate(tmp_path / "absent").validate(plan_to_cda(p001, now=NOW))
    assert [p.rule for p in problems] == ["cda-schematron-set-missing"]
    assert "jeu de schématrons introuvable" in problems[0].message
    assert str(tmp_path / "absent") in problems[0].message
    assert problems[0].severity is Severity.error


@needs_reference
def test_document_type_outside_j07_is_caught_through_the_rebuilt_value_set(gate, p001):
    doc = etree.fromstring(plan_to_cda(p001, now=NOW))
    one(doc, "cda:code").set("code", "00000-0")
    errors = [p for p in gate.validate(etree.tostring(doc)) if p.severity is Severity.error]
    assert any("JDV_J07" in p.message for p in errors)


# ------------------------------------------------- schematron compiler (synthetic sets)

SCH = """<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">
  <ns prefix="cda" uri="urn:hl7-org:v3"/>
  {body}
</schema>"""


def _compile(tmp_path, body: str, files: dict[str, str] | None = None):
    from gateway.conformance.cda.sch_compile import compile_schematron

    (tmp_path / "schematrons").mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    main = tmp_path / "schematrons" / "main.sch"
    main.write_text(SCH.format(body=body), encoding="utf-8")
    return compile_schematron(main, value_sets=tmp_path / "jeuxDeValeurs", cache=tmp_path / "cache")


def test_missing_value_set_file_fails_the_compilation_loudly(tmp_path):
    from gateway.conformance.cda.sch_compile import SchematronSetError

    body = """<pattern id="p"><let name="jdv" value="'../jeuxDeValeurs/JDV_Absent.xml'"/>
      <rule context="cda:code"><assert test="@code = document($jdv)//@code">hors jeu</assert></rule></pattern>"""
    with pytest.raises(SchematronSetError, match="JDV_Absent.xml"):
        _compile(tmp_path, body)


def test_missing_include_fails_the_compilation_loudly(tmp_path):
    from gateway.conformance.cda.sch_compile import SchematronSetError

    with pytest.raises(SchematronSetError, match="introuvable.*absent.sch"):
        _compile(tmp_path, '<include href="include/absent.sch"/>')


def test_include_with_wrong_case_is_resolved_and_reported(tmp_path):
    rule = ('<pattern xmlns="http://purl.oclc.org/dsdl/schematron" id="q"><rule context="cda:title">'
            '<assert test="string(.)">titre vide</assert></rule></pattern>')
    compiled = _compile(tmp_path, '<include href="include/E_Directive.sch"/>',
                        {"schematrons/include/E_directive.sch": rule})
    assert any("E_directive.sch" in note and "casse" in note for note in compiled.notes)
    assert "titre vide" in compiled.xslt


def test_unused_missing_value_set_variable_is_reported_not_fatal(tmp_path):
    body = """<pattern id="v"><let name="unused" value="'../jeuxDeValeurs/JDV_Absent.xml'"/></pattern>
      <pattern id="p"><rule context="cda:title"><assert test="string(.)">vide</assert></rule></pattern>"""
    compiled = _compile(tmp_path, body)
    assert any("$unused" in note for note in compiled.notes)


def test_compiled_rules_report_failures_with_xpath_locations(tmp_path):
    from gateway.conformance.cda.saxon import compile_xslt, parse, transform

    body = """<pattern id="abstract-check" abstract="true"><rule context="$el">
        <assert test="@code = $allowed" id="code-rule" role="error">code <value-of select="@code"/> refusé</assert></rule></pattern>
      <pattern id="concrete" is-a="abstract-check"><param name="el" value="cda:code"/><param name="allowed" value="'A'"/></pattern>"""
    compiled = _compile(tmp_path, body)
    path = tmp_path / "out.xsl"
    path.write_text(compiled.xslt, encoding="utf-8")
    svrl = etree.fromstring(transform(compile_xslt(path), parse(
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="A"/><x><code code="B"/></x></ClinicalDocument>')))
    failed = svrl.findall("{http://purl.oclc.org/dsdl/svrl}failed-assert")
    assert len(failed) == 1
    assert failed[0].get("location") == "/Q{urn:hl7-org:v3}ClinicalDocument[1]/Q{urn:hl7-org:v3}x[1]/Q{urn:hl7-org:v3}code[1]"
    assert "code B refusé" in "".join(failed[0].itertext())
