"""Reports of a run: a French console summary, JSON and JUnit XML for CI, and one
self-contained HTML page a person can read (no script, no external resource).

Every report carries the Relais version and the pinned inputs (packages, rule sets, schemas,
schematron sets, value sets, with versions and sha256). A run is either a validation (one entry
per artefact, each issue with severity, location, rule, source and message) or a suite run
against a live endpoint (one entry per test, with its outcome and the issues behind it).
"""

from __future__ import annotations

import datetime as dt
from html import escape
from xml.sax.saxutils import quoteattr

import orjson

from gateway import __version__
from gateway.conformance.runner.results import KIND_LABELS

FORMAT = "relais-conformance-report/1"
_SEV_FR = {"error": "erreur", "warning": "avertissement", "information": "information"}


def _counts(items) -> dict:
    issues = [i for a in items for i in a.issues]
    return {"errors": sum(1 for i in issues if i.severity == "error"),
            "warnings": sum(1 for i in issues if i.severity == "warning"),
            "information": sum(1 for i in issues if i.severity == "information")}


def to_json(run) -> dict:
    """The JSON report (`relais-conformance-report/1`)."""
    summary = {"artefacts": len(run.artefacts), "valid": sum(1 for a in run.artefacts if a.valid),
               "invalid": sum(1 for a in run.artefacts if not a.valid), **_counts(run.artefacts),
               "seconds": round(run.seconds, 3)}
    out = {"format": FORMAT, "relais": {"version": __version__}, "command": run.command, "started": run.started,
           "ok": run.ok, "stopped": run.stopped, "summary": summary, "inputs": run.inputs.to_json()}
    if run.command == "validate":
        out["files"] = [a.to_json() for a in run.artefacts]
    else:
        out["suite"] = getattr(run, "suite", None)
        out["base_url"] = getattr(run, "base_url", None)
        out["tests"] = [a.to_json() for a in run.artefacts]
    return out


def write_json(run, path: str) -> None:
    with open(path, "wb") as out:
        out.write(orjson.dumps(to_json(run), option=orjson.OPT_INDENT_2) + b"\n")


# --- console ------------------------------------------------------------------------------------
def console(run, *, verbose: bool = False) -> str:
    lines = []
    name = "test" if run.command != "validate" else "fichier"
    for a in run.artefacts:
        status = "conforme" if a.valid else f"{a.errors} erreur(s)"
        if run.command != "validate":
            status = getattr(a, "outcome_fr", None) or status
        more = f", {a.warnings} avertissement(s)" if a.warnings else ""
        label = a.detail if run.command != "validate" else KIND_LABELS.get(a.kind, a.kind)
        lines.append(f"{'✓' if a.valid else '✗'} {a.path} — {label} : {status}{more}")
        for i in a.issues:
            if i.severity == "error" or (i.severity == "warning") or verbose:
                tag = "" if i.severity == "error" else f"({_SEV_FR[i.severity]}) "
                defect = f" [défaut connu {i.defect}]" if i.defect else ""
                lines.append(f"    {i.location}: {tag}[{i.rule}] {i.message}{defect}")
    if run.stopped:
        lines.append(f"ARRÊT : {run.stopped}")
    c = _counts(run.artefacts)
    valid = sum(1 for a in run.artefacts if a.valid)
    lines.append(f"Résumé : {len(run.artefacts)} {name}(s), {valid} conforme(s), {len(run.artefacts) - valid} en "
                 f"erreur ; {c['errors']} erreur(s), {c['warnings']} avertissement(s), {c['information']} "
                 f"information(s) — {run.seconds:.2f} s — Relais {__version__}")
    pins = run.inputs
    used = [f"{p['id']}#{p['version']}" for p in pins.packages] + [s["name"] + f" ({s['version']})" for s in pins.schematrons]
    if used:
        lines.append("Entrées : " + ", ".join(used))
    for note in pins.notes:
        lines.append(f"Note : {note}")
    return "\n".join(lines)


# --- JUnit XML ----------------------------------------------------------------------------------
def junit(run) -> str:
    suite_name = "relais conformance validate" if run.command == "validate" else f"relais conformance run {run.suite}"
    c = _counts(run.artefacts)
    failures = sum(1 for a in run.artefacts if not a.valid) + (1 if run.stopped else 0)
    skipped = sum(1 for a in run.artefacts if getattr(a, "outcome", "") == "skipped")
    cases = []
    for a in run.artefacts:
        classname = "conformance." + (a.kind if run.command == "validate" else run.suite)
        body = []
        errors = [i for i in a.issues if i.severity == "error"]
        if getattr(a, "outcome", "") == "skipped":
            body.append(f"<skipped message={quoteattr(a.issues[0].message if a.issues else 'ignoré')}/>")
        elif errors:
            text = "\n".join(f"{i.location}: [{i.rule}] {i.message} ({i.source})" for i in errors)
            body.append(f"<failure message={quoteattr(f'{len(errors)} erreur(s)')} type=\"conformance\">"
                        f"{escape(text)}</failure>")
        others = [i for i in a.issues if i.severity != "error"]
        if others:
            text = "\n".join(f"{_SEV_FR[i.severity]}: {i.location}: [{i.rule}] {i.message}" for i in others)
            body.append(f"<system-out>{escape(text)}</system-out>")
        cases.append(f"  <testcase classname={quoteattr(classname)} name={quoteattr(a.path)} "
                     f"time=\"{a.seconds:.3f}\">{''.join(body)}</testcase>")
    if run.stopped:
        cases.append(f"  <testcase classname=\"conformance.inputs\" name=\"entrées\"><error message="
                     f"{quoteattr(run.stopped)} type=\"missing-input\"/></testcase>")
    props = [f"<property name=\"relais.version\" value={quoteattr(__version__)}/>"]
    for p in run.inputs.packages:
        props.append(f"<property name=\"package\" value={quoteattr(p['id'] + '#' + p['version'] + ' sha256:' + p['sha256'])}/>")
    for s in run.inputs.schematrons:
        props.append(f"<property name=\"schematron\" value={quoteattr(s['name'] + ' ' + s['version'] + ' sha256:' + s['sha256'])}/>")
    for s in run.inputs.schemas + run.inputs.value_sets + run.inputs.rules:
        props.append(f"<property name=\"input\" value={quoteattr(orjson.dumps(s).decode())}/>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f"<testsuites tests=\"{len(cases)}\" failures=\"{failures}\">\n"
            f" <testsuite name={quoteattr(suite_name)} tests=\"{len(cases)}\" failures=\"{failures}\" "
            f"errors=\"0\" skipped=\"{skipped}\" time=\"{run.seconds:.3f}\" timestamp={quoteattr(run.started)}>\n"
            f"  <properties>{''.join(props)}</properties>\n" + "\n".join(cases) +
            f"\n  <system-out>{escape(str(c))}</system-out>\n </testsuite>\n</testsuites>\n")


def write_junit(run, path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(junit(run))


# --- HTML ---------------------------------------------------------------------------------------
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc}
.meta{color:#555}.ok{color:#17663a}.ko{color:#b00020}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.loc,td.rule{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
.error td.sev{color:#b00020;font-weight:600}.warning td.sev{color:#8a5a00}.information td.sev{color:#555}
details{margin:.25rem 0 1rem}summary{cursor:pointer;font-weight:600}
.badge{display:inline-block;padding:0 .4rem;border-radius:.3rem;font-size:.85em;background:#eee}
"""


def html(run) -> str:
    c = _counts(run.artefacts)
    valid = sum(1 for a in run.artefacts if a.valid)
    title = ("Rapport de conformité" if run.command == "validate"
             else f"Rapport de tests : {escape(str(run.suite))} ({escape(str(run.base_url))})")
    verdict = ("<p class=\"ok\"><strong>Aucune erreur.</strong></p>" if run.ok
               else f"<p class=\"ko\"><strong>{c['errors'] + (1 if run.stopped else 0)} erreur(s).</strong></p>")
    parts = [f"<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{title}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{title}</h1><p class=\"meta\">Relais {escape(__version__)} — {escape(run.started)} — "
             f"{run.seconds:.2f} s</p>", verdict]
    if run.stopped:
        parts.append(f"<p class=\"ko\">Arrêt : {escape(run.stopped)}</p>")
    noun = "fichier" if run.command == "validate" else "test"
    parts.append(f"<table><tr><th>{noun}s</th><th>conformes</th><th>en erreur</th><th>erreurs</th>"
                 f"<th>avertissements</th><th>informations</th></tr><tr><td>{len(run.artefacts)}</td><td>{valid}</td>"
                 f"<td>{len(run.artefacts) - valid}</td><td>{c['errors']}</td><td>{c['warnings']}</td>"
                 f"<td>{c['information']}</td></tr></table>")
    parts.append(f"<h2>{noun.capitalize()}s</h2><table><tr><th></th><th>{noun}</th><th>nature</th><th>détail</th>"
                 "<th>erreurs</th><th>avert.</th></tr>")
    for n, a in enumerate(run.artefacts):
        mark = "<span class=\"ok\">✓</span>" if a.valid else "<span class=\"ko\">✗</span>"
        kind = KIND_LABELS.get(a.kind, a.kind) if run.command == "validate" else escape(getattr(a, "outcome_fr", ""))
        parts.append(f"<tr><td>{mark}</td><td><a href=\"#a{n}\">{escape(a.path)}</a></td><td>{kind}</td>"
                     f"<td>{escape(a.detail)}</td><td>{a.errors}</td><td>{a.warnings}</td></tr>")
    parts.append("</table>")
    for n, a in enumerate(run.artefacts):
        parts.append(f"<h2 id=\"a{n}\">{escape(a.path)}</h2><p class=\"meta\">{escape(a.detail)}</p>")
        if not a.issues:
            parts.append("<p class=\"ok\">Aucun constat.</p>")
            continue
        important = [i for i in a.issues if i.severity != "information"]
        notes = [i for i in a.issues if i.severity == "information"]
        if important:
            parts.append(_issues_table(important))
        if notes:
            parts.append(f"<details><summary>{len(notes)} information(s)</summary>{_issues_table(notes)}</details>")
    parts.append("<h2>Entrées utilisées (versions épinglées)</h2>")
    parts.append(_inputs(run.inputs))
    parts.append("</body></html>\n")
    return "".join(parts)


def _issues_table(issues) -> str:
    rows = ["<table><tr><th>gravité</th><th>emplacement</th><th>règle</th><th>message</th><th>source</th></tr>"]
    for i in issues:
        defect = f" <span class=\"badge\">défaut connu {escape(i.defect)}</span>" if i.defect else ""
        rows.append(f"<tr class=\"{i.severity}\"><td class=\"sev\">{_SEV_FR[i.severity]}</td>"
                    f"<td class=\"loc\">{escape(i.location)}</td><td class=\"rule\">{escape(i.rule)}</td>"
                    f"<td>{escape(i.message)}{defect}</td><td>{escape(i.source)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _inputs(inputs) -> str:
    out = []
    if inputs.packages:
        out.append("<h3>Paquets FHIR</h3><table><tr><th>paquet</th><th>version</th><th>origine</th><th>sha256</th></tr>")
        out += [f"<tr><td>{escape(p['id'])}</td><td>{escape(p['version'])}</td><td>{escape(p.get('origin', ''))}</td>"
                f"<td class=\"loc\">{escape(p['sha256'])}</td></tr>" for p in inputs.packages]
        out.append("</table>")
    if inputs.rules:
        out.append("<h3>Jeux de règles FHIR</h3><ul>" + "".join(
            f"<li>{escape(r['main'])} ({escape(r['origin'])}{', ' + escape(r['file']) if r.get('file') else ''})</li>"
            for r in inputs.rules) + "</ul>")
    if inputs.schemas:
        out.append("<h3>Schémas</h3><ul>" + "".join(
            f"<li>{escape(s['file'])} <span class=\"loc\">sha256 {escape(s['sha256'])}</span></li>" for s in inputs.schemas)
            + "</ul>")
    if inputs.schematrons:
        out.append("<h3>Schématrons</h3><table><tr><th>jeu</th><th>fichier</th><th>version</th><th>sha256</th></tr>")
        out += [f"<tr><td>{escape(s['name'])}</td><td>{escape(s['file'])}</td><td>{escape(s['version'])}</td>"
                f"<td class=\"loc\">{escape(s['sha256'])}</td></tr>" for s in inputs.schematrons]
        out.append("</table>")
    if inputs.value_sets:
        out.append("<h3>Jeux de valeurs</h3><ul>" + "".join(
            f"<li>{escape(v['file'])} ({escape(v['id'])}, version {escape(v['version'])}) "
            f"<span class=\"loc\">sha256 {escape(v['sha256'])}</span></li>" for v in inputs.value_sets) + "</ul>")
    if inputs.notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in inputs.notes) + "</ul>")
    return "".join(out) or "<p>Aucune entrée externe.</p>"


def write_html(run, path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(html(run))


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
