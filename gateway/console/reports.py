"""A person's access report (GDPR art. 15; consent_audit §1.11 L23): which data went to which
recipient, when, on which basis.

One row per exchange of the person that left Relais or is about to (statuses `sent`,
`acknowledged`; `queued`, `sending` = "will be disclosed", art. 15(1)(c)), from the exchanges
and the consent decision each one was cleared by. Exchanges refused, invalid, cancelled,
superseded or dead never reached the recipient and are left out (the decisions page shows
them). Recipients are named by their actual identity (CJEU C-154/21). The employees who
triggered an exchange are not listed unless asked (`with_actors`): CJEU C-579/21 owes the
person the dates and purposes, not the staff's identity, unless essential to their rights.

CSV (`to_csv`): UTF-8 with a byte-order mark, `;`-separated (opens as columns in a French
spreadsheet), RFC 4180 quoting, one header line — the columns, in order:

    date_utc                  when the data left (ISO 8601, UTC): the first `sent` event, else
                              the queueing time for a pending exchange
    statut                    communiqué | accusé de réception | en attente d'envoi
    destinataire              the recipient's name as recorded
    type_destinataire         professionnel | structure | personne | système
    identifiant_destinataire  RPPS, FINESS, MSSanté address or system name
    categorie_professionnelle R.1110-2 category of the recipient (santé, social, autre), if known
    systeme                   channel (e-parcours, ViaTrajectoire, DMP, MSSanté…)
    finalite                  purpose of use code (HL7 v3 ActReason) and its French label
    regime                    the CSP regime the decision applied (échange, partage…)
    base_legale               its legal basis (CSP article; GDPR art. 9(2)(h))
    decision                  id of the consent decision that cleared the exchange
    consentements             consents the decision relied on (id/version), if any
    categories_donnees        data categories carried (see below)
    contenu                   payload kind (TDDUI Bundle, SDO resource…)
    version_projet            the version of the person's plan that was sent
    empreinte_sha256          SHA-256 of the bytes sent (checkable against the audit trail)
    echange                   exchange id (GET /exchanges/{id})
    auteur                    only with the "auteurs" option: who triggered it (C-579/21)

Data categories are those the exchange was decided on (stored with it); for an exchange
recorded before they were stored, those the payload kind can carry, limited to the channel's
allowlist and to what that plan version contained — the spine's default (gateway.delivery.scope).
Text cells that a spreadsheet would take for a formula (= + - @ …) are prefixed with `'`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.console.reasons import regime
from gateway.console.views import SYSTEM_LABEL, Person
from gateway.consent.tables import consent_decisions
from gateway.delivery.tables import exchange_events, exchanges
from gateway.storage.schema import plan_versions

DISCLOSED = {"sent": "communiqué", "acknowledged": "accusé de réception",
             "queued": "en attente d'envoi", "sending": "en attente d'envoi"}
KIND_LABEL = {"professional": "professionnel", "organisation": "structure", "person": "personne",
              "system": "système"}
PROFESSION_LABEL = {"health": "santé (R.1110-2 1°)", "social": "social / médico-social (R.1110-2 2°)",
                    "other": "autre"}
PAYLOAD_LABEL = {"tddui-bundle": "projet personnalisé (Bundle TDDUI)", "cds-careteam": "cercle de soins",
                 "sdo-consent": "consentement SDO", "sdo-status": "statut d'admission SDO",
                 "cda-document": "document CDA", "xdm-message": "message MSSanté (XDM)"}

HEADER = ["date_utc", "statut", "destinataire", "type_destinataire", "identifiant_destinataire",
          "categorie_professionnelle", "systeme", "finalite", "regime", "base_legale", "decision",
          "consentements", "categories_donnees", "contenu", "version_projet", "empreinte_sha256",
          "echange"]


@dataclass(frozen=True)
class Disclosure:
    at: dt.datetime
    status: str
    recipient: str
    recipient_kind: str
    recipient_id: str
    profession: str
    system: str
    purpose: str
    regime: str
    legal_basis: str
    decision: str
    consents: str
    data: str
    content: str
    plan_version: int | None
    sha256: str
    exchange: str
    actor: str | None = None


def _stored_categories(codes: str) -> str:
    from gateway.consent.vocab import DATA_LABEL, DataCategory

    return ", ".join(DATA_LABEL[DataCategory(c)] if c in DataCategory.__members__ else c for c in codes.split())


def _categories(conn: Connection, tenant_id: str, who: Person, version: int | None,
                system: str, kind: str, cache: dict) -> str:
    from gateway.consent.vocab import DATA_LABEL, DataCategory
    from gateway.delivery.scope import default_categories
    from gateway.model import Plan

    key = (version, system, kind)
    if key not in cache:
        try:
            content = conn.execute(sa.select(plan_versions.c.content).where(
                plan_versions.c.tenant_id == tenant_id, plan_versions.c.person_id == who.id,
                plan_versions.c.version == (version or who.current_version))).scalar_one()
            codes = default_categories(system, kind, Plan.model_validate_json(content))
            cache[key] = ", ".join(DATA_LABEL[DataCategory(c)] for c in codes)
        except Exception:
            cache[key] = "non déterminées"
    return cache[key]


def access_report(conn: Connection, tenant_id: str, who: Person, *, with_actors: bool = False) -> list[Disclosure]:
    """Every disclosure of the person's data, oldest first (tenant-scoped)."""
    from gateway.consent.vocab import PURPOSE_LABEL

    X = exchanges.c
    rows = conn.execute(sa.select(exchanges).where(
        X.tenant_id == tenant_id, X.person_local_id == who.local_id, X.status.in_(list(DISCLOSED)))
        .order_by(X.seq)).all()
    decision_ids = [r.decision_id for r in rows if r.decision_id]
    decided = {}
    if decision_ids:
        decided = {d.id: d for d in conn.execute(sa.select(consent_decisions).where(
            consent_decisions.c.tenant_id == tenant_id, consent_decisions.c.id.in_(decision_ids)))}
    sent_at = {}
    if rows:
        E = exchange_events.c
        for seq, at in conn.execute(sa.select(E.exchange_seq, sa.func.min(E.at))
                                    .where(E.exchange_seq.in_([r.seq for r in rows]), E.status == "sent")
                                    .group_by(E.exchange_seq)):
            sent_at[seq] = at
    cache: dict = {}
    out = []
    for r in rows:
        recipient = json.loads(r.recipient)
        decision = decided.get(r.decision_id)
        code = decision.regime if decision is not None else ""
        text, basis = regime(code) if code else ("décision introuvable", "")
        consents = ", ".join(f"{c['id']}/{c.get('version', '?')}"
                             for c in json.loads(decision.consent_refs or "[]")) if decision is not None else ""
        out.append(Disclosure(
            at=sent_at.get(r.seq) or r.created_at,
            status=DISCLOSED[r.status],
            recipient=recipient.get("display") or recipient.get("identifier", ""),
            recipient_kind=KIND_LABEL.get(recipient.get("kind"), recipient.get("kind", "")),
            recipient_id=recipient.get("identifier", ""),
            profession=PROFESSION_LABEL.get(recipient.get("profession") or "", ""),
            system=SYSTEM_LABEL.get(r.system, r.system),
            purpose=f"{r.purpose} — {PURPOSE_LABEL.get(r.purpose, 'finalité inconnue')}",
            regime=text, legal_basis=basis, decision=r.decision_id or "", consents=consents,
            data=_stored_categories(r.data_categories) if r.data_categories else
            _categories(conn, tenant_id, who, r.plan_version, r.system, r.payload_kind, cache),
            content=PAYLOAD_LABEL.get(r.payload_kind, r.payload_kind),
            plan_version=r.plan_version, sha256=r.payload_sha256 or "", exchange=r.id,
            actor=r.created_by if with_actors else None,
        ))
    return sorted(out, key=lambda d: (d.at, d.exchange))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(rows: list[Disclosure], *, with_actors: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER + (["auteur"] if with_actors else []))
    for d in rows:
        line = [d.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), d.status, d.recipient, d.recipient_kind,
                d.recipient_id, d.profession, d.system, d.purpose, d.regime, d.legal_basis, d.decision,
                d.consents, d.data, d.content, d.plan_version, d.sha256, d.exchange]
        if with_actors:
            line.append(d.actor)
        writer.writerow([_cell(v) for v in line])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
