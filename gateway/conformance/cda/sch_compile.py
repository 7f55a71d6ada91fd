"""ISO Schematron (queryBinding xslt2) -> XSLT 3.0 stylesheet producing SVRL.

The three classic stages of the ISO skeleton, written for the CI-SIS sets:
1. inclusion (`sch:include`, recursively), failing loudly on a missing file; a file whose name
   differs only by case is accepted *and reported* (TestContenuCDA `IHE.sch` includes
   `E_directiveAnticipee_int.sch`, the file is `E_directiveanticipee_int.sch`: specs §11.11);
2. expansion of abstract patterns (`is-a` + `param`) and abstract rules (`extends`);
3. generation of one XSLT mode per active pattern (phase `defaultPhase`, else all patterns),
   the rules of a pattern as templates in document order (first match wins), asserts and
   reports as SVRL `failed-assert` / `successful-report` with the node's `path()` location.

Every document the rules read (`doc()`/`document()` of a value-set file, relative to the main
schematron as the ISO convention puts the compiled XSLT beside it) is resolved at compile time
to an absolute URI and must exist: a missing value-set file fails the compilation, naming it.
An ART-DECOR `voc-<OID>-DYNAMIC.xml` missing from the set is rebuilt from the IHE-SVS file of
the same OID in `jeuxDeValeurs/` when there is one, and the substitution is reported.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

SCH = "http://purl.oclc.org/dsdl/schematron"
XSL = "http://www.w3.org/1999/XSL/Transform"
SVRL = "http://purl.oclc.org/dsdl/svrl"
SVS = "urn:ihe:iti:svs:2008"
COMPILER_VERSION = "relais-sch-1"
_S = f"{{{SCH}}}"
_LITERAL = re.compile(r"""(['"])([^'"]*?\.xml)\1""")
_VOC = re.compile(r"voc-([0-9.]+)-(?:DYNAMIC|STATIC)\.xml$")


class SchematronSetError(RuntimeError):
    """A schematron set that cannot be used as it is (missing include or value-set file)."""


@dataclass
class Compiled:
    xslt: str
    files: list[Path] = field(default_factory=list)  # every file read (for the set's sha256)
    notes: list[str] = field(default_factory=list)  # substitutions and case fixes, reported
    documents: dict[str, str] = field(default_factory=dict)  # stylesheet param -> value-set URI
    title: str = ""
    version: str = ""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
                           remove_comments=True)


def _resolve_file(base: Path, href: str, notes: list[str], what: str) -> Path:
    target = (base / href).resolve()
    if target.is_file():
        return target
    folder = target.parent
    if folder.is_dir():
        matches = [p for p in folder.iterdir() if p.name.lower() == target.name.lower()]
        if len(matches) == 1:
            notes.append(f"{what} « {href} » résolu sans tenir compte de la casse : {matches[0].name} "
                         "(défaut du jeu officiel, specs §11.11)")
            return matches[0]
    raise SchematronSetError(f"{what} introuvable : {href} (cherché en {target})")


def _include(node: etree._Element, base: Path, files: list[Path], notes: list[str], depth: int = 0) -> None:
    if depth > 20:
        raise SchematronSetError("inclusions de schématrons trop profondes (boucle ?)")
    for inc in list(node.iter(f"{_S}include")):
        path = _resolve_file(base, inc.get("href", ""), notes, "fichier inclus")
        files.append(path)
        included = etree.parse(str(path), _parser()).getroot()
        _include(included, path.parent, files, notes, depth + 1)
        parent = inc.getparent()
        if included.tag == f"{_S}schema":  # a whole schema included: take its patterns
            index = parent.index(inc)
            for child in list(included):
                parent.insert(index, child)
                index += 1
            parent.remove(inc)
        else:
            included.tail = inc.tail
            parent.replace(inc, included)


def _substitute(text: str, params: dict[str, str]) -> str:
    for name in sorted(params, key=len, reverse=True):
        text = re.sub(rf"\${re.escape(name)}(?![\w.\-])", lambda _m, v=params[name]: v, text)
    return text


def _expand_abstract_patterns(schema: etree._Element) -> None:
    abstract = {p.get("id"): p for p in schema.iter(f"{_S}pattern") if p.get("abstract") == "true"}
    for pattern in list(schema.iter(f"{_S}pattern")):
        base_id = pattern.get("is-a")
        if not base_id:
            continue
        if base_id not in abstract:
            raise SchematronSetError(f"motif abstrait introuvable : {base_id}")
        params = {p.get("name"): p.get("value") for p in pattern.findall(f"{_S}param")}
        for param in pattern.findall(f"{_S}param"):
            pattern.remove(param)
        for child in abstract[base_id]:
            clone = copy.deepcopy(child)
            for node in clone.iter():
                for key, value in node.attrib.items():
                    node.set(key, _substitute(value, params))
            pattern.append(clone)
        del pattern.attrib["is-a"]
    for pattern in abstract.values():
        pattern.getparent().remove(pattern)


def _expand_rules(schema: etree._Element) -> None:
    abstract = {r.get("id"): r for r in schema.iter(f"{_S}rule") if r.get("abstract") == "true"}

    def expand(rule: etree._Element, seen: tuple = ()) -> None:
        for ext in rule.findall(f"{_S}extends"):
            target = abstract.get(ext.get("rule"))
            if target is None:
                raise SchematronSetError(f"règle abstraite introuvable : {ext.get('rule')}")
            if target.get("id") in seen:
                raise SchematronSetError(f"extension circulaire de règle : {target.get('id')}")
            clone = copy.deepcopy(target)
            expand(clone, seen + (target.get("id"),))
            index = rule.index(ext)
            for child in list(clone):
                rule.insert(index, child)
                index += 1
            rule.remove(ext)

    for rule in list(schema.iter(f"{_S}rule")):
        if rule.get("abstract") != "true":
            expand(rule)
    for rule in abstract.values():
        rule.getparent().remove(rule)


def _svs_to_voc(svs_path: Path, oid: str, target: Path) -> None:
    """An ART-DECOR value-set file (`/*/valueSet/conceptList/concept/@code`) from the IHE-SVS
    file of the same value set: same codes, same code systems."""
    svs = etree.parse(str(svs_path), _parser()).getroot()
    root = etree.Element("valueSets")
    vs = etree.SubElement(root, "valueSet", id=oid, source=svs_path.name)
    concepts = etree.SubElement(vs, "conceptList")
    for concept in svs.iter(f"{{{SVS}}}Concept"):
        etree.SubElement(concepts, "concept", code=concept.get("code", ""),
                         codeSystem=concept.get("codeSystem", ""), displayName=concept.get("displayName", ""))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


class _Documents:
    """Rewrites relative value-set paths to absolute URIs, checking each one exists."""

    def __init__(self, base: Path, value_sets: Path | None, cache: Path, files: list[Path], notes: list[str]):
        self.base, self.value_sets, self.cache = base, value_sets, cache
        self.files, self.notes = files, notes
        self._svs_by_oid: dict[str, Path] | None = None
        self._done: dict[str, str] = {}

    def _svs(self) -> dict[str, Path]:
        if self._svs_by_oid is None:
            self._svs_by_oid = {}
            if self.value_sets and self.value_sets.is_dir():
                for path in sorted(self.value_sets.glob("*.xml")):
                    head = path.read_bytes()[:4000].decode("utf-8", "replace")
                    match = re.search(r'<ValueSet[^>]*\bid="([0-9.]+)"', head)
                    if match:
                        self._svs_by_oid.setdefault(match.group(1), path)
        return self._svs_by_oid

    def resolve(self, href: str) -> str:
        if href in self._done:
            return self._done[href]
        target = (self.base / href).resolve()
        if not target.is_file():
            match = _VOC.search(href)
            svs = self._svs().get(match.group(1)) if match else None
            if svs is None:
                raise SchematronSetError(f"fichier de jeu de valeurs introuvable : {href} (cherché en {target})")
            rebuilt = self.cache / "voc" / Path(href).name
            _svs_to_voc(svs, match.group(1), rebuilt)
            self.notes.append(f"jeu de valeurs « {href} » absent du jeu : reconstruit depuis "
                              f"jeuxDeValeurs/{svs.name} (même OID {match.group(1)})")
            self.files.append(svs)
            target = rebuilt
        else:
            self.files.append(target)
        self._done[href] = target.as_uri()
        return self._done[href]

    def rewrite(self, expression: str, needed: bool = True, name: str = "") -> str:
        def fix(m: re.Match) -> str:
            literal = m.group(2)
            if "://" in literal or literal.startswith("/"):
                return m.group(0)
            try:
                return f"{m.group(1)}{self.resolve(literal)}{m.group(1)}"
            except SchematronSetError:
                if needed:
                    raise
                self.notes.append(f"variable « ${name} » déclarée vers un fichier absent ({literal}) "
                                  "mais utilisée par aucune règle active : ignorée")
                return m.group(0)

        return _LITERAL.sub(fix, expression)


def _split_union(pattern: str) -> list[str]:
    """Top-level branches of an XSLT match pattern `a | b[c | d]` -> ['a', 'b[c | d]']."""
    branches, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(pattern):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "|" and depth == 0:
            branches.append(pattern[start:index].strip())
            start = index + 1
    branches.append(pattern[start:].strip())
    return [b for b in branches if b]


_BY_TEMPLATE = re.compile(
    r"^//(\*|[\w-]+:[\w-]+)\[([\w-]+):templateId(?:/@root\s*=\s*(['\"])([0-9.]+)\3|\[@root\s*=\s*(['\"])([0-9.]+)\5\])\](.*)$",
    re.DOTALL,
)
TEMPLATE_KEY = "relais-template"
NAME_KEY = "relais-element"
_BY_NAME = re.compile(r"^//([\w-]+):([\w.-]+)(.*)$", re.DOTALL)
HL7 = "urn:hl7-org:v3"


def _fast(step: str, nsmap: dict[str, str]) -> str:
    """`//*[cda:templateId/@root='X']/rest` -> `key('relais-template', 'X')/rest`: the set of
    elements declaring a template, found through an index instead of a scan of the tree."""
    match = _BY_TEMPLATE.match(step)
    if not match or nsmap.get(match.group(2)) != HL7:
        named = _BY_NAME.match(step)
        if named and named.group(1) in nsmap and (not named.group(3) or named.group(3)[0] in "[/"):
            # `//p:name…` -> the elements of that name from an index (same nodes, same order)
            return f"key('{NAME_KEY}', 'Q{{{nsmap[named.group(1)]}}}{named.group(2)}'){named.group(3)}"
        return step
    name, root, rest = match.group(1), match.group(4) or match.group(6), match.group(7)
    if rest and not rest.startswith(("/", "[")):
        return step
    head = f"key('{TEMPLATE_KEY}', '{root}')"
    if name != "*":
        head += f"[self::{name}]"
    return head + rest


_INNER = re.compile(r"(^|[\s(,=|!<>+*\[])//([\w-]+):([\w.-]+)")


def _fast_expr(expression: str, nsmap: dict[str, str]) -> str:
    """`//p:name` anywhere in an expression (outside string literals, at the start of a path)
    -> the same elements through the name index: absolute paths inside asserts no longer scan
    the whole document each time they are evaluated."""
    parts = re.split(r"""('[^']*'|"[^"]*")""", expression)
    for index in range(0, len(parts), 2):
        parts[index] = _INNER.sub(
            lambda m: (f"{m.group(1)}key('{NAME_KEY}', 'Q{{{nsmap[m.group(2)]}}}{m.group(3)}')"
                       if m.group(2) in nsmap else m.group(0)), parts[index])
    return "".join(parts)


def _select(contexts: list[str], nsmap: dict[str, str] | None = None) -> str:
    """The nodes a pattern's rules can match, as one expression: each pattern is visited once
    per matching node instead of walking the whole tree once per pattern (same first-match
    semantics: the union is in document order without duplicates, then the mode's template
    priorities pick the first rule)."""
    steps = []
    for context in contexts:
        for branch in _split_union(context):
            step = branch if branch.startswith("/") else f"//{branch}"
            steps.append(_fast(step, nsmap or {}))
    return " | ".join(f"({step})" for step in steps)


def _message(target: etree._Element, source: etree._Element) -> None:
    """Assertion text: literal text, `value-of`, `name`; other markup keeps its text."""
    if source.text:
        target.append(_xsl_text(source.text))
    for child in source:
        if child.tag == f"{_S}value-of":
            etree.SubElement(target, f"{{{XSL}}}value-of", select=child.get("select"))
        elif child.tag == f"{_S}name":
            etree.SubElement(target, f"{{{XSL}}}value-of", select=f"name({child.get('path', '.')})")
        elif isinstance(child.tag, str):
            _message(target, child)
        if child.tail:
            target.append(_xsl_text(child.tail))


def _xsl_text(text: str) -> etree._Element:
    node = etree.Element(f"{{{XSL}}}text")
    node.text = text
    return node


def _variable(parent: etree._Element, let: etree._Element, docs: _Documents, needed: bool = True,
              nsmap: dict[str, str] | None = None) -> None:
    var = etree.SubElement(parent, f"{{{XSL}}}variable", name=let.get("name"))
    if let.get("value") is not None:
        value = docs.rewrite(let.get("value"), needed, let.get("name"))
        var.set("select", _fast_expr(value, nsmap) if nsmap else value)
    else:
        for child in let:
            var.append(copy.deepcopy(child))


def compile_schematron(main: Path, *, value_sets: Path | None, cache: Path) -> Compiled:
    """Compile one ISO schematron file (and everything it includes) to an XSLT text."""
    files: list[Path] = [main.resolve()]
    notes: list[str] = []
    schema = etree.parse(str(main), _parser()).getroot()
    if schema.tag != f"{_S}schema":
        raise SchematronSetError(f"{main.name} n'est pas un schématron ISO")
    _include(schema, main.parent, files, notes)
    _expand_abstract_patterns(schema)
    _expand_rules(schema)
    docs = _Documents(main.parent, value_sets, cache, files, notes)

    phase_id = schema.get("defaultPhase")
    patterns = [p for p in schema.iter(f"{_S}pattern")]
    lets = list(schema.findall(f"{_S}let"))
    if phase_id and phase_id != "#ALL":
        phase = next((p for p in schema.findall(f"{_S}phase") if p.get("id") == phase_id), None)
        if phase is None:
            raise SchematronSetError(f"phase par défaut introuvable : {phase_id}")
        active = {a.get("pattern") for a in phase.findall(f"{_S}active")}
        patterns = [p for p in patterns if p.get("id") in active]
        lets += phase.findall(f"{_S}let")

    nsmap = {"xsl": XSL, "svrl": SVRL, "xs": "http://www.w3.org/2001/XMLSchema"}
    for ns in schema.iter(f"{_S}ns"):
        nsmap[ns.get("prefix")] = ns.get("uri")
    sheet = etree.Element(f"{{{XSL}}}stylesheet", nsmap=nsmap, version="3.0")
    sheet.set("exclude-result-prefixes", " ".join(p for p in nsmap if p not in ("xsl", "svrl")))
    etree.SubElement(sheet, f"{{{XSL}}}output", method="xml", indent="no")
    etree.SubElement(sheet, f"{{{XSL}}}key", name=TEMPLATE_KEY, match=f"*[Q{{{HL7}}}templateId]",
                     use=f"Q{{{HL7}}}templateId/@root")
    etree.SubElement(sheet, f"{{{XSL}}}key", name=NAME_KEY, match="*",
                     use="'Q{' || namespace-uri() || '}' || local-name()")
    for foreign in schema:
        if isinstance(foreign.tag, str) and etree.QName(foreign).namespace == XSL:
            sheet.append(copy.deepcopy(foreign))
    used = " ".join(
        value for p in patterns for node in p.iter() if isinstance(node.tag, str)
        for key, value in node.attrib.items() if key in ("context", "test", "select", "value", "path")
    ) + " " + " ".join(let.get("value") or "" for let in lets)
    names: dict[str, str] = {}
    for let in lets + [let for p in patterns for let in p.findall(f"{_S}let")]:
        value = let.get("value")
        if let.get("name") in names:
            if names[let.get("name")] != value:
                raise SchematronSetError(f"variable globale « {let.get('name')} » définie deux fois différemment")
            continue
        names[let.get("name")] = value
        _variable(sheet, let, docs, needed=re.search(rf"\${re.escape(let.get('name'))}(?![\w.\-])", used) is not None)

    root = etree.SubElement(sheet, f"{{{XSL}}}template", match="/")
    out = etree.SubElement(root, f"{{{SVRL}}}schematron-output", schemaVersion=schema.get("schemaVersion", ""))
    title = schema.findtext(f"{_S}title") or main.name
    out.set("title", title)
    for index, pattern in enumerate(patterns):
        active = etree.SubElement(out, f"{{{SVRL}}}active-pattern")
        active.set("id", pattern.get("id") or f"pattern-{index}")
        contexts = [docs.rewrite(r.get("context")) for r in pattern.findall(f"{_S}rule") if r.get("context")]
        if contexts:
            etree.SubElement(out, f"{{{XSL}}}apply-templates", select=_select(contexts, nsmap), mode=f"M{index}")

    for index, pattern in enumerate(patterns):
        mode = f"M{index}"
        rules = [r for r in pattern.findall(f"{_S}rule") if r.get("context")]
        for order, rule in enumerate(rules):
            template = etree.SubElement(sheet, f"{{{XSL}}}template", match=docs.rewrite(rule.get("context")),
                                        priority=str(10000 - order), mode=mode)
            for child in rule:
                if child.tag == f"{_S}let":
                    _variable(template, child, docs, nsmap=nsmap)
                elif child.tag in (f"{_S}assert", f"{_S}report"):
                    test = _fast_expr(docs.rewrite(child.get("test")), nsmap)
                    is_assert = child.tag == f"{_S}assert"
                    cond = etree.SubElement(template, f"{{{XSL}}}if", test=f"not({test})" if is_assert else test)
                    result = etree.SubElement(cond, f"{{{SVRL}}}failed-assert" if is_assert else f"{{{SVRL}}}successful-report")
                    result.set("test", child.get("test"))
                    result.set("pattern", pattern.get("id") or mode)
                    for attr in ("id", "role", "flag", "see"):
                        if child.get(attr):
                            result.set(attr, child.get(attr))
                    loc = etree.SubElement(result, f"{{{XSL}}}attribute", name="location")
                    etree.SubElement(loc, f"{{{XSL}}}value-of", select="path(.)")
                    text = etree.SubElement(result, f"{{{SVRL}}}text")
                    _message(text, child)
        etree.SubElement(sheet, f"{{{XSL}}}mode", name=mode, **{"on-no-match": "deep-skip"})
    version = schema.get("schemaVersion") or ""
    documents = _hoist_documents(sheet)
    xslt = etree.tostring(sheet, encoding="unicode")
    return Compiled(xslt=xslt, files=files, notes=notes, title=title, version=version, documents=documents)


_DOC_LITERAL = re.compile(r"""\b(?:fn:)?doc(?:ument)?\(\s*(['"])(file:[^'"]+)\1\s*\)""")
_DOC_VARIABLE = re.compile(r"""\b(?:fn:)?doc(?:ument)?\(\s*\$([\w.-]+)\s*\)""")


def _hoist_documents(sheet: etree._Element) -> dict[str, str]:
    """Every value-set document the rules open becomes a global `document-node()` parameter:
    the runner parses each file once and hands the same tree to every transformation, instead
    of each transformation parsing it again (`saxon.compile_xslt`)."""
    literal_vars = {}
    for var in sheet.findall(f"{{{XSL}}}variable"):
        match = re.fullmatch(r"""\s*(['"])(file:[^'"]+\.xml)\1\s*""", var.get("select") or "")
        if match:
            literal_vars[var.get("name")] = match.group(2)
    documents: dict[str, str] = {}
    names: dict[str, str] = {}

    def param(uri: str) -> str:
        if uri not in names:
            names[uri] = f"relais-vs-{len(names) + 1}"
            documents[names[uri]] = uri
        return f"${names[uri]}"

    def fix(text: str) -> str:
        text = _DOC_LITERAL.sub(lambda m: param(m.group(2)), text)
        return _DOC_VARIABLE.sub(lambda m: param(literal_vars[m.group(1)]) if m.group(1) in literal_vars
                                 else m.group(0), text)

    for node in sheet.iter(f"{{{XSL}}}if", f"{{{XSL}}}variable", f"{{{XSL}}}value-of"):
        for attr in ("test", "select"):
            if node.get(attr):
                node.set(attr, fix(node.get(attr)))
    anchor = sheet.find(f"{{{XSL}}}output")
    for name, uri in reversed(list(documents.items())):
        element = etree.Element(f"{{{XSL}}}param", name=name, select=f"doc('{uri}')")
        element.set("as", "document-node()")
        anchor.addnext(element)
    return documents
