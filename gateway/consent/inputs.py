"""What callers send besides FHIR: an information record, a decision request (API and CLI)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from gateway.consent.model import DecisionRequest, InformationRecord, Recipient, Requester
from gateway.consent.vocab import (
    DataCategory,
    Flow,
    InformationMethod,
    InformationTopic,
    Profession,
    RecipientKind,
    System,
)
from gateway.model.common import Strict

Token = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+\-]*$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._\-]{1,64}$")]


class NamedRecipient(Strict):
    system: Literal["rpps", "finess", "mssante", "adeli"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=254)]


class InformationInput(Strict):
    """The person was informed (R.1110-3, L.1110-4 IV, L.1111-15): when, how, by whom, of what."""

    informed_at: AwareDatetime = Field(description="Date et heure de l'information")
    method: InformationMethod = Field(description="oral, written (papier) ou electronic")
    informed_by: Token = Field(description="Qui a informé (identifiant du professionnel, RPPS…)")
    notice_version: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="Version de la notice d'information remise")
    topics: list[InformationTopic] = Field(min_length=1, max_length=3)
    recipient: NamedRecipient | None = Field(
        default=None, description="Destinataire nommé lors de l'information (R.1110-3 I), le cas échéant")
    data_categories: list[DataCategory] = Field(default_factory=list, max_length=8)

    def to_record(self) -> InformationRecord:
        recipient = None
        if self.recipient is not None:
            value = self.recipient.value.lower() if self.recipient.system == "mssante" else self.recipient.value
            recipient = (self.recipient.system, value)
        return InformationRecord(
            id=uuid.uuid4().hex, informed_at=self.informed_at, method=self.method,
            informed_by=self.informed_by, notice_version=self.notice_version,
            topics=frozenset(self.topics), recipient=recipient,
            data_categories=frozenset(c.value for c in self.data_categories))


class RecipientInput(Strict):
    kind: RecipientKind
    rpps: Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")] | None = None
    finess: Annotated[str, StringConstraints(pattern=r"^(?:[0-9]{2}|2[AB])[0-9]{7}$")] | None = None
    mssante: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    profession: Profession | None = Field(default=None, description="Catégorie R.1110-2")
    organisation: Annotated[str, StringConstraints(pattern=r"^(?:[0-9]{2}|2[AB])[0-9]{7}$")] | None = Field(
        default=None, description="FINESS de la structure du destinataire")

    def to_recipient(self) -> Recipient:
        return Recipient.of(self.kind, rpps=self.rpps, finess=self.finess,
                            mssante=self.mssante.lower() if self.mssante else None,
                            profession=self.profession, organisation=self.organisation)


class DecisionInput(Strict):
    """Ask the PDP whether a flow may happen (every answer is audited)."""

    person: PersonId
    system: System
    purpose: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,12}$")] = Field(
        description="Finalité (v3 ActReason : TREAT, COC, HOPERAT, PATRQT…)")
    recipient: RecipientInput
    data_categories: list[DataCategory] = Field(min_length=1, max_length=8)
    flow: Flow | None = None
    names_ins: bool | None = None
    labels: list[Literal["minor-secret"]] = Field(default_factory=list, max_length=1)
    urgency: bool = False
    justification: Annotated[str, StringConstraints(max_length=500)] | None = None
    requester_profession: Profession = Profession.social

    def to_request(self, tenant_id: str, actor: str) -> DecisionRequest:
        return DecisionRequest(
            tenant_id=tenant_id, person_local_id=self.person, recipient=self.recipient.to_recipient(),
            system=self.system, purpose=self.purpose,
            data_categories=frozenset(c.value for c in self.data_categories),
            requester=Requester(actor, self.requester_profession), flow=self.flow,
            names_ins=self.names_ins, labels=frozenset(self.labels), urgency=self.urgency,
            justification=self.justification)

