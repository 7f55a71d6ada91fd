"""A FHIR resource or Bundle (JSON, or XML turned into JSON): base R4 structure, then every
profile it declares (`meta.profile`, each Bundle entry's own) or the one given with `--profile`,
from the packages of the catalog — terminology offline from the packages' value sets, slices,
FHIRPath invariants, references inside Bundles (gateway/conformance/fhir does the judging)."""

from __future__ import annotations

from gateway.conformance.runner.catalog import Catalog, PackageEntry
from gateway.conformance.runner.results import Inputs, Issue, problem
from gateway.model.problem import Problem, Severity

SOURCE = "relais-conformance"
SDO = "https://interop.esante.gouv.fr/ig/fhir/sdo/StructureDefinition/"
# Profiles renamed between the guide version an official example was made for and the packages
# published since (reference README "Versions matter"; specs §3.3): the instance is still judged
# against the version it declares — the message says what happened and what to give.
RENAMED_PROFILES = {
    SDO + "sdo-task": ("SDO 4.0.2", SDO + "esms-task"),
    SDO + "sdo-document-reference": ("SDO 4.0.2", SDO + "esms-document-reference"),
    SDO + "sdo-bundle-resultat-recherche-notification-esms": (
        "SDO 4.0.2", SDO + "esms-bundle-resultat-recherche-notification-esms"),
}


def declared_profiles(resource: dict, explicit: str | None) -> list[tuple[str, str]]:
    """(canonical, location) of every profile the file asks for."""
    out: list[tuple[str, str]] = []
    root = resource.get("resourceType") or "$"
    if explicit:
        out.append((explicit, root))
    else:
        out += [(c, f"{root}.meta.profile[{i}]") for i, c in enumerate((resource.get("meta") or {}).get("profile") or [])
                if isinstance(c, str)]
    if resource.get("resourceType") == "Bundle":
        for n, entry in enumerate(resource.get("entry") or []):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict):
                out += [(c, f"Bundle.entry[{n}].resource.meta.profile[{i}]")
                        for i, c in enumerate((res.get("meta") or {}).get("profile") or []) if isinstance(c, str)]
    return out


def _missing(canonical: str, where: str, reason: str) -> Problem:
    url = canonical.partition("|")[0]
    fr = (f"profil {canonical} : aucun paquet FHIR chargé ne le définit ({reason}) — le donner avec --package "
          "ou le placer dans ~/.fhir/packages ; la ressource n'a pas été validée contre ce profil")
    en = f"profile {canonical}: no loaded FHIR package defines it ({reason}); the resource was not validated against it"
    if url in RENAMED_PROFILES:
        version, new = RENAMED_PROFILES[url]
        fr += f" (profil de {version}, renommé {new.rsplit('/', 1)[1]} dans les versions suivantes)"
        en += f" ({version} profile, renamed {new.rsplit('/', 1)[1]} in later versions)"
    return problem("profile-package-missing", fr, en, location=where)


def validate_fhir(resource: dict, catalog: Catalog, *, profile: str | None = None,
                  best_practice: bool = False) -> tuple[list[Issue], str, Inputs]:
    inputs = Inputs()
    declared = declared_profiles(resource, profile)
    entries: list[PackageEntry] = []
    problems: list[Problem] = []
    missing_at: set[str] = set()
    top: list[PackageEntry] = []
    for canonical, where in declared:
        found, reason = catalog.find(canonical, prefer=top)
        if found is None:
            problems.append(_missing(canonical, where, reason))
            missing_at.add(where)
            continue
        if not top:
            top = [found]
        if found not in entries:
            entries.append(found)
    for entry in list(entries):
        for dep in catalog.dependencies(entry):
            if dep not in entries:
                entries.append(dep)
        absent = catalog.missing_dependencies(entry)
        if absent:
            inputs.notes.append(
                f"{entry.label} : dépendance(s) déclarée(s) non disponible(s) : {', '.join(absent)} — la structure "
                "de base est vérifiée par les modèles FHIR R4(B), les liaisons vers leurs jeux de valeurs sont "
                "signalées « non vérifiables hors ligne »")
    validator = catalog.validator(entries, best_practice=best_practice)
    found = validator.validate(resource, profile)
    # a profile already reported as a missing input is not also "unknown"
    problems += [p for p in found if not (p.rule == "profile-unknown" and p.location in missing_at)]
    if not declared:
        problems.append(problem("profile-none", "aucun profil déclaré (meta.profile) ni donné (--profile) : structure "
                                "FHIR R4 et invariants de base seulement", "no profile declared or given: base FHIR R4 "
                                "structure and invariants only", location=resource.get("resourceType") or "$",
                                severity=Severity.information, source=SOURCE))
    packages, rules = catalog.pins(entries)
    inputs.packages += packages
    inputs.rules += rules
    issues = explain_consequences([Issue.of(p) for p in problems])
    used = sorted({c.rsplit("/", 1)[-1] for c, w in declared if w not in missing_at})
    detail = (f"profils : {', '.join(used)} ({', '.join(e.label for e in entries)})" if used
              else "structure FHIR R4 seulement")
    return issues, detail, inputs


def explain_consequences(issues: list[Issue]) -> list[Issue]:
    """A slice left empty because its only candidate carries a code of a renamed CodeSystem
    (defect §11.3) is the same defect: say so beside the slice error."""
    for issue in issues:
        if issue.rule != "slice-cardinality" or issue.defect:
            continue
        cause = next((i for i in issues if i.defect and i.severity == "error" and i is not issue
                      and i.location.startswith(issue.location + "[")), None)
        if cause is not None:
            issue.defect = cause.defect
            issue.message += f" — conséquence de l'erreur en {cause.location} (défaut {cause.defect})"
            issue.message_en += f" — consequence of the error at {cause.location} (defect {cause.defect})"
    return issues
