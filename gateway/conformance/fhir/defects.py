"""Deliberate handling of the official material's defects (reference specs §11).

Each decision has a stable id, the §11 number it answers, and a French and English statement that
goes into the compiled rule set and into validation reports. The validator judges an instance
against the version it declares; these decisions only (1) replace a value set that is published
wrong, and (2) explain, next to the error they cause, mistakes that come from an older version of
the guide (they never turn such an error into a pass).
"""

from __future__ import annotations

from gateway.conformance.fhir.terminology import Expansion, Terminology

TDDUI = "https://interop.esante.gouv.fr/ig/fhir/tddui"
NOS = "https://mos.esante.gouv.fr/NOS"

# §11.1 — `tddui-serafin` is written `include codes from valueset J283 and J284`: in FHIR one
# include with several value sets is their INTERSECTION, which is empty (a service is either
# direct, J284, or indirect, J283). The published expansion has 0 concepts, so a strict validator
# rejects every SERAFIN code of Encounter.type[serafin] and Task.input[typePrestation]. The intent
# is the union J283 ∪ J284 (specs §1.2): Relais validates SERAFIN 2.x/3.x codes against the union
# and says so in every report where the value set is used.
UNION_INSTEAD_OF_INTERSECTION = {
    f"{TDDUI}/ValueSet/tddui-serafin": "tddui-serafin-union",
    f"{TDDUI}/ValueSet/tddui-serafin-valueset": "tddui-serafin-union",  # id in 2.1.0-ballot
}

# §11.3 (version drift, see reference README): CodeSystem URLs renamed between 2.1.0-ballot (the
# official example bundle) and 2.2.0. Codings still using the old URL do not match 2.2.0's
# patterns; the error stays, with this explanation beside it.
RENAMED_SYSTEMS = {
    f"{TDDUI}/CodeSystem/tddui-discriminator-cs": f"{TDDUI}/CodeSystem/tddui-discriminator",
    f"{TDDUI}/CodeSystem/input-tddui-task-action-codesystem": f"{TDDUI}/CodeSystem/tddui-task-input-action",
    f"{TDDUI}/CodeSystem/input-tddui-task-bilan-codesystem": f"{TDDUI}/CodeSystem/tddui-task-input-bilan",
    f"{TDDUI}/CodeSystem/input-tddui-task-moyen-ressource-codesystem": f"{TDDUI}/CodeSystem/tddui-task-input-moyen-ressource",
    f"{TDDUI}/CodeSystem/input-tddui-task-prestation-codesystem": f"{TDDUI}/CodeSystem/tddui-task-input-prestation",
    f"{TDDUI}/CodeSystem/input-tddui-task-transport-codesystem": f"{TDDUI}/CodeSystem/tddui-task-input-transport",
    f"{TDDUI}/CodeSystem/output-tddui-task-bilan-codesystem": f"{TDDUI}/CodeSystem/tddui-task-output-bilan",
}

DECISIONS = [
    {
        "id": "tddui-serafin-union",
        "specs": "§11.1",
        "fr": (
            "Le jeu de valeurs tddui-serafin est publié comme l'intersection de JDV_J283 et JDV_J284 "
            "(donc vide) ; Relais valide les codes SERAFIN-PH 2.x/3.x contre leur union J283 ∪ J284, "
            "qui est l'intention du guide."
        ),
        "en": (
            "The tddui-serafin value set is published as the intersection of JDV_J283 and JDV_J284 "
            "(hence empty); Relais validates SERAFIN-PH 2.x/3.x codes against their union J283 ∪ J284, "
            "which is the guide's intent."
        ),
    },
    {
        "id": "request-url-profile-name",
        "specs": "§11.2",
        "fr": (
            "Les exemples officiels TDDUI mettent un nom de profil (ex. TDDUIPatient) dans "
            "entry.request.url au lieu du type de ressource ; Relais l'interdit (un serveur FHIR le refuse)."
        ),
        "en": (
            "The official TDDUI examples put a profile name (e.g. TDDUIPatient) in entry.request.url "
            "instead of the resource type; Relais rejects it (a FHIR server would)."
        ),
    },
    {
        "id": "codesystem-renamed",
        "specs": "§11.3",
        "fr": (
            "Des CodeSystem TDDUI ont changé d'URL entre 2.1.0-ballot et 2.2.0 (ex. tddui-discriminator-cs "
            "→ tddui-discriminator) ; une instance est jugée selon la version épinglée (2.2.0) et l'erreur "
            "est accompagnée de la nouvelle URL."
        ),
        "en": (
            "Some TDDUI CodeSystems changed URL between 2.1.0-ballot and 2.2.0 (e.g. tddui-discriminator-cs "
            "→ tddui-discriminator); an instance is judged against the pinned version (2.2.0) and the error "
            "comes with the new URL."
        ),
    },
    {
        "id": "fr-core-identity-status",
        "specs": "§11.10",
        "fr": (
            "L'invariant fr-core-1 de FR Core 2.1.0 teste le statut d'identité VALI (table "
            "fr-core-cs-v2-0445) ; Relais l'évalue tel qu'il est publié dans la version épinglée."
        ),
        "en": (
            "FR Core 2.1.0's fr-core-1 invariant tests identity status VALI (fr-core-cs-v2-0445); "
            "Relais evaluates it as published in the pinned version."
        ),
    },
]
_BY_ID = {d["id"]: d for d in DECISIONS}


def describe() -> list[dict]:
    return [dict(d) for d in DECISIONS]


def decision(decision_id: str) -> dict:
    return _BY_ID[decision_id]


def value_set(canonical: str, faithful: Expansion, terminology: Terminology) -> Expansion:
    """The expansion Relais uses for `canonical`: the faithful one, or a documented replacement."""
    url = canonical.partition("|")[0]
    decision_id = UNION_INSTEAD_OF_INTERSECTION.get(url)
    if decision_id is None:
        return faithful
    found = terminology.packages.resolve(url, "ValueSet")
    if found is None:
        return faithful
    vs, package = found
    union = Expansion(url=url, version=vs.get("version", ""), source=[package.label], notes=[decision_id])
    for inc in vs.get("compose", {}).get("include", ()):
        for inner_url in inc.get("valueSet", ()):
            inner = terminology.expand(inner_url)
            if not inner.expandable:
                union.status = "partial"
                union.reason = inner.reason
            union.source.extend(inner.source)
            for system, codes in inner.codes.items():
                union.codes.setdefault(system, set()).update(codes)
    if not union.codes:
        union.status = "not-expandable"
    return union


def renamed_system(system: str | None) -> str | None:
    return RENAMED_SYSTEMS.get(system or "")


def profile_name_in_request_url(url: str, profile_names: set[str]) -> bool:
    return url.split("?")[0].split("/")[0] in profile_names
