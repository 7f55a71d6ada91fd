"""Payload kind `cds-careteam`: the person's care team, as the consent engine keeps it, sent to
the regional e-parcours tool as a cercle de soins transaction (ans.fhir.fr.cds 2.0.1, specs
§6.1; mapping in `mappings/fhir/cds/`). The care team the tool holds is then the one the consent
engine reads.

- `load` reads the care team (`ConsentRegistry.get_care_team`);
- `build` maps it with the plan (person, representatives, platform); no care team, or a member
  the guide cannot express, makes the exchange invalid with the reason;
- `validate` judges the Bundle with the rule set compiled from the CDS 2.0.1, FR Core 2.1.0 and
  Annuaire 1.1.0 packages (`mappings/fhir/profiles/cds-2.0.1.rules.json`): each entry against
  its declared profile, every reference resolved inside the Bundle.

Every sync is a `cds-bundle-transaction-creation` whose CareTeam entry is a conditional update
on the CareTeam's business identifier (see mappings/fhir/cds/careteam.py): the spine does not
need to remember the peer's logical ids, and a change sent again updates the same CareTeam.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import cache
from importlib import resources

import orjson

from gateway.delivery.payloads import BuildContext, BuildError, PayloadKind, register
from gateway.model import Plan, Problem
from gateway.plans import JsonInputError, loads_object

KIND = "cds-careteam"
FHIR_JSON = "application/fhir+json"
RULES = "cds-2.0.1.rules.json"
# The packages the shipped rule set is compiled from, and the profiles compiled besides the
# CDS package's own: those its transaction Bundles admit as entries.
PACKAGES = (
    "ans.fhir.fr.cds#2.0.1.tgz",
    "hl7.fhir.fr.core#2.1.0.tgz",
    "ans.fhir.fr.annuaire#1.1.0.tgz",
    "ans.fr.terminologies-subset#0.0.0-from-pdsm-combined.tgz",
)
MAIN = "ans.fhir.fr.cds"
ENTRY_PROFILES = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient",
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins",
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitionerrole",
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitioner",
)


def load_care_team(store, tenant, person_local_id: str, *, labels=()) -> dict:
    from gateway.consent import ConsentRegistry

    stored = ConsentRegistry(store).get_care_team(tenant, person_local_id)
    if stored is None:
        return {}
    return {"care_team": stored.resource, "care_team_version": stored.version}


def build_care_team(plan: Plan, context: BuildContext) -> bytes:
    from mappings.fhir.cds import CareTeamUnmappable, care_team_bundle

    team = context.extras.get("care_team")
    if team is None:
        raise BuildError([Problem(
            location="$.care_team", rule="cds-no-care-team", source="relais-cds 2.0.1",
            message="aucune équipe de soins enregistrée pour cette personne : rien à transmettre au "
                    "cercle de soins de l'outil e-parcours (enregistrer d'abord l'équipe : "
                    "PUT /persons/{id}/care-team ou relais consent care-team)",
            message_en="no care team recorded for this person: nothing to send to the e-parcours tool")])
    try:
        bundle = care_team_bundle(team, plan)
    except CareTeamUnmappable as exc:
        raise BuildError(exc.problems) from None
    # A resend of this exchange is recognised by the peer as the same Bundle (as TDDUI).
    bundle["identifier"] = {"system": "urn:ietf:rfc:3986",
                            "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, context.idempotency_key)}"}
    return orjson.dumps(bundle)


def shipped_rules() -> bytes:
    return resources.files("mappings.fhir.profiles").joinpath(RULES).read_bytes()


@cache
def cds_gate():
    """The CDS 2.0.1 gate (gate policy: declared profiles, references closed in the Bundle)."""
    from gateway.conformance.fhir.gate import Gate
    from gateway.conformance.fhir.rules import RuleSet

    raw = shipped_rules()
    return Gate(RuleSet(orjson.loads(raw)), rules_sha256=hashlib.sha256(raw).hexdigest())


def validate_care_team(payload: bytes) -> list[Problem]:
    try:
        bundle = loads_object(payload, max_bytes=10 * 1024 * 1024)
    except JsonInputError as exc:
        return [exc.problem]
    return cds_gate().validate(bundle)


register(PayloadKind(name=KIND, content_type=FHIR_JSON, build=build_care_team,
                     validate=validate_care_team, load=load_care_team))
