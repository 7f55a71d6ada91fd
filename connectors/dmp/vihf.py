"""The VIHF (Vecteur d'Identification et d'Habilitation Formelle): the SAML 2.0 assertion every
DMP request carries in its WS-Security header (specs §5.1, CI-SIS "Volet Transport Synchrone
Client Lourd"; example `official/mss/vihf-automate-example.xml`).

`build(claims, seal)` → the signed `saml:Assertion` element: XML-DSig enveloped signature,
RSA-SHA256, exclusive c14n, placed right after `Issuer` (SAML 2.0 schema order), the structure's
seal certificate in KeyInfo and its subject DN as `Issuer`. `verify(assertion, trusted)` → the
claims, or `VihfRefused` with the WS-Security fault code a DMP answers.

Decision (specs §11.6, VIHF_Version "4.0" in the mapping table, "3.0" in the 2024 example):
Relais sends **3.0** by default — the version of the only concrete assertion in the sources,
from a deployed automaton — and the value is a setting (`vihf_version`); the sandbox accepts
3.0 and 4.0 and refuses anything else.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"saml": SAML, "ds": DS, "hl7": HL7}
X509_SUBJECT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
AUTHN_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"

VERSIONS = ("3.0", "4.0")  # specs §11.6: both accepted by the sandbox
DEFAULT_VERSION = "3.0"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_RESOURCE = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_SUBJECT = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
REQUIRED = ("VIHF_Version", "Authentification_Mode", "Identifiant_Structure", "Secteur_Activite", ATTR_SUBJECT,
            ATTR_ROLE, ATTR_RESOURCE, "Ressource_URN", ATTR_PURPOSE, "LPS_ID", "LPS_Nom", "LPS_Version")
# Mode d'accès (TRE_R?? "mode acces VIHF 1.0", 1.2.250.1.213.1.1.4.248): normal, bris de glace, centre 15.
ACCESS_MODES = {"normal": "Accès normal", "bris_de_glace": "Accès en mode bris de glace",
                "centre_15": "Accès en mode centre de régulation"}
ACCESS_MODE_SYSTEM = "1.2.250.1.213.1.1.4.248"
# Secteur d'activité: JDV_J61-HealthcareFacilityTypeCode-DMP codes are TRE_R02 codes.
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"
SECRET_CONNECTION = ("INVISIBLE_REPRESENTANTS_LEGAUX", "1.2.250.1.213.1.1.4.13",
                     "Non visible par les représentants légaux du patient")


class VihfRefused(ValueError):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code  # wsse:InvalidSecurity | wsse:FailedCheck | wsse:FailedAuthentication | …
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What the assertion says: identity, role, sector, patient, mode of access, software."""

    structure_id: str  # Identifiant_Structure (idNat_Struct, e.g. 1 + FINESS)
    subject_name_id: str  # Subject/NameID: the professional, or the person responsible (automaton)
    subject_id: str  # xspa subject-id: a name, or "software, model, service" for an automaton
    patient: str  # resource-id: the INS as CX (matricule^^^&OID&ISO^NH)
    sector: str = "SA16"  # Secteur_Activite (JDV_J61): SA16 établissement pour personnes handicapées
    role: tuple[str, str, str] = ("AUTOMATE", "1.2.250.1.213.1.1.4.6", "AUTOMATE")  # JDV_J65 (CE)
    second_role: tuple[str, str, str] | None = None  # savoir-faire / role TRE_R85 when it applies
    access_mode: str = "normal"
    secret_connection: bool = False  # a minor's secrecy: documents invisible to legal representatives
    lps_id: str = ""
    lps_name: str = "Relais"
    lps_version: str = "0.1.0"
    lps_homologation: str | None = None  # LPS_ID_HOMOLOGATION_DMP
    version: str = DEFAULT_VERSION
    authentication_mode: str = "INDIRECTE"
    issued_at: dt.datetime | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Seal:
    """The structure's seal certificate (certificat de cachet) and its private key."""

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def from_files(cls, cert: str, key: str) -> "Seal":
        with open(cert, "rb") as c, open(key, "rb") as k:
            return cls(c.read(), k.read())

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @cached_property
    def private_key(self):
        """Loaded once: checking an RSA key costs ~100 ms, more than the signature itself."""
        return serialization.load_pem_private_key(self.key_pem, password=None)


def _el(parent, tag: str, text: str | None = None, ns: str = SAML, **attrs) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def _attribute(statement, name: str, value: str | None = None) -> etree._Element:
    attr = _el(statement, "Attribute", Name=name)
    holder = _el(attr, "AttributeValue")
    if value is not None:
        holder.text = value
    return holder


def _ce(holder, tag: str, code: tuple[str, str, str], system_name: str | None = None) -> None:
    node = etree.SubElement(holder, f"{{{HL7}}}{tag}", nsmap={None: HL7})
    node.set("code", code[0])
    node.set("codeSystem", code[1])
    if system_name:
        node.set("codeSystemName", system_name)
    node.set("displayName", code[2])
    node.set(f"{{{XSI}}}type", "CE")


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def subject_dn(cert: x509.Certificate) -> str:
    """The certificate subject as Issuer text: RFC 4514, most significant RDN first (C=FR, …)."""
    return ", ".join(reversed(cert.subject.rfc4514_string().split(",")))


def unsigned(claims: Claims, issuer: str, *, now: dt.datetime) -> etree._Element:
    """The assertion before signing (with a ds:Signature placeholder after Issuer)."""
    moment = claims.issued_at or now
    assertion = etree.Element(f"{{{SAML}}}Assertion", nsmap={None: SAML, "xsi": XSI},
                              ID=f"_{uuid.uuid4()}", IssueInstant=_instant(moment), Version="2.0")
    _el(assertion, "Issuer", issuer, Format=X509_SUBJECT)
    etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    _el(_el(assertion, "Subject"), "NameID", claims.subject_name_id)
    authn = _el(assertion, "AuthnStatement", AuthnInstant=_instant(moment))
    _el(_el(authn, "AuthnContext"), "AuthnContextClassRef", AUTHN_UNSPECIFIED)
    statement = _el(assertion, "AttributeStatement")
    _attribute(statement, "VIHF_Version", claims.version)
    _attribute(statement, "Authentification_Mode", claims.authentication_mode)
    _attribute(statement, "Secteur_Activite", f"{claims.sector}^{SECTOR_SYSTEM}")
    _attribute(statement, ATTR_RESOURCE, claims.patient)
    _attribute(statement, "Ressource_URN", "urn:dmp")
    _attribute(statement, ATTR_SUBJECT, claims.subject_id)
    _attribute(statement, "Identifiant_Structure", claims.structure_id)
    _attribute(statement, "LPS_Version", claims.lps_version)
    _attribute(statement, "LPS_ID", claims.lps_id)
    _attribute(statement, "LPS_Nom", claims.lps_name)
    if claims.lps_homologation:
        _attribute(statement, "LPS_ID_HOMOLOGATION_DMP", claims.lps_homologation)
    mode = claims.access_mode
    _ce(_attribute(statement, ATTR_PURPOSE), "PurposeOfUse",
        (mode, ACCESS_MODE_SYSTEM, ACCESS_MODES.get(mode, mode)), "mode acces VIHF 1.0")
    roles = _el(statement, "Attribute", Name=ATTR_ROLE)
    _ce(_el(roles, "AttributeValue"), "Role", claims.role)
    if claims.second_role:
        _ce(_el(roles, "AttributeValue"), "Role", claims.second_role)
    if claims.secret_connection:
        _ce(_attribute(statement, ATTR_CONFIDENTIALITY), "ConfidentialityCode", SECRET_CONNECTION)
    return assertion


def build(claims: Claims, seal: Seal, *, now: dt.datetime) -> etree._Element:
    """The signed assertion (XML-DSig enveloped, RSA-SHA256, exc-c14n, certificate in KeyInfo)."""
    from signxml import CanonicalizationMethod, SignatureMethod, XMLSigner

    cert = seal.certificate
    assertion = unsigned(claims, subject_dn(cert), now=now)
    signer = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signer.namespaces = {"ds": DS}
    return signer.sign(assertion, key=seal.private_key, cert=[cert], reference_uri=assertion.get("ID"), id_attribute="ID")


# ------------------------------------------------------------------------- verify


def _values(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    out: dict[str, list[etree._Element]] = {}
    for attr in assertion.iterfind("saml:AttributeStatement/saml:Attribute", NS):
        out.setdefault(attr.get("Name", ""), []).extend(attr.iterfind("saml:AttributeValue", NS))
    return out


def _text(values, name: str) -> str:
    nodes = values.get(name) or []
    return (nodes[0].text or "").strip() if nodes else ""


def _code(values, name: str, tag: str) -> tuple[str, str, str] | None:
    nodes = values.get(name) or []
    found = nodes[0].find(f"hl7:{tag}", NS) if nodes else None
    return (found.get("code", ""), found.get("codeSystem", ""), found.get("displayName", "")) if found is not None else None


def verify(assertion: etree._Element, trusted: list[x509.Certificate], *, now: dt.datetime,
           max_age: dt.timedelta = dt.timedelta(minutes=10)) -> Claims:
    """Check the signature against the trusted seal certificates (the structures registered with
    the DMP), the issuer, the freshness, the version and every required attribute."""
    from signxml import InvalidCertificate, InvalidDigest, InvalidSignature, SignatureMethod, XMLVerifier
    from signxml.exceptions import InvalidInput
    from signxml.verifier import SignatureConfiguration

    if assertion is None or assertion.tag != f"{{{SAML}}}Assertion":
        raise VihfRefused("wsse:InvalidSecurity", "VIHF absent : assertion SAML 2.0 attendue dans wsse:Security")
    signature = assertion.find("ds:Signature", NS)
    if signature is None:
        raise VihfRefused("wsse:InvalidSecurity", "VIHF non signé (ds:Signature absente)")
    pem = "".join((signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", "", NS)).split())
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(pem))
    except ValueError:
        raise VihfRefused("wsse:InvalidSecurity", "VIHF : certificat de signature illisible") from None
    if not any(cert == t for t in trusted):
        raise VihfRefused("wsse:FailedAuthentication",
                          f"VIHF signé par un certificat non enregistré auprès du DMP ({subject_dn(cert)})")
    config = SignatureConfiguration(expect_references=1, signature_methods=frozenset({SignatureMethod.RSA_SHA256}))
    try:
        XMLVerifier().verify(etree.fromstring(etree.tostring(assertion)), x509_cert=cert, id_attribute="ID",
                             expect_config=config)
    except (InvalidSignature, InvalidDigest, InvalidCertificate, InvalidInput) as exc:
        raise VihfRefused("wsse:FailedCheck", f"signature du VIHF invalide : {exc}") from None
    issuer = assertion.findtext("saml:Issuer", "", NS).strip()
    if issuer != subject_dn(cert):
        raise VihfRefused("wsse:FailedAuthentication",
                          f"VIHF : Issuer ({issuer}) différent du sujet du certificat de cachet ({subject_dn(cert)})")
    try:
        issued = dt.datetime.fromisoformat(assertion.get("IssueInstant", "").replace("Z", "+00:00"))
    except ValueError:
        raise VihfRefused("wsse:InvalidSecurity", "VIHF : IssueInstant illisible") from None
    if issued.tzinfo is None or abs(now - issued) > max_age:
        raise VihfRefused("wsse:MessageExpired", f"VIHF émis le {assertion.get('IssueInstant')} : périmé "
                          f"(validité {int(max_age.total_seconds() // 60)} min)")
    values = _values(assertion)
    missing = [n for n in REQUIRED if not values.get(n)]
    if missing:
        raise VihfRefused("wsse:InvalidSecurity", f"VIHF incomplet : attribut(s) {', '.join(missing)} absent(s)")
    version = _text(values, "VIHF_Version")
    if version not in VERSIONS:
        raise VihfRefused("wsse:InvalidSecurity", f"VIHF_Version {version} non prise en charge ({' ou '.join(VERSIONS)})")
    if _text(values, "Ressource_URN") != "urn:dmp":
        raise VihfRefused("wsse:InvalidSecurity", "VIHF : Ressource_URN doit valoir urn:dmp")
    sector, _, system = _text(values, "Secteur_Activite").partition("^")
    if system != SECTOR_SYSTEM:
        raise VihfRefused("wsse:InvalidSecurity", f"VIHF : Secteur_Activite hors JDV_J61 ({sector}^{system})")
    role, purpose = _code(values, ATTR_ROLE, "Role"), _code(values, ATTR_PURPOSE, "PurposeOfUse")
    if role is None or purpose is None:
        raise VihfRefused("wsse:InvalidSecurity", "VIHF : rôle ou mode d'accès non codé (CE attendu)")
    if purpose[0] not in ACCESS_MODES or purpose[1] != ACCESS_MODE_SYSTEM:
        raise VihfRefused("wsse:InvalidSecurity", f"VIHF : mode d'accès inconnu ({purpose[0]})")
    secret = _code(values, ATTR_CONFIDENTIALITY, "ConfidentialityCode")
    return Claims(
        structure_id=_text(values, "Identifiant_Structure"),
        subject_name_id=assertion.findtext("saml:Subject/saml:NameID", "", NS).strip(),
        subject_id=_text(values, ATTR_SUBJECT), patient=_text(values, ATTR_RESOURCE), sector=sector,
        role=role, access_mode=purpose[0], secret_connection=bool(secret and secret[0] == SECRET_CONNECTION[0]),
        lps_id=_text(values, "LPS_ID"), lps_name=_text(values, "LPS_Nom"), lps_version=_text(values, "LPS_Version"),
        lps_homologation=_text(values, "LPS_ID_HOMOLOGATION_DMP") or None, version=version,
        authentication_mode=_text(values, "Authentification_Mode"), issued_at=issued)
