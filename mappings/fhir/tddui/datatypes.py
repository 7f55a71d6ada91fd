"""Contact points and addresses, both ways (FR Core 2.1.0 fr-core-contact-point, fr-core-address)."""

from __future__ import annotations

from mappings.fhir.tddui import constants as c
from mappings.fhir.tddui.common import Node, coding, put


# FR Core fr-core-contact-point: an MSSanté address is an email with the emailType extension
# coded TRE_R256 MSSANTE (fr-core-vs-email-type).
def telecom(items) -> list[dict]:
    out = []
    for item in items:
        system = item.system.value
        if system == "mssante":
            out.append({
                "extension": [{"url": c.X_EMAIL_TYPE, "valueCoding": coding(c.EMAIL_TYPE_SYSTEM, "MSSANTE")}],
                "system": "email",
                "value": item.value,
            })
        else:
            out.append({"system": system, "value": item.value})
    return out


def read_telecom(node: Node) -> list[dict]:
    out = []
    for point in node.nodes("telecom"):
        system, value = point.peek("system"), point.peek("value")
        if system not in ("phone", "email") or not value:
            continue
        kind = system
        for ext in point.extensions(c.X_EMAIL_TYPE):
            cod = ext.node("valueCoding")
            if system == "email" and cod is not None and cod.peek("code") == "MSSANTE":
                ext.mark()
                kind = "mssante"
        point.get("system")
        point.get("value")
        out.append({"system": kind, "value": value})
    return out


# FR Core fr-core-address: COG code in the inseeCode extension (TRE_R13-CommuneOM). The plan's
# country is ISO 3166 alpha-2 and travels as is in Address.country (a string in FHIR R4).
def address(item) -> dict | None:
    if item is None:
        return None
    out: dict = {}
    if item.insee_code:
        out["extension"] = [{"url": c.X_INSEE_CODE, "valueCoding": coding(c.INSEE_COMMUNE, item.insee_code)}]
    put(out, "line", list(item.lines))
    put(out, "city", item.city)
    put(out, "postalCode", item.postal_code)
    put(out, "country", item.country)
    return out


def read_address(node: Node | None) -> dict | None:
    if node is None:
        return None
    out: dict = {"lines": node.values("line")}
    for key, field in (("city", "city"), ("postalCode", "postal_code"), ("country", "country")):
        value = node.get(key)
        if value is not None:
            out[field] = value
    for ext in node.extensions(c.X_INSEE_CODE):
        cod = ext.node("valueCoding")
        if cod is not None and cod.peek("code"):
            ext.mark()
            out["insee_code"] = cod.data["code"]
    return out
