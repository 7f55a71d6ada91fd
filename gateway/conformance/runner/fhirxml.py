"""FHIR XML → the FHIR JSON form (FHIR R4 "XML Representation" and "JSON Representation"), so
that XML resources go through exactly the same checks as JSON ones.

The shape of each element (list or not, primitive type, complex type, contained resource, xhtml)
comes from the fhir.resources R4B models. Nothing is validated here: an element the model does
not know is carried over as is, so that the structure check reports it where it is.
"""

from __future__ import annotations

from functools import cache

from lxml import etree

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_INTEGER = {"integer", "positiveInt", "unsignedInt", "integer64"}


class FhirXmlError(ValueError):
    pass


@cache
def _model(type_name: str):
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(type_name)
    except (KeyError, ValueError):
        return None


@cache
def _fields(type_name: str) -> dict[str, tuple[str, bool, str, str]]:
    """xml name → (json name, is list, kind: primitive|complex|resource|xhtml, FHIR type name)."""
    from fhir_core.utils import get_fhir_type_name, is_list_type, is_primitive_type

    cls = _model(type_name)
    if cls is None:
        return {}
    out = {}
    aliases = cls.get_alias_mapping()
    for xml_name, field_name in aliases.items():
        field = cls.model_fields.get(field_name)
        if field is None or xml_name.endswith("__ext") or xml_name == "resourceType":
            continue
        is_list = is_list_type(field)
        if is_primitive_type(field):
            try:
                fhir_type = get_fhir_type_name(field, prefix="R4B.")
            except ValueError:
                fhir_type = "string"
            kind = "xhtml" if fhir_type == "xhtml" else "primitive"
        else:
            text = str(field.annotation)
            fhir_type = text.split("abc.", 1)[1].split("Type", 1)[0] if "abc." in text else "Element"
            kind = "resource" if fhir_type == "Resource" else "complex"
        out[xml_name] = (xml_name, is_list, kind, fhir_type)
    return out


def _primitive(value: str, fhir_type: str):
    if fhir_type == "boolean":
        return {"true": True, "false": False}.get(value, value)
    if fhir_type in _INTEGER:
        try:
            return int(value)
        except ValueError:
            return value
    if fhir_type == "decimal":
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def _local(node) -> tuple[str, str]:
    q = etree.QName(node)
    return q.namespace or "", q.localname


def _element(node, type_name: str) -> dict:
    """A complex element (or a resource's content) as a JSON object."""
    out: dict = {}
    fields = _fields(type_name)
    for attr, value in node.attrib.items():
        if attr in ("id", "url"):
            out[attr] = value
    for child in node:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        ns, name = _local(child)
        if ns not in (FHIR_NS, XHTML_NS):
            out.setdefault(name, []).append(etree.tostring(child, encoding="unicode"))
            continue
        json_name, is_list, kind, fhir_type = fields.get(name, (name, False, "unknown", ""))
        if kind == "primitive" or (kind == "unknown" and "value" in child.attrib):
            value = child.get("value")
            extra = {k: v for k, v in ((("id", child.get("id")),) if child.get("id") else ())}
            exts = [_element(e, "Extension") for e in child if isinstance(e.tag, str) and _local(e)[1] == "extension"]
            if exts:
                extra["extension"] = exts
            converted = _primitive(value, fhir_type) if value is not None else None
            if is_list:
                values = out.setdefault(json_name, [])
                values.append(converted)
                if extra:
                    under = out.setdefault("_" + json_name, [])
                    under.extend([None] * (len(values) - 1 - len(under)))
                    under.append(extra)
            else:
                if converted is not None:
                    out[json_name] = converted
                if extra:
                    out["_" + json_name] = extra
            continue
        if kind == "xhtml":
            value = etree.tostring(child, encoding="unicode", with_tail=False)
        elif kind == "resource":
            inner = [c for c in child if isinstance(c.tag, str)]
            value = resource(inner[0]) if inner else {}
        else:
            value = _element(child, fhir_type if kind == "complex" else "Element")
        if is_list:
            out.setdefault(json_name, []).append(value)
        else:
            out[json_name] = value
    return out


def resource(node) -> dict:
    ns, name = _local(node)
    if ns != FHIR_NS:
        raise FhirXmlError(f"élément racine {name!r} hors de l'espace de noms FHIR ({ns or 'aucun'})")
    return {"resourceType": name, **_element(node, name)}


def to_json(tree: etree._ElementTree) -> dict:
    """The resource of an XML document (parsed safely by the caller) in its JSON form."""
    return resource(tree.getroot())
