"""The storage layer, on SQLite and on PostgreSQL (every test runs on both via `store`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from gateway.model import Plan
from gateway.plans import canonical_json, content_hash, etag
from gateway.storage import (
    Conflict,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    PutResult,
    Store,
)


def variant(plan: Plan, *, local_id: str | None = None, title: str | None = None) -> Plan:
    update: dict = {}
    if title is not None:
        update["title"] = title
    if local_id is not None:
        update["person"] = plan.person.model_copy(update={"local_id": local_id})
    return plan.model_copy(update=update)


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A")


def raw_rows(store: Store, sql: str) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(sql)).all()


# ------------------------------------------------------------------ versions and hashes


def test_stored_content_is_the_canonical_json_and_the_hash_its_sha256(store, tenant, sample_plan):
    result = store.put_plan(tenant, sample_plan, if_match=None, actor="test")

    [row] = raw_rows(
        store, "SELECT version, content, content_hash, status, created_by FROM plan_versions"
    )
    assert bytes(row.content) == canonical_json(sample_plan)
    assert row.content_hash == hashlib.sha256(bytes(row.content)).hexdigest()
    assert (row.version, row.status, row.created_by) == (1, "agreed", "test")
    assert result.created and not result.unchanged
    assert result.version.etag == etag(1, row.content_hash)
    assert result.version.content == bytes(row.content)


def test_versions_are_immutable_the_database_refuses_update_and_delete(store, tenant, sample_plan):
    store.put_plan(tenant, sample_plan, if_match=None, actor="test")
    for sql in ("UPDATE plan_versions SET status = 'closed'", "DELETE FROM plan_versions"):
        with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as conn:
            conn.execute(sa.text(sql))
    assert store.get_plan(tenant, "U000001").content == canonical_json(sample_plan)


def test_a_write_with_the_current_etag_creates_version_2(store, tenant, sample_plan):
    first = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version
    changed = variant(sample_plan, title="Projet révisé")

    result = store.put_plan(tenant, changed, if_match=first.etag, actor="test")

    assert result.version.version == 2 and not result.created and not result.unchanged
    assert result.version.etag != first.etag
    assert store.get_plan(tenant, "U000001").version == 2
    assert store.list_persons(tenant)[0].current_version == 2


def test_a_write_without_if_match_on_an_existing_plan_requires_one_and_names_the_current_etag(
    store, tenant, sample_plan
):
    first = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version

    with pytest.raises(PreconditionRequired) as caught:
        store.put_plan(tenant, variant(sample_plan, title="Autre"), if_match=None, actor="test")

    assert caught.value.current_etag == first.etag
    assert store.get_plan(tenant, "U000001").version == 1


def test_a_stale_if_match_fails_and_names_the_current_etag(store, tenant, sample_plan):
    first = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version
    second = store.put_plan(
        tenant, variant(sample_plan, title="v2"), if_match=first.etag, actor="test"
    ).version

    with pytest.raises(PreconditionFailed) as caught:
        store.put_plan(tenant, variant(sample_plan, title="v3"), if_match=first.etag, actor="test")

    assert caught.value.current_etag == second.etag
    assert [v.version for v in store.list_versions(tenant, "U000001")] == [2, 1]


def test_if_match_star_is_accepted_on_an_existing_plan_and_on_a_new_one(store, tenant, sample_plan):
    created = store.put_plan(tenant, sample_plan, if_match="*", actor="test")
    assert created.created and created.version.version == 1

    updated = store.put_plan(tenant, variant(sample_plan, title="v2"), if_match="*", actor="test")
    assert updated.version.version == 2


def test_an_if_match_on_a_person_without_plan_fails_with_no_current_etag(
    store, tenant, sample_plan
):
    with pytest.raises(PreconditionFailed) as caught:
        store.put_plan(tenant, sample_plan, if_match='"v1-0123456789abcdef"', actor="test")
    assert caught.value.current_etag is None
    assert store.count_persons(tenant) == 0


def test_identical_content_is_reported_unchanged_and_writes_no_version(store, tenant, sample_plan):
    first = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version

    again = store.put_plan(tenant, sample_plan, if_match=first.etag, actor="other")

    assert again.unchanged and not again.created
    assert again.version == first
    assert len(raw_rows(store, "SELECT version FROM plan_versions")) == 1


def test_concurrent_writers_with_the_same_if_match_never_both_win(store, tenant, sample_plan):
    """Real threads, one connection each; the read→write window is widened on purpose so
    that only the row lock (PostgreSQL) / BEGIN IMMEDIATE (SQLite) keeps writers apart."""
    current = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version

    statements: list[str] = []

    def widen_window(conn, cursor, statement, *_):
        statements.append(statement)
        if statement.lstrip().startswith("SELECT persons.id, persons.current_version"):
            time.sleep(0.03)

    sa.event.listen(store.engine, "after_cursor_execute", widen_window)
    rounds, writers = 4, 4
    try:
        for r in range(rounds):
            barrier = threading.Barrier(writers)

            def write(i: int, expected: str = current.etag, r: int = r) -> PutResult:
                barrier.wait()
                plan = variant(sample_plan, title=f"tour {r} rédacteur {i}")
                return store.put_plan(tenant, plan, if_match=expected, actor=f"w{i}")

            with ThreadPoolExecutor(writers) as pool:
                futures = [pool.submit(write, i) for i in range(writers)]
            won = [f.result() for f in futures if f.exception() is None]
            lost = [f.exception() for f in futures if f.exception() is not None]

            assert len(won) == 1, lost
            assert all(isinstance(exc, PreconditionFailed) for exc in lost), lost
            assert {exc.current_etag for exc in lost} == {won[0].version.etag}
            current = won[0].version
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", widen_window)

    versions = store.list_versions(tenant, "U000001", limit=100)
    assert [v.version for v in versions] == list(range(rounds + 1, 0, -1))
    assert store.get_plan(tenant, "U000001").etag == current.etag
    # The writers were kept apart by the lock, not merely by the unique constraint.
    lock = "BEGIN IMMEDIATE" if store.backend == "sqlite" else "FOR UPDATE"
    assert sum(lock in stmt for stmt in statements) >= rounds * writers


def test_concurrent_first_writes_create_the_person_once(store, tenant, sample_plan):
    writers = 4
    barrier = threading.Barrier(writers)

    def write(i: int) -> PutResult:
        barrier.wait()
        return store.put_plan(tenant, variant(sample_plan, title=f"n{i}"), if_match=None, actor="w")

    with ThreadPoolExecutor(writers) as pool:
        futures = [pool.submit(write, i) for i in range(writers)]
    won = [f.result() for f in futures if f.exception() is None]
    lost = [f.exception() for f in futures if f.exception() is not None]

    assert len(won) == 1 and won[0].created
    assert all(isinstance(exc, PreconditionRequired) for exc in lost), lost
    assert store.count_persons(tenant) == 1


# ------------------------------------------------------------------ reading


def test_get_plan_of_an_old_version_returns_its_exact_content(store, tenant, sample_plan):
    titles = ["v1", "v2", "v3"]
    tag = None
    for title in titles:
        tag = store.put_plan(tenant, variant(sample_plan, title=title), if_match=tag or "*",
                             actor="test").version.etag

    old = store.get_plan(tenant, "U000001", 2)

    assert old.version == 2
    assert old.content == canonical_json(variant(sample_plan, title="v2"))
    assert old.content_hash == content_hash(old.content)
    assert store.get_plan(tenant, "U000001").version == 3
    with pytest.raises(NotFound):
        store.get_plan(tenant, "U000001", 4)
    with pytest.raises(NotFound):
        store.get_plan(tenant, "U000001", 0)
    with pytest.raises(NotFound):
        store.get_plan(tenant, "U999999")


def test_history_is_newest_first_and_pages_with_before(store, tenant, sample_plan):
    for n in range(1, 8):
        store.put_plan(tenant, variant(sample_plan, title=f"v{n}"), if_match="*", actor="test")

    pages, before = [], None
    while page := store.list_versions(tenant, "U000001", limit=3, before=before):
        pages.append([v.version for v in page])
        before = page[-1].version

    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    with pytest.raises(NotFound):
        store.list_versions(tenant, "U999999")


def test_list_persons_is_ordered_by_local_id_with_keyset_pagination(store, tenant, sample_plan):
    ids = ["b-2", "A10", "a.1", "B_3", "U000001", "0z"]
    for local_id in ids:
        store.put_plan(tenant, variant(sample_plan, local_id=local_id), if_match=None, actor="t")

    seen, after = [], None
    while page := store.list_persons(tenant, limit=4, after=after):
        assert len(page) <= 4
        seen.extend(p.local_id for p in page)
        after = page[-1].local_id

    assert seen == sorted(ids)  # byte order on both backends
    assert store.count_persons(tenant) == len(ids)
    assert all(p.current_version == 1 and p.tenant_id == tenant.id
               for p in store.list_persons(tenant, limit=50))


def test_timestamps_are_timezone_aware_utc(store, tenant, sample_plan):
    before = dt.datetime.now(dt.UTC)
    stored = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version
    read = store.get_plan(tenant, "U000001")
    person = store.list_persons(tenant)[0]
    for stamp in (read.created_at, person.created_at, person.updated_at,
                  store.get_tenant(tenant.slug).created_at):
        assert stamp.utcoffset() == dt.timedelta(0)
    assert read.created_at == stored.created_at
    assert before - dt.timedelta(seconds=5) <= read.created_at <= dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------ tenants


def test_a_tenant_never_sees_another_tenants_persons(store, tenant, sample_plan):
    other = store.create_tenant("plateforme-b", "Plateforme B")
    mine = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version

    with pytest.raises(NotFound):
        store.get_plan(other, "U000001")
    with pytest.raises(NotFound):
        store.get_plan(other, "U000001", 1)
    with pytest.raises(NotFound):
        store.list_versions(other, "U000001")
    assert store.list_persons(other) == []
    assert store.count_persons(other) == 0

    # Same local id in tenant B: a person of its own, created without If-Match.
    theirs = store.put_plan(other, variant(sample_plan, title="B"), if_match=None, actor="b")
    assert theirs.created and theirs.version.version == 1
    assert store.get_plan(tenant, "U000001") == mine


def test_a_plan_whose_finess_differs_from_the_tenants_is_a_conflict(store, sample_plan):
    strict = store.create_tenant("plateforme-f", "Plateforme F", finess="750000002")
    with pytest.raises(Conflict, match="FINESS"):
        store.put_plan(strict, sample_plan, if_match=None, actor="test")
    assert store.count_persons(strict) == 0

    matching = store.create_tenant("plateforme-g", "Plateforme G", finess="750000001")
    assert store.put_plan(matching, sample_plan, if_match=None, actor="test").created


def test_tenant_slugs_are_checked_and_unique(store):
    created = store.create_tenant("ab", "Deux lettres")
    assert store.get_tenant("ab") == created
    for bad in ("a", "-ab", "Ab", "a_b", "a" * 41, "ab\n"):
        with pytest.raises(ValueError):
            store.create_tenant(bad, "Mauvais")
    with pytest.raises(Conflict):
        store.create_tenant("ab", "Encore")
    with pytest.raises(NotFound):
        store.get_tenant("inconnu")
    assert [t.slug for t in store.list_tenants()] == ["ab"]


# ------------------------------------------------------------------ API keys


def test_an_api_key_authenticates_its_tenant(store, tenant):
    key, token = store.create_api_key(tenant.slug, "DUI")

    assert token.startswith(f"rls_{key.key_id}_")
    assert len(key.key_id) == 12 and set(key.key_id) <= set("0123456789abcdef")
    assert store.authenticate(token) == tenant
    assert [k.key_id for k in store.list_api_keys(tenant.slug)] == [key.key_id]


def test_a_revoked_key_fails_at_once(store, tenant):
    key, token = store.create_api_key(tenant.slug, "DUI")
    _, other_token = store.create_api_key(tenant.slug, "autre")

    store.revoke_api_key(key.key_id)

    assert store.authenticate(token) is None
    assert store.authenticate(other_token) == tenant
    assert store.list_api_keys(tenant.slug)[0].revoked_at is not None
    store.revoke_api_key(key.key_id)  # twice: harmless
    with pytest.raises(NotFound):
        store.revoke_api_key("0123456789ab")


def test_malformed_or_unknown_tokens_are_rejected(store, tenant):
    key, token = store.create_api_key(tenant.slug, "DUI")
    secret = token.split("_", 2)[2]
    forged = [
        "",
        "rls_",
        token[:-1],
        token + "x",
        token.replace("rls_", "RLS_"),
        f"rls_{key.key_id}_{'A' * 43}",  # known key id, wrong secret
        f"rls_0123456789ab_{secret}",  # right secret, unknown key id
        f"rls_{key.key_id.upper()}_{secret}",
        " " + token,
        "x" * 10_000,
    ]
    for candidate in forged:
        assert store.authenticate(candidate) is None, candidate
    assert store.authenticate(token) == tenant


def test_tokens_are_never_stored_in_clear(store, tenant):
    _, token = store.create_api_key(tenant.slug, "DUI")
    secret = token.split("_", 2)[2]

    [row] = raw_rows(store, "SELECT * FROM api_keys")
    stored = " ".join(str(value) for value in row)
    assert secret not in stored and token not in stored
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()


# ------------------------------------------------------------------ schema and migrations


def test_migrate_twice_is_harmless(store, tenant, sample_plan):
    store.put_plan(tenant, sample_plan, if_match=None, actor="test")

    store.migrate()
    again = Store(store.engine.url.render_as_string(hide_password=False))
    try:
        again.migrate()
        assert again.get_plan(tenant, "U000001").version == 1
    finally:
        again.close()
    assert len(raw_rows(store, "SELECT version_num FROM alembic_version")) == 1


def test_the_migration_creates_exactly_the_tables_the_code_uses(store):
    from alembic.migration import MigrationContext
    from alembic.autogenerate import compare_metadata

    from gateway.storage.registry import load_metadata

    metadata = load_metadata()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path):
    from gateway.settings import settings

    sqlite_store = Store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'relais.db'}")
    try:
        sqlite_store.migrate()  # creates the missing parent directories
        with sqlite_store.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == settings().sqlite_busy_timeout_ms
    finally:
        sqlite_store.close()


def test_error_messages_carry_no_personal_data(store, tenant, sample_plan):
    first = store.put_plan(tenant, sample_plan, if_match=None, actor="test").version
    messages = []
    changed = variant(sample_plan, title="x")
    for call in (
        lambda: store.put_plan(tenant, changed, if_match=None, actor="t"),
        lambda: store.put_plan(tenant, changed, if_match='"v9-0"', actor="t"),
        lambda: store.get_plan(tenant, "U000001", 7),
    ):
        with pytest.raises(Exception) as caught:
            call()
        messages.append(str(caught.value))
    person = sample_plan.person
    for message in messages:
        for secret in (person.birth_family_name, *person.birth_given_names,
                       person.ins.value, person.birth_date.isoformat()):
            assert secret not in message
    assert first.version == 1
