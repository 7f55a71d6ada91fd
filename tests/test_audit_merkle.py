"""The pure building blocks of the audit trail: RFC 9162 Merkle tree and proofs, C2SP signed
notes / checkpoints / cosignatures, RFC 8785 canonical JSON, tlog-tiles."""

from __future__ import annotations

import base64
from hashlib import sha256

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import jcs, merkle, note, tiles

# ------------------------------------------------------------------ reference implementation


def naive_mth(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1 (recursive split at the largest power of two)."""
    if not leaves:
        return sha256(b"").digest()
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0]).digest()
    k = merkle.split_point(len(leaves))
    return sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = merkle.split_point(len(leaves))
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = merkle.split_point(n)
    if m <= k:
        return naive_subproof(m, leaves[:k], whole) + [naive_mth(leaves[k:])]
    return naive_subproof(m - k, leaves[k:], False) + [naive_mth(leaves[:k])]


def mth_of(leaves: list[bytes]):
    return lambda lo, hi: naive_mth(leaves[lo:hi])


# ------------------------------------------------------------------ RFC 6962 vectors

# transparency-dev/merkle testonly/constants.go and proof/verify_test.go.
LEAVES = [bytes.fromhex(h) for h in
          ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
           "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = bytes.fromhex
INCLUSION_VECTORS = [  # (index, size, proof)
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CONSISTENCY_VECTORS = [  # (old, new, proof)
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_rfc6962_vectors(size):
    hashes = [merkle.leaf_hash(x) for x in LEAVES[:size]]
    assert merkle.root_of(hashes) == ROOTS[size]
    frontier: list[bytes] = []
    for i, h in enumerate(hashes):
        merkle.frontier_append(frontier, i, h)
    assert merkle.frontier_root(frontier) == ROOTS[size]


@pytest.mark.parametrize("index,size,proof", INCLUSION_VECTORS)
def test_inclusion_proofs_match_the_rfc6962_vectors(index, size, proof):
    assert merkle.inclusion_proof(index, size, mth_of(LEAVES)) == proof
    merkle.verify_inclusion(index, size, merkle.leaf_hash(LEAVES[index]), proof, ROOTS[size])


@pytest.mark.parametrize("old,new,proof", CONSISTENCY_VECTORS)
def test_consistency_proofs_match_the_rfc6962_vectors(old, new, proof):
    assert merkle.consistency_proof(old, new, mth_of(LEAVES)) == proof
    merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize("index,size,proof", INCLUSION_VECTORS)
def test_a_corrupted_inclusion_proof_is_refused(index, size, proof):
    leaf = merkle.leaf_hash(LEAVES[index])
    bad = [
        (index + 1, size, leaf, proof), (index, size * 2, leaf, proof),
        (index, size, merkle.leaf_hash(b"x"), proof), (index, size, leaf, proof[:-1]),
        (index, size, leaf, proof + [ROOTS[size]]), (index, size, leaf, [ROOTS[size]] + proof),
        (index, size, leaf, [bytes([proof[0][0] ^ 8]) + proof[0][1:]] + proof[1:]),
    ]
    for args in bad:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args[:2], args[2], args[3], ROOTS[size])


@pytest.mark.parametrize("old,new,proof", CONSISTENCY_VECTORS)
def test_a_corrupted_consistency_proof_is_refused(old, new, proof):
    bad = [
        (old - 1, new, ROOTS[old], ROOTS[new], proof), (old, new, ROOTS[new], ROOTS[old], proof),
        (old, new, ROOTS[old], ROOTS[new], proof[:-1]), (old, new, ROOTS[old], ROOTS[new], []),
        (old, new, ROOTS[old], ROOTS[new], proof + [ROOTS[new]]),
        (old, new, ROOTS[old], ROOTS[new], [bytes([proof[0][0] ^ 16]) + proof[0][1:]] + proof[1:]),
    ]
    for args in bad:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)


def test_every_inclusion_and_consistency_proof_up_to_33_leaves_verifies():
    leaves = [bytes([i]) * (i % 5) for i in range(33)]
    for size in range(1, 34):
        root = naive_mth(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, mth_of(leaves))
            assert proof == naive_path(index, leaves[:size])
            merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves[index]), proof, root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, size, mth_of(leaves))
            assert proof == (naive_subproof(old, leaves[:size], True) if old < size else [])
            merkle.verify_consistency(old, size, naive_mth(leaves[:old]), root, proof)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=300), st.data())
def test_proofs_agree_with_the_naive_reference(leaves, data):
    size = len(leaves)
    hashes = [merkle.leaf_hash(x) for x in leaves]
    assert merkle.root_of(hashes) == naive_mth(leaves)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert merkle.inclusion_proof(index, size, mth_of(leaves)) == naive_path(index, leaves)
    if old < size:
        assert merkle.consistency_proof(old, size, mth_of(leaves)) == naive_subproof(old, leaves, True)
    table = tiles.tile_updates(0, hashes, lambda level, n: b"")
    assert tiles.MemoryTiles(table, size).root(size) == naive_mth(leaves)
    assert tiles.MemoryTiles(table, size).root(old) == naive_mth(leaves[:old])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=5))
def test_tiles_built_in_steps_equal_tiles_built_at_once(steps):
    total = sum(steps)
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(total)]
    stored: dict = {}
    done = 0
    for step in steps:
        stored.update(tiles.tile_updates(done, hashes[done:done + step],
                                         lambda level, n: stored.get((level, n), b"")))
        done += step
    assert stored == tiles.tile_updates(0, hashes, lambda level, n: b"")
    view = tiles.MemoryTiles(stored, total)
    assert view.root(total) == merkle.root_of(hashes)
    for index in (0, total // 2, total - 1):
        proof = merkle.inclusion_proof(index, total, view.mth)
        merkle.verify_inclusion(index, total, hashes[index], proof, view.root(total))


def test_tile_paths_follow_tlog_tiles():
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 5, 17) == "tile/1/005.p/17"
    assert tiles.tile_path("entries", 0, 3) == "tile/entries/000.p/3"
    # 70,000 leaves: 273 full level-0 tiles + one of width 112, 1 full level-1 + width 17, level 2 width 1
    widths = tiles.tile_widths(70000)
    assert widths[0] == [256] * 273 + [112]
    assert widths[1] == [256, 17] and widths[2] == [1]


# ------------------------------------------------------------------ signed notes

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = ("If you think cryptography is the answer to your problem,\n"
              "then you don't know what your problem is.\n")
PETER_NOTE = PETER_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"


def test_signing_reproduces_the_go_sumdb_note_vector():
    signer = note.parse_skey(PETER_SKEY)
    assert signer.verifier.vkey == PETER_VKEY
    assert note.sign_note(PETER_TEXT, [signer]) == PETER_NOTE
    opened = note.open_note(PETER_NOTE, [note.parse_vkey(PETER_VKEY)])
    assert opened.text == PETER_TEXT and opened.verified and not opened.failed


def test_an_altered_note_fails_its_signature():
    opened = note.open_note(PETER_NOTE.replace("cryptography", "cryptographY"),
                            [note.parse_vkey(PETER_VKEY)])
    assert opened.failed and not opened.verified


def test_signatures_of_unknown_keys_are_ignored():
    other = note.Signer.generate("example.org/other")
    opened = note.open_note(PETER_NOTE, [other.verifier])
    assert opened.unknown and not opened.verified and not opened.failed


def test_a_cosigner_key_id_uses_type_0x04():
    vkey = note.parse_vkey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert vkey.key_type == note.COSIGNATURE_V1


@pytest.mark.parametrize("bad", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    "PeterNeumann+c74f20a3+AxRpc2QcUPDhMQegwxbzhKqiBfsVkmqq",  # not 33 bytes
    "PeterNeumann+c74f20a3",
])
def test_malformed_verifier_keys_are_refused(bad):
    with pytest.raises(note.NoteError):
        note.parse_vkey(bad)


def test_checkpoint_round_trip_and_cosignature():
    log = note.Signer.generate("relais.test/audit")
    dpo = note.Signer.generate("dpo.relais.test/witness", note.COSIGNATURE_V1)
    cp = note.Checkpoint("relais.test/audit", 1048576, sha256(b"x").digest())
    signed = note.sign_note(cp.body, [log]) + note.cosignature_line(dpo, cp.body, 1700000000)
    opened = note.open_note(signed, [log.verifier, dpo.verifier])
    assert {v.key_id for v in opened.verified} == {log.key_id, dpo.key_id}
    assert opened.cosigned_at == {dpo.key_id: 1700000000}
    assert note.parse_checkpoint(opened.text) == cp
    assert cp.body.splitlines()[2] == base64.b64encode(cp.root).decode()
    forged = signed.replace("1048576", "1048577")
    assert note.open_note(forged, [log.verifier, dpo.verifier]).failed


@pytest.mark.parametrize("text", [
    "origin\n01\nAAAA\n", "origin\n1\n" + base64.b64encode(b"x" * 31).decode() + "\n",
    "origin\n1\n" + base64.b64encode(b"x" * 32).decode() + "\nextension\n", "\n1\nAAAA\n",
])
def test_malformed_checkpoints_are_refused(text):
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(text)


# ------------------------------------------------------------------ canonical JSON

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_json_equals_the_rfc8785_package(value):
    assert jcs.canonical(value) == rfc8785.dumps(value)


def test_canonical_json_refuses_floats():
    with pytest.raises(TypeError):
        jcs.canonical({"x": 1.5})


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,10}", fullmatch=True),
                       st.text(st.characters(exclude_categories=["Cs"]), max_size=20), max_size=5),
       st.integers(0, 2**40))
def test_leaf_bytes_are_the_rfc8785_form_of_the_record(refs, seq):
    import datetime as dt

    from gateway.audit.entry import AuditEntry, check, encode, record

    entry = AuditEntry("t1", "dpo:e.lemaire", "console.viewed", "success", "ps1-" + "0" * 32, "dmp", refs,
                       dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    check(entry)
    assert encode(entry, seq, entry.at) == rfc8785.dumps(record(entry, seq, entry.at))
