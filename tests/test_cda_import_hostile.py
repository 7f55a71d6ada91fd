"""The CDA reader on malformed and hostile documents: a clear refusal, never an exception.

Each bad document is a valid Relais CDA (the project's own export of a fixture plan) with one
attribute or element removed or altered. The reader promises "never raises on bad input": what
it cannot read is an error problem naming the place (XPath) and the reason, the plan is withheld
(never half read), and a value that may be personal data (a birth date…) is never quoted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from gateway.cli.main import main
from gateway.model import Plan, Severity
from mappings.cda import constants as C
from mappings.cda import cda_to_plan, plan_to_cda
from mappings.cda.codec import assign, parse_ts, ts_date, ts_datetime
from mappings.cda.sections import ATTRIBUTE_TEMPLATE, BY_KEY
from mappings.cda.xmlsafe import xpath_of

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "fixtures" / "plans" / "p001-enfant-tnd.json"
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
X = C.XPATH_NS
XSI_TYPE = f"{{{C.XSI}}}type"
ITEM = f"cda:component/cda:observation[cda:templateId/@root='{C.relais_oid(1, 5)}']"
ATTRIBUTE = f"cda:observation[cda:templateId/@root='{ATTRIBUTE_TEMPLATE}']"
EVALUATION = f"//cda:organizer[cda:templateId/@root='{BY_KEY['evaluations'].entry_template}']"
BIRTH_DATE = "31/12/1985"  # personal data, written the way a careless producer would


@pytest.fixture(scope="module")
def valid() -> bytes:
    plan = Plan.model_validate(json.loads(PLAN.read_text(encoding="utf-8")))
    return plan_to_cda(plan, now=NOW)


@pytest.fixture(scope="module")
def evaluation_only() -> bytes:
    """The same plan with its evaluation but without the other lists: a third of the size, for
    the sweep that reads it hundreds of times."""
    data = json.loads(PLAN.read_text(encoding="utf-8"))
    for key in ("needs", "objectives", "actions", "services", "agreements", "orientation_decisions",
                "expectations", "specialisations"):
        data[key] = []
    return plan_to_cda(Plan.model_validate(data), now=NOW)


def mutated(xml: bytes, change: Callable[[etree._Element], str | None]) -> tuple[bytes, str | None]:
    """Apply `change` to a fresh tree; returns the document and what `change` returned."""
    doc = etree.fromstring(xml)
    said = change(doc)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8"), said


def one(node, path: str) -> etree._Element:
    found = node.xpath(path, namespaces=X)
    assert found, path
    return found[0]


def messages(result) -> str:
    return " | ".join(f"{p.message} {p.message_en}" for p in result.problems)


def assert_clean_refusal(result, where: str | None = None) -> None:
    """No plan, at least one error, every problem with a place and a French reason; with `where`,
    an error of the reader located at or under that XPath."""
    assert result.plan is None, "un document illisible ne doit pas donner de projet"
    errors = [p for p in result.problems if p.severity is Severity.error]
    assert errors, [p.line() for p in result.problems]
    assert all(p.location and p.message and p.message_en for p in result.problems)
    if where is not None:
        assert any(p.location.startswith(where) and p.source == "relais-cda-import" for p in errors), \
            (where, [p.line() for p in result.problems])


def test_the_valid_document_reads_without_error(valid):
    result = cda_to_plan(valid)
    assert result.plan is not None
    assert not [p for p in result.problems if p.severity is Severity.error]


# ------------------------------------------------------- evaluation items, one by one


def _first_item(doc) -> etree._Element:
    return one(doc, f"{EVALUATION}/{ITEM}")


def _drop(path: str):
    def change(doc):
        item = _first_item(doc)
        node = one(item, path)
        node.getparent().remove(node)
        return xpath_of(item)
    return change


def _drop_attribute(path: str, name: str):
    def change(doc):
        item = _first_item(doc)
        del one(item, path).attrib[name]
        return xpath_of(item)
    return change


def _value(value: str | None = None, kind: str | None = None, **more: str):
    def change(doc):
        item = _first_item(doc)
        node = one(item, "cda:value")
        if value is not None:
            node.set("value", value)
        if kind is not None:
            node.set(XSI_TYPE, kind)
        for key, extra in more.items():
            node.set(key, extra)
        return xpath_of(item)
    return change


def _code(value: str):
    def change(doc):
        item = _first_item(doc)
        one(item, "cda:code").set("code", value)
        return xpath_of(item)
    return change


ITEM_DEFECTS = {
    "without-code": _drop("cda:code"),
    "code-without-code-attribute": _drop_attribute("cda:code", "code"),
    "code-empty": _code(""),
    "without-value": _drop("cda:value"),
    "value-without-value-attribute": _drop_attribute("cda:value", "value"),
    "value-empty": _value(""),
    "value-not-a-number": _value("trois"),
    "value-decimal": _value("1.5"),
    "value-not-ascii-digits": _value("\u00b2"),
    "value-underscored": _value("1_0"),
    "value-huge": _value("9" * 5000),
    "value-without-type": _drop_attribute("cda:value", XSI_TYPE),
    "value-physical-quantity": _value("3", "PQ", unit="1"),
    "value-physical-quantity-not-numeric": _value("trois", "PQ", unit="1"),
    "value-unknown-type": _value("3", "XYZ"),
    "value-boolean": _value("true", "BL"),
}


@pytest.mark.parametrize("defect", sorted(ITEM_DEFECTS))
def test_an_unreadable_evaluation_item_is_refused_naming_the_item(valid, defect):
    xml, item = mutated(valid, ITEM_DEFECTS[defect])
    result = cda_to_plan(xml)
    assert_clean_refusal(result, item)


# Every single attribute or element of an evaluation entry, removed or altered: the reader may
# read the document (nothing it needs was touched) or refuse it, but it never raises.
BAD_VALUES = ("", "x", BIRTH_DATE, "-1", "\u00b2", "a..b[")


def _evaluation_nodes(doc) -> list[etree._Element]:
    organizer = one(doc, EVALUATION)
    items = organizer.xpath(ITEM, namespaces=X)
    attributes = organizer.xpath(f"cda:component/{ATTRIBUTE}", namespaces=X)
    keep = set(items[:2]) | set(attributes[:2])
    nodes = [organizer]
    for child in organizer:
        inner = child[0] if len(child) else None
        if child.tag == f"{{{C.NS}}}component" and inner not in keep:
            continue
        nodes += [n for n in child.iter() if isinstance(n.tag, str)]
    return nodes


def _sweep(xml: bytes) -> list[tuple[str, Callable]]:
    doc = etree.fromstring(xml)
    cases = []
    for index, node in enumerate(_evaluation_nodes(doc)):
        where = xpath_of(node)

        def remove(d, index=index):
            node = _evaluation_nodes(d)[index]
            node.getparent().remove(node)

        if index:
            cases.append((f"{where} removed", remove))
        for name in node.attrib:
            short = etree.QName(name).localname

            def drop(d, index=index, name=name):
                del _evaluation_nodes(d)[index].attrib[name]

            cases.append((f"{where}/@{short} removed", drop))
            for bad in BAD_VALUES:
                def alter(d, index=index, name=name, bad=bad):
                    _evaluation_nodes(d)[index].set(name, bad)

                cases.append((f"{where}/@{short}={bad!r}", alter))
        if node.text and node.text.strip():
            for bad in ("", BIRTH_DATE):
                def text(d, index=index, bad=bad):
                    _evaluation_nodes(d)[index].text = bad

                cases.append((f"{where}/text()={bad!r}", text))
    return cases


def test_every_single_defect_of_an_evaluation_entry_is_read_or_refused_never_raised(evaluation_only):
    assert cda_to_plan(evaluation_only).plan is not None
    failures = []
    cases = _sweep(evaluation_only)
    assert len(cases) > 200
    for name, change in cases:
        xml, _ = mutated(evaluation_only, change)
        try:
            result = cda_to_plan(xml)
        except Exception as exc:  # noqa: BLE001 - the point of the sweep
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if result.plan is None:
            try:
                assert_clean_refusal(result)
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")
        if BIRTH_DATE in messages(result):
            failures.append(f"{name}: la valeur altérée est citée : {messages(result)}")
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} en tout)"


# ------------------------------------------------------------- attribute observations


def _first_attribute(doc) -> etree._Element:
    return one(doc, f"{EVALUATION}/cda:component/{ATTRIBUTE}")


def _attribute(change_node: Callable[[etree._Element], None]):
    def change(doc):
        obs = _first_attribute(doc)
        change_node(obs)
        return xpath_of(obs)
    return change


def _remove(obs, path):
    node = one(obs, path)
    node.getparent().remove(node)


ATTRIBUTE_DEFECTS = {
    "without-code": _attribute(lambda obs: _remove(obs, "cda:code")),
    "code-without-code-attribute": _attribute(lambda obs: one(obs, "cda:code").attrib.pop("code")),
    "code-not-a-path": _attribute(lambda obs: one(obs, "cda:code").set("code", "a..b[")),
    "without-value": _attribute(lambda obs: _remove(obs, "cda:value")),
    "integer-not-a-number": _attribute(lambda obs: one(obs, "cda:value").attrib.update(
        {XSI_TYPE: "INT", "value": "x"})),
    "integer-without-value": _attribute(lambda obs: one(obs, "cda:value").attrib.update({XSI_TYPE: "INT"})),
    "boolean-neither-true-nor-false": _attribute(lambda obs: one(obs, "cda:value").attrib.update(
        {XSI_TYPE: "BL", "value": "peut-être"})),
    "real-not-a-number": _attribute(lambda obs: one(obs, "cda:value").attrib.update(
        {XSI_TYPE: "REAL", "value": "nan"})),
    "unknown-type": _attribute(lambda obs: one(obs, "cda:value").attrib.update({XSI_TYPE: "PQ", "value": "3"})),
}


@pytest.mark.parametrize("defect", sorted(ATTRIBUTE_DEFECTS))
def test_an_unreadable_attribute_observation_is_refused_naming_it(valid, defect):
    xml, obs = mutated(valid, ATTRIBUTE_DEFECTS[defect])
    assert_clean_refusal(cda_to_plan(xml), obs)


# ------------------------------------------------------------------ dates and numbers

DATES = {
    "birth-time": "cda:recordTarget/cda:patientRole/cda:patient/cda:birthTime",
    "plan-period-start": "cda:documentationOf/cda:serviceEvent/cda:effectiveTime/cda:low",
    "evaluation-date": f"{EVALUATION}/cda:effectiveTime",
    "objective-start": f"//cda:observation[cda:templateId/@root='{BY_KEY['objectives'].entry_template}']"
                       "/cda:effectiveTime/cda:low",
    "agreement-date-time": f"//cda:act[cda:templateId/@root='{BY_KEY['agreements'].entry_template}']"
                           "/cda:effectiveTime",
}
BAD_DATES = (BIRTH_DATE, "19851331", "19850230", "1985123", "1985", "198512.5", "19851231120000+9900",
             "0000" "1231", "19851231\n", "\uff11\uff19\uff18\uff15\uff11\uff12\uff13\uff11")


@pytest.mark.parametrize("bad", BAD_DATES)
@pytest.mark.parametrize("place", sorted(DATES))
def test_a_malformed_date_is_refused_at_its_place_without_quoting_it(valid, place, bad):
    def change(doc):
        node = one(doc, DATES[place])
        node.set("value", bad)
        return f"{xpath_of(node)}/@value"

    xml, where = mutated(valid, change)
    result = cda_to_plan(xml)
    assert_clean_refusal(result, where)
    for problem in result.problems:
        assert bad not in f"{problem.location} {problem.message} {problem.message_en}", problem.line()


def test_a_malformed_date_of_a_foreign_document_is_refused_without_quoting_it():
    cda = (b'<ClinicalDocument xmlns="urn:hl7-org:v3"><effectiveTime value="31/12/1985"/><recordTarget>'
           b'<patientRole><patient><birthTime value="31/12/1985"/></patient></patientRole></recordTarget>'
           b'</ClinicalDocument>')
    result = cda_to_plan(cda)
    assert_clean_refusal(result, "/cda:ClinicalDocument/cda:recordTarget/cda:patientRole/cda:patient/cda:birthTime")
    assert any(p.location == "/cda:ClinicalDocument/cda:effectiveTime/@value" for p in result.problems)
    assert BIRTH_DATE not in messages(result)


def _birth_order(value: str):
    def change(doc):
        patient = one(doc, "cda:recordTarget/cda:patientRole/cda:patient")
        node = etree.SubElement(patient, f"{{{C.SDTC}}}multipleBirthOrderNumber", value=value)
        one(patient, "cda:birthTime").addnext(node)
        return xpath_of(node)
    return change


@pytest.mark.parametrize("value", ["\u00b2", "x", "-1", ""])
def test_a_birth_order_that_is_not_a_whole_number_is_refused(valid, value):
    xml, where = mutated(valid, _birth_order(value))
    assert_clean_refusal(cda_to_plan(xml), where)


def test_a_birth_order_is_still_read(valid):
    xml, _ = mutated(valid, _birth_order("2"))
    result = cda_to_plan(xml)
    assert result.plan is not None and result.plan.person.birth_order == 2


def test_an_unknown_status_code_is_refused_not_dropped(valid):
    def change(doc):
        node = one(doc, f"//cda:observation[cda:templateId/@root='{BY_KEY['objectives'].entry_template}']"
                        "/cda:statusCode")
        node.set("code", "bidon")
        return xpath_of(node)

    xml, where = mutated(valid, change)
    assert_clean_refusal(cda_to_plan(xml), where)


def test_a_country_not_in_iso_3166_is_reported_without_quoting_the_address(valid):
    def change(doc):
        one(doc, "cda:recordTarget/cda:patientRole/cda:addr/cda:country").text = "Champagne-Ardenne"

    xml, _ = mutated(valid, change)
    result = cda_to_plan(xml)
    assert any(p.rule == "cda-country-not-iso" for p in result.problems)
    assert "Champagne" not in messages(result)


# ---------------------------------------------------------------------------- codec


@pytest.mark.parametrize("function", [parse_ts, ts_date, ts_datetime])
@pytest.mark.parametrize("bad", [BIRTH_DATE, "1985-12-31T25:00", "19851231120000+9900", "1985", "198512.5"])
def test_codec_errors_never_quote_the_value(function, bad):
    try:
        function(bad)
    except ValueError as exc:
        assert bad not in str(exc) and "1985" not in str(exc), str(exc)


def test_attribute_path_errors_do_not_quote_the_path():
    with pytest.raises(ValueError) as caught:
        assign({}, "Dupont..Jean[", 1)
    assert "Dupont" not in str(caught.value)


# ------------------------------------------------------------------------------ CLI


def _cli_import(valid, mutation, path, capsysbinary) -> tuple[int, bytes, str]:
    """`relais cda import` of the mutated document: (exit code, stdout, stderr)."""
    path.write_bytes(mutated(valid, mutation)[0])
    code = main(["cda", "import", str(path), "--today", "2026-11-26"])
    out = capsysbinary.readouterr()
    return code, out.out, out.err.decode("utf-8")


def test_cli_import_refuses_an_evaluation_item_without_code_in_french(valid, tmp_path, capsysbinary):
    code, out, err = _cli_import(valid, _drop("cda:code"), tmp_path / "sans-code.xml", capsysbinary)
    assert code == 1 and out == b""
    assert "sans-code.xml" in err and "cda:organizer" in err and "item d'évaluation" in err, err
    assert "ne donne pas un projet personnalisé valide" in err


def test_cli_import_of_a_bad_birth_time_does_not_print_it(valid, tmp_path, capsysbinary):
    code, out, err = _cli_import(valid, lambda doc: one(doc, DATES["birth-time"]).set("value", BIRTH_DATE),
                                 tmp_path / "naissance.xml", capsysbinary)
    assert code == 1 and out == b""
    assert "cda:birthTime/@value" in err and BIRTH_DATE not in err, err


def test_relais_cda_import_exits_1_without_traceback(valid, tmp_path):
    xml, _ = mutated(valid, ITEM_DEFECTS["value-not-a-number"])
    path = tmp_path / "valeur.xml"
    path.write_bytes(xml)
    done = subprocess.run([sys.executable, "-m", "gateway.cli.main", "cda", "import", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "valeur.xml" in output and "item d'évaluation" in output, output


# --------------------------------------------------------------- what problems quote


SERVICE_CODE = f"//cda:procedure[cda:templateId/@root='{BY_KEY['services'].entry_template}']/cda:code"


def test_a_code_outside_serafin_is_refused_quoting_its_system_only_when_it_is_an_oid(valid):
    for system, shown in (("1.2.250.1.999", True), (BIRTH_DATE, False)):
        xml, where = mutated(valid, lambda doc, system=system: (
            one(doc, SERVICE_CODE).set("codeSystem", system), xpath_of(one(doc, SERVICE_CODE)))[1])
        result = cda_to_plan(xml)
        assert_clean_refusal(result, where)
        assert (system in messages(result)) is shown, messages(result)


def test_a_foreign_section_is_named_by_a_bounded_title_and_a_code_only_when_it_is_one(valid):
    def change(doc):
        section = one(doc, "cda:component/cda:structuredBody/cda:component/cda:section")
        one(section, "cda:templateId").set("root", "1.2.3.4")
        one(section, "cda:title").text = "Titre " + "très long " * 1000
        one(section, "cda:code").set("code", BIRTH_DATE)

    xml, _ = mutated(valid, change)
    [warning] = [p for p in cda_to_plan(xml).problems if p.rule == "cda-section-not-carried"]
    assert len(warning.message) < 200 and BIRTH_DATE not in warning.message
