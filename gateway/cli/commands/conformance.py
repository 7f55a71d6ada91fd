"""`relais conformance validate|run|suites` — the rules Relais applies, for integrators, offline.

Contract (kept stable):
  relais conformance validate PATH... [--package PKG]... [--schematron DIR] [--junit FILE] [--json FILE] [--html FILE]
      exit 0 when nothing has severity error, 1 otherwise; the JSON report lists, per file, its issues
      with severity, location, rule, source (profile or schematron and version) and message.
  relais conformance run SUITE --base-url URL [...]   scripted tests of a live endpoint, same reports
  relais conformance suites                            the suites and what they test
"""

from __future__ import annotations

import sys

from gateway.cli.common import INVALID, OK, USAGE


def register(sub) -> None:
    parser = sub.add_parser("conformance", help="valider des artefacts et tester des serveurs (intégrateurs)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    val = actions.add_parser("validate", help="valider des fichiers ou dossiers : FHIR, CDA, XDM, XDS, ITI-41")
    val.add_argument("paths", nargs="+", metavar="CHEMIN", help="fichiers ou dossiers (parcourus récursivement)")
    val.add_argument("--package", action="append", default=[], metavar="PAQUET",
                     help="paquet FHIR NPM (package.tgz, dossier, ou dossier de paquets) ; répétable")
    val.add_argument("--profile", metavar="URL[|VERSION]", help="profil à appliquer au lieu de meta.profile")
    val.add_argument("--schematron", metavar="DOSSIER",
                     help="dossier TestContenuCDA (schémas, schématrons CI-SIS, jeux de valeurs) ; défaut : "
                          "RELAIS_CDA_SCHEMAS")
    val.add_argument("--jobs", type=int, metavar="N", help="processus en parallèle (défaut : nombre de cœurs)")
    val.add_argument("--cache", metavar="DOSSIER", help="cache disque (défaut : RELAIS_CONFORMANCE_CACHE)")
    val.add_argument("--sans-cache-fhir", action="store_true", help="ne pas chercher de paquets dans ~/.fhir/packages")
    val.add_argument("--sans-regles-relais", action="store_true",
                     help="ne pas utiliser les jeux de règles embarqués par Relais (TDDUI 2.2.0, SDO 4.0.7)")
    val.add_argument("--bonnes-pratiques", action="store_true", help="signaler aussi les recommandations (dom-6…)")
    _report_options(val)
    val.set_defaults(func=run_validate)

    run = actions.add_parser("run", help="tester un point d'accès en ligne (suite de tests scriptés)")
    run.add_argument("suite", metavar="SUITE", help="voir « relais conformance suites »")
    run.add_argument("--base-url", required=True, metavar="URL")
    run.add_argument("--token-url", metavar="URL", help="jeton OAuth2 client_credentials (défaut : BASE/oauth/token)")
    run.add_argument("--client-id", metavar="ID")
    run.add_argument("--client-secret", metavar="SECRET")
    run.add_argument("--header", action="append", default=[], metavar="NOM:VALEUR", help="en-tête ajouté ; répétable")
    run.add_argument("--ca-file", metavar="FICHIER", help="autorité de certification du serveur (TLS)")
    run.add_argument("--client-cert", metavar="FICHIER", help="certificat client (TLS mutuel)")
    run.add_argument("--client-key", metavar="FICHIER")
    run.add_argument("--option", action="append", default=[], metavar="NOM=VALEUR",
                     help="paramètre propre à la suite (ex. finess=750000001, login=…, password=…) ; répétable")
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDES")
    _report_options(run)
    run.set_defaults(func=run_suite)

    suites = actions.add_parser("suites", help="lister les suites de tests et ce qu'elles vérifient")
    suites.set_defaults(func=run_list)


def _report_options(parser) -> None:
    parser.add_argument("--junit", metavar="FICHIER", help="rapport JUnit XML (CI)")
    parser.add_argument("--json", metavar="FICHIER", help="rapport JSON (CI)")
    parser.add_argument("--html", metavar="FICHIER", help="rapport HTML autonome, lisible")
    parser.add_argument("--verbose", "-v", action="store_true", help="afficher aussi les informations")
    parser.add_argument("--quiet", "-q", action="store_true", help="n'afficher que le résumé")


def _write_reports(run, args) -> int:
    from gateway.conformance.runner import report

    text = report.console(run, verbose=args.verbose)
    if args.quiet:
        text = "\n".join(line for line in text.splitlines() if line.startswith(("Résumé", "ARRÊT")))
    print(text)
    try:
        if args.json:
            report.write_json(run, args.json)
        if args.junit:
            report.write_junit(run, args.junit)
        if args.html:
            report.write_html(run, args.html)
    except OSError as exc:
        print(f"rapport non écrit : {exc}", file=sys.stderr)
        return INVALID
    return OK if run.ok else INVALID


def run_validate(args) -> int:
    from gateway.conformance.runner.validate import Options, run_validate as validate

    options = Options(packages=tuple(args.package), profile=args.profile, schematron=args.schematron,
                      cache_dir=args.cache, use_fhir_cache=not args.sans_cache_fhir,
                      use_shipped=not args.sans_regles_relais, best_practice=args.bonnes_pratiques, jobs=args.jobs)
    return _write_reports(validate(args.paths, options), args)


def run_suite(args) -> int:
    from gateway.conformance.runner.suites import SUITES, Endpoint, run_suite as run

    if args.suite not in SUITES:
        print(f"suite inconnue : {args.suite} (suites : {', '.join(sorted(SUITES))})", file=sys.stderr)
        return USAGE
    headers, options = {}, {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            print(f"en-tête invalide : {item!r} (NOM:VALEUR attendu)", file=sys.stderr)
            return USAGE
        headers[name.strip()] = value.strip()
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"option invalide : {item!r} (NOM=VALEUR attendu)", file=sys.stderr)
            return USAGE
        options[name.strip()] = value
    endpoint = Endpoint(base_url=args.base_url, token_url=args.token_url, client_id=args.client_id,
                        client_secret=args.client_secret, headers=headers, ca_file=args.ca_file,
                        client_cert=args.client_cert, client_key=args.client_key, timeout=args.timeout,
                        options=options)
    return _write_reports(run(args.suite, endpoint), args)


def run_list(args) -> int:
    from gateway.conformance.runner.suites import SUITES

    for name, suite in sorted(SUITES.items()):
        state = "" if suite.implemented else " [non implémentée]"
        print(f"{name}{state} — {suite.title}")
        for line in suite.describe():
            print(f"    {line}")
    return OK
