"""The person: INS and identity status (RNIV), traits, legal representatives, protection."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.model.common import (
    Address,
    InseeCode,
    LocalId,
    Period,
    ShortText,
    Strict,
    Telecom,
)

# INS OIDs, FR Core FRCorePatientINSProfile / specs §0.1.
INS_OIDS = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
    "1.2.250.1.213.1.4.11": "INS-NIR-DEMO",
}

_MATRICULE = re.compile(r"^[1-8][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}$")


def ins_check_key(matricule13: str) -> int:
    """NIR/NIA key: 97 - (number mod 97); Corsica 2A/2B count as 19/18 (INSEE rule)."""
    digits = matricule13.replace("2A", "19").replace("2B", "18")
    return 97 - int(digits) % 97


class IdentityStatus(StrEnum):
    """RNIV identity statuses, FR Core `fr-core-cs-identity-status` (consent_audit §1.6)."""

    PROV = "PROV"  # provisoire
    RECUP = "RECUP"  # récupérée (INSi, not checked against an ID document)
    VALI = "VALI"  # validée (ID document checked, not via INSi)
    QUAL = "QUAL"  # qualifiée (INSi + high-trust ID document): only status allowing INS use


class Ins(Strict):
    """Identifiant national de santé: matricule (NIR or NIA, 13 characters + 2-digit key) and OID."""

    value: Annotated[str, StringConstraints(to_upper=True)] = Field(
        description="Matricule INS sur 15 caractères (13 + clé de contrôle)",
        examples=["212035121518974"],
    )
    oid: str = Field(
        description="OID de l'INS : 1.2.250.1.213.1.4.8 (NIR), .9 (NIA), .10 (test), .11 (démo)",
        examples=["1.2.250.1.213.1.4.10"],
    )

    @field_validator("value")
    @classmethod
    def _matricule(cls, value: str) -> str:
        value = value.replace(" ", "")
        if not _MATRICULE.match(value):
            raise PydanticCustomError(
                "ins-format", "le matricule INS doit compter 15 caractères (13 + clé de 2 chiffres)"
            )
        if ins_check_key(value[:13]) != int(value[13:]):
            raise PydanticCustomError(
                "ins-check-key", "la clé de contrôle du matricule INS est fausse"
            )
        return value

    @field_validator("oid")
    @classmethod
    def _oid(cls, oid: str) -> str:
        if oid not in INS_OIDS:
            raise PydanticCustomError(
                "ins-oid",
                "OID d'INS inconnu ({oid}) : attendu l'un de {known}",
                {"oid": oid, "known": ", ".join(INS_OIDS)},
            )
        return oid

    @property
    def kind(self) -> str:
        return INS_OIDS[self.oid]


class Sex(StrEnum):
    """INS sex trait, FR Core `fr-core-vs-patient-gender-INS`."""

    male = "male"
    female = "female"
    unknown = "unknown"


class ProtectionKind(StrEnum):
    """Legal protection measures for adults (Code civil; TRE_R217-ProtectionJuridique)."""

    sauvegarde_de_justice = "sauvegarde_de_justice"
    curatelle = "curatelle"
    curatelle_renforcee = "curatelle_renforcee"
    tutelle = "tutelle"
    habilitation_familiale = "habilitation_familiale"
    mandat_protection_future = "mandat_protection_future"


class ProtectionScope(StrEnum):
    """What the measure lets the protector do about the person (ordonnance 2020-232):
    `representation` — the protector may decide when the person cannot express their will;
    `assistance` — the protector helps, the person decides."""

    representation = "representation"
    assistance = "assistance"


class ProtectionMeasure(Strict):
    kind: ProtectionKind
    scope: ProtectionScope = Field(
        description="Représentation relative à la personne, ou assistance (ordonnance 2020-232)"
    )
    period: Period = Field(default_factory=Period)
    judgement_reference: ShortText | None = None

    @model_validator(mode="after")
    def _scope_fits_kind(self):
        # Code civil art. 440: tutelle represents, curatelle assists; habilitation familiale,
        # sauvegarde and mandat may be either, as the judgement or the mandate says.
        fixed = {
            ProtectionKind.tutelle: ProtectionScope.representation,
            ProtectionKind.curatelle: ProtectionScope.assistance,
            ProtectionKind.curatelle_renforcee: ProtectionScope.assistance,
        }
        if self.kind in fixed and self.scope is not fixed[self.kind]:
            raise PydanticCustomError(
                "protection-scope",
                "une mesure « {kind} » est une mesure de {scope} (Code civil art. 440)",
                {"kind": self.kind.value, "scope": fixed[self.kind].value},
            )
        return self


class RepresentativeRole(StrEnum):
    parent = "parent"  # holder of parental authority (minor)
    guardian = "guardian"  # tuteur / habilité familial / mandataire with representation
    curator = "curator"  # curateur (assistance)
    other_legal = "other_legal"  # other person given authority by a judge (e.g. tiers digne de confiance)


class LegalRepresentative(Strict):
    id: LocalId
    role: RepresentativeRole
    family_name: ShortText
    given_names: list[ShortText] = Field(min_length=1, max_length=10)
    relationship: ShortText | None = Field(
        default=None, description="Lien avec la personne (mère, père, frère, association tutélaire…)"
    )
    organisation: ShortText | None = Field(
        default=None, description="Service mandataire (MJPM) le cas échéant"
    )
    telecom: list[Telecom] = Field(default_factory=list, max_length=10)
    address: Address | None = None
    period: Period = Field(default_factory=Period)


class Person(Strict):
    """The supported person, with the INS traits (RNIV: birth name, birth given names,
    birth date, sex, birthplace) and the names used day to day."""

    local_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
    ] = Field(description="Identifiant de l'usager dans le DUI de la plateforme")
    ins: Ins | None = None
    identity_status: IdentityStatus = Field(
        description="Statut de l'identité (RNIV) : PROV, RECUP, VALI ou QUAL"
    )
    birth_family_name: ShortText = Field(description="Nom de naissance")
    birth_given_names: list[ShortText] = Field(
        min_length=1, max_length=10, description="Prénoms de naissance, dans l'ordre de l'état civil"
    )
    used_family_name: ShortText | None = None
    used_given_name: ShortText | None = None
    birth_date: dt.date
    sex: Sex
    birthplace_insee: InseeCode | None = Field(
        default=None, description="Code INSEE du lieu de naissance (99xxx pour l'étranger)"
    )
    # TDDUI 2.2.0 tddui-patient: Patient.birthDate.extension:tddui-birth-order 1..1
    # (ordreNaissanceEtatCivil). The NIR carries it (digits 11-13), so it is only needed
    # for a person whose INS is unknown or is a NIA.
    birth_order: int | None = Field(
        default=None,
        ge=1,
        le=999,
        description="Rang d'inscription de la naissance au registre d'état civil "
        "(déduit du NIR quand l'INS est connu)",
    )
    address: Address | None = None
    telecom: list[Telecom] = Field(default_factory=list, max_length=10)
    protection: ProtectionMeasure | None = Field(
        default=None, description="Mesure de protection juridique (majeur protégé)"
    )
    representatives: list[LegalRepresentative] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _qualified_needs_ins(self):
        # FR Core invariant fr-core-1: a qualified identity carries an INS (specs §0.1, §7).
        if self.identity_status is IdentityStatus.QUAL and self.ins is None:
            raise PydanticCustomError(
                "ins-required-when-qualified",
                "une identité qualifiée (QUAL) doit porter son INS (invariant FR Core fr-core-1)",
            )
        # RNIV: RECUP means the INS was retrieved from the INSi teleservice, so it is known.
        if self.identity_status is IdentityStatus.RECUP and self.ins is None:
            raise PydanticCustomError(
                "ins-required-when-recovered",
                "une identité récupérée (RECUP) vient du téléservice INSi : son INS doit figurer",
            )
        if self.identity_status is IdentityStatus.QUAL and self.birthplace_insee is None:
            raise PydanticCustomError(
                "ins-traits-incomplete",
                "une identité qualifiée doit porter les 5 traits INS, dont le lieu de naissance",
            )
        return self

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))
