"""`relais demo`, step by step.

Loads the synthetic platform of `fixtures/`, validates and stores every plan through the real
HTTP API, shows optimistic concurrency and tenant isolation, sets up the persons' consent
situation, then syncs every plan through the delivery spine to the sandbox peers (e-parcours
over TLS, SI-SDO ViaTrajectoire over mutual TLS) — with consent decisions, refusals and a
transient outage ridden out —, receives orientation decisions, evaluations and notifications
back, verifies the signed audit trail offline and prints a table per system.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import orjson

from connectors.sandbox.eparcours import notify
from connectors.sandbox.fhir_app import Fault
from connectors.sandbox.server import ThreadedServer
from gateway.api.app import create_app
from gateway.delivery import hooks
from gateway.delivery.model import PENDING
from gateway.delivery.outbox import counts as outbox_counts
from gateway.delivery.worker import Worker
from gateway.demo import consents
from gateway.demo import dmp as dmp_demo
from gateway.demo.peers import running_peers
from gateway.inbound import review
from gateway.inbound.receive import poll
from gateway.model import Plan
from gateway.model.plan import PlanStatus
from gateway.plans import validate_plan_json
from gateway.settings import Settings
from gateway.storage import Store
from gateway.storage.store import Conflict
from mappings.serafin import nomenclature

DEMO_TENANT = "demo"
OTHER_TENANT = "demo-voisine"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# The synthetic plans are written as of this day (fixtures/README.md); checking them on a
# later day would turn some children into adults and make their parents' role invalid.
FIXTURES_DATE = dt.date(2026, 11, 26)

MODALITY_FR = {
    "ordinary_environment": "milieu ordinaire", "day_care": "accueil de jour",
    "night_care": "accueil de nuit", "full_time_housing": "hébergement complet",
    "temporary_housing": "accueil temporaire", "sequential": "accueil séquentiel",
}
SPECIALISATION_FR = {
    "neurodevelopmental": "troubles du neurodéveloppement", "psychiatric": "handicap psychique",
    "motor_polyhandicap": "handicap moteur / polyhandicap", "sensory": "handicap sensoriel",
}
SYSTEM_FR = {"eparcours": "e-parcours (régional)", "viatrajectoire": "ViaTrajectoire (SI-SDO)",
             "mss": "MSSanté (messagerie)", "dmp": "DMP (Mon espace santé)"}


def say(text: str = "") -> None:
    print(text, flush=True)


def _tenant(store: Store, slug: str, name: str, finess: str | None):
    with contextlib.suppress(Conflict):
        store.create_tenant(slug, name, finess)
    return store.get_tenant(slug)


def _settle(worker: Worker, store: Store, tenant, timeout: float = 120) -> None:
    """Run the worker until nothing is pending (retries included) or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.run_once():
            continue
        with store.reading() as conn:
            pending = sum(n for (_, status), n in outbox_counts(conn, tenant.id).items()
                          if status in {s.value for s in PENDING})
        if not pending:
            return
        time.sleep(0.05)


def run(config: Settings, fixtures: Path = FIXTURES, today: dt.date | None = None) -> int:
    today = today or FIXTURES_DATE
    now = dt.datetime.combine(today, dt.time(10, 0), tzinfo=dt.UTC)
    files = sorted((fixtures / "plans").glob("*.json"))
    if not files:
        say(f"aucun projet trouvé dans {fixtures / 'plans'}")
        return 1
    say("Relais — démonstration sur la base embarquée")
    say(f"  base : {config.database_url}")
    store = Store(config.database_url)
    store.migrate()

    plans = _validate(files, fixtures, today)
    if not plans:
        return 1
    first = plans[0][2]
    tenant = _tenant(store, DEMO_TENANT, first.platform.name, first.platform.finess)
    _tenant(store, OTHER_TENANT, "Plateforme voisine (démonstration)", None)
    _, token = store.create_api_key(DEMO_TENANT, "démonstration")
    _, other_token = store.create_api_key(OTHER_TENANT, "démonstration")
    auth = {"Authorization": f"Bearer {token}"}

    unsubscribe = hooks.subscribe(store)
    try:
        with ThreadedServer(create_app(store, config)) as api, httpx.Client(base_url=api.url, timeout=60) as http:
            _store_all(http, auth, plans, api.url)
            _concurrency(http, auth, plans[0], today)
            _isolation(http, plans[0][2].person.local_id, other_token)
            stored = [Plan.model_validate_json(store.get_plan(tenant, p.person.local_id).content)
                      for _, _, p in plans]
            _exchanges(store, tenant, http, auth, stored, now)
    finally:
        unsubscribe()
    _activity(store, tenant, [p for _, _, p in plans])
    _audit(store, config)
    _summary(store, tenant, [p for _, _, p in plans], today)
    _console_account(store, config)
    store.close()
    return 0


# ----------------------------------------------------------------------- 1 – 4


def _validate(files: list[Path], fixtures: Path, today: dt.date) -> list[tuple[Path, bytes, Plan]]:
    plans = []
    for path in files:
        raw = path.read_bytes()
        plan, problems = validate_plan_json(raw, today)
        if plan is None:
            say(f"  ✗ {path.name} : {problems[0].location} [{problems[0].rule}] {problems[0].message}")
            continue
        plans.append((path, raw, plan))
    say(f"\n1. Validation : {len(plans)}/{len(files)} projets valides (SERAFIN-PH, INS, références)")
    for bad in sorted((fixtures / "invalid").glob("*.json"))[:3]:
        _, problems = validate_plan_json(bad.read_bytes(), today)
        if problems:
            say(f"   exemple de refus — {bad.name} : {problems[0].location} : {problems[0].message}")
    return plans


def _store_all(http: httpx.Client, auth: dict, plans, base: str) -> None:
    outcome = collections.Counter()
    for _, raw, plan in plans:
        pid = plan.person.local_id
        headers = dict(auth, **{"Content-Type": "application/json"})
        current = http.get(f"/persons/{pid}/plan", headers=auth)
        if current.status_code == 200:
            headers["If-Match"] = current.headers["ETag"]
        response = http.put(f"/persons/{pid}/plan", content=raw, headers=headers)
        body = response.json()
        if response.status_code not in (200, 201):
            outcome["refusé"] += 1
            say(f"   refusé : {pid} → {response.status_code} {body.get('detail')}")
        elif body["unchanged"]:
            outcome["inchangé"] += 1
        else:
            outcome["créé" if body["created"] else "nouvelle version"] += 1
    say(f"\n2. Enregistrement par l'API ({base}) : " + ", ".join(f"{n} {k}" for k, n in sorted(outcome.items())))


def _concurrency(http: httpx.Client, auth: dict, first, today: dt.date) -> None:
    _, raw, plan = first
    pid = plan.person.local_id
    etag = http.get(f"/persons/{pid}/plan", headers=auth).headers["ETag"]
    edited = orjson.loads(raw)
    edited["next_review"] = (plan.period.end or today).isoformat()
    edited["version_label"] = f"révision du {today:%d/%m/%Y}"
    write = dict(auth, **{"If-Match": etag, "Content-Type": "application/json"})
    first_write = http.put(f"/persons/{pid}/plan", content=orjson.dumps(edited), headers=write)
    edited["notes"] = "Modification concurrente d'un second coordinateur."
    second_write = http.put(f"/persons/{pid}/plan", content=orjson.dumps(edited), headers=write)
    say("\n3. Écritures concurrentes sur le projet de la personne " + pid)
    say(f"   coordinateur A (If-Match {etag}) → {first_write.status_code}, version {first_write.json().get('version')}")
    say(f"   coordinateur B (même If-Match, périmé) → {second_write.status_code} {second_write.json().get('title')}")
    versions = http.get(f"/persons/{pid}/plan/versions", headers=auth).json()["items"]
    if len(versions) >= 2:
        diff = http.get(f"/persons/{pid}/plan/diff", params={"from": versions[1]["version"],
                                                             "to": versions[0]["version"]}, headers=auth).json()
        paths = ", ".join(op["path"] for op in diff["patch"])
        say(f"   historique : {len(versions)} version(s) ; différences v{diff['from']}→v{diff['to']} : {paths}")


def _isolation(http: httpx.Client, pid: str, other_token: str) -> None:
    other = {"Authorization": f"Bearer {other_token}"}
    status = http.get(f"/persons/{pid}/plan", headers=other).status_code
    listed = http.get("/persons", headers=other).json()["items"]
    say(f"\n4. Cloisonnement : la plateforme voisine obtient {status} sur ce projet et voit {len(listed)} personne(s)")


# ----------------------------------------------------------------------- 5 – 7


def _post_exchange(http: httpx.Client, auth: dict, pid: str, system: str, kind: str,
                   recipient: dict | None = None) -> dict:
    body = {"person": pid, "system": system, "purpose": "COC", "payload_kind": kind,
            "recipient": recipient or {"kind": "system", "identifier": system, "display": SYSTEM_FR[system]}}
    return http.post("/exchanges", json=body, headers=auth).json()


def _exchanges(store: Store, tenant, http: httpx.Client, auth: dict, plans: list[Plan], now: dt.datetime) -> None:
    situation = consents.set_up(store, tenant, plans, now)
    told = collections.Counter(situation.values())
    say(f"\n5. Consentement : {told['informée']} personnes informées du partage au sein de leur équipe, "
        f"{told['opposition']} opposition(s) enregistrée(s), {told['non informée']} pas encore informée(s)")
    active = [p for p in plans if p.status is not PlanStatus.draft]
    drafts = len(plans) - len(active)

    with running_peers(tenant.finess, [p.model_dump(mode="json") for p in plans]) as peers:
        worker = Worker(store, peers.connectors)
        # e-parcours: the regional tool is down for the first three calls.
        peers.eparcours.faults.add(Fault(status=503), times=3)
        for plan in active:
            _post_exchange(http, auth, plan.person.local_id, "eparcours", "tddui-bundle")
        _settle(worker, store, tenant)
        say(f"\n6. Envoi des projets à l'outil e-parcours ({peers.eparcours_url}, TLS + OAuth2) — "
            f"{drafts} brouillons non transmis ; panne simulée de l'outil sur 3 appels, réessayés")
        _reasons(store, tenant, "eparcours")

        # ViaTrajectoire: decisions come in, the coordinator applies them, then the consent and
        # the platform's status go out; the evaluations follow.
        received = poll(store, tenant, peers.connectors["viatrajectoire"])
        applied = 0
        for item in review.listing(store, tenant, status="proposed", limit=1000):
            try:
                review.apply(store, tenant, item.id, if_match=None, actor="demo:coordinatrice", today=now.date())
                applied += 1
            except Conflict:
                pass
        with_decisions = [p for p in active if any(
            i.status == "applied" for i in review.listing(store, tenant, person=p.person.local_id, system="viatrajectoire"))]
        for plan in with_decisions:
            for kind in ("sdo-consent", "sdo-status"):
                _post_exchange(http, auth, plan.person.local_id, "viatrajectoire", kind)
        _settle(worker, store, tenant)
        again = poll(store, tenant, peers.connectors["viatrajectoire"])
        say(f"\n7. ViaTrajectoire ({peers.sdo_url}, TLS mutuel + OAuth2 + struct_idnat) : "
            f"{received['proposed']} décision(s) reçue(s) et proposée(s), {applied} appliquée(s) par la "
            f"coordinatrice ; accords et statuts transmis ; {again['recorded']} évaluation(s)/statut(s) reçus ensuite")
        _reasons(store, tenant, "viatrajectoire")
        dmp_demo.step(store, tenant, http, auth, active, now, worker, post=_post_exchange, settle=_settle,
                      reasons=_reasons)

        # e-parcours notifications about three persons.
        for plan, (code, label) in zip([p for p in active if p.person.ins][:3],
                                        [("HOSP", "Hospitalisation"), ("SOR", "Sortie d'hospitalisation"),
                                         ("RDV", "Rendez-vous de consultation")]):
            notify(peers.eparcours, event_code=code, display=label,
                   patient_identifier={"system": f"urn:oid:{plan.person.ins.oid}", "value": plan.person.ins.value})
        poll(store, tenant, peers.connectors["eparcours"])
        _mss(store, tenant, http, auth, worker, [p for p in active if situation[p.person.local_id] == "informée"
                                                 and p.person.identity_status.value == "QUAL"], now)
    _table(store, tenant)


def _mss(store: Store, tenant, http: httpx.Client, auth: dict, worker: Worker, plans: list[Plan],
         now: dt.datetime) -> None:
    """MSSanté: the coordinator sends the plan to the person's doctor, a member of the care
    team; the doctor's software acknowledges (MDN) and answers with a CDA of its own, which
    waits for the coordinator's review as a proposed update."""
    from connectors.sandbox.mss import MssSandbox
    from gateway.consent import ConsentRegistry
    from gateway.consent.fhir_careteam import MemberSpec, care_team_resource
    from gateway.consent.model import InformationRecord
    from gateway.consent.vocab import InformationMethod, InformationTopic, Profession

    registry = ConsentRegistry(store)
    with tempfile.TemporaryDirectory(prefix="relais-demo-mss-") as tmp, MssSandbox(Path(tmp)) as mss:
        doctor = mss.correspondents[0]
        connector = mss.connector(state_dir=str(Path(tmp) / "state"))
        worker.connectors["mss"] = connector
        try:
            for plan in plans:
                local_id = plan.person.local_id
                registry.put_care_team(tenant, local_id, care_team_resource(local_id, [
                    MemberSpec("PractitionerRole", ("rpps", doctor.identifier), Profession.health)]),
                    actor="demo", now=now)
                registry.record_information(tenant, local_id, InformationRecord(
                    id=uuid.uuid4().hex, informed_at=now - dt.timedelta(days=2), method=InformationMethod.oral,
                    informed_by="coordinatrice de parcours", notice_version="notice-plateforme-2026-01",
                    topics=frozenset({InformationTopic.cross_category_exchange})), actor="demo", now=now)
                # The care team the consent engine reads is the one the regional tool keeps
                # (cercle de soins transaction).
                _post_exchange(http, auth, local_id, "eparcours", "cds-careteam")
                _post_exchange(http, auth, local_id, "mss", "xdm-message", {
                    "kind": "professional", "identifier": doctor.identifier, "display": doctor.name,
                    "profession": "health"})
            _settle(worker, store, tenant)
            # The doctor's software answers each message (MDN + CDA); collect until all are in.
            received = collections.Counter()
            deadline = time.monotonic() + 90
            while received["proposed"] < len(plans) and time.monotonic() < deadline:
                mss.wait(10)
                received.update(poll(store, tenant, connector))
        finally:
            worker.connectors.pop("mss", None)
            connector.close()
    say(f"\n9. MSSanté (SMTP/IMAP sur TLS mutuel, archive IHE XDM + CDA) : {len(plans)} projet(s) adressé(s) au "
        f"{doctor.name}, membre de l'équipe de soins (cercle de soins publié sur l'outil e-parcours) ; "
        f"{received['recorded']} accusé(s) de traitement reçu(s), "
        f"{received['proposed']} réponse(s) CDA en attente de validation par la coordinatrice")


def _reasons(store: Store, tenant, system: str) -> None:
    """Why exchanges did not go: the deciding rule of each refusal, the first error of each
    invalid payload — counted."""
    from gateway.delivery.outbox import listing

    why = collections.Counter()
    with store.reading() as conn:
        for status in ("refused", "invalid"):
            for e in listing(conn, tenant.id, status=status, system=system, limit=10_000):
                if status == "refused" and e.decision_reasons:
                    why[("refusé", e.decision_reasons[0].split(" :")[0].split(" (")[0])] += 1
                elif e.problems:
                    first = next((p for p in e.problems if p.get("severity") == "error"), e.problems[0])
                    why[("invalide", first["message"].split(" :")[0])] += 1
    for (kind, reason), n in why.most_common():
        say(f"   {kind} ({n}) : {reason}")


def _table(store: Store, tenant) -> None:
    with store.reading() as conn:
        sent = outbox_counts(conn, tenant.id)
    received = review.counts(store, tenant)
    say("\n   système                   envoyés  refusés  invalides  en échec  reçus  à valider")
    for system in ("eparcours", "viatrajectoire", "mss", "dmp"):
        def n(*statuses, table=sent):
            return sum(table.get((system, s), 0) for s in statuses)
        say(f"   {SYSTEM_FR[system]:<25} {n('sent', 'acknowledged'):>7}  {n('refused'):>7}  {n('invalid'):>9}  "
            f"{n('dead'):>8}  {sum(v for (s, _), v in received.items() if s == system):>5}  "
            f"{n('proposed', 'unmatched', table=received):>9}")


# ----------------------------------------------------------------------- 8 – 9


def _activity(store: Store, tenant, plans: list[Plan]) -> None:
    """A month of delivered activity, recorded through the real path, and the SERAFIN-PH
    indicators the reform asks for (file active, occupancy, turnover, intensity, modularity)."""
    from gateway.activity import indicators_summary_lines, record_synthetic_month

    month = record_synthetic_month(store, tenant, plans, dt.date(2026, 10, 1), seed=2026)
    say(f"\n10. Activité d'octobre 2026 (synthétique, en unités SERAFIN-PH) :")
    for line in indicators_summary_lines(store, tenant, month.start, month.end):
        say(f"   {line.strip()}")


def _audit(store: Store, config: Settings) -> None:
    from gateway.audit.export import export
    from gateway.audit.verify import verify_export

    with tempfile.TemporaryDirectory(prefix="relais-audit-") as tmp:
        summary = export(store.engine, Path(tmp) / "export", config)
        report = verify_export(Path(tmp) / "export")
    state = "intègre" if report.ok else "ALTÉRÉ : " + report.findings[0].message
    say(f"\n11. Journal d'audit : {summary.entries} entrées, {summary.checkpoints} point(s) de contrôle signé(s) "
        f"(Ed25519) ; vérification hors ligne de l'export : {state}")


def _summary(store: Store, tenant, plans: list[Plan], today: dt.date) -> None:
    terms = nomenclature()
    minors = sum(1 for p in plans if p.person.age_on(today) < 18)
    families = collections.Counter(s for p in plans for s in p.specialisations)
    modalities = collections.Counter(s.modality.value for p in plans for s in p.services)
    statuses = collections.Counter(p.person.identity_status.value for p in plans)
    needs = collections.Counter(terms.ancestors(n.code)[1].code for p in plans for n in p.needs)
    hours = sum((s.intensity.value for p in plans for s in p.services
                 if s.code.startswith("2.") and s.intensity
                 and s.intensity.unit.value == "hours_per_week"), Decimal(0))
    say(f"\n12. Plateforme « {tenant.name} » (FINESS {tenant.finess}) : {store.count_persons(tenant)} personnes en base")
    say(f"   {minors} enfants et {len(plans) - minors} adultes ; identités : "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    say("   spécialisations : " + ", ".join(f"{SPECIALISATION_FR[k]} {v}" for k, v in families.most_common()))
    say("   besoins évalués : " + ", ".join(f"{k} {terms.get(k).label.lower()} : {v}" for k, v in sorted(needs.items())))
    say("   prestations prévues par modalité : "
        + ", ".join(f"{MODALITY_FR[k]} {v}" for k, v in modalities.most_common()))
    say(f"   intensité prévue : {hours:.1f} h de prestations directes par semaine au total")


def _console_account(store: Store, config: Settings) -> None:
    """The last step: a DPO account for the console (/console), its fresh password shown once."""
    import secrets

    from gateway.console import accounts

    password = secrets.token_urlsafe(12)  # never contains the login (no "." in the alphabet)
    try:
        accounts.create_account(store, DEMO_TENANT, "dpo.demo", password, config=config, actor="demo")
    except Conflict:
        accounts.set_password(store, DEMO_TENANT, "dpo.demo", password, config=config, actor="demo")
    say(f"\n13. Console DPO : http://{config.host}:{config.port}/console/ (après « relais serve ») — "
        f"plateforme {DEMO_TENANT}, identifiant dpo.demo, mot de passe {password}")
