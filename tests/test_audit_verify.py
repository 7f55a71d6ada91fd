"""`relais audit export` / `relais audit verify`: an untouched export verifies (exit 0); every
kind of tampering — change, delete, insert, reorder an entry, forge a checkpoint, swap a key,
rewrite the whole log — exits 1 and names the entry or checkpoint. Also: key rotation keeps old
checkpoints verifiable, DPO cosignatures, BALP AuditEvents, no personal data in the export."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.audit import AuditEntry, append, append_many, note, pseudonym, tiles
from gateway.audit.checkpoint import cosign, rotate_key, sign_checkpoint, write_transaction
from gateway.audit.export import export
from gateway.audit.fhir import bundle_from_store
from gateway.audit.tables import audit_keys
from gateway.cli.main import main
from gateway.settings import settings
from gateway.storage import Store
from tests.conftest import make_plan, sample_plan_dict

ROOT = Path(__file__).resolve().parent.parent


def _config(base: Path, origin: str = "relais.test/audit"):
    return settings().model_copy(update={"audit_key_dir": base / "keys", "audit_origin": origin})


def _fill(store: Store, tenant_id: str, start: int, count: int) -> None:
    with write_transaction(store.engine) as conn:
        subject = pseudonym(conn, tenant_id, "U000002")
        append_many(conn, [
            AuditEntry(tenant_id=tenant_id, actor="worker", action=action, outcome=outcome,
                       subject=subject, system="dmp",
                       refs={"exchange": f"x{start + i}", "payload_sha256": "ab" * 32, "purpose": "TREAT"})
            for i, (action, outcome) in enumerate(
                [("decision.permit", "permit"), ("exchange.sent", "success"), ("decision.deny", "deny"),
                 ("console.viewed", "success")][j % 4] for j in range(count))
        ])


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """A log of ~1,100 entries: a stored plan, exchanges, a key rotation whose overlap has
    ended, a DPO cosignature; exported once. Yields (store, config, export dir, DPO vkey)."""
    base = tmp_path_factory.mktemp("audit")
    config = _config(base)
    store = Store(f"sqlite:///{base / 'relais.db'}")
    store.migrate()
    tenant = store.create_tenant("plateforme-a", "Plateforme A")
    store.put_plan(tenant, make_plan(sample_plan_dict()), if_match=None, actor="key:plateforme-a")
    _fill(store, tenant.id, 0, 300)
    sign_checkpoint(store.engine, config)
    _fill(store, tenant.id, 300, 400)
    sign_checkpoint(store.engine, config)
    _, _ = rotate_key(store.engine, config)  # both keys sign this checkpoint
    with write_transaction(store.engine) as conn:  # the overlap window is over
        conn.execute(sa.update(audit_keys).where(audit_keys.c.signs_until.is_not(None))
                     .values(signs_until=sa.func.current_timestamp()))
    _fill(store, tenant.id, 700, 400)
    sign_checkpoint(store.engine, config)
    dpo = note.Signer.generate("dpo.plateforme-a.test/temoin", note.COSIGNATURE_V1)
    cosign(store.engine, dpo, config)
    directory = base / "export"
    export(store.engine, directory, config)
    yield store, config, directory, dpo.verifier.vkey
    store.close()


def verify(capsys, directory: Path, *extra: str) -> tuple[int, str]:
    code = main(["audit", "verify", str(directory), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def copy(log, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(log[2], target)
    return target


def lines_of(directory: Path) -> list[bytes]:
    return (directory / "entries.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


# ------------------------------------------------------------------ the untouched export


def test_an_untouched_export_verifies(log, capsys):
    code, out = verify(capsys, log[2])
    assert code == 0, out
    assert "journal vérifié : " in out and "1103 entrée(s)" in out


def test_the_export_follows_the_c2sp_layout(log):
    directory = log[2]
    size = len(lines_of(directory))
    latest = (directory / "checkpoint").read_text()
    assert latest.startswith(f"relais.test/audit\n{size}\n")
    assert (directory / "checkpoints" / str(size)).read_text() == latest
    for level, widths in tiles.tile_widths(size).items():
        for n, width in enumerate(widths):
            assert (directory / tiles.tile_path(level, n, width)).is_file()
            assert (directory / tiles.tile_path("entries", n, width)).is_file() or level > 0
    vkeys = [note.parse_vkey(p.read_text()) for p in (directory / "keys").glob("*.vkey")]
    assert sorted(v.key_type for v in vkeys) == [1, 1, 4]


def test_old_checkpoints_stay_verifiable_after_a_rotation(log):
    directory = log[2]
    checkpoints = sorted((directory / "checkpoints").iterdir(), key=lambda p: int(p.name))
    signers = [p.read_text().count("\u2014 relais.test/audit ") for p in checkpoints]
    assert signers == [1, 1, 2, 1]  # old key, old key, both (rotation), new key only
    assert note.open_note(checkpoints[0].read_text(), []).unknown  # still parseable


def test_the_verifier_needs_neither_the_database_layer_nor_the_settings(log):
    code = ("import sys, gateway.audit.verify as v; "
            "assert 'sqlalchemy' not in sys.modules and 'gateway.settings' not in sys.modules; "
            f"sys.exit(v.main([{str(log[2])!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "gateway.audit.verify", str(log[2])], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "journal vérifié" in done.stdout


# ------------------------------------------------------------------ tampering with entries


def _change(lines, i):
    record = json.loads(lines[i])
    record["outcome"] = "failure"
    lines[i] = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def _change_keeping_form(lines, i):
    lines[i] = lines[i].replace(b"decision.permit", b"decision.denyy_").replace(b"exchange.sent", b"exchange.sen_")
    lines[i] = lines[i].replace(b"console.viewed", b"console.viewe_").replace(b"decision.deny\"", b"decision.dent\"")


TAMPERING = {
    # name: (edit of the list of lines, index of the entry the verifier must name)
    "change an entry": (lambda ls: _change(ls, 400), 400),
    "change one byte": (lambda ls: _change_keeping_form(ls, 401), 401),
    "delete an entry": (lambda ls: ls.pop(400), 400),
    "insert a copy": (lambda ls: ls.insert(400, ls[10]), 400),
    "insert a new entry": (lambda ls: ls.insert(400, ls[400].replace(b'"seq":400', b'"seq":400').replace(b"x", b"y", 1)), 400),
    "reorder two entries": (lambda ls: ls.insert(401, ls.pop(400)), 400),
    "move an entry far away": (lambda ls: ls.insert(900, ls.pop(400)), 400),
    "append an entry": (lambda ls: ls.append(ls[-1]), "n"),
    "remove the last entry": (lambda ls: ls.pop(), "n-1"),
    "remove the first entry": (lambda ls: ls.pop(0), 0),
    "change the first entry": (lambda ls: _change(ls, 0), 0),
}


@pytest.mark.parametrize("case", TAMPERING, ids=list(TAMPERING))
def test_tampering_with_an_entry_is_caught_and_the_entry_named(copy, capsys, case):
    edit, expected = TAMPERING[case]
    lines = lines_of(copy)
    expected = {"n": len(lines), "n-1": len(lines) - 1}.get(expected, expected)
    edit(lines)
    write_lines(copy, lines)
    code, out = verify(capsys, copy)
    assert code == 1, out
    assert f"première entrée en cause : entrée {expected} (ligne {expected + 1})" in out, out


def test_a_blank_line_or_a_missing_final_newline_is_caught(copy, capsys):
    data = (copy / "entries.jsonl").read_bytes()
    (copy / "entries.jsonl").write_bytes(data[:-1])
    code, out = verify(capsys, copy)
    assert code == 1 and "première entrée en cause : entrée 1102 (ligne 1103) — ligne incomplète" in out


def test_entries_rewritten_with_their_tiles_are_still_caught_by_the_signatures(copy, capsys):
    lines = lines_of(copy)
    _change(lines, 500)
    write_lines(copy, lines)
    hashes = [__import__("gateway.audit.merkle", fromlist=["x"]).leaf_hash(line) for line in lines]
    for (level, n), data in tiles.tile_updates(0, hashes, lambda *_: b"").items():
        path = copy / tiles.tile_path(level, n, len(data) // 32)
        path.write_bytes(data)
    code, out = verify(capsys, copy)
    assert code == 1
    assert "point de contrôle 1103 : racine différente" in out
    assert "première entrée en cause : entrée 302 (ligne 303)" in out  # bounded by the checkpoints


# ------------------------------------------------------------------ checkpoints and keys


def test_a_forged_checkpoint_is_caught_and_named(copy, capsys):
    path = copy / "checkpoints" / "302"
    body, _, sigs = path.read_text().partition("\n\n")
    origin, size, _root = body.split("\n")
    forged_root = base64.b64encode(b"\x01" * 32).decode()
    path.write_text(f"{origin}\n{size}\n{forged_root}\n\n{sigs}")
    code, out = verify(capsys, copy)
    assert code == 1 and "point de contrôle 302 : signature invalide" in out
    assert "point(s) de contrôle en cause : 302" in out


def test_a_checkpoint_signed_by_an_unknown_key_is_caught(copy, capsys):
    thief = note.Signer.generate("relais.test/audit")
    text = (copy / "checkpoint").read_text().partition("\n\n")[0] + "\n"
    forged = note.sign_note(text.replace("\n1103\n", "\n1104\n"), [thief])
    (copy / "checkpoint").write_text(forged)
    (copy / "checkpoints" / "1104").write_text(forged)
    code, out = verify(capsys, copy)
    assert code == 1 and "point de contrôle 1104 : aucune signature valide d'une clé de confiance" in out


def test_a_swapped_key_file_is_caught(copy, capsys):
    first = sorted((copy / "keys").glob("*.vkey"))[0]
    other = note.Signer.generate(note.parse_vkey(first.read_text()).name,
                                 note.parse_vkey(first.read_text()).key_type)
    first.write_text(other.verifier.vkey + "\n")
    code, out = verify(capsys, copy)
    assert code == 1 and "clé" in out


def test_a_key_substituted_under_its_own_id_is_caught(copy, capsys, log):
    """Even with a key file named after the new key, the log's own record of its keys wins."""
    genuine = sorted((copy / "keys").glob("*.vkey"))
    thief = note.Signer.generate("relais.test/audit")
    for path in genuine:
        if note.parse_vkey(path.read_text()).key_type == note.ED25519:
            path.unlink()
    (copy / "keys" / f"{thief.verifier.id_hex}.vkey").write_text(thief.verifier.vkey + "\n")
    code, out = verify(capsys, copy)
    assert code == 1 and "inconnue du journal" in out and "absente de keys/" in out


def test_a_whole_log_rewritten_with_another_key_fails_against_the_pinned_key(log, tmp_path, capsys):
    store, config, directory, _ = log
    genuine = [line for line in (directory / "VERIFIER.txt").read_text().splitlines()
               if line.strip().startswith("relais.test/audit+")][0].strip()
    # A thief with database access but not the key file rebuilds a log of their own.
    fake = Store(f"sqlite:///{tmp_path / 'fake.db'}")
    fake.migrate()
    _fill(fake, "t1", 0, 50)
    export(fake.engine, tmp_path / "fake-export", _config(tmp_path))
    fake.close()
    assert verify(capsys, tmp_path / "fake-export")[0] == 0  # self-consistent on its own…
    code, out = verify(capsys, tmp_path / "fake-export", "--trusted-key", genuine)
    assert code == 1 and "aucune signature valide d'une clé de confiance" in out  # …not for the DPO
    for pinned in [line.strip() for line in (directory / "VERIFIER.txt").read_text().splitlines()
                   if line.strip().startswith("relais.test/audit+")]:
        assert verify(capsys, directory, "--trusted-key", pinned)[0] == 0  # the old or the new key


def test_a_retained_checkpoint_detects_a_fork(log, tmp_path, capsys):
    store, config, directory, _ = log
    retained = tmp_path / "kept"
    retained.write_text((directory / "checkpoints" / "302").read_text())
    assert verify(capsys, directory, "--since", str(retained))[0] == 0
    other = tmp_path / "other"
    shutil.copytree(directory, other)
    lines = lines_of(other)
    _change(lines, 5)
    write_lines(other, lines)
    code, out = verify(capsys, other, "--since", str(retained))
    assert code == 1 and "FOURCHE OU RÉÉCRITURE" in out


def test_the_dpo_cosignature_verifies_and_a_forged_one_is_caught(log, copy, capsys):
    witness = log[3]
    code, out = verify(capsys, log[2], "--witness", witness)
    assert code == 0 and "cosigné par dpo.plateforme-a.test/temoin jusqu'à la taille 1103" in out
    text = (copy / "checkpoint").read_text()
    lines = text.splitlines(keepends=True)
    name, _, sig = lines[-1].rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    lines[-1] = f"{name} {base64.b64encode(bytes(raw)).decode()}\n"
    for path in (copy / "checkpoint", copy / "checkpoints" / "1103"):
        path.write_text("".join(lines))
    code, out = verify(capsys, copy, "--witness", witness)
    assert code == 1 and "cosignature invalide" in out


# ------------------------------------------------------------------ content of the export


def test_the_export_holds_no_personal_data(log):
    person = sample_plan_dict()["person"]
    secrets = [person["birth_family_name"], *person["birth_given_names"], person["ins"]["value"],
               person["birth_date"], person["local_id"], "U000002", person["birthplace_insee"]]
    for path in log[2].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, (path, secret)


def test_entries_export_as_balp_audit_events(log):
    store = log[0]
    tenant = store.get_tenant("plateforme-a")
    bundle = bundle_from_store(store.engine, tenant_id=tenant.id, origin="relais.test/audit")
    events = [e["resource"] for e in bundle["entry"]]
    assert bundle["type"] == "collection" and len(events) == 1101
    by_action = {}
    for event in events:
        action = next(c["code"] for c in event["subtype"] if c["system"].endswith("audit-action"))
        by_action.setdefault(action, event)
    permit, deny = by_action["decision.permit"], by_action["decision.deny"]
    assert permit["meta"]["profile"] == ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.AuthZconsent"]
    assert permit["type"]["code"] == "110113" and permit["action"] == "E" and permit["outcome"] == "0"
    assert deny["outcome"] == "8"
    sent = by_action["exchange.sent"]
    assert sent["type"]["code"] == "110106" and {"110153", "110152"} <= {
        a["type"]["coding"][0]["code"] for a in sent["agent"]}
    log_entity = sent["entity"][-1]
    assert {d["type"] for d in log_entity["detail"]} >= {"tlog.origin", "tlog.index", "tlog.leaf_sha256"}
    resources = pytest.importorskip("fhir.resources.R4B.auditevent")
    for event in by_action.values():
        resources.AuditEvent.model_validate(event)


def test_the_cli_signs_exports_and_refuses_a_non_empty_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RELAIS_AUDIT_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("RELAIS_AUDIT_ORIGIN", "relais.test/cli")
    settings.cache_clear()
    try:
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        assert main(["audit", "checkpoint", "--database", url]) == 0  # creates the first key
        assert capsys.readouterr().out.startswith("relais.test/cli\n1\n")
        assert main(["audit", "checkpoint", "--database", url]) == 0
        assert "rien de nouveau" in capsys.readouterr().out
        store = Store(url)
        _fill(store, "t1", 0, 3)
        store.close()
        assert main(["audit", "checkpoint", "--database", url]) == 0
        assert capsys.readouterr().out.startswith("relais.test/cli\n4\n")
        assert main(["audit", "rotate-key", "--database", url]) == 0
        assert "nouvelle clé de signature : relais.test/cli+" in capsys.readouterr().out
        assert main(["audit", "keygen", "dpo.test/temoin", "--out", str(tmp_path / "dpo.key")]) == 0
        assert capsys.readouterr().out.startswith("dpo.test/temoin+")
        assert main(["audit", "cosign", "--key", str(tmp_path / "dpo.key"), "--database", url]) == 0
        assert "point de contrôle 5 cosigné" in capsys.readouterr().out
        assert main(["audit", "export", str(tmp_path / "e"), "--database", url]) == 0
        assert "5 entrée(s)" in capsys.readouterr().out
        assert main(["audit", "export", str(tmp_path / "e"), "--database", url]) == 1
        assert "n'est pas vide" in capsys.readouterr().err
        assert verify(capsys, tmp_path / "e")[0] == 0
        assert main(["audit", "fhir", "--database", url]) == 0
        exported = json.loads(capsys.readouterr().out)
        assert len(exported["entry"]) == 5 and "total" not in exported  # bdl-1: no total in a collection
    finally:
        settings.cache_clear()
