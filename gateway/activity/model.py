"""What a delivered activity is, as the DUI sends it and as Relais counts it.

`ActivityInput` is the API / file shape (strict: unknown fields are errors). `Activity` is the
normalised record: local day, minutes, half-days touched, modality resolved from the planned
service when the DUI did not say. `Capacity` is one line of the FINESS authorisation.

Counting conventions (decided here, documented in README "Activity indicators"):
- a *delivered* activity is a finished one (DUI « Réalisé », TDDUI Encounter.status finished);
  planned, in-progress and cancelled ones are kept but never counted;
- a *direct service* is a SERAFIN-PH `2.*` code delivered with the person present; `3.*`
  (indirect: coordination, transport…) count in transport volumes and indirect minutes only;
- the *day* of an activity is the local date (settings.activity_timezone) of its start; an
  activity crossing midnight counts on its start day only;
- *half-days*: morning = [00:00, 13:00), afternoon = [13:00, 24:00) local; an activity counts
  in each half it overlaps (09:00–16:00 is two half-days). Sent as date + duration, it says
  `part_of_day` (morning, afternoon, full_day), by default the morning (both halves from 5 h).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.model.common import LocalId, SerafinCode, Strict
from gateway.model.plan import EventStatus, Modality, Place, Provider

MODALITIES = tuple(m.value for m in Modality)

MODALITY_FR = {
    "ordinary_environment": "milieu ordinaire",
    "day_care": "accueil de jour",
    "night_care": "accueil de nuit",
    "full_time_housing": "hébergement complet",
    "temporary_housing": "accueil temporaire",
    "sequential": "accueil séquentiel",
}

SPECIALISATION_FR = {
    "neurodevelopmental": "troubles du neurodéveloppement",
    "psychiatric": "handicap psychique",
    "motor_polyhandicap": "handicap moteur / polyhandicap",
    "sensory": "handicap sensoriel",
}

# Theoretical opening days per place and per year when the authorisation does not say:
# housing, night and temporary or sequential care all year round; day care and services in
# the ordinary environment on the usual 210 days of an IME / SESSAD.
DEFAULT_OPENING_DAYS = {
    "ordinary_environment": 210,
    "day_care": 210,
    "night_care": 365,
    "full_time_housing": 365,
    "temporary_housing": 365,
    "sequential": 365,
}

AFTERNOON_STARTS = dt.time(13, 0)
FULL_DAY_MINUTES = 300  # date + duration without part_of_day: both halves from 5 hours on


class Source(StrEnum):
    api = "api"
    tddui = "tddui"


class ActivityInput(Strict):
    """One delivered activity as the DUI sends it (`POST /persons/{id}/activity`)."""

    id: LocalId = Field(description="Identifiant de l'évènement dans le DUI (renvoyer le même "
                                    "identifiant remplace l'activité, sans doublon)")
    person: LocalId | None = Field(default=None, description="Personne (facultatif : celle de l'URL)")
    code: SerafinCode = Field(description="Prestation SERAFIN-PH réalisée (2.x directe, 3.x indirecte)")
    status: EventStatus = EventStatus.finished
    start: dt.datetime | None = Field(default=None, description="Début, avec fuseau horaire")
    end: dt.datetime | None = Field(default=None, description="Fin, avec fuseau horaire")
    date: dt.date | None = Field(default=None, description="Jour (à défaut de début et fin)")
    duration_minutes: int | None = Field(default=None, ge=1, le=1440)
    part_of_day: Literal["morning", "afternoon", "full_day"] | None = None
    modality: Modality | None = Field(default=None, description="Défaut : celle de la prestation prévue")
    place: Place | None = None
    provider: Provider | None = None
    service_id: LocalId | None = Field(default=None, description="Prestation prévue au projet (services[].id)")
    person_present: bool = True
    transport_km: Decimal | None = Field(default=None, ge=0, le=5000, max_digits=7, decimal_places=3)
    transport_minutes: int | None = Field(default=None, ge=0, le=1440)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise PydanticCustomError("activity-timezone",
                                      "date-heure sans fuseau horaire (ex. 2026-11-02T09:00:00+01:00)")
        return value

    @model_validator(mode="after")
    def _timing(self):
        timed = self.start is not None or self.end is not None
        dated = self.date is not None or self.duration_minutes is not None
        if timed == dated:
            raise PydanticCustomError(
                "activity-timing",
                "donner soit « start » et « end », soit « date » et « duration_minutes »")
        if timed:
            if self.start is None or self.end is None:
                raise PydanticCustomError("activity-timing", "« start » et « end » vont ensemble")
            if self.end < self.start:
                raise PydanticCustomError("period-order", "la fin précède le début de l'activité")
            if self.end - self.start > dt.timedelta(days=1):
                raise PydanticCustomError("activity-duration",
                                          "activité de plus de 24 heures : l'envoyer jour par jour")
            if self.part_of_day is not None:
                raise PydanticCustomError("activity-timing",
                                          "« part_of_day » ne sert qu'avec « date » et « duration_minutes »")
        elif self.date is None or self.duration_minutes is None:
            raise PydanticCustomError("activity-timing", "« date » et « duration_minutes » vont ensemble")
        return self


@dataclass(frozen=True, slots=True)
class Activity:
    """A normalised delivered activity (one `activity_records` row)."""

    source_id: str
    code: str
    status: str
    person_present: bool
    start_at: dt.datetime | None  # UTC
    end_at: dt.datetime | None
    day: dt.date
    minutes: int
    morning: bool
    afternoon: bool
    modality: str
    place: str | None = None
    provider_kind: str | None = None
    provider_name: str | None = None
    provider_identifier: str | None = None
    service_id: str | None = None
    transport_m: int | None = None
    transport_minutes: int | None = None
    source: str = Source.api.value

    def as_row(self) -> dict:
        """The `activity_records` columns (a shallow dict: no deep copy)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @property
    def counted(self) -> bool:
        """Delivered: finished (cancelled, planned or in-progress activities never count)."""
        return self.status == EventStatus.finished.value

    @property
    def direct(self) -> bool:
        """A direct service (SERAFIN-PH 2.x) delivered with the person present."""
        return self.counted and self.person_present and self.code.startswith("2.")


@dataclass(frozen=True, slots=True)
class Capacity:
    """Authorised capacity of one modality (FINESS authorisation), from `valid_from` on."""

    modality: str
    valid_from: dt.date
    places: int
    opening_days: int
    finess: str


def half_days(start: dt.datetime, end: dt.datetime) -> tuple[bool, bool]:
    """(morning, afternoon) touched by [start, end) on the start's day, both local times."""
    split = dt.datetime.combine(start.date(), AFTERNOON_STARTS, start.tzinfo)
    midnight = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(0), start.tzinfo)
    if end == start:  # an instant counts where it happens
        return start < split, start >= split
    return start < split, min(end, midnight) > split


def part_of_day_halves(part: str | None, minutes: int) -> tuple[bool, bool]:
    if part == "afternoon":
        return False, True
    if part == "full_day" or (part is None and minutes >= FULL_DAY_MINUTES):
        return True, True
    return True, False


def month_of(day: dt.date) -> int:
    return day.year * 100 + day.month


# ----------------------------------------------------------------- the reference week


def anchored_week(year: int, anchor: str = "10-08") -> tuple[dt.date, dt.date]:
    """The Monday–Sunday week starting on the first Monday on or after `anchor` (MM-DD) of
    `year`. The default anchor 10-08 gives the second full week of October."""
    month, day = (int(part) for part in anchor.split("-"))
    first = dt.date(year, month, day)
    monday = first + dt.timedelta(days=(7 - first.weekday()) % 7)
    return monday, monday + dt.timedelta(days=6)


def parse_week(text: str) -> tuple[dt.date, dt.date]:
    """`2026-W42` (ISO week) or any date `2026-10-14` (its Monday–Sunday week)."""
    text = text.strip()
    try:
        if "W" in text.upper():
            year, _, week = text.upper().partition("-W")
            monday = dt.date.fromisocalendar(int(year), int(week), 1)
        else:
            day = dt.date.fromisoformat(text)
            monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=6)
    except ValueError:
        raise ValueError(f"semaine de référence illisible : {text!r} (ex. 2026-W42 ou 2026-10-12)") from None
    except OverflowError:  # the week of 9999-12-31 ends past the calendar
        raise ValueError(f"semaine de référence hors limites : {text!r}") from None


def default_reference_week(start: dt.date, end: dt.date, anchor: str = "10-08") -> tuple[dt.date, dt.date]:
    """The anchored week of the period's last year, or of its first, when inside the period;
    otherwise the period's last full Monday–Sunday week; otherwise the week holding `end`."""
    for year in (end.year, start.year):
        week = anchored_week(year, anchor)
        if start <= week[0] and week[1] <= end:
            return week
    sunday = end - dt.timedelta(days=(end.weekday() + 1) % 7)
    if sunday - dt.timedelta(days=6) >= start:
        return sunday - dt.timedelta(days=6), sunday
    monday = end - dt.timedelta(days=end.weekday())
    return monday, monday + dt.timedelta(days=6)
