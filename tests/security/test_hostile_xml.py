"""Hostile XML at every XML entry point: external entities (file, network, parameter), entity
expansion bombs, DTDs (also in UTF-16, where a byte scan cannot see them), huge attributes,
hundreds of thousands of attributes, deep nesting, oversized documents. Each is refused with
its reason, nothing is fetched or expanded, and nothing is written.

Entry points: the CDA reader (`relais cda import`, inbound MSSanté documents), the CDA
renderer and gate (`relais cda render|validate`), METADATA.XML of a received XDM archive,
SOAP messages of the DMP (ITI-18/41/43/57 answers, and requests to the sandbox DMP), SI-SDO
decision CDAs (ViaTrajectoire), and `relais conformance validate`.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile

import pytest
import sqlalchemy as sa

from connectors.base import Inbound
from connectors.dmp import soap
from connectors.mss import xdm
from connectors.viatrajectoire.cda_decision import DecisionDocumentError, parse_decision_cda
from gateway.cli.main import main as relais
from gateway.inbound.receive import receive
from mappings.cda import cda_to_plan
from mappings.cda.xmlsafe import UnsafeXml, parse_xml
from tests.security.conftest import snapshot

CDA_NS = 'xmlns="urn:hl7-org:v3"'
ROOT = f"<ClinicalDocument {CDA_NS}>".encode()
END = b"</ClinicalDocument>"


class Listener:
    """A loopback TCP port that records whether anything ever connected (an XXE fetch)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener():
    found = Listener()
    yield found
    found.close()


def _bomb(levels: int = 10) -> bytes:
    entities = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, levels)]
    return (f'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [{"".join(entities)}]>'
            f"<ClinicalDocument {CDA_NS}><title>&l{levels - 1};</title></ClinicalDocument>").encode()


def samples(port: int) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """name -> (document, words one of which the refusal must contain)."""
    doctype = ("DOCTYPE", "ENTITY", "DTD")
    quadratic = "A" * 100_000
    return {
        "xxe-file": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                     + ROOT + b"<title>&x;</title>" + END, doctype),
        "xxe-network": (f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'.encode()
                        + ROOT + b"<title>&x;</title>" + END, doctype),
        "xxe-parameter-entity": (f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>'.encode()
                                 + ROOT + END, doctype),
        "external-dtd": (f'<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:{port}/cda.dtd">'.encode()
                         + ROOT + END, doctype),
        "billion-laughs": (_bomb(), doctype),
        "quadratic-blowup": (f'<!DOCTYPE r [<!ENTITY a "{quadratic}">]>'.encode() + ROOT
                             + b"<title>" + b"&a;" * 20_000 + b"</title>" + END, doctype),
        "utf16-doctype": (_bomb().decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
                          .encode("utf-16"), doctype),
        "huge-attribute": (ROOT + b'<id root="' + b"1" * 2_000_000 + b'"/>' + END, ("attribut",)),
        "many-attributes": (ROOT + b"<id " + b" ".join(b'a%d="1"' % i for i in range(20_000)) + b"/>" + END,
                            ("attribut",)),
        "deep-nesting": (ROOT + b"<section>" * 200 + b"</section>" * 200 + END, ("profonde", "depth")),
        "very-deep-nesting": (ROOT + b"<section>" * 100_000 + b"</section>" * 100_000 + END,
                              ("profonde", "depth")),
        "oversized": (ROOT + b"<text>" + b"A" * (21 * 1024 * 1024) + b"</text>" + END,
                      ("volumineu", "limit", "too large")),
    }


@pytest.fixture(scope="module")
def hostile(listener):
    return samples(listener.port)


CASES = sorted(samples(0))


def _refusal(call, data: bytes) -> str:
    """Run one entry point; return the text of its refusal (fails if it accepted the input)."""
    started = time.perf_counter()
    text = call(data)
    assert time.perf_counter() - started < 10, "a hostile document took too long to refuse"
    return text


def via_xmlsafe(data: bytes) -> str:
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(data)
    return caught.value.problem.message


def via_cda_import(data: bytes) -> str:
    result = cda_to_plan(data)
    assert result.plan is None
    return " ".join(p.message for p in result.problems)


def via_dmp_soap(data: bytes) -> str:
    with pytest.raises(soap.SoapRefused) as caught:
        soap.read_message(soap.soap_content_type("urn:ihe:iti:2007:RegistryStoredQuery"), data)
    return str(caught.value)


def via_sdo_decision(data: bytes) -> str:
    with pytest.raises(DecisionDocumentError) as caught:
        parse_decision_cda(data)
    return str(caught.value)


def via_xdm_metadata(data: bytes) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # the XML reader, not the ratio check
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", data)
        archive.writestr("INDEX.HTM", "x")
    try:
        package = xdm.read(buffer.getvalue())
    except xdm.XdmRefused as exc:  # an oversized document is an oversized archive
        return exc.reason
    problems = [p for p in package.metadata_problems if p.rule == "xdm-metadata-unreadable"]
    assert problems and not package.entries
    return problems[0].message


ENTRY_POINTS = {"xmlsafe": via_xmlsafe, "cda-import": via_cda_import, "dmp-soap": via_dmp_soap,
                "sdo-decision": via_sdo_decision, "xdm-metadata": via_xdm_metadata}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("case", CASES)
def test_hostile_xml_is_refused_with_its_reason_at_every_reader(hostile, listener, entry, case):
    data, words = hostile[case]
    text = _refusal(ENTRY_POINTS[entry], data)
    assert any(w.lower() in text.lower() for w in words), text
    assert "root:x:0:0" not in text  # /etc/passwd never read into anything
    assert listener.hits == 0, "an external entity or DTD was fetched"


@pytest.mark.parametrize("command", [["cda", "import"], ["cda", "render"], ["cda", "validate"],
                                     ["conformance", "validate"]])
@pytest.mark.parametrize("case", ["xxe-file", "billion-laughs", "utf16-doctype", "huge-attribute", "deep-nesting"])
def test_the_command_line_refuses_hostile_xml_files_naming_the_file_and_reason(hostile, tmp_path, capsys,
                                                                              command, case):
    data, words = hostile[case]
    path = tmp_path / "HOSTILE.XML"
    path.write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [*command, str(path)]
    try:
        code = relais(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    said = out + err
    if command[0] == "conformance" and case == "utf16-doctype":
        words = ("artefact-unknown",)  # the runner detects UTF-8 artefacts only: refused as unknown
    assert str(path) in said
    assert any(w.lower() in said.lower() for w in words), said[-2000:]
    assert "root:x:0:0" not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside it


@pytest.mark.parametrize("case", ["xxe-file", "billion-laughs", "utf16-doctype", "huge-attribute", "deep-nesting"])
def test_a_hostile_cda_received_by_mssante_is_quarantined_and_changes_no_plan(world, hostile, case):
    store, tenant = world.store, world.a
    plan_before = store.get_plan(tenant, world.person).etag
    ins = world.plan["person"]["ins"]["value"]
    counts = receive(store, tenant, [Inbound("mss", "mss-document", f"<m-{case}@mss.example>#SUBSET01/DOC0001.XML",
                                             "text/xml", hostile[case][0],
                                             {"message_id": f"<m-{case}@mss.example>", "ins": ins,
                                              "sender": "dr@mss.example"})])
    assert counts == {"quarantined": 1}
    with store.reading() as conn:
        summary = conn.execute(sa.text("SELECT summary FROM inbound_items WHERE status = 'quarantined'")).scalar()
    assert "illisible" in summary and any(w.lower() in summary.lower() for w in hostile[case][1])
    assert store.get_plan(tenant, world.person).etag == plan_before


def test_hostile_soap_requests_to_the_sandbox_dmp_get_a_soap_fault_over_mutual_tls(tmp_path, hostile):
    import ssl

    import httpx

    from connectors.sandbox.dmp_peer import DmpPeer

    with DmpPeer(tmp_path, finess="510000011", schema_check=False) as peer:
        context = ssl.create_default_context(cafile=str(peer.ca.cert))
        context.load_cert_chain(str(peer.client_cert.cert), str(peer.client_cert.key))
        with httpx.Client(verify=context, timeout=20) as http:
            for case in ("xxe-file", "billion-laughs", "utf16-doctype", "huge-attribute", "deep-nesting"):
                data, words = hostile[case]
                response = http.post(peer.url + "/registry", content=data,
                                     headers={"Content-Type": soap.soap_content_type("urn:ihe:iti:2007:RegistryStoredQuery")})
                code, reason = soap.read_message(response.headers["content-type"], response.content).fault()
                assert code == "InvalidEnvelope" and any(w.lower() in reason.lower() for w in words), (case, reason)
        assert peer.sandbox.registry.entries == {}
