"""Building blocks shared by the plan model: strict base, ids, periods, contacts."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not silently drop data)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=False)


# Local identifiers of plan elements: they become the tail of TDDUI business identifiers
# (`3`+FINESS/`idUsager`-`id`, TDDUI 2.2.0 CarePlan/Goal/Task identifier examples).
LocalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"),
    Field(description="Identifiant local, unique dans sa liste (lettres, chiffres, . _ -)."),
]
SerafinCode = Annotated[
    str,
    StringConstraints(pattern=r"^[123](\.[0-9]{1,2}){0,3}$"),
    Field(
        description="Code SERAFIN-PH (numérotation NOS de la terminologie ANS, ex. 2.3.3.1)",
        examples=["2.3.3.1"],
    ),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# FINESS: 9 characters, the first two are the département (2A/2B for Corsica).
Finess = Annotated[
    str,
    StringConstraints(pattern=r"^(?:[0-9]{2}|2[AB])[0-9]{7}$"),
    Field(description="Numéro FINESS (9 caractères)", examples=["750000000"]),
]
InseeCode = Annotated[
    str,
    StringConstraints(pattern=r"^(?:[0-9]{5}|2[AB][0-9]{3})$"),
    Field(description="Code officiel géographique INSEE (commune, ou 99xxx pour un pays)"),
]


class Period(Strict):
    start: dt.date | None = None
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.start and self.end and self.end < self.start:
            raise PydanticCustomError(
                "period-order",
                "la date de fin ({end}) précède la date de début ({start})",
                {"start": str(self.start), "end": str(self.end)},
            )
        return self


class DateTimePeriod(Strict):
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise PydanticCustomError(
                "period-order",
                "la date de fin ({end}) précède la date de début ({start})",
                {"start": self.start.isoformat(), "end": self.end.isoformat()},
            )
        return self


class Address(Strict):
    lines: list[ShortText] = Field(default_factory=list, max_length=4)
    postal_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] | None = None
    city: ShortText | None = None
    insee_code: InseeCode | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        default="FR", description="Code pays ISO 3166-1 alpha-2"
    )


class TelecomSystem(StrEnum):
    phone = "phone"
    email = "email"
    mssante = "mssante"  # secure messaging address (MSSanté)


class Telecom(Strict):
    system: TelecomSystem
    value: ShortText


class IdentifierSystem(StrEnum):
    """Identifier systems of the actors Relais names (specs §0.2)."""

    finess = "finess"
    siret = "siret"
    rpps = "rpps"
    adeli = "adeli"
    local = "local"


class Identifier(Strict):
    system: IdentifierSystem
    value: ShortText
