"""The DPO console over HTTP: server-rendered French pages, mounted at /console.

`console_app(store, config)` is a FastAPI application of its own (not in the API's OpenAPI),
mounted by gateway/api/app.py. Routes hold no business logic: they check the session and
the CSRF token, call views / reports / integrity, audit the page view and render a template.

    GET  /connexion, POST /connexion, POST /deconnexion
    GET  /                                  home: search a person, integrity status
    GET  /personnes?q=…                     find a person by local id or audit pseudonym
    GET  /personnes/{id}                    consents (current state and history), information
    GET  /personnes/{id}/acces[.csv]        access report (GDPR art. 15), HTML or CSV
    GET  /decisions?issue=&systeme=&du=&au=&personne=   decisions with their reasons
    GET  /integrite, POST /integrite/verifier           checkpoint, "vérifier maintenant"

Every page view appends `console.viewed` (actor `dpo:<login>`, the person's pseudonym when
a person's data is shown, the page) before the page is sent: no audit entry, no page.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException

from gateway.audit import AuditEntry, append, append_durably, pseudonym
from gateway.console import accounts, csrf, integrity, reports, sessions, views
from gateway.console.sessions import COOKIE, Session
from gateway.settings import Settings
from gateway.storage import Store

HERE = Path(__file__).resolve().parent
LOCAL_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
MAX_FORM = 16 * 1024
PAGE = 50
SYSTEMS = {"eparcours": "e-parcours", "viatrajectoire": "ViaTrajectoire", "dmp": "DMP", "mss": "MSSanté",
           "tddui": "TDDUI"}
EFFECTS = {"deny": "refusées", "permit": "autorisées"}


class LoginRequired(Exception):
    def __init__(self, after: str | None = None):
        self.after = after


class Refused(Exception):
    """403: CSRF token or origin check failed."""

    def __init__(self, message: str):
        self.message = message


class AddressThrottle:
    """Failed log-ins per client address, whatever the login (password spraying): past
    ADDRESS_FAILURES in ADDRESS_WINDOW, that address may not try again until the window
    slides. In memory, per process: a complement to the per-login lock-out, which is in the
    database and holds across processes."""

    def __init__(self, limit: int, window: dt.timedelta):
        self.limit, self.window = limit, window
        self._failures: dict[str, list[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: dt.datetime) -> list[dt.datetime]:
        kept = [t for t in self._failures.get(address, []) if now - t < self.window]
        if kept:
            self._failures[address] = kept
        else:
            self._failures.pop(address, None)
        return kept

    def blocked_until(self, address: str, now: dt.datetime) -> dt.datetime | None:
        with self._lock:
            recent = self._recent(address, now)
            return recent[-self.limit] + self.window if len(recent) >= self.limit else None

    def failed(self, address: str, now: dt.datetime) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a distributed attack
                self._failures.clear()
            self._recent(address, now)
            self._failures.setdefault(address, []).append(now)


ADDRESS_FAILURES, ADDRESS_WINDOW = 20, dt.timedelta(minutes=10)


class Console:
    def __init__(self, store: Store, config: Settings, clock: Callable[[], dt.datetime]):
        self.store = store
        self.config = config
        self.now = clock
        self.addresses = AddressThrottle(ADDRESS_FAILURES, ADDRESS_WINDOW)
        self.css = (HERE / "static" / "console.css").read_bytes()
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["quand"] = _when
        self.templates.filters["jour"] = _day
        self.templates.filters["systeme"] = lambda code: views.SYSTEM_LABEL.get(code, code)


def _when(value: dt.datetime | None) -> str:
    from gateway.consent.fhir_common import PARIS

    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S") if value else "—"


def _day(value: dt.datetime | None) -> str:
    from gateway.consent.fhir_common import PARIS

    return value.astimezone(PARIS).strftime("%d/%m/%Y") if value else "—"


def _console(request: Request) -> Console:
    return request.app.state.console


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


# ------------------------------------------------------------------ security plumbing


class SecurityHeaders:
    """No framing, no sniffing, no caching of pages holding personal data, and a CSP that
    allows nothing but this origin's stylesheet and forms (the console runs no script)."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; "
                                     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in self.HEADERS if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _secure(request: Request, config: Settings) -> bool:
    if config.console_cookie_secure is not None:
        return config.console_cookie_secure
    return request.url.scheme == "https"


def current_session(request: Request) -> Session:
    c = _console(request)
    with c.store.transaction() as conn:
        found = sessions.current(conn, request.cookies.get(COOKIE), c.now(), c.config)
    if found is None:
        after = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(after if request.method == "GET" else None)
    return found


async def form_fields(request: Request) -> dict[str, str]:
    """An url-encoded form (the only kind the console posts), small; the first value wins."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, "formulaire trop volumineux")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20):
        fields.setdefault(key, value)
    return fields


def _check_post(request: Request, expected: str | None, submitted: str | None, who: Session | None) -> None:
    host = request.headers.get("host")
    if csrf.same_origin(request.headers, request.url.scheme, host) and csrf.matches(expected, submitted):
        return
    c = _console(request)
    if who is not None:  # a forged request on a live session: worth the DPO's attention
        append_durably(c.store.engine, AuditEntry(  # tied to no other write: shares a commit
            tenant_id=who.tenant_id, actor=who.actor, action="console.refused", outcome="csrf",
            refs={"page": request.url.path.rsplit("/", 1)[-1][:40] or "accueil"}))
    raise Refused("requête refusée : jeton anti-falsification (CSRF) absent ou invalide, ou origine "
                  "étrangère — rechargez la page et recommencez")


def _viewed(c: Console, who: Session, page: str, local_id: str | None = None, **refs: str) -> None:
    """Audit the page view (before the page leaves). The view writes nothing else, so its entry
    shares a commit with concurrent ones (append_durably); the pseudonym's mapping, if new, is
    committed first (the entry never names an unrecorded pseudonym)."""
    subject = None
    if local_id:
        with c.store.transaction() as conn:
            subject = pseudonym(conn, who.tenant_id, local_id)
    append_durably(c.store.engine, AuditEntry(
        tenant_id=who.tenant_id, actor=who.actor, action="console.viewed", outcome="success",
        subject=subject, refs={"page": page, **{k: v for k, v in refs.items() if v}}))


def _render(request: Request, name: str, who: Session | None, status: int = 200, **context) -> HTMLResponse:
    c = _console(request)
    with c.store.reading() as conn:
        last = integrity.last_verification(conn)
    html = c.templates.get_template(name).render(
        root=_root(request), session=who, alarm=last if last is not None and not last.ok else None,
        csrf_field=csrf.FIELD, **context)
    return HTMLResponse(html, status_code=status)


def _safe_after(root: str, after: str | None) -> str:
    """Only a path inside the console (no open redirect)."""
    if after and after.startswith(root + "/") and not after.startswith("//") and "\\" not in after \
            and all(32 < ord(ch) < 127 for ch in after):
        return after
    return root + "/"


def _local_id(value: str) -> str:
    if not LOCAL_ID.fullmatch(value or ""):
        raise HTTPException(404, "aucune personne avec cet identifiant pour votre plateforme")
    return value


# ------------------------------------------------------------------ the application


def console_app(store: Store, config: Settings, *, clock: Callable[[], dt.datetime] | None = None) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="Relais — console DPO")
    app.state.console = Console(store, config, clock or (lambda: dt.datetime.now(dt.UTC)))
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired):
        target = f"{_root(request)}/connexion"
        if exc.after:
            target += "?suite=" + quote(exc.after, safe="/")
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(COOKIE, path=_root(request) or "/")
        return response

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):
        return _error(request, 403, "Requête refusée", exc.message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        titles = {404: "Introuvable", 405: "Méthode non permise", 413: "Trop volumineux"}
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 405 else "page introuvable"
        return _error(request, exc.status_code, titles.get(exc.status_code, "Erreur"), detail)

    def _error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        c = _console(request)
        html = c.templates.get_template("erreur.html").render(
            root=_root(request), session=None, alarm=None, csrf_field=csrf.FIELD, title=title, message=message)
        return HTMLResponse(html, status_code=status)

    @app.get("/static/console.css", include_in_schema=False)
    def stylesheet(request: Request):
        return Response(_console(request).css, media_type="text/css",
                        headers={"cache-control": "private, max-age=3600"})

    # -------------------------------------------------------------- log-in / log-out

    def login_page(request: Request, status: int = 200, error: str | None = None, after: str = "",
                   tenant: str = "", login: str = "", headers: dict | None = None) -> HTMLResponse:
        token = csrf.new_token()
        response = _render(request, "connexion.html", None, status, error=error, token=token, after=after,
                           tenant=tenant, login=login)
        response.set_cookie(csrf.LOGIN_COOKIE, token, max_age=1800, path=_root(request) or "/", httponly=True,
                            samesite="strict", secure=_secure(request, _console(request).config))
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    @app.get("/connexion", response_class=HTMLResponse)
    def login_form(request: Request, suite: str = ""):
        c = _console(request)
        with c.store.transaction() as conn:
            if sessions.current(conn, request.cookies.get(COOKIE), c.now(), c.config) is not None:
                return RedirectResponse(_safe_after(_root(request), suite), status_code=303)
        return login_page(request, after=suite)

    @app.post("/connexion")
    def login(request: Request, form: dict = Depends(form_fields)):
        c = _console(request)
        _check_post(request, request.cookies.get(csrf.LOGIN_COOKIE), form.get(csrf.FIELD), None)
        tenant, login_name = form.get("plateforme", ""), form.get("identifiant", "")
        address = request.client.host if request.client else "?"
        try:
            until = c.addresses.blocked_until(address, c.now())
            if until is not None:  # not audited: the access log has the 429s, the log is not flooded
                raise accounts.LoginRefused("address", "trop d'échecs depuis cette adresse : réessayez plus tard", until)
            account = accounts.authenticate(c.store, tenant, login_name, form.get("mot_de_passe", ""),
                                            config=c.config, now=c.now())
        except accounts.LoginRefused as refused:
            if refused.kind != "address":
                c.addresses.failed(address, c.now())
            headers = {}
            if refused.until is not None:
                headers["retry-after"] = str(max(1, int((refused.until - c.now()).total_seconds() + 0.999)))
            return login_page(request, 401 if refused.kind == "invalid" else 429, refused.message,
                              form.get("suite", ""), tenant[:64], login_name[:64], headers)
        with c.store.transaction() as conn:
            token, _ = sessions.open_session(conn, account, c.now(), c.config)
        response = RedirectResponse(_safe_after(_root(request), form.get("suite")), status_code=303)
        response.set_cookie(COOKIE, token, path=_root(request) or "/", httponly=True, samesite="strict",
                            secure=_secure(request, c.config))
        response.delete_cookie(csrf.LOGIN_COOKIE, path=_root(request) or "/")
        return response

    @app.post("/deconnexion")
    def logout(request: Request, form: dict = Depends(form_fields), who: Session = Depends(current_session)):
        c = _console(request)
        _check_post(request, who.csrf_token, form.get(csrf.FIELD), who)
        with c.store.transaction() as conn:
            sessions.end(conn, who.token_sha256, c.now(), "logout")
            append(conn, AuditEntry(tenant_id=who.tenant_id, actor=who.actor, action="console.logout",
                                    outcome="success", refs={}))
        response = RedirectResponse(f"{_root(request)}/connexion", status_code=303)
        response.delete_cookie(COOKIE, path=_root(request) or "/")
        return response

    # -------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, who: Session = Depends(current_session)):
        c = _console(request)
        with c.store.reading() as conn:
            checkpoint = integrity.latest_checkpoint(conn)
            last = integrity.last_verification(conn)
            recent = views.decisions(conn, who.tenant_id, views.DecisionFilter(effect="deny"), limit=5)
        _viewed(c, who, "accueil")
        return _render(request, "accueil.html", who, checkpoint=checkpoint, last=last, recent=recent,
                       query="", not_found=False)

    @app.get("/personnes", response_class=HTMLResponse)
    def search(request: Request, q: str = "", who: Session = Depends(current_session)):
        c = _console(request)
        with c.store.reading() as conn:
            found = views.find_person(conn, who.tenant_id, q)
        if found is not None:
            return RedirectResponse(f"{_root(request)}/personnes/{quote(found)}", status_code=303)
        _viewed(c, who, "recherche", resultat="introuvable")
        with c.store.reading() as conn:
            checkpoint = integrity.latest_checkpoint(conn)
            last = integrity.last_verification(conn)
        return _render(request, "accueil.html", who, 404, checkpoint=checkpoint, last=last, recent=[],
                       query=q[:64], not_found=True)

    @app.get("/personnes/{local_id}", response_class=HTMLResponse)
    def person_page(request: Request, local_id: str, who: Session = Depends(current_session)):
        c = _console(request)
        _local_id(local_id)
        with c.store.reading() as conn:
            found = views.person(conn, who.tenant_id, local_id)
            if found is None:
                raise HTTPException(404, "aucune personne avec cet identifiant pour votre plateforme")
            histories = views.consents(conn, who.tenant_id, found)
            informed = views.information(conn, who.tenant_id, found)
            team = views.care_team(conn, who.tenant_id, found)
            denied = views.decisions(conn, who.tenant_id, views.DecisionFilter(effect="deny", person=local_id), limit=5)
        _viewed(c, who, "consentements", local_id)
        return _render(request, "personne.html", who, person=found, histories=histories, informed=informed,
                       team=team, denied=denied)

    def _report(request: Request, local_id: str, who: Session, with_actors: bool):
        c = _console(request)
        _local_id(local_id)
        with c.store.reading() as conn:
            found = views.person(conn, who.tenant_id, local_id)
            if found is None:
                raise HTTPException(404, "aucune personne avec cet identifiant pour votre plateforme")
            return c, found, reports.access_report(conn, who.tenant_id, found, with_actors=with_actors)

    @app.get("/personnes/{local_id}/acces", response_class=HTMLResponse)
    def access_page(request: Request, local_id: str, auteurs: str = "", who: Session = Depends(current_session)):
        with_actors = auteurs == "1"
        c, found, rows = _report(request, local_id, who, with_actors)
        _viewed(c, who, "acces", local_id, auteurs="oui" if with_actors else None, lignes=str(len(rows)))
        return _render(request, "acces.html", who, person=found, rows=rows, with_actors=with_actors)

    @app.get("/personnes/{local_id}/acces.csv")
    def access_csv(request: Request, local_id: str, auteurs: str = "", who: Session = Depends(current_session)):
        with_actors = auteurs == "1"
        c, found, rows = _report(request, local_id, who, with_actors)
        _viewed(c, who, "acces-csv", local_id, auteurs="oui" if with_actors else None, lignes=str(len(rows)))
        name = f"acces-{found.local_id}-{c.now():%Y%m%d}.csv"
        return Response(reports.to_csv(rows, with_actors=with_actors), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    @app.get("/decisions", response_class=HTMLResponse)
    def decisions_page(request: Request, issue: str = "", systeme: str = "", du: str = "", au: str = "",
                       personne: str = "", avant: str = "", who: Session = Depends(current_session)):
        c = _console(request)
        problems = []

        def day(value: str, label: str) -> dt.date | None:
            if not value:
                return None
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                problems.append(f"date {label} illisible (AAAA-MM-JJ attendu) : ignorée")
                return None

        flt = views.DecisionFilter(
            effect=issue if issue in EFFECTS else None, system=systeme if systeme in SYSTEMS else None,
            start=day(du, "de début"), end=day(au, "de fin"),
            person=personne.strip() if LOCAL_ID.fullmatch(personne.strip()) else None)
        if personne.strip() and flt.person is None:
            problems.append("identifiant de personne invalide : ignoré")
        before = None
        if avant:
            at, _, ident = avant.partition("~")
            try:
                before = (dt.datetime.fromisoformat(at), ident[:32])
            except ValueError:
                before = None
        with c.store.reading() as conn:
            rows = views.decisions(conn, who.tenant_id, flt, limit=PAGE + 1, before=before)
            known = flt.person is not None and views.person(conn, who.tenant_id, flt.person) is not None
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        following = None
        if more:
            query = {**flt.query(), "avant": f"{rows[-1].decided_at.isoformat()}~{rows[-1].id}"}
            following = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        _viewed(c, who, "decisions", flt.person if known else None, issue=flt.effect, systeme=flt.system,
                du=flt.start and flt.start.isoformat(), au=flt.end and flt.end.isoformat(), lignes=str(len(rows)))
        return _render(request, "decisions.html", who, rows=rows, flt=flt, effects=EFFECTS, systems=SYSTEMS,
                       problems=problems, following=following)

    @app.get("/activite", response_class=HTMLResponse)
    def activity_page(request: Request, du: str = "", au: str = "", who: Session = Depends(current_session)):
        """Issue 10's « Activité » page: the platform's SERAFIN-PH indicators as SVG charts
        (gateway.activity.charts: no script, no external asset, accessible)."""
        from gateway.activity import charts
        from gateway.activity.indicators import Window, report

        c = _console(request)
        today = c.now().date()
        problems = []
        try:
            end = dt.date.fromisoformat(au) if au else today
            start = dt.date.fromisoformat(du) if du else dt.date(end.year, 1, 1)
            window = Window(start, end)
            if window.days > 3 * 366:
                raise ValueError("période de plus de trois ans : la découper")
        except ValueError as exc:
            problems.append(f"période invalide ({exc}) : année en cours affichée")
            window = Window(dt.date(today.year, 1, 1), today)
        data = report(c.store, c.store.get_tenant(who.account.tenant_slug), window, series=True)
        figures = [charts.file_active_chart(data)] + [
            charts.modality_bar_chart(data, name)
            for name in ("file_active_reference_week", "occupancy", "turnover", "intensity")]
        _viewed(c, who, "activite", du=window.start.isoformat(), au=window.end.isoformat())
        return _render(request, "activite.html", who, window=window, data=data, figures=figures, problems=problems)

    @app.get("/activite/jeu-annuel-{year}.{fmt}")
    def activity_dataset(request: Request, year: int, fmt: str, who: Session = Depends(current_session)):
        """The annual data set (relais-serafin-dataset/1) the platform sends each year."""
        from gateway.activity.dataset import annual_dataset, to_csv

        if fmt not in ("csv", "json") or not 2000 <= year <= 2100:
            raise HTTPException(404, "export inconnu (jeu-annuel-AAAA.csv ou .json)")
        c = _console(request)
        dataset = annual_dataset(c.store, c.store.get_tenant(who.account.tenant_slug), year, now=c.now())
        _viewed(c, who, "activite-export", annee=str(year), format=fmt)
        name = f"jeu-annuel-serafin-{year}.{fmt}"
        body, media = ((to_csv(dataset), "text/csv; charset=utf-8") if fmt == "csv"
                       else (orjson.dumps(dataset, option=orjson.OPT_INDENT_2), "application/json"))
        return Response(body, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})

    @app.get("/lettres-mortes", response_class=HTMLResponse)
    def dead_letters_page(request: Request, who: Session = Depends(current_session)):
        """Exchanges a peer refused for good, with its words; each can be replayed (issue 5)."""
        from gateway.delivery import outbox

        c = _console(request)
        with c.store.reading() as conn:
            rows = outbox.listing(conn, who.tenant_id, status="dead", limit=PAGE)
            replayed = outbox.replays_of(conn, who.tenant_id, [e.id for e in rows])
        _viewed(c, who, "lettres-mortes", lignes=str(len(rows)))
        return _render(request, "lettres_mortes.html", who, rows=rows, systems=SYSTEMS, replayed=replayed)

    @app.post("/lettres-mortes/{exchange_id}/rejouer")
    def replay(request: Request, exchange_id: str, form: dict = Depends(form_fields),
               who: Session = Depends(current_session)):
        from gateway.delivery import pipeline
        from gateway.storage.store import Conflict, NotFound

        c = _console(request)
        _check_post(request, who.csrf_token, form.get(csrf.FIELD), who)
        try:
            pipeline.replay(c.store, c.store.get_tenant(who.account.tenant_slug), exchange_id[:40],
                            actor=who.actor)
        except (NotFound, Conflict) as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(f"{_root(request)}/lettres-mortes", status_code=303)

    @app.get("/integrite", response_class=HTMLResponse)
    def integrity_page(request: Request, who: Session = Depends(current_session)):
        c = _console(request)
        with c.store.reading() as conn:
            checkpoint = integrity.latest_checkpoint(conn)
            runs = integrity.history(conn)
        _, trust = integrity.trusted_keys(c.config)
        _viewed(c, who, "integrite")
        return _render(request, "integrite.html", who, checkpoint=checkpoint, runs=runs, trust=trust)

    @app.post("/integrite/verifier")
    def verify(request: Request, form: dict = Depends(form_fields), who: Session = Depends(current_session)):
        c = _console(request)
        _check_post(request, who.csrf_token, form.get(csrf.FIELD), who)
        integrity.verify_now(c.store, c.config, tenant_id=who.tenant_id, actor=who.actor, now=c.now)
        return RedirectResponse(f"{_root(request)}/integrite", status_code=303)

    return app
