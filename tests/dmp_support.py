"""Helpers shared by the DMP tests: plans, submissions and defective variants of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from lxml import etree

from connectors.base import Envelope, Recipient
from gateway.model import Plan
from mappings.xds import metadata as M

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plans"
NS = {"rim": M.RIM, "lcm": M.LCM}


def plan(name: str = "p001-enfant-tnd.json") -> Plan:
    return Plan.model_validate_json((FIXTURES / name).read_bytes())


def submission(p: Plan, version: int = 1, obligations: tuple[str, ...] = (), now: dt.datetime | None = None):
    from gateway.delivery.payload_dmp import build_submission

    return build_submission(p, version=version, now=now or dt.datetime.now(dt.UTC), obligations=obligations)


def envelope(sub, key: str = "k") -> Envelope:
    return Envelope(exchange_id=f"x-{key}", idempotency_key=key, system="dmp", payload_kind="cda-document",
                    content_type="application/vnd.relais.dmp-submission+json", payload=sub.dumps(),
                    recipient=Recipient("system", "dmp"))


def edit_metadata(sub, edit) -> object:
    """The submission with its metadata changed by `edit(root)` (hash/size left as they were)."""
    root = etree.fromstring(sub.metadata)
    edit(root)
    return dataclasses.replace(sub, metadata=etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def entry(root):
    return root.find("rim:RegistryObjectList/rim:ExtrinsicObject", NS)


def slot_value(node, name: str):
    return node.find(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", NS)


def classification(node, scheme: str):
    return node.find(f"rim:Classification[@classificationScheme='{scheme}']", NS)


def external(node, scheme: str):
    return node.find(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']", NS)
