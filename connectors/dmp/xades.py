"""The XAdES signature of an ITI-41 submission set (specs §5.1: "the submission set is signed
XAdES"; IHE DSG detached signature, formatCode `urn:ihe:iti:dsg:detached:2014`, TRE_A11
"Signature détachée"): a standalone XML signature document, signed with the structure's seal
certificate, whose `ds:Manifest` lists every document of the submission by its uniqueId
(`urn:oid:…`) with its SHA-256 digest. It travels as one more document of the submission,
described by its own DocumentEntry and linked to the documents it signs (`signs` associations,
mappings.xds `add_signature`).

Signing and verification are signxml's XAdES (enveloping the Manifest; XAdES-BES signed
properties: signing time, signing certificate digest, data object format), canonicalisation
C14N 1.1 (signxml's default; the exclusive form did not verify after serialisation). The
Manifest references are checked against the documents by `verify`, since they point outside
the signature document.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
NS = {"ds": DS, "xades": XADES}


class XadesRefused(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    signer: x509.Certificate
    unique_ids: tuple[str, ...]  # the documents the Manifest covers


def _manifest(documents: list[tuple[str, bytes]]) -> etree._Element:
    manifest = etree.Element(f"{{{DS}}}Manifest", Id="IHEManifest", nsmap={"ds": DS})
    for unique_id, content in documents:
        ref = etree.SubElement(manifest, f"{{{DS}}}Reference", URI=f"urn:oid:{unique_id}")
        etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=SHA256)
        etree.SubElement(ref, f"{{{DS}}}DigestValue").text = base64.b64encode(hashlib.sha256(content).digest()).decode()
    return manifest


def sign(documents: list[tuple[str, bytes]], seal) -> bytes:
    """The signature document (UTF-8 XML) over `documents` = [(uniqueId, bytes)…]."""
    from signxml import CanonicalizationMethod, SignatureConstructionMethod, SignatureMethod
    from signxml.xades import XAdESDataObjectFormat, XAdESSigner

    signer = XAdESSigner(method=SignatureConstructionMethod.enveloping, signature_algorithm=SignatureMethod.RSA_SHA256,
                         c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
                         data_object_format=XAdESDataObjectFormat(Description="Manifeste du lot de soumission",
                                                                  MimeType="text/xml"))
    signature = signer.sign(_manifest(documents), key=seal.private_key, cert=[seal.certificate])
    return etree.tostring(signature, xml_declaration=True, encoding="UTF-8")


def verify(signature: bytes, trusted: list[x509.Certificate], documents: dict[str, bytes]) -> Signed:
    """Signature valid, by a registered seal, and its Manifest covering exactly `documents`
    ({uniqueId: bytes}) with matching digests."""
    from signxml import InvalidCertificate, InvalidDigest, InvalidSignature
    from signxml.exceptions import InvalidInput
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    try:
        root = etree.fromstring(signature, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise XadesRefused(f"signature du lot mal formée : {exc}") from None
    pem = "".join(root.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", "", NS).split())
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(pem))
    except ValueError:
        raise XadesRefused("signature du lot : certificat illisible") from None
    if not any(cert == t for t in trusted):
        raise XadesRefused("signature du lot par un certificat de cachet non enregistré auprès du DMP")
    try:
        results = XAdESVerifier().verify(signature, x509_cert=cert,
                                         expect_config=XAdESSignatureConfiguration(expect_references=3))
    except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as exc:
        raise XadesRefused(f"signature XAdES du lot invalide : {exc}") from None
    manifest = next((r.signed_xml.find("ds:Manifest", NS) for r in results
                     if r.signed_xml is not None and r.signed_xml.tag == f"{{{DS}}}Object"), None)
    if manifest is None:
        raise XadesRefused("signature du lot sans manifeste signé (ds:Manifest)")
    covered = {}
    for ref in manifest.iterfind("ds:Reference", NS):
        covered[ref.get("URI", "").removeprefix("urn:oid:")] = ref.findtext("ds:DigestValue", "", NS).strip()
    if set(covered) != set(documents):
        raise XadesRefused(f"la signature du lot couvre {sorted(covered)}, le lot contient {sorted(documents)}")
    for unique_id, content in documents.items():
        if covered[unique_id] != base64.b64encode(hashlib.sha256(content).digest()).decode():
            raise XadesRefused(f"empreinte du document {unique_id} différente de celle de la signature du lot")
    return Signed(cert, tuple(sorted(covered)))
