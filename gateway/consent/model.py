"""What the policy decision point reads and returns.

- `DecisionRequest`: who asks to send what, about whom, to whom, through which system, why.
- `PolicyState`: everything the PDP needs about one person, loaded once (plan facts, active
  privacy directives, care team, information records) so that `decide` is a pure, in-memory
  function (consent_audit §4.10: "PDP … deterministic, no I/O inside").
- `Decision`: permit or deny, with each fired rule's reason (French and English), the
  rule ids, the consents it relied on ({id, versionId, sha256}) and the obligations.

Privacy directives are compiled from FHIR `Consent` (see `fhir_consent`) into `Directive`
and `Provision` trees: root = base decision, nested provisions = exceptions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.consent.vocab import (
    ConsentKind,
    DataCategory,
    Flow,
    InformationMethod,
    InformationTopic,
    MembershipBasis,
    Profession,
    RecipientKind,
    System,
)

Token = tuple[str, str]  # ("rpps", "10000000001"), ("finess", …), ("mssante", …), ("system", "dmp"), ("category", "health")


class Effect(StrEnum):
    permit = "permit"
    deny = "deny"


# ------------------------------------------------------------------ the request


@dataclass(frozen=True)
class Recipient:
    """Who receives. `identifiers` are (system, value) with system in rpps, finess,
    mssante, adeli, local; `organisation` is the FINESS of the recipient's structure."""

    kind: RecipientKind
    identifiers: tuple[Token, ...] = ()
    profession: Profession | None = None
    organisation: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", RecipientKind(self.kind))
        if self.profession is not None:
            object.__setattr__(self, "profession", Profession(self.profession))
        object.__setattr__(self, "identifiers", tuple(tuple(t) for t in self.identifiers))

    @classmethod
    def of(cls, kind: RecipientKind | str, *, rpps: str | None = None, finess: str | None = None,
           mssante: str | None = None, profession: Profession | str | None = None,
           organisation: str | None = None) -> Recipient:
        ids = [(s, v) for s, v in (("rpps", rpps), ("finess", finess), ("mssante", mssante)) if v]
        return cls(RecipientKind(kind), tuple(ids),
                   Profession(profession) if profession else None, organisation)

    @classmethod
    def from_identifier(cls, kind: RecipientKind | str, identifier: str,
                        profession: Profession | str | None = None) -> Recipient:
        """One identifier whose form says what it is: 11 digits RPPS, 9 characters FINESS,
        an address with @ MSSanté, otherwise a system name."""
        kind = RecipientKind(kind)
        value = identifier.strip()
        if kind is RecipientKind.system:
            return cls(kind, (), Profession(profession) if profession else None)
        if "@" in value:
            ids = (("mssante", value.lower().removeprefix("mailto:")),)
        elif value.isdigit() and len(value) == 11:
            ids = (("rpps", value),)
        elif len(value) == 9 and value[2:].isdigit():
            ids = (("finess", value),)
        else:
            ids = (("local", value),)
        return cls(kind, ids, Profession(profession) if profession else None)

    def tokens(self, system: System) -> frozenset[Token]:
        """What a consent's actor may name to designate this recipient."""
        out = set(self.identifiers)
        if self.organisation:
            out.add(("finess", self.organisation))
        if self.profession is not None:
            out.add(("category", self.profession.value))
        out.add(("system", system.value))
        return frozenset(out)


@dataclass(frozen=True)
class Requester:
    """Who asks: an individually identified actor (CNIL 2021-122) and their R.1110-2
    category (most ESMS staff are 2°, consent_audit §1.2)."""

    actor: str
    profession: Profession = Profession.social
    rpps: str | None = None


@dataclass(frozen=True)
class DecisionRequest:
    tenant_id: str
    person_local_id: str
    recipient: Recipient
    system: System
    purpose: str  # v3 ActReason code (vocab.PURPOSE_PARENT)
    data_categories: frozenset[str]
    requester: Requester
    flow: Flow | None = None  # None: the system's default (vocab.DEFAULT_FLOW)
    names_ins: bool | None = None  # payload carries the INS; None: yes for DMP and the person's mailbox
    labels: frozenset[str] = frozenset()  # e.g. vocab.LABEL_MINOR_SECRET
    urgency: bool = False  # R.1110-3 III: person unable to express their will, urgent
    justification: str | None = None  # break-glass justification (L.1111-17 I)

    def __post_init__(self):
        # Accept plain strings and any iterable from callers (delivery spine, API, CLI).
        object.__setattr__(self, "system", System(self.system))
        if self.flow is not None:
            object.__setattr__(self, "flow", Flow(self.flow))
        object.__setattr__(self, "data_categories", frozenset(self.data_categories))
        object.__setattr__(self, "labels", frozenset(self.labels))


# ------------------------------------------------------------------ the decision


@dataclass(frozen=True)
class ConsentRef:
    id: str
    version: int
    sha256: str

    def as_dict(self) -> dict:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Reason:
    rule_id: str
    effect: str  # "permit" | "deny" | "note"
    message: str  # French
    message_en: str
    source: str  # legal source the rule implements
    consents: tuple[ConsentRef, ...] = ()

    def as_dict(self) -> dict:
        return {"rule_id": self.rule_id, "effect": self.effect, "message": self.message,
                "message_en": self.message_en, "source": self.source,
                "consents": [c.as_dict() for c in self.consents]}


@dataclass(frozen=True)
class Decision:
    id: str
    effect: Effect
    reasons: tuple[Reason, ...]
    rule_ids: tuple[str, ...]  # rules that permitted or denied (notes excluded)
    consents: tuple[ConsentRef, ...]
    obligations: tuple[str, ...]
    regime: str
    decided_at: dt.datetime
    request_digest: str  # sha256 of the canonical request
    policy_versions: dict = field(default_factory=dict)

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.permit

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "decision": self.effect.value,
            "regime": self.regime,
            "rule_ids": list(self.rule_ids),
            "reasons": [r.as_dict() for r in self.reasons],
            "consents": [c.as_dict() for c in self.consents],
            "obligations": list(self.obligations),
            "decided_at": self.decided_at.isoformat(),
            "request_digest": self.request_digest,
            "policy_versions": dict(self.policy_versions),
        }


# ------------------------------------------------------------------ compiled consents


@dataclass(frozen=True)
class Provision:
    """One node of a Consent's provision tree, compiled for matching.
    `None` criteria match anything; `unevaluated` names elements Relais does not evaluate
    (securityLabel, code, data, dataPeriod, action): such a provision matches for deny
    and never for permit (consent_audit §2.6.4, conservative)."""

    effect: Effect
    path: str  # FHIRPath of the node
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    actors: frozenset[Token] | None = None
    purposes: frozenset[str] | None = None
    classes: frozenset[str] | None = None
    unevaluated: tuple[str, ...] = ()
    children: tuple[Provision, ...] = ()


@dataclass(frozen=True)
class Performer:
    kind: str  # "person" | "representative" | "other"
    ref: str  # local id of the person or of the representative; reference text otherwise


@dataclass(frozen=True)
class Directive:
    """The current version of one stored Consent."""

    id: str
    version: int
    sha256: str
    kind: ConsentKind
    status: str  # FHIR Consent.status of this version
    date_time: dt.datetime
    performers: tuple[Performer, ...]
    root: Provision | None  # None for agreements (no provision)
    changed_at: dt.datetime | None = None  # when this version was recorded (withdrawal time)

    @property
    def ref(self) -> ConsentRef:
        return ConsentRef(self.id, self.version, self.sha256)

    @property
    def active(self) -> bool:
        return self.status == "active"


# ------------------------------------------------------------------ care team, information


@dataclass(frozen=True)
class TeamMember:
    kind: RecipientKind  # professional | organisation | person (a relative)
    tokens: frozenset[Token]  # identifiers naming this member
    profession: Profession | None
    basis: MembershipBasis
    start: dt.datetime
    end: dt.datetime | None = None
    roles: tuple[str, ...] = ()

    def active_at(self, now: dt.datetime) -> bool:
        return self.start <= now and (self.end is None or now <= self.end)


@dataclass(frozen=True)
class InformationRecord:
    id: str
    informed_at: dt.datetime
    method: InformationMethod
    informed_by: str
    notice_version: str
    topics: frozenset[InformationTopic]
    recipient: Token | None = None  # R.1110-3 I: the recipient named when informing, if any
    data_categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PersonFacts:
    """What the plan says that the rules need (no names, no INS value)."""

    local_id: str
    identity_status: str  # PROV | RECUP | VALI | QUAL
    birth_date: dt.date
    platform_finess: str
    protection_scope: str | None  # "representation" | "assistance" | None
    protection_start: dt.date | None = None
    protection_end: dt.date | None = None
    representatives: tuple[tuple[str, str], ...] = ()  # (id, role)
    representative_tokens: frozenset[Token] = frozenset()  # their MSSanté / e-mail addresses
    representative_periods: tuple[tuple[str, dt.date | None, dt.date | None], ...] = ()  # (id, start, end)
    plan_version: int = 0

    def minor_on(self, day: dt.date) -> bool:
        years = day.year - self.birth_date.year
        years -= (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return years < 18

    def representative_role(self, rep_id: str) -> str | None:
        return next((role for rid, role in self.representatives if rid == rep_id), None)

    def representative_in_office(self, rep_id: str, day: dt.date) -> bool:
        for rid, start, end in self.representative_periods:
            if rid == rep_id:
                return (start is None or start <= day) and (end is None or day <= end)
        return True


@dataclass(frozen=True)
class PolicyState:
    tenant_id: str
    person: PersonFacts
    directives: tuple[Directive, ...]  # current version of every Consent (active or not)
    team: tuple[TeamMember, ...]
    information: tuple[InformationRecord, ...]
    person_id: str = ""  # storage id of the person (persons.id)
    stamp: str = ""  # policy stamp this state was loaded at (consent_heads.stamp)

    @property
    def active_directives(self) -> tuple[Directive, ...]:
        return tuple(d for d in self.directives if d.active)


# Data categories known to the engine, for validation of requests.
KNOWN_DATA_CATEGORIES = frozenset(c.value for c in DataCategory)
