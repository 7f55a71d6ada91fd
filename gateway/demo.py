"""`relais demo`: the main job on the embedded default, narrated in French.

Loads the synthetic platform of `fixtures/`, validates every plan, stores each one through
the real HTTP API (uvicorn on loopback, API key, If-Match), shows that a stale write is
refused and that another platform sees nothing, then prints a summary of the platform.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import uvicorn

from gateway.api.app import create_app
from gateway.model import Plan
from gateway.plans import validate_plan_json
from gateway.settings import Settings
from gateway.storage import Store
from gateway.storage.store import Conflict
from mappings.serafin import nomenclature

DEMO_TENANT = "demo"
OTHER_TENANT = "demo-voisine"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The synthetic plans are written as of this day (fixtures/README.md); checking them on a
# later day would turn some children into adults and make their parents' role invalid.
FIXTURES_DATE = dt.date(2026, 11, 26)

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


def say(text: str = "") -> None:
    print(text, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_api(store: Store, config: Settings) -> Iterator[str]:
    """The real API on a loopback port, in a thread, for the time of the block."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(store, config), host="127.0.0.1", port=port,
                       log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("le serveur de démonstration n'a pas démarré")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _tenant(store: Store, slug: str, name: str, finess: str | None):
    with contextlib.suppress(Conflict):
        store.create_tenant(slug, name, finess)
    return store.get_tenant(slug)


def run(config: Settings, fixtures: Path = FIXTURES, today: dt.date | None = None) -> int:
    today = today or FIXTURES_DATE
    files = sorted((fixtures / "plans").glob("*.json"))
    if not files:
        say(f"aucun projet trouvé dans {fixtures / 'plans'}")
        return 1
    say("Relais — démonstration sur la base embarquée")
    say(f"  base : {config.database_url}")
    store = Store(config.database_url)
    store.migrate()

    # 1. Validate every plan file, and show what a bad one looks like.
    plans: list[tuple[Path, bytes, Plan]] = []
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
    if not plans:
        return 1

    finess = plans[0][2].platform.finess
    tenant = _tenant(store, DEMO_TENANT, plans[0][2].platform.name, finess)
    _tenant(store, OTHER_TENANT, "Plateforme voisine (démonstration)", None)
    _, token = store.create_api_key(DEMO_TENANT, "démonstration")
    _, other_token = store.create_api_key(OTHER_TENANT, "démonstration")

    with running_api(store, config) as base, httpx.Client(base_url=base, timeout=30) as http:
        auth = {"Authorization": f"Bearer {token}"}
        # 2. Store every plan through the API, as a DUI would: read the ETag, then write.
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
        say(f"\n2. Enregistrement par l'API ({base}) : "
            + ", ".join(f"{n} {k}" for k, n in sorted(outcome.items())))

        # 3. Two coordinators edit the same plan: the second, stale write is refused.
        _, raw, plan = plans[0]
        pid = plan.person.local_id
        etag = http.get(f"/persons/{pid}/plan", headers=auth).headers["ETag"]
        edited = orjson.loads(raw)
        edited["next_review"] = (plan.period.end or today).isoformat()
        edited["version_label"] = f"révision du {today:%d/%m/%Y}"
        first = http.put(f"/persons/{pid}/plan", content=orjson.dumps(edited),
                         headers=dict(auth, **{"If-Match": etag, "Content-Type": "application/json"}))
        edited["notes"] = "Modification concurrente d'un second coordinateur."
        second = http.put(f"/persons/{pid}/plan", content=orjson.dumps(edited),
                          headers=dict(auth, **{"If-Match": etag, "Content-Type": "application/json"}))
        say("\n3. Écritures concurrentes sur le projet de la personne " + pid)
        say(f"   coordinateur A (If-Match {etag}) → {first.status_code}, version {first.json().get('version')}")
        say(f"   coordinateur B (même If-Match, périmé) → {second.status_code} {second.json().get('title')}")
        versions = http.get(f"/persons/{pid}/plan/versions", headers=auth).json()["items"]
        if len(versions) >= 2:
            diff = http.get(f"/persons/{pid}/plan/diff",
                            params={"from": versions[1]["version"], "to": versions[0]["version"]},
                            headers=auth).json()
            paths = ", ".join(op["path"] for op in diff["patch"])
            say(f"   historique : {len(versions)} version(s) ; différences v{diff['from']}→v{diff['to']} : {paths}")

        # 4. Another platform's key sees nothing of this one.
        other = http.get(f"/persons/{pid}/plan", headers={"Authorization": f"Bearer {other_token}"})
        listed = http.get("/persons", headers={"Authorization": f"Bearer {other_token}"}).json()["items"]
        say(f"\n4. Cloisonnement : la plateforme voisine obtient {other.status_code} sur ce projet "
            f"et voit {len(listed)} personne(s)")

    _summary(store, tenant, [p for _, _, p in plans], today)
    store.close()
    return 0


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
    say(f"\n5. Plateforme « {tenant.name} » (FINESS {tenant.finess}) : "
        f"{store.count_persons(tenant)} personnes en base")
    say(f"   {minors} enfants et {len(plans) - minors} adultes ; identités : "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    say("   spécialisations : " + ", ".join(f"{SPECIALISATION_FR[k]} {v}" for k, v in families.most_common()))
    say("   besoins évalués : " + ", ".join(f"{k} {terms.get(k).label.lower()} : {v}"
                                           for k, v in sorted(needs.items())))
    say("   prestations prévues par modalité : "
        + ", ".join(f"{MODALITY_FR[k]} {v}" for k, v in modalities.most_common()))
    say(f"   intensité prévue : {hours:.1f} h de prestations directes par semaine au total")
    say("\nAPI : relais serve, puis http://127.0.0.1:8080/docs")
