"""Storage of tenants, API keys, persons and immutable plan versions (SQLAlchemy 2 Core).

Rules the API and CLI rely on:
- every tenant-scoped query filters on the tenant id; only `list_tenants` reads across tenants;
- a plan version is written once (INSERT only; the database refuses UPDATE/DELETE on
  `plan_versions`), its content is the canonical JSON and its hash the SHA-256 of that content;
- writes are guarded by If-Match (RFC 9110 §13.1.1, RFC 6585 §3) and serialised per person
  (PostgreSQL: SELECT … FOR UPDATE on the person row; SQLite: BEGIN IMMEDIATE), so two writers
  holding the same ETag never both win;
- every new version appends a `plan.version.stored` audit entry in the same transaction;
- API tokens are `rls_<key_id>_<secret>`; only the SHA-256 of the secret is stored;
- exception messages are French and carry no personal data (local ids and version numbers only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from gateway import audit
from gateway.model import Plan
from gateway.plans.canonical import canonical_json, content_hash, etag
from gateway.storage.engine import WRITE, is_memory_sqlite, make_engine, normalise_url
from gateway.storage.schema import api_keys, person_identifiers, persons, plan_versions, tenants


class StorageError(Exception):
    """Base class; `message` is French, safe to show (no personal data)."""


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """Unique constraint (tenant slug taken, …)."""


class PreconditionFailed(StorageError):
    """If-Match does not name the current version (RFC 9110 §13.1.1) → HTTP 412."""

    def __init__(self, message: str, current_etag: str | None):
        super().__init__(message)
        self.current_etag = current_etag


class PreconditionRequired(StorageError):
    """A plan already exists and the write carries no If-Match (RFC 6585 §3) → HTTP 428."""

    def __init__(self, message: str, current_etag: str):
        super().__init__(message)
        self.current_etag = current_etag


@dataclass(frozen=True)
class Tenant:
    id: str  # uuid4 hex
    slug: str  # [a-z0-9-]{2,40}
    name: str
    finess: str | None  # when set, every plan's platform.finess must equal it
    created_at: dt.datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    label: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class PersonRow:
    id: str  # uuid4 hex, internal
    tenant_id: str
    local_id: str  # the platform's own id of the person (plan.person.local_id)
    current_version: int
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class PlanVersion:
    person_local_id: str
    version: int  # 1, 2, 3… per person
    content: bytes  # canonical JSON (gateway.plans.canonical)
    content_hash: str  # sha256 hex of content
    etag: str  # gateway.plans.canonical.etag(version, content_hash)
    status: str  # plan.status at that version
    created_at: dt.datetime
    created_by: str  # actor (api key id, "cli", "demo")


@dataclass(frozen=True)
class PutResult:
    version: PlanVersion
    created: bool  # True when the person had no plan before
    unchanged: bool  # True when content equals the current version: no new version written


# ----------------------------------------------------------------------------- the store

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
_FINESS = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{7}")
_LOCAL_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_KEY_ID = re.compile(r"[0-9a-f]{12}")
# rls_<key_id>_<secret>; the secret is secrets.token_urlsafe(32): 43 base64url characters.
_TOKEN = re.compile(r"rls_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})")
TOKEN_PREFIX = "rls_"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _secret_digest(secret: str) -> str:
    # The secret is 256 random bits: a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _identifiers(plan: Plan) -> set[tuple[str, str]]:
    """What inbound messages may name the person by: the INS, and the CDAPH decision numbers
    (national and MDPH) of the plan's orientation decisions (SDO flows 3 and 5)."""
    out = {("ins", plan.person.ins.value)} if plan.person.ins else set()
    for decision in plan.orientation_decisions:
        out.add(("decision", decision.decision_number))
        if decision.national_id:
            out.add(("decision-nat", decision.national_id))
    return out


def _index_identifiers(conn: Connection, tenant: Tenant, plan: Plan) -> None:
    """Keep the identifier → local id index in step with the current version (same transaction)."""
    local_id = plan.person.local_id
    t = person_identifiers.c
    current = {(r.kind, r.value) for r in conn.execute(sa.select(t.kind, t.value).where(
        t.tenant_id == tenant.id, t.person_local_id == local_id))}
    wanted = _identifiers(plan)
    for kind, value in current - wanted:
        conn.execute(sa.delete(person_identifiers).where(
            t.tenant_id == tenant.id, t.person_local_id == local_id, t.kind == kind, t.value == value))
    for kind, value in sorted(wanted - current):
        conn.execute(sa.insert(person_identifiers).values(
            tenant_id=tenant.id, kind=kind, value=value[:64], person_local_id=local_id))


def holders(conn: Connection, tenant_id: str, kind: str, value: str) -> list[str]:
    """The local ids of the tenant's persons known by this identifier (more than one for an
    INS: an identity duplicate — identitovigilance — so callers must not pick one)."""
    t = person_identifiers.c
    return list(conn.execute(sa.select(t.person_local_id).where(
        t.tenant_id == tenant_id, t.kind == kind, t.value == value[:64]).order_by(t.person_local_id)).scalars())


def _if_match_names(header: str, current_etag: str) -> bool:
    """If-Match evaluation (RFC 9110 §13.1.1): "*" or a list of entity tags, strong
    comparison (a weak tag never matches)."""
    header = header.strip()
    if header == "*":
        return True
    return any(tag.strip() == current_etag for tag in header.split(","))


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError("la taille de page doit être un entier positif")


def _tenant(row) -> Tenant:
    return Tenant(
        id=row.id, slug=row.slug, name=row.name, finess=row.finess, created_at=row.created_at
    )


def _api_key(row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        tenant_id=row.tenant_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _person(row) -> PersonRow:
    return PersonRow(
        id=row.id,
        tenant_id=row.tenant_id,
        local_id=row.local_id,
        current_version=row.current_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _plan_version(local_id: str, row) -> PlanVersion:
    return PlanVersion(
        person_local_id=local_id,
        version=row.version,
        content=bytes(row.content),
        content_hash=row.content_hash,
        etag=etag(row.version, row.content_hash),
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
    )


_VERSION_COLUMNS = (
    plan_versions.c.version,
    plan_versions.c.content,
    plan_versions.c.content_hash,
    plan_versions.c.status,
    plan_versions.c.created_at,
    plan_versions.c.created_by,
)

# The write path's statements, built once (bind parameters prefixed b_ so they never clash
# with column names): put_plan is the hot path of every import.
_LOCK_PERSON = (
    sa.select(persons.c.id, persons.c.current_version)
    .where(
        persons.c.tenant_id == sa.bindparam("b_tenant"),
        persons.c.local_id == sa.bindparam("b_local"),
    )
    .with_for_update()  # PostgreSQL row lock; SQLite already holds the write lock
)
_VERSION_OF_PERSON = sa.select(*_VERSION_COLUMNS).where(
    plan_versions.c.tenant_id == sa.bindparam("b_tenant"),
    plan_versions.c.person_id == sa.bindparam("b_person"),
    plan_versions.c.version == sa.bindparam("b_version"),
)
_INSERT_VERSION = sa.insert(plan_versions)
# The read path's too: every POST /exchanges authenticates and reads a plan version.
_PERSON = sa.select(persons).where(
    persons.c.tenant_id == sa.bindparam("b_tenant"), persons.c.local_id == sa.bindparam("b_local"))
_KEY_WITH_TENANT = (
    sa.select(api_keys.c.secret_sha256, api_keys.c.revoked_at, tenants)
    .join(tenants, tenants.c.id == api_keys.c.tenant_id)
    .where(api_keys.c.key_id == sa.bindparam("b_key_id"))
)
_BUMP_PERSON = (
    sa.update(persons)
    .where(
        persons.c.id == sa.bindparam("b_person"),
        persons.c.tenant_id == sa.bindparam("b_tenant"),
        persons.c.current_version == sa.bindparam("b_current"),
    )
    .values(current_version=sa.bindparam("b_version"), updated_at=sa.bindparam("b_now"))
)


class _LostRace(Exception):
    """Internal: another writer got there first (rolls the transaction back)."""


class Store:
    """Tenants, API keys, persons and their immutable, content-hashed plan versions.

    Thread-safe: every call takes its own pooled connection and transaction.
    Every tenant-scoped query filters on the tenant id; only `list_tenants` reads across
    tenants. Plan versions are only ever INSERTed (the database refuses UPDATE/DELETE).
    """

    def __init__(self, url: str):
        self._url = normalise_url(url)
        self._engine: Engine = make_engine(self._url)
        self._backend = self._url.get_backend_name()
        # New person: INSERT … ON CONFLICT DO NOTHING RETURNING id. A row back means this
        # transaction created (and holds) it; none means a concurrent writer did.
        self._create_person = (
            self._insert_ignoring_conflict(persons, ["tenant_id", "local_id"])
            .values(
                id=sa.bindparam("b_id"),
                tenant_id=sa.bindparam("b_tenant"),
                local_id=sa.bindparam("b_local"),
                current_version=0,
                created_at=sa.bindparam("b_now"),
                updated_at=sa.bindparam("b_now"),
            )
            .returning(persons.c.id)
        )

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._backend

    def __repr__(self) -> str:
        return f"Store({self._url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction; on SQLite it starts with BEGIN IMMEDIATE (write lock first)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    def transaction(self):
        """A write transaction for other packages (delivery, consent…): BEGIN IMMEDIATE on
        SQLite, so reads inside it cannot be overtaken by another writer."""
        return self._write()

    def reading(self):
        """A read-only connection (no write lock)."""
        return self._read()

    def _insert_ignoring_conflict(self, table: sa.Table, index_elements: list[str]):
        dialect = pg_dialect if self._backend == "postgresql" else sqlite_dialect
        return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        if self._backend == "sqlite" and not is_memory_sqlite(self._url):
            Path(self._url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    # ------------------------------------------------------------------ tenants

    def create_tenant(self, slug: str, name: str, finess: str | None = None) -> Tenant:
        if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
            raise ValueError(
                "identifiant de locataire invalide : 2 à 40 caractères parmi a-z, 0-9 et "
                "« - », sans tiret au début"
            )
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 200:
            raise ValueError("le nom du locataire doit compter de 1 à 200 caractères")
        if finess is not None and not _FINESS.fullmatch(finess):
            raise ValueError("numéro FINESS invalide (9 caractères, ex. 750000000)")
        tenant = Tenant(id=uuid.uuid4().hex, slug=slug, name=name, finess=finess, created_at=_now())
        try:
            with self._write() as conn:
                conn.execute(sa.insert(tenants).values(**tenant.__dict__))
        except sa.exc.IntegrityError:
            raise Conflict(f"le locataire « {slug} » existe déjà") from None
        return tenant

    def _tenant_row(self, conn: Connection, slug: str):
        if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
            raise NotFound("locataire inconnu")
        row = conn.execute(sa.select(tenants).where(tenants.c.slug == slug)).first()
        if row is None:
            raise NotFound(f"locataire inconnu : {slug}")
        return row

    def get_tenant(self, slug: str) -> Tenant:
        with self._read() as conn:
            return _tenant(self._tenant_row(conn, slug))

    def list_tenants(self) -> list[Tenant]:
        with self._read() as conn:
            rows = conn.execute(sa.select(tenants).order_by(tenants.c.slug)).all()
        return [_tenant(r) for r in rows]

    # ------------------------------------------------------------------ API keys

    def create_api_key(self, tenant_slug: str, label: str) -> tuple[ApiKey, str]:
        """Create a key; the token is returned here and never again (only its hash is kept)."""
        label = label.strip() if isinstance(label, str) else ""
        if not 1 <= len(label) <= 200:
            raise ValueError("le libellé de la clé doit compter de 1 à 200 caractères")
        for _attempt in range(5):
            key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            with self._write() as conn:
                tenant = self._tenant_row(conn, tenant_slug)
                key = ApiKey(
                    key_id=key_id,
                    tenant_id=tenant.id,
                    label=label,
                    created_at=_now(),
                    revoked_at=None,
                )
                inserted = conn.execute(
                    self._insert_ignoring_conflict(api_keys, ["key_id"])
                    .values(**key.__dict__, secret_sha256=_secret_digest(secret))
                    .returning(api_keys.c.key_id)
                ).first()
            if inserted is None:  # key id already taken (1 in 2^48): draw again
                continue
            return key, f"{TOKEN_PREFIX}{key_id}_{secret}"
        raise StorageError("impossible d'attribuer un identifiant de clé unique")

    def authenticate(self, token: str) -> Tenant | None:
        """The tenant owning this token, or None (malformed, unknown or revoked)."""
        if not isinstance(token, str) or len(token) > 100:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        with self._read() as conn:
            row = conn.execute(_KEY_WITH_TENANT, {"b_key_id": key_id}).first()
        digest = _secret_digest(secret)
        if row is None:
            return None
        if not hmac.compare_digest(row.secret_sha256, digest) or row.revoked_at is not None:
            return None
        return _tenant(row)

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke now (effective for the very next request); revoking twice is harmless."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise NotFound("clé d'API inconnue")
        with self._write() as conn:
            exists = conn.execute(
                sa.select(api_keys.c.key_id).where(api_keys.c.key_id == key_id)
            ).first()
            if exists is None:
                raise NotFound(f"clé d'API inconnue : {key_id}")
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )

    def list_api_keys(self, tenant_slug: str) -> list[ApiKey]:
        with self._read() as conn:
            tenant = self._tenant_row(conn, tenant_slug)
            rows = conn.execute(
                sa.select(api_keys)
                .where(api_keys.c.tenant_id == tenant.id)
                .order_by(api_keys.c.created_at, api_keys.c.key_id)
            ).all()
        return [_api_key(r) for r in rows]

    # ------------------------------------------------------------------ plans

    def put_plan(
        self, tenant: Tenant, plan: Plan, *, if_match: str | None, actor: str,
        conn: Connection | None = None,
    ) -> PutResult:
        """Store a new version of the person's plan, guarded by If-Match (see module rules).
        With `conn` (an open `transaction()`), the version is written in it and commits with
        the caller's other writes, or not at all."""
        if not isinstance(actor, str) or not 1 <= len(actor) <= 100:
            raise ValueError("l'auteur de l'écriture doit compter de 1 à 100 caractères")
        if tenant.finess is not None and plan.platform.finess != tenant.finess:
            raise Conflict("le FINESS du projet ne correspond pas à la plateforme du locataire")
        local_id = plan.person.local_id
        content = canonical_json(plan)
        digest = content_hash(content)
        now = _now()
        key = {"b_tenant": tenant.id, "b_local": local_id}
        try:
            with nullcontext(conn) if conn is not None else self._write() as conn:
                person = conn.execute(_LOCK_PERSON, key).first()
                if person is None:
                    new_id = conn.execute(
                        self._create_person, {**key, "b_id": uuid.uuid4().hex, "b_now": now}
                    ).scalar()
                    # No id back: a concurrent writer created the person (PostgreSQL waited
                    # for its commit); lock that row and judge If-Match against its version.
                    if new_id is not None:
                        person = (new_id, 0)
                    else:
                        person = conn.execute(_LOCK_PERSON, key).one()
                person_id, current = person
                if current == 0:
                    if if_match is not None and if_match.strip() != "*":
                        raise PreconditionFailed(
                            f"If-Match fourni alors que l'usager {local_id} n'a encore aucun "
                            "projet enregistré",
                            None,
                        )
                else:
                    row = conn.execute(
                        _VERSION_OF_PERSON,
                        {"b_tenant": tenant.id, "b_person": person_id, "b_version": current},
                    ).one()
                    current_etag = etag(current, row.content_hash)
                    if if_match is None:
                        raise PreconditionRequired(
                            f"le projet de l'usager {local_id} existe déjà (version {current}) : "
                            "renvoyer l'écriture avec l'en-tête If-Match portant l'ETag courant",
                            current_etag,
                        )
                    if not _if_match_names(if_match, current_etag):
                        raise PreconditionFailed(
                            f"If-Match ne désigne pas la version courante du projet de l'usager "
                            f"{local_id} (version {current}) : relire le projet puis réessayer",
                            current_etag,
                        )
                    if row.content_hash == digest:
                        return PutResult(
                            version=_plan_version(local_id, row), created=False, unchanged=True
                        )
                version = current + 1
                conn.execute(
                    _INSERT_VERSION,
                    {
                        "person_id": person_id,
                        "version": version,
                        "tenant_id": tenant.id,
                        "content": content,
                        "content_hash": digest,
                        "status": plan.status.value,
                        "created_at": now,
                        "created_by": actor,
                    },
                )
                bumped = conn.execute(
                    _BUMP_PERSON,
                    {
                        "b_person": person_id,
                        "b_tenant": tenant.id,
                        "b_current": current,
                        "b_version": version,
                        "b_now": now,
                    },
                )
                if bumped.rowcount != 1:  # cannot happen under the lock; never half-write
                    raise _LostRace
                _index_identifiers(conn, tenant, plan)
                # Same transaction: the version exists iff its audit entry does.
                audit.append(conn, audit.AuditEntry(
                    tenant_id=tenant.id, actor=actor, action="plan.version.stored",
                    outcome="success", subject=audit.pseudonym(conn, tenant.id, local_id),
                    refs={"version": str(version), "content_sha256": digest, "status": plan.status.value},
                ))
        except (sa.exc.IntegrityError, _LostRace):
            raise self._lost_race(tenant, local_id) from None
        result = PlanVersion(
            person_local_id=local_id,
            version=version,
            content=content,
            content_hash=digest,
            etag=etag(version, digest),
            status=plan.status.value,
            created_at=now,
            created_by=actor,
        )
        return PutResult(version=result, created=current == 0, unchanged=False)

    def _lost_race(self, tenant: Tenant, local_id: str) -> StorageError:
        """A constraint refused the write: the tenant vanished, or another writer won."""
        with self._read() as conn:
            found = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant.id))
            if found.first() is None:
                return NotFound(f"locataire inconnu : {tenant.slug}")
        try:
            current = self.get_plan(tenant, local_id)
        except NotFound:
            return PreconditionFailed(
                f"écriture concurrente sur le projet de l'usager {local_id} : réessayer", None
            )
        return PreconditionFailed(
            f"le projet de l'usager {local_id} a changé pendant l'écriture "
            f"(version {current.version}) : relire le projet puis réessayer",
            current.etag,
        )

    def _person_row(self, conn: Connection, tenant: Tenant, local_id: str):
        if not isinstance(local_id, str) or not _LOCAL_ID.fullmatch(local_id):
            raise NotFound("aucun projet pour cet identifiant d'usager (identifiant invalide)")
        row = conn.execute(_PERSON, {"b_tenant": tenant.id, "b_local": local_id}).first()
        if row is None or row.current_version == 0:
            raise NotFound(f"aucun projet pour l'usager {local_id}")
        return row

    def get_plan(self, tenant: Tenant, local_id: str, version: int | None = None) -> PlanVersion:
        """The current version (version=None) or the given one, byte for byte as stored."""
        with self._read() as conn:
            person = self._person_row(conn, tenant, local_id)
            wanted = person.current_version if version is None else version
            row = None
            if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1:
                row = conn.execute(_VERSION_OF_PERSON, {
                    "b_tenant": tenant.id, "b_person": person.id, "b_version": wanted}).first()
        if row is None:
            raise NotFound(f"version {wanted} introuvable pour le projet de l'usager {local_id}")
        return _plan_version(local_id, row)

    def list_versions(
        self, tenant: Tenant, local_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[PlanVersion]:
        """Newest first; `before` = the smallest version already seen (keyset pagination)."""
        _check_limit(limit)
        if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
            raise ValueError("« before » doit être un numéro de version")
        with self._read() as conn:
            person = self._person_row(conn, tenant, local_id)
            query = sa.select(*_VERSION_COLUMNS).where(
                plan_versions.c.tenant_id == tenant.id,
                plan_versions.c.person_id == person.id,
            )
            if before is not None:
                query = query.where(plan_versions.c.version < before)
            rows = conn.execute(query.order_by(plan_versions.c.version.desc()).limit(limit)).all()
        return [_plan_version(local_id, r) for r in rows]

    def list_persons(
        self, tenant: Tenant, *, limit: int = 50, after: str | None = None
    ) -> list[PersonRow]:
        """Ordered by local_id (byte order); `after` = the last local_id seen."""
        _check_limit(limit)
        if after is not None and not isinstance(after, str):
            raise ValueError("« after » doit être un identifiant d'usager")
        query = sa.select(persons).where(
            persons.c.tenant_id == tenant.id, persons.c.current_version > 0
        )
        if after is not None:
            query = query.where(persons.c.local_id > after)
        with self._read() as conn:
            rows = conn.execute(query.order_by(persons.c.local_id).limit(limit)).all()
        return [_person(r) for r in rows]

    def count_persons(self, tenant: Tenant) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(persons)
            .where(persons.c.tenant_id == tenant.id, persons.c.current_version > 0)
        )
        with self._read() as conn:
            return conn.execute(query).scalar_one()
