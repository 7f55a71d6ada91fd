"""Cercle de soins 2.0.1 (ANS "Gestion du cercle de soins", specs §6.1): the person's care team →
a transaction Bundle for the regional e-parcours tool.

`care_team_bundle(care_team, plan) -> dict` is pure (no I/O, no clock); it raises
`CareTeamUnmappable(problems)` when the care team cannot be expressed (see README.md)."""

from mappings.fhir.cds.careteam import CareTeamUnmappable, care_team_bundle, care_team_identifier
from mappings.fhir.cds.constants import BUNDLE_CREATION, BUNDLE_UPDATE, CDS_PACKAGE, CDS_VERSION

__all__ = ["BUNDLE_CREATION", "BUNDLE_UPDATE", "CDS_PACKAGE", "CDS_VERSION", "CareTeamUnmappable",
           "care_team_bundle", "care_team_identifier"]
