"""The audit log in the database: appends atomic with the action, one linear tree under
concurrency (threads on SQLite, threads and processes on PostgreSQL), pseudonyms, signed
checkpoints that always extend the previous one. Both backends via the `store` fixture."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEntry, AuditError, EntryError, append, append_many, erase_person_mapping
from gateway.audit import merkle, pseudonym, resolve_pseudonym, tree
from gateway.audit.checkpoint import Checkpointer, rotate_key, sign_checkpoint, write_transaction
from gateway.audit.log import head
from gateway.audit.tables import audit_entries, audit_signed_head
from gateway.settings import settings
from gateway.storage import Store
from tests.support.audit import in_processes


@pytest.fixture
def config(tmp_path):
    return settings().model_copy(update={"audit_key_dir": tmp_path / "keys", "audit_origin": "relais.test/audit"})


@pytest.fixture
def tenant(store):
    return store.create_tenant("plateforme-a", "Plateforme A")


def entry(i: int = 0, tenant_id: str = "t1", **extra) -> AuditEntry:
    return AuditEntry(tenant_id=tenant_id, actor="worker", action="exchange.queued", outcome="success",
                      system="dmp", refs={"exchange": f"x{i}"}, **extra)


def bodies(store: Store) -> list[bytes]:
    with store.engine.connect() as conn:
        return [bytes(b) for b in conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.seq)).scalars()]


def assert_one_linear_tree(store: Store, count: int) -> None:
    """Leaf i holds seq i, no gaps, and the head's frontier root is the root of those leaves."""
    leaves = bodies(store)
    assert [json.loads(b)["seq"] for b in leaves] == list(range(count))
    with store.engine.connect() as conn:
        size, root = head(conn)
    assert size == count and root == merkle.root_of([merkle.leaf_hash(b) for b in leaves])


# ------------------------------------------------------------------ appends


def test_appends_get_dense_indexes_and_the_head_root_covers_them(store):
    with write_transaction(store.engine) as conn:
        assert append(conn, entry(0)) == 0
        assert append_many(conn, [entry(1), entry(2), entry(3)]) == [1, 2, 3]
        assert append_many(conn, []) == []
    assert_one_linear_tree(store, 4)


def test_an_append_in_a_rolled_back_transaction_leaves_no_trace(store):
    with write_transaction(store.engine) as conn:
        append(conn, entry(0))
    with pytest.raises(RuntimeError):
        with write_transaction(store.engine) as conn:
            assert append(conn, entry(1)) == 1
            raise RuntimeError("the action failed")
    with write_transaction(store.engine) as conn:
        assert append(conn, entry(2)) == 1  # the rolled-back index is given again: no hole
    assert_one_linear_tree(store, 2)
    assert json.loads(bodies(store)[1])["refs"] == {"exchange": "x2"}


def test_appending_outside_a_transaction_is_refused(store):
    with store.engine.connect() as conn:
        with pytest.raises(AuditError):
            append(conn, entry())


@pytest.mark.parametrize("bad", [
    dict(subject="TESTNOM Camille"),  # a subject must be a pseudonym
    dict(subject="212035121518974"),
    dict(action="Consent Recorded"),
    dict(refs={"note": 12}),
    dict(refs={"x": "y" * 2000}),
    dict(tenant_id=""),
])
def test_entries_that_could_carry_personal_data_or_junk_are_refused(store, bad):
    fields = dict(tenant_id="t1", actor="cli", action="console.viewed", outcome="success") | bad
    with write_transaction(store.engine) as conn:
        with pytest.raises(EntryError):
            append(conn, AuditEntry(**fields))


def test_entries_and_checkpoints_cannot_be_updated_or_deleted(store, config):
    with write_transaction(store.engine) as conn:
        append(conn, entry())
    sign_checkpoint(store.engine, config)
    for statement in ("UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries",
                      "UPDATE audit_checkpoints SET note = 'x'", "DELETE FROM audit_checkpoints"):
        with pytest.raises(sa.exc.DBAPIError):
            with write_transaction(store.engine) as conn:
                conn.exec_driver_sql(statement)
    assert len(bodies(store)) == 2  # the entry and the key's creation


# ------------------------------------------------------------------ put_plan


def test_put_plan_appends_plan_version_stored_in_the_same_transaction(store, tenant, sample_plan):
    result = store.put_plan(tenant, sample_plan, if_match=None, actor="key:plateforme-a").version
    store.put_plan(tenant, sample_plan, if_match=result.etag, actor="cli")  # unchanged: no entry
    [record] = [json.loads(b) for b in bodies(store)]
    with store.engine.connect() as conn:
        expected = pseudonym(conn, tenant.id, "U000001")
    assert record["action"] == "plan.version.stored" and record["tenant"] == tenant.id
    assert record["actor"] == "key:plateforme-a" and record["subject"] == expected
    assert record["refs"]["version"] == "1" and record["refs"]["content_sha256"] == result.content_hash


def test_a_failing_audit_append_rolls_the_plan_version_back(store, tenant, sample_plan, monkeypatch):
    import gateway.audit.log

    def broken(conn, entries):
        raise AuditError("journal indisponible")

    monkeypatch.setattr(gateway.audit.log, "append_many", broken)
    with pytest.raises(AuditError):
        store.put_plan(tenant, sample_plan, if_match=None, actor="cli")
    monkeypatch.undo()
    assert store.count_persons(tenant) == 0 and bodies(store) == []


# ------------------------------------------------------------------ pseudonyms


def test_pseudonyms_are_stable_per_tenant_distinct_across_tenants_and_resolvable(store):
    with write_transaction(store.engine) as conn:
        a1 = pseudonym(conn, "tenant-a", "U000001")
        assert pseudonym(conn, "tenant-a", "U000001") == a1
        b1 = pseudonym(conn, "tenant-b", "U000001")
        assert a1 != b1 and a1.startswith("ps1-") and "U000001" not in a1
        assert resolve_pseudonym(conn, "tenant-a", a1) == "U000001"
        assert resolve_pseudonym(conn, "tenant-b", a1) is None  # another tenant cannot resolve it
        assert erase_person_mapping(conn, "tenant-a", "U000001")
        assert resolve_pseudonym(conn, "tenant-a", a1) is None
        assert pseudonym(conn, "tenant-a", "U000001") == a1  # same key: same pseudonym


# ------------------------------------------------------------------ concurrency


def test_concurrent_appenders_in_threads_build_one_linear_tree(store):
    errors = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                with write_transaction(store.engine) as conn:
                    append(conn, entry(n * 100 + i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_one_linear_tree(store, 100)


def _process_appender(url: str, worker: int, count: int) -> None:
    process_store = Store(url)
    try:
        for i in range(count):
            with write_transaction(process_store.engine) as conn:
                append(conn, entry(worker * 1000 + i))
    finally:
        process_store.close()


@pytest.mark.postgres
def test_concurrent_appenders_in_processes_build_one_linear_tree_on_postgres(store):
    with in_processes(store, _process_appender, 40):
        with write_transaction(store.engine) as conn:  # and this process at the same time
            append_many(conn, [entry(9000 + i) for i in range(10)])
    assert_one_linear_tree(store, 130)


# ------------------------------------------------------------------ checkpoints


def test_each_checkpoint_extends_the_previous_one(store, config):
    with write_transaction(store.engine) as conn:
        append_many(conn, [entry(i) for i in range(300)])
    first = sign_checkpoint(store.engine, config)
    assert first.size == 301  # and the entry introducing the first key
    assert sign_checkpoint(store.engine, config) is None  # nothing new
    with write_transaction(store.engine) as conn:
        append_many(conn, [entry(i) for i in range(5)])
    second = sign_checkpoint(store.engine, config)
    with store.engine.connect() as conn:
        proof = tree.consistency_proof(conn, first.size, second.size, second.size)
        leaf, path = tree.inclusion_proof(conn, 7, second.size, second.size)
    merkle.verify_consistency(first.size, second.size, first.root, second.root, proof)
    merkle.verify_inclusion(7, second.size, leaf, path, second.root)
    assert second.note.startswith(f"relais.test/audit\n{second.size}\n")


def test_a_checkpoint_that_would_not_extend_the_signed_one_is_refused(store, config):
    with write_transaction(store.engine) as conn:
        append_many(conn, [entry(i) for i in range(10)])
    sign_checkpoint(store.engine, config)
    with write_transaction(store.engine) as conn:  # someone rewrote what was signed
        conn.execute(sa.update(audit_signed_head).values(root=b"\x00" * 32))
        append(conn, entry(99))
    with pytest.raises(AuditError, match="ne prolonge plus"):
        sign_checkpoint(store.engine, config)


def test_concurrent_signers_never_sign_twice_the_same_size(store, config):
    with write_transaction(store.engine) as conn:
        append(conn, entry())
    sign_checkpoint(store.engine, config)
    signed, errors = [], []

    def signer() -> None:
        try:
            for i in range(5):
                with write_transaction(store.engine) as conn:
                    append(conn, entry(i))
                result = sign_checkpoint(store.engine, config)
                if result:
                    signed.append(result.size)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=signer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(signed) == len(set(signed))


def test_the_background_checkpointer_signs_within_a_second_of_an_append(store, config):
    with Checkpointer(store.engine, config.model_copy(update={"audit_checkpoint_seconds": 1.0})) as checkpointer:
        with write_transaction(store.engine) as conn:
            append(conn, entry())
        appended = time.monotonic()
        while checkpointer.pending() and time.monotonic() - appended < 3:
            time.sleep(0.02)
        waited = time.monotonic() - appended
    with store.engine.connect() as conn:
        assert tree.signed_size(conn)[0] == 2
    assert waited < 1.2


def test_a_rotation_is_logged_and_signed_by_both_keys(store, config):
    with write_transaction(store.engine) as conn:
        append(conn, entry())
    sign_checkpoint(store.engine, config)
    key, signed = rotate_key(store.engine, config)
    record = json.loads(bodies(store)[key.introduced_at])
    assert record["action"] == "audit.key.rotated" and record["refs"]["vkey"] == key.vkey
    assert signed.note.count("\u2014 relais.test/audit ") == 2
    assert sorted(p.name for p in config.audit_key_dir.iterdir()) == sorted(
        f"{k}.key" for k in record["refs"]["previous_key_ids"].split(",") + [key.key_id])
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in config.audit_key_dir.iterdir())
