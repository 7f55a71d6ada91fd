"""XDS.b metadata (ebRIM 3.0 `lcm:SubmitObjectsRequest`) against what the DMP requires.

Rules (specs §5.2–5.4; IHE ITI TF-3 §4.2.3; CI-SIS HL7CDA `mapping.md`): the DocumentEntry's
required attributes (creationTime, languageCode, sourcePatientId, serviceStartTime,
legalAuthenticator, title, author, typeCode, classCode, formatCode, healthcareFacilityTypeCode,
practiceSettingCode, confidentialityCode, patientId, uniqueId — plus hash, size and URI in an
XDM package), the SubmissionSet's (submissionTime, contentTypeCode, author, uniqueId, sourceId,
patientId), the HasMember association, one patient for the whole submission (an INS for the
DMP), time formats, and the codes against the CI-SIS value sets read from the TestContenuCDA
`jeuxDeValeurs/` folder (J02, J04, J07, J08): a missing value-set file is an error naming it.
JDV_J66 (typeCode for the DMP) and J10 (formatCode) are not published offline (specs §12): the
codes are checked against J07 and formatCode is reported as not verifiable, never passed silently.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from gateway.conformance.runner.results import Inputs, Issue, problem
from gateway.model.problem import Problem, Severity
from mappings.xds import metadata as M

SOURCE = "relais-xds (IHE ITI TF-3 §4.2.3, CI-SIS mapping XDS)"
NS = {"lcm": M.LCM, "rim": M.RIM}
PREFIX = {M.LCM: "lcm", M.RIM: "rim", "urn:ihe:iti:xds-b:2007": "xdsb",
          "http://www.w3.org/2003/05/soap-envelope": "soap", "http://www.w3.org/2005/08/addressing": "wsa"}
INS_OIDS = {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
TRE_A03 = "1.2.250.1.213.1.1.4.1"
# typeCode → classCode (ASS_X04-CorrespondanceType-Classe, medico-social part, specs §5.4)
CLASS_OF_TYPE = {"80788-3": "44", "28653-4": "10", "34842-5": "11", "83981-1": "10", "88348-8": "11",
                 "18776-5": "44", "80771-9": "44", "83869-8": "44", "77604-7": "44", "56446-8": "95",
                 "74207-2": "11", "EXPORT_DUI": "11", "BIL_AUTO": "10"}
VALUE_SETS = {  # classification scheme → (value-set file, label)
    M.DE_TYPE: ("JDV_J07_XdsTypeCode_CISIS.xml", "typeCode"),
    M.DE_FACILITY: ("JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml", "healthcareFacilityTypeCode"),
    M.DE_PRACTICE: ("JDV_J04_XdsPracticeSettingCode_CISIS.xml", "practiceSettingCode"),
    M.DE_CONFIDENTIALITY: ("JDV_J08_XdsConfidentialityCode_CISIS.xml", "confidentialityCode"),
}
DE_CODES = {M.DE_TYPE: "typeCode", M.DE_CLASS: "classCode", M.DE_FORMAT: "formatCode",
            M.DE_FACILITY: "healthcareFacilityTypeCode", M.DE_PRACTICE: "practiceSettingCode",
            M.DE_CONFIDENTIALITY: "confidentialityCode"}
_DTM = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?)?$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_CX = re.compile(r"^([^^]+)\^\^\^&([0-9.]+)&ISO(\^[A-Z]+)?$")


@dataclass(frozen=True)
class ValueSet:
    file: str
    oid: str
    version: str
    sha256: str
    codes: frozenset[tuple[str, str]]  # (code, code system OID)

    def pin(self) -> dict:
        return {"file": self.file, "id": self.oid, "version": self.version, "sha256": self.sha256}


class ValueSetMissing(Exception):
    pass


@cache
def load_value_set(path: Path) -> ValueSet:
    if not path.is_file():
        raise ValueSetMissing(str(path))
    raw = path.read_bytes()
    root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
    vs = root.find("{urn:ihe:iti:svs:2008}ValueSet")
    codes = frozenset((c.get("code"), c.get("codeSystem")) for c in root.iter("{urn:ihe:iti:svs:2008}Concept"))
    return ValueSet(path.name, vs.get("id", ""), vs.get("dateMaj") or vs.get("revisionDate") or "",
                    hashlib.sha256(raw).hexdigest(), codes)


def xpath(node) -> str:
    """A readable XPath with prefixes: /lcm:SubmitObjectsRequest/rim:RegistryObjectList/rim:ExtrinsicObject[1]."""
    steps = []
    while node is not None and isinstance(node.tag, str):
        q = etree.QName(node)
        parent = node.getparent()
        name = f"{PREFIX.get(q.namespace, 'ns')}:{q.localname}" if q.namespace else q.localname
        if node.tag.endswith("}Slot"):
            name += f"[@name='{node.get('name')}']"
        elif parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


class Checker:
    def __init__(self, value_set_dir: Path | None, *, for_xdm: bool = False, for_dmp: bool = True):
        self.dir = value_set_dir
        self.for_xdm = for_xdm
        self.for_dmp = for_dmp
        self.problems: list[Problem] = []
        self.inputs = Inputs()

    def error(self, rule: str, node, fr: str, en: str = "", severity=Severity.error, where: str | None = None,
              source: str = SOURCE) -> None:
        self.problems.append(problem(rule, fr, en, location=where or xpath(node), severity=severity, source=source))

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def slot(node, name: str) -> list[str]:
        return [v.strip() for v in node.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)]

    @staticmethod
    def external(node, scheme: str):
        found = node.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']", namespaces=NS)
        return found[0] if found else None

    def value_set(self, file: str) -> ValueSet | None:
        if self.dir is None:
            return None
        try:
            vs = load_value_set(self.dir / "jeuxDeValeurs" / file)
        except ValueSetMissing as exc:
            self.error("xds-value-set-missing", None, f"jeu de valeurs introuvable : {exc} — codes non vérifiés",
                       f"value set file not found: {exc}", where="/")
            return None
        if vs.pin() not in self.inputs.value_sets:
            self.inputs.value_sets.append(vs.pin())
        return vs

    # --- the request --------------------------------------------------------------------------
    def check(self, root) -> list[Problem]:
        if etree.QName(root).localname != "SubmitObjectsRequest" or etree.QName(root).namespace != M.LCM:
            self.error("xds-not-submit-objects-request", root, "lcm:SubmitObjectsRequest (ebRIM 3.0) attendu")
            return self.problems
        if self.dir is None:
            self.error("xds-value-set-missing", root, "dossier des jeux de valeurs CI-SIS non fourni (--schematron "
                       "DIR, jeuxDeValeurs/) — codes XDS non vérifiés", where="/")
        objects = root.find("rim:RegistryObjectList", NS)
        if objects is None:
            self.error("xds-registry-object-list-missing", root, "rim:RegistryObjectList absent")
            return self.problems
        entries = objects.findall("rim:ExtrinsicObject", NS)
        packages = objects.findall("rim:RegistryPackage", NS)
        if not entries:
            self.error("xds-document-entry-missing", objects, "aucun DocumentEntry (rim:ExtrinsicObject)")
        ss_ids = {c.get("classifiedObject") for c in root.iter(f"{{{M.RIM}}}Classification")
                  if c.get("classificationNode") == M.SUBMISSION_SET_NODE}
        sets = [p for p in packages if p.get("id") in ss_ids]
        if len(sets) != 1:
            self.error("xds-submission-set-count", objects, f"exactement un SubmissionSet attendu ({len(sets)} trouvé(s) : "
                       "RegistryPackage classé urn:uuid:a54d6aa5-…)")
        patients = set()
        for entry in entries:
            patients |= self.document_entry(entry)
        for ss in sets:
            patients |= self.submission_set(ss)
        if len(patients) > 1:
            self.error("xds-patient-id-inconsistent", objects, "patientId différent entre DocumentEntry et SubmissionSet : "
                       + ", ".join(sorted(patients)))
        self.associations(objects, {e.get("id") for e in entries}, {s.get("id") for s in sets},
                          {o.get("id") for o in objects})
        return self.problems

    def document_entry(self, entry) -> set[str]:
        if entry.get("objectType") != M.DOCUMENT_ENTRY:
            self.error("xds-de-object-type", entry, f"objectType du DocumentEntry : {M.DOCUMENT_ENTRY} attendu "
                       "(DocumentEntry stable)")
        if not entry.get("mimeType"):
            self.error("xds-de-mime-type", entry, "attribut mimeType absent du DocumentEntry")
        required = ["creationTime", "languageCode", "sourcePatientId", "serviceStartTime", "legalAuthenticator"]
        if self.for_xdm:
            required += ["hash", "size", "URI"]
        for name in required:
            values = self.slot(entry, name)
            if not values or not values[0]:
                self.error("xds-de-slot-missing", entry, f"slot {name} obligatoire absent du DocumentEntry",
                           f"required slot {name} missing")
        for name in ("creationTime", "serviceStartTime", "serviceStopTime"):
            for value in self.slot(entry, name):
                if not _DTM.match(value):
                    self.error("xds-time-format", entry.find(f"rim:Slot[@name='{name}']", NS),
                               f"{name} {value!r} : format DTM AAAA[MM[JJ[hh[mm[ss]]]]] (UTC) attendu")
        for value in self.slot(entry, "size"):
            if not value.isdigit():
                self.error("xds-size-format", entry.find("rim:Slot[@name='size']", NS), f"size {value!r} : entier attendu")
        for value in self.slot(entry, "hash"):
            if not re.fullmatch(r"[0-9a-fA-F]{40}", value):
                self.error("xds-hash-format", entry.find("rim:Slot[@name='hash']", NS),
                           f"hash {value!r} : empreinte SHA-1 hexadécimale (40 caractères) attendue")
        if not entry.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS):
            self.error("xds-de-title-missing", entry, "titre (rim:Name) absent du DocumentEntry")
        self.author(entry, M.DE_AUTHOR)
        codes = {}
        for scheme, label in DE_CODES.items():
            found = [c for c in entry.findall("rim:Classification", NS) if c.get("classificationScheme") == scheme]
            if not found:
                self.error("xds-de-code-missing", entry, f"{label} obligatoire absent du DocumentEntry",
                           f"required {label} missing")
                continue
            if scheme != M.DE_CONFIDENTIALITY and len(found) > 1:
                self.error("xds-de-code-repeated", found[1], f"{label} répété ({len(found)} fois, 1 attendu)")
            for node in found:
                codes.setdefault(scheme, []).append(self.code(node, scheme, label))
        self.code_consistency(entry, codes)
        patient = self.identifier(entry, M.DE_PATIENT_ID, "XDSDocumentEntry.patientId")
        unique = self.external(entry, M.DE_UNIQUE_ID)
        if unique is None or not unique.get("value"):
            self.error("xds-de-unique-id-missing", entry, "uniqueId absent du DocumentEntry")
        else:
            root_part = unique.get("value").split("^")[0]
            if not _OID.match(root_part) or len(unique.get("value")) > 64:
                self.error("xds-de-unique-id-format", unique, f"uniqueId {unique.get('value')!r} : OID[^extension] "
                           "de 64 caractères au plus attendu")
        return {patient} if patient else set()

    def identifier(self, owner, scheme: str, label: str) -> str | None:
        node = self.external(owner, scheme)
        if node is None or not node.get("value"):
            self.error("xds-patient-id-missing", owner, f"{label} absent")
            return None
        value = node.get("value")
        found = _CX.match(value)
        if not found:
            self.error("xds-patient-id-format", node, f"{label} {value!r} : format CX valeur^^^&OID&ISO attendu")
        elif self.for_dmp and found.group(2) not in INS_OIDS:
            self.error("xds-patient-id-not-ins", node, f"{label} {value!r} : le DMP indexe sur l'INS (OID "
                       "1.2.250.1.213.1.4.8/9/10/11), pas sur un identifiant local")
        return value

    def code(self, node, scheme: str, label: str) -> tuple[str, str]:
        value = node.get("nodeRepresentation") or ""
        system = (self.slot(node, "codingScheme") or [""])[0]
        if not value:
            self.error("xds-code-empty", node, f"{label} : nodeRepresentation vide")
        if not system:
            self.error("xds-code-system-missing", node, f"{label} {value} : slot codingScheme absent")
        if not node.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS):
            self.error("xds-code-display-missing", node, f"{label} {value} : libellé (rim:Name) absent",
                       severity=Severity.warning)
        if scheme in VALUE_SETS and value:
            vs = self.value_set(VALUE_SETS[scheme][0])
            if vs is not None and (value, system) not in vs.codes:
                known = any(c == value for c, _ in vs.codes)
                hint = " (code connu sous un autre système de codage)" if known else ""
                self.error("xds-code-not-in-value-set", node,
                           f"{label} {value} ({system}) hors du jeu de valeurs {vs.file}{hint}",
                           f"{label} {value} ({system}) not in {vs.file}",
                           source=f"{vs.file} ({vs.oid}, version {vs.version}, sha256 {vs.sha256[:12]})")
        if scheme == M.DE_CLASS and value and system != TRE_A03:
            self.error("xds-code-system-wrong", node, f"classCode {value} : système {TRE_A03} (TRE_A03) attendu, "
                       f"trouvé {system or 'aucun'}")
        if scheme == M.DE_FORMAT and value:
            self.error("xds-code-unverifiable", node, f"formatCode {value} non vérifiable hors ligne (JDV_J10 / "
                       "JDV_J60-FormatCode-DMP non publiés dans les jeux de valeurs disponibles)",
                       severity=Severity.information)
        return value, system

    def code_consistency(self, entry, codes: dict) -> None:
        types = codes.get(M.DE_TYPE) or []
        classes = codes.get(M.DE_CLASS) or []
        if types and classes and types[0][0] in CLASS_OF_TYPE and classes[0][0] != CLASS_OF_TYPE[types[0][0]]:
            node = next(c for c in entry.findall("rim:Classification", NS) if c.get("classificationScheme") == M.DE_CLASS)
            self.error("xds-class-code-inconsistent", node, f"classCode {classes[0][0]} incohérent avec le typeCode "
                       f"{types[0][0]} : {CLASS_OF_TYPE[types[0][0]]} attendu (ASS_X04)")
        if self.for_dmp and types:
            self.error("xds-type-code-dmp-unverifiable", entry, "JDV_J66-TypeCode-DMP non disponible : typeCode vérifié "
                       "contre JDV_J07 (CI-SIS) seulement", severity=Severity.information, where=xpath(entry))

    def author(self, owner, scheme: str) -> None:
        authors = [c for c in owner.findall("rim:Classification", NS) if c.get("classificationScheme") == scheme]
        if not authors:
            self.error("xds-author-missing", owner, "auteur (Classification author) absent")
            return
        for node in authors:
            if not (self.slot(node, "authorPerson") or self.slot(node, "authorInstitution")):
                self.error("xds-author-empty", node, "auteur sans authorPerson ni authorInstitution")

    def submission_set(self, ss) -> set[str]:
        if not self.slot(ss, "submissionTime"):
            self.error("xds-ss-slot-missing", ss, "slot submissionTime obligatoire absent du SubmissionSet")
        for value in self.slot(ss, "submissionTime"):
            if not _DTM.match(value):
                self.error("xds-time-format", ss.find("rim:Slot[@name='submissionTime']", NS),
                           f"submissionTime {value!r} : format DTM attendu")
        self.author(ss, M.SS_AUTHOR)
        if not [c for c in ss.findall("rim:Classification", NS) if c.get("classificationScheme") == M.SS_CONTENT_TYPE]:
            self.error("xds-ss-content-type-missing", ss, "contentTypeCode obligatoire absent du SubmissionSet")
        for scheme, label in ((M.SS_UNIQUE_ID, "uniqueId"), (M.SS_SOURCE_ID, "sourceId")):
            node = self.external(ss, scheme)
            if node is None or not node.get("value"):
                self.error("xds-ss-identifier-missing", ss, f"{label} obligatoire absent du SubmissionSet")
            elif not _OID.match(node.get("value")):
                self.error("xds-ss-identifier-format", node, f"{label} {node.get('value')!r} : OID attendu")
        patient = self.identifier(ss, M.SS_PATIENT_ID, "XDSSubmissionSet.patientId")
        return {patient} if patient else set()

    def associations(self, objects, entries: set, sets: set, ids: set) -> None:
        members = set()
        for node in objects.findall("rim:Association", NS):
            kind, source, target = node.get("associationType"), node.get("sourceObject"), node.get("targetObject")
            if kind == M.HAS_MEMBER:
                if source in sets and target in entries:
                    members.add(target)
                    if self.slot(node, "SubmissionSetStatus") != ["Original"]:
                        self.error("xds-has-member-status", node, "HasMember : slot SubmissionSetStatus = Original attendu")
            elif kind == M.RPLC:
                if source not in entries:
                    self.error("xds-association-dangling", node, f"RPLC depuis {source} : DocumentEntry absent de la soumission")
                if not (target or "").startswith("urn:uuid:"):
                    self.error("xds-rplc-target", node, f"RPLC vers {target!r} : entryUUID (urn:uuid:…) du document remplacé attendu")
                continue
            for end in (source, target):
                if end not in ids:
                    self.error("xds-association-dangling", node, f"association vers {end} : objet absent de la soumission")
        for entry in sorted(entries - members):
            self.error("xds-has-member-missing", objects, f"DocumentEntry {entry} non rattaché au SubmissionSet (HasMember)")


def check_metadata(root, value_set_dir: Path | None, *, for_xdm: bool = False,
                   for_dmp: bool = True) -> tuple[list[Issue], Inputs]:
    checker = Checker(value_set_dir, for_xdm=for_xdm, for_dmp=for_dmp)
    checker.check(root)
    return [Issue.of(p) for p in checker.problems], checker.inputs


def document_entries(root) -> list:
    return root.xpath("rim:RegistryObjectList/rim:ExtrinsicObject", namespaces=NS)
