"""The fast audit write path decides and writes exactly what the reference one does.

- check(): a one-regex fast path in front of the full checks; compared with a verbatim copy of
  the checks as they were, on generated good and bad entries (same decision, same message).
- leaf bytes: orjson (with a fallback) against the stdlib encoder used before and the `rfc8785`
  package (RFC 8785), on generated entries and nested values (non-ASCII, controls, big ints).
- the insert: one driver executemany of pre-bound values, or (PostgreSQL, larger batches) a
  binary COPY; and the Appender's own DB-API writes: rows compared with SQLAlchemy's own insert
  on both backends (including how SQLite stores `at`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types
from collections.abc import Mapping

import orjson
import pytest
import rfc8785
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gateway.audit.entry as entry_module
from gateway.audit import append_many, jcs, log
from gateway.audit import appender as appender_module
from gateway.audit.appender import Appender
from gateway.audit.checkpoint import write_transaction
from gateway.audit.entry import AuditEntry, EntryError, check, checked_length, encode, encode_checked, record, timestamp
from gateway.audit.tables import audit_entries
from tests.support.audit import refuse_audit_inserts

# ------------------------------------------------------------ the reference check (as it was)
# Deliberately a verbatim copy of the checks in gateway/audit/entry.py (_check) as they were before
# the fast path: `duplicates` reports the pair, and that is intended. Do not import or share it:
# the tests below compare check() with this frozen copy, so a change to either side shows.

_R_PSEUDONYM = re.compile(r"ps1-[0-9a-f]{32}")
_R_ACTION = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
_R_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+\-]*")
_R_REF_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


def _r_token(value, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not _R_TOKEN.fullmatch(value):
        raise EntryError(f"entrée d'audit : {what} invalide")
    return value


def reference_check(entry) -> None:
    if not isinstance(entry, AuditEntry):
        raise EntryError("entrée d'audit : AuditEntry attendu")
    _r_token(entry.tenant_id, "locataire", 64)
    _r_token(entry.actor, "auteur", 100)
    _r_token(entry.outcome, "résultat", 32)
    if not isinstance(entry.action, str) or len(entry.action) > 64 or not _R_ACTION.fullmatch(entry.action):
        raise EntryError("entrée d'audit : action invalide (verbe pointé, ex. consent.recorded)")
    if entry.subject is not None and not (
        isinstance(entry.subject, str) and _R_PSEUDONYM.fullmatch(entry.subject)
    ):
        raise EntryError("entrée d'audit : le sujet doit être un pseudonyme (gateway.audit.pseudonym)")
    if entry.system is not None:
        _r_token(entry.system, "système", 40)
    if not isinstance(entry.refs, Mapping) or len(entry.refs) > 32:
        raise EntryError("entrée d'audit : références invalides")
    for key, value in entry.refs.items():
        if not isinstance(key, str) or len(key) > 64 or not _R_REF_KEY.fullmatch(key):
            raise EntryError("entrée d'audit : nom de référence invalide")
        if not isinstance(value, str) or len(value) > 1024:
            raise EntryError(f"entrée d'audit : la référence {key} doit être un texte court")


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the exact exception is what is compared
        return (type(exc), str(exc))


class Sub(str):
    pass


class LongStr(str):
    def __len__(self):
        return 10_000


class SubEntry(AuditEntry):
    pass


# ------------------------------------------------------------ building an entry


# AuditEntry's own fields, defaults included, with the __init__ dataclasses generates (what
# AuditEntry had before it wrote its own): derived, so a field added to AuditEntry is compared too.
GeneratedEntry = dataclasses.make_dataclass(
    "GeneratedEntry",
    [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
     for f in dataclasses.fields(AuditEntry)],
    frozen=True,
)


AT_UTC = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BUILDS = [
    (("t1", "worker", "a.b", "success"), {}),
    (("t1", "worker", "a.b", "success", "ps1-" + "0" * 32, "dmp", {"k": "v"}, AT_UTC), {}),
    ((), {"tenant_id": "t1", "actor": "worker", "action": "a.b", "outcome": "success", "refs": None}),
    (("t1", "worker"), {"action": "a.b", "outcome": "success", "at": AT_UTC, "system": Sub("dmp")}),
    (("t1",), {"actor": "worker", "action": "a.b"}),  # missing argument
    (("t1", "worker", "a.b", "success"), {"tenant_id": "t2"}),  # given twice
    (("t1", "worker", "a.b", "success"), {"colour": "red"}),  # unknown
    (("t1", "worker", "a.b", "success", None, None, {}, None, "extra"), {}),  # too many
]


@pytest.mark.parametrize(("args", "kwargs"), BUILDS, ids=range(len(BUILDS)))
def test_an_entry_is_built_as_the_generated_dataclass_init_built_it(args, kwargs):
    built = outcome(lambda: AuditEntry(*args, **kwargs))
    generated = outcome(lambda: GeneratedEntry(*args, **kwargs))
    assert built[0] == generated[0] and (built[0] == "ok" or built[0] is TypeError)
    if built[0] != "ok":
        return
    entry, reference = built[1], generated[1]
    assert vars(entry) == vars(reference) and list(vars(entry)) == list(vars(reference))
    assert repr(entry) == repr(reference).replace("GeneratedEntry", "AuditEntry")
    assert entry == AuditEntry(*args, **kwargs) and dataclasses.replace(entry) == entry
    assert dataclasses.replace(entry, actor="cli").actor == "cli"
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.actor = "cli"
    if "refs" not in kwargs and len(args) < 7:  # a new dict each time, as default_factory gives
        assert entry.refs == {} and type(entry.refs) is dict and entry.refs is not AuditEntry(*args, **kwargs).refs


# ------------------------------------------------------------ generated entries

TOKEN_CHARS = "ABCxyz0189._:@/+-"
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=8)  # non-ASCII, controls, NUL; no surrogates


def token(limit: int):
    good = st.builds(lambda first, rest: first + rest, st.sampled_from("aZ9"),
                     st.text(st.sampled_from(TOKEN_CHARS), max_size=limit + 1))
    edge = st.sampled_from(["", "-a", ".a", "a b", "a\x00b", "é", "a\n", "x" * limit, "x" * (limit + 1),
                            "x" * (limit - 1) + "é"])
    odd = st.one_of(st.none(), st.integers(), st.builds(Sub, good), st.builds(LongStr, st.just("a")), ANY_TEXT)
    return st.one_of(good, good, good, edge, odd)


ACTION = st.one_of(
    st.from_regex(r"[a-z][a-z_]{0,6}(\.[a-z][a-z_]{0,6}){1,3}", fullmatch=True),
    st.sampled_from(["a." + "b" * 62, "a." + "b" * 61, "a." + "b" * 63, "consent", ".a", "a.", "a..b", "A.b",
                     "a.b\x00", "a.b\n", "a.é"]),
    st.builds(Sub, st.just("a.b")), st.integers(), ANY_TEXT,
)
SUBJECT = st.one_of(st.none(), st.none(), st.from_regex(r"ps1-[0-9a-f]{32}", fullmatch=True),
                    st.sampled_from(["", "ps1-" + "0" * 31, "ps1-" + "A" * 32, "ps1-" + "0" * 32 + "\n"]),
                    st.builds(Sub, st.just("ps1-" + "0" * 32)), st.integers(), ANY_TEXT)
REF_KEY = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,8}", fullmatch=True),
                    st.sampled_from(["", "1a", "a" * 64, "a" * 65, "é", "a\x00b", "a b", "_a"]),
                    st.builds(Sub, st.just("k")), ANY_TEXT)
REF_VALUE = st.one_of(st.text(st.characters(codec="utf-8"), max_size=40), st.text(max_size=5).map(lambda s: s * 300),
                      st.sampled_from(["x" * 1024, "x" * 1025, "\x00\x1f\x7f\u2028\ud7ff\ue000\U0010ffff"]),
                      st.builds(Sub, st.just("v")), st.integers(), st.none())


@st.composite
def refs(draw):
    base = draw(st.dictionaries(REF_KEY, REF_VALUE, max_size=6))
    kind = draw(st.sampled_from(["dict"] * 6 + ["proxy", "many", "int-key", "not-mapping"]))
    if kind == "proxy":
        return types.MappingProxyType(base)
    if kind == "many":
        return {f"k{i}": "v" for i in range(draw(st.integers(30, 34)))}
    if kind == "int-key":
        return {**base, 1: "v"}
    if kind == "not-mapping":
        return list(base.items())
    return base


GOOD_TOKEN = {limit: st.builds(lambda first, rest: first + rest, st.sampled_from("aZ9"),
                               st.text(st.sampled_from(TOKEN_CHARS), max_size=limit - 1))
              for limit in (32, 40, 64, 100)}
GOOD_REFS = st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}", fullmatch=True),
                            st.text(st.characters(codec="utf-8"), max_size=1024), max_size=32)
GOOD = {"cls": st.just(AuditEntry), "tenant_id": GOOD_TOKEN[64], "actor": GOOD_TOKEN[100],
        "action": st.from_regex(r"[a-z][a-z_]{0,20}(\.[a-z][a-z_]{0,20}){1,2}", fullmatch=True).filter(
            lambda a: len(a) <= 64) | st.just("a." + "b" * 62),
        "outcome": GOOD_TOKEN[32], "subject": st.none() | st.from_regex(r"ps1-[0-9a-f]{32}", fullmatch=True),
        "system": st.none() | GOOD_TOKEN[40], "refs": GOOD_REFS}
WILD = {"cls": st.sampled_from([AuditEntry, SubEntry]), "tenant_id": token(64), "actor": token(100), "action": ACTION,
        "outcome": token(32), "subject": SUBJECT, "system": st.one_of(st.none(), token(40)), "refs": refs()}
FIELDS = list(GOOD)


@st.composite
def near_good_entries(draw):
    """A valid entry with zero, one or two fields replaced by wild values (edges, odd types)."""
    wild = set(draw(st.lists(st.sampled_from(FIELDS), max_size=2)))
    values = {name: draw(WILD[name] if name in wild else GOOD[name]) for name in FIELDS}
    cls = values.pop("cls")
    return cls(**values)


ENTRIES = st.one_of(
    near_good_entries(), near_good_entries(),
    st.builds(lambda cls, *fields: cls(*fields), WILD["cls"], *(WILD[name] for name in FIELDS[1:])),
)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(ENTRIES)
@example(AuditEntry("t1", "worker", "a.b", "success", refs={"k": "v", "k\x00x": "v"}))
@example(AuditEntry("t1\x00t2", "worker", "a.b", "success"))
@example(AuditEntry("t" * 64, "a" * 100, "a." + "b" * 62, "o" * 32, system="s" * 40, refs={"k" * 64: "v" * 1024}))
def test_check_decides_and_words_exactly_as_the_reference(entry):
    assert outcome(check, entry) == outcome(reference_check, entry)
    assert outcome(checked_length, entry) == reference_length(entry)


def reference_length(entry):
    """outcome(checked_length, entry) as the appender computed the length of an entry's texts
    after check(), before checked_length gave it."""
    decided = outcome(reference_check, entry)
    if decided[0] != "ok":
        return decided
    texts = (entry.tenant_id, entry.actor, entry.action, entry.outcome, entry.subject or "", entry.system or "")
    return "ok", sum(map(len, texts)) + sum(map(len, entry.refs)) + sum(map(len, entry.refs.values()))


BASE = dict(tenant_id="t1", actor="worker", action="exchange.sent", outcome="success",
            subject="ps1-" + "0" * 32, system="dmp", refs={"exchange": "x1", "payload_sha256": "ab" * 32})
EDGES = [
    {}, {"subject": None, "system": None, "refs": {}},
    {"tenant_id": "t" * 64}, {"tenant_id": "t" * 65}, {"actor": "a" * 100}, {"actor": "a" * 101},
    {"outcome": "o" * 32}, {"outcome": "o" * 33}, {"system": "s" * 40}, {"system": "s" * 41},
    {"action": "a." + "b" * 62}, {"action": "a." + "b" * 63}, {"action": "a.b."}, {"action": "ab"},
    {"refs": {"k" * 64: "v"}}, {"refs": {"k" * 65: "v"}}, {"refs": {"k": "v" * 1024}}, {"refs": {"k": "v" * 1025}},
    {"refs": {f"k{i}": "v" for i in range(32)}}, {"refs": {f"k{i}": "v" for i in range(33)}},
    {"refs": {"k\x00x": "v"}}, {"refs": {"k": "v", "x\x00k": "v"}}, {"tenant_id": "t\x00t"}, {"actor": "a\x00b"},
    {"refs": {"k": 1}}, {"refs": {1: "v"}}, {"refs": {Sub("k"): Sub("v")}}, {"refs": {"k": LongStr("v")}},
    {"refs": types.MappingProxyType({"k": "v"})}, {"refs": [("k", "v")]}, {"refs": {"é": "v"}},
    {"tenant_id": Sub("t1")}, {"tenant_id": LongStr("t1")}, {"tenant_id": ""}, {"tenant_id": "tè"},
    {"subject": "ps1-" + "0" * 31}, {"subject": Sub("ps1-" + "0" * 32)}, {"subject": ""}, {"system": ""},
    {"action": 1}, {"outcome": None}, {"tenant_id": "a\n"}, {"action": "a.b\n"},
]


@pytest.mark.parametrize("change", EDGES, ids=range(len(EDGES)))
@pytest.mark.parametrize("cls", [AuditEntry, SubEntry])
def test_check_at_every_limit_decides_as_the_reference(cls, change):
    entry = cls(**{**BASE, **change})
    assert outcome(check, entry) == outcome(reference_check, entry)
    for _ in range(2):  # the tokens and subject remembered the second time
        assert outcome(checked_length, entry) == reference_length(entry)


def test_check_fast_path_is_exercised_and_the_comparison_can_fail(monkeypatch):
    good = AuditEntry("t1", "worker", "exchange.sent", "success", refs={"k": "v"})
    assert outcome(check, good) == ("ok", None)
    # a fast path one character too lenient is caught by the comparison above
    too_long = AuditEntry("t" * 65, "worker", "exchange.sent", "success")
    assert outcome(reference_check, too_long)[0] is EntryError
    assert outcome(check, too_long) == outcome(reference_check, too_long)

    def full_checks(entry):
        raise AssertionError("the full checks ran")

    # exercised: a usual entry is accepted by the fast path alone (the full checks never run)...
    with monkeypatch.context() as patch:
        patch.setattr(entry_module, "_check", full_checks)
        assert outcome(check, good) == ("ok", None)
        assert outcome(check, too_long)[0] is AssertionError  # ...and a doubtful one goes on to them
    # can fail: with a fast path allowing a 65-character tenant, check() and the reference differ
    monkeypatch.setattr(entry_module, "_ACCEPTED", {})  # what the lenient one accepts is forgotten after
    lenient = entry_module._FAST.pattern.replace(r"{0,63}\x00", r"{0,64}\x00", 1)
    assert lenient != entry_module._FAST.pattern
    monkeypatch.setattr(entry_module, "_FAST", re.compile(lenient))
    assert outcome(check, too_long) == ("ok", None) != outcome(reference_check, too_long)


def regex_ran(text):
    raise AssertionError("regex ran")


def test_accepted_token_sets_are_remembered_and_the_rest_of_each_entry_still_checked(monkeypatch):
    monkeypatch.setattr(entry_module, "_ACCEPTED", {})
    good = AuditEntry("t1", "worker", "exchange.sent", "success", system="dmp", refs={"k": "v"})
    assert outcome(check, good) == ("ok", None)
    assert list(entry_module._ACCEPTED) == [("t1", "worker", "success", "exchange.sent", "dmp", "k")]
    for other in ({"system": "d m p"}, {"refs": {"k": "v", "k ": "v"}}, {"refs": {"k\x00": "v"}}):
        other_entry = dataclasses.replace(good, **other)  # the remembered tokens and one more: checked
        assert outcome(check, other_entry) == outcome(reference_check, other_entry)
        assert outcome(check, other_entry)[0] is EntryError
    for regex in ("_FAST", "_SYSTEM"):  # the regexes do not run again for the same tokens
        monkeypatch.setattr(entry_module, regex, types.SimpleNamespace(fullmatch=regex_ran))
    assert outcome(check, dataclasses.replace(good, refs={"k": "w"}, subject="ps1-" + "1" * 32)) == ("ok", None)
    # the same tokens with a bad subject or ref value: refused as the reference refuses them
    for bad in ({"subject": "ps1-x"}, {"refs": {"k": "v" * 1025}}, {"refs": {"k": 1}}, {"refs": {"k": Sub("v")}}):
        bad_entry = dataclasses.replace(good, **bad)
        assert outcome(check, bad_entry) == outcome(reference_check, bad_entry)
        assert outcome(check, bad_entry)[0] is EntryError or bad == {"refs": {"k": Sub("v")}}
    # other tokens are matched again, and the memory is bounded
    assert outcome(check, dataclasses.replace(good, tenant_id="t2")) == (AssertionError, "regex ran")
    monkeypatch.undo()
    monkeypatch.setattr(entry_module, "_ACCEPTED", {})
    monkeypatch.setattr(entry_module, "_ACCEPTED_MAX", 2)
    for tenant in ("t1", "t2", "t3", "t4", "t5"):
        check(dataclasses.replace(good, tenant_id=tenant))
    assert 1 <= len(entry_module._ACCEPTED) <= 2


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(ENTRIES, st.one_of(st.integers(0, 2**53 - 1), st.integers(-(2**70), 2**70)),
       st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])))
def test_leaf_bytes_are_unchanged_for_every_checked_entry(entry, seq, at):
    if outcome(reference_check, entry)[0] != "ok":
        return
    before = outcome(lambda: jcs.canonical_ascii_keys(record(entry, seq, at)))  # the encoder as it was
    stamp = outcome(timestamp, at)
    if stamp[0] != "ok":  # out of range once in UTC: the same error as before
        assert outcome(encode, entry, seq, at) == before == stamp
        return
    assert outcome(encode_checked, entry, seq, timestamp(at)) == before or before[0] == "ok" and len(before[1]) > 8192
    assert outcome(encode, entry, seq, at) == outcome(encode_checked, entry, seq, timestamp(at))
    if before[0] == "ok" and abs(seq) < 2**53:
        assert before[1] == rfc8785.dumps(record(entry, seq, at))


def test_leaf_of_a_plain_entry_is_written_directly_and_the_comparison_can_fail(monkeypatch):
    at = dt.datetime(2026, 11, 26, 12, 0, 0, 1, tzinfo=dt.UTC)
    plain = AuditEntry("t1", "worker", "exchange.sent", "success", subject="ps1-" + "0" * 32, system="dmp",
                       refs={"z": "é\x00\u2028", "a": "\"\\/"})
    expected = rfc8785.dumps(record(plain, 7, at))
    sub = AuditEntry(Sub("t1"), "worker", "exchange.sent", "success")
    without = AuditEntry("t1", "worker", "exchange.sent", "success")
    expected_without = rfc8785.dumps(record(without, 7, at))

    def general_path(*args):
        raise AssertionError("the general path ran")

    # exercised: a plain entry (exact str, a dict of refs) is written without building the record...
    with monkeypatch.context() as patch:
        patch.setattr(entry_module, "_record", general_path)
        assert encode_checked(plain, 7, timestamp(at)) == expected
        assert outcome(encode_checked, sub, 7, timestamp(at))[0] is AssertionError  # ...a subclass is not
        assert encode_checked(without, 7, timestamp(at)) == expected_without
    # can fail: members out of RFC 8785 order are not the reference bytes
    assert jcs._dumps(record(plain, 7, at)).encode() != expected


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(ENTRIES, st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=3)))
def test_encode_of_unchecked_entries_behaves_as_before(entry, seq):
    at = dt.datetime(2026, 11, 26, 12, 0, 0, 1, tzinfo=dt.UTC)
    before = outcome(lambda: jcs.canonical_ascii_keys(record(entry, seq, at)))
    if before[0] == "ok" and len(before[1]) > 8192:
        before = outcome(encode, entry, seq, at)[0], before[1]  # too long: EntryError as before
        assert before[0] is EntryError
        return
    assert outcome(encode, entry, seq, at) == before


# ASCII keys (what entries hold) and a few others: both encoders sort by code point
ASCII_KEYS = st.text(st.characters(max_codepoint=127), max_size=6) | st.text(st.characters(codec="utf-8"), max_size=3)
SCALARS = st.one_of(st.text(st.characters(codec="utf-8")), st.integers(-(2**70), 2**70), st.booleans(), st.none(),
                    st.builds(Sub, st.text(max_size=3)))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(ASCII_KEYS, inner, max_size=4)),
                      max_leaves=20)


def _in_range(value) -> bool:
    """Integers exact in JCS (|i| < 2^53) and ASCII object keys: the domain where code point
    order (both encoders) is RFC 8785's UTF-16 order (U+E000 and U+10000 sort apart)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) < 2**53
    if isinstance(value, list):
        return all(map(_in_range, value))
    return all(k.isascii() for k in value) and all(map(_in_range, value.values()))


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(VALUES)
@example({"b": "\x00\x08\x09\x0a\x0c\x0d\x1f\x7f\"\\/\u2028\u2029", "a": [1, -0, 2**63, -(2**63) - 1]})
@example({"z": {"y": "é", "A": "\U0001f600"}, "": None})
@example("\ud800")  # lone surrogate: the same error as before
@example({"\ue000": {}, "\U00010000": []})  # non-ASCII keys: both encoders agree (not RFC 8785, see _in_range)
def test_fast_canonical_json_matches_the_stdlib_encoder_and_rfc8785(value):
    before = outcome(jcs.canonical_ascii_keys, value)
    assert outcome(jcs.canonical_checked, value) == before
    if before[0] == "ok" and _in_range(value):
        assert before[1] == rfc8785.dumps(value)


def test_the_encoder_comparison_can_fail():
    # what the fast path must not do: unsorted keys, or ASCII-escaped strings, differ from RFC 8785
    value = {"b": "é", "a": 1}
    assert orjson.dumps(value) != rfc8785.dumps(value)
    assert jcs.canonical_checked(value) == rfc8785.dumps(value)
    # floats are not on the fast path's menu: orjson and the stdlib write them differently
    assert orjson.dumps(1e-7) != jcs._dumps(1e-7).encode()


# ------------------------------------------------------------ the insert


def _rows(store) -> list[tuple]:
    """Rows as stored, with SQLite's storage class of `at` (text, same format as before)."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            return [tuple(r) for r in conn.exec_driver_sql(
                "SELECT seq, tenant_id, action, at, typeof(at), body, typeof(body) FROM audit_entries ORDER BY seq")]
        return [(r.seq, r.tenant_id, r.action, r.at, type(r.at).__name__, r.body, type(r.body).__name__)
                for r in conn.execute(sa.select(audit_entries).order_by(audit_entries.c.seq))]


AT = dt.datetime(2026, 11, 26, 23, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


def _batch(n: int) -> list[AuditEntry]:
    return [AuditEntry(f"t{i % 3}", "worker", "exchange.sent", "success", refs={"n": str(i)},
                       at=(AT if i % 2 else None)) for i in range(n)]


def _assert_as_sqlalchemy_stores(store, monkeypatch, fast: list[tuple], n: int, offset: int = 0) -> None:
    """`fast`: the n rows written last, from leaf `offset` (even); append the same batch through
    SQLAlchemy's own insert and compare (same values and types; `at` and the leaf bytes where the
    entry has an explicit `at`)."""
    monkeypatch.setattr(log, "_prepared_insert", lambda dialect: False)
    with write_transaction(store.engine) as conn:
        assert append_many(conn, _batch(n)) == list(range(offset + n, offset + 2 * n))
    slow = _rows(store)[offset + n:]
    assert len(fast) == n and len(slow) == n
    for a, b in zip(fast, slow):
        assert a[0] + n == b[0]
        assert a[1:3] == b[1:3]
        if a[0] % 2:  # entries with the same explicit `at`: same stored value (and SQLite type)
            assert a[3:5] == b[3:5]
        assert [type(v) for v in a] == [type(v) for v in b]
        assert bytes(a[5]).replace(b'"seq":%d' % a[0], b'"seq":%d' % b[0]) == bytes(b[5]) or not a[0] % 2
    if store.engine.dialect.name == "sqlite" and n > 1:
        assert fast[1][3] == "2026-11-27 04:30:00.123456" and fast[1][4] == "text" and fast[1][6] == "blob"
    if n > 1:
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(audit_entries.c.at).where(audit_entries.c.seq == offset + 1)).scalar_one()
        assert stored == AT and stored.tzinfo is not None


@pytest.mark.parametrize("n", [5, 50, log.SQLITE_ROWS, 2 * log.SQLITE_ROWS + 3],
                         ids=["executemany", "copy-on-postgres", "multi-row-on-sqlite", "multi-row-and-rest"])
def test_the_prepared_insert_stores_the_rows_sqlalchemy_would_store(store, monkeypatch, n):
    prepared = log._prepared_insert(store.engine.dialect)
    assert prepared  # the fast path is the one tested
    # SQLite: the leaf bytes bound as they are, not wrapped in sqlite3.Binary (same BLOB, see below)
    assert (prepared[3] is None) == (store.engine.dialect.name == "sqlite")
    copies = []
    monkeypatch.setattr(log, "copy_entries", lambda *args: (copies.append(1), real_copy(*args)))
    with write_transaction(store.engine) as conn:
        assert append_many(conn, _batch(n)) == list(range(n))
    # PostgreSQL batches of COPY_FROM entries or more go through COPY (binary), others executemany
    assert len(copies) == (store.engine.dialect.name == "postgresql" and n >= log.COPY_FROM)
    _assert_as_sqlalchemy_stores(store, monkeypatch, _rows(store), n)


real_copy = log.copy_entries


@pytest.mark.parametrize("n", [1, 5, 50, 2 * log.SQLITE_ROWS + 3])
def test_the_appender_stores_the_rows_sqlalchemy_would_store(store, monkeypatch, n):
    appender = Appender(store.engine, max_batch=n)
    write = appender._writer()
    assert appender._connection is not None  # its own connection and the DB-API, not SQLAlchemy's path
    with appender._io:
        assert write(_batch(n)) == 0
    appender.close()
    _assert_as_sqlalchemy_stores(store, monkeypatch, _rows(store), n)


@pytest.mark.parametrize("n", [1, 2, appender_module.COPY_FROM - 1, 2 * log.SQLITE_ROWS + 3])
def test_the_appenders_write_from_its_known_head_stores_the_rows_sqlalchemy_would_store(store, monkeypatch, n):
    appender = Appender(store.engine, max_batch=n)
    write = appender._writer()
    fast = []
    postgres = store.engine.dialect.name == "postgresql"
    name = "_one_statement" if postgres else "_from_known_head"  # through libpq; SQLite: no read of the head
    real = getattr(appender_module, name)
    monkeypatch.setattr(appender_module, name, lambda *args: fast.append(real(*args)) or fast[-1])
    with appender._io:
        assert write(_batch(2)) == 0  # the locking transaction; then the head is known
        assert write(_batch(n)) == 2  # from that head (PostgreSQL: below COPY_FROM only)
    appender.close()
    assert len(fast) == (not postgres or n < appender_module.COPY_FROM) and None not in fast
    rows = _rows(store)
    assert [r[0] for r in rows] == list(range(2 + n))
    _assert_as_sqlalchemy_stores(store, monkeypatch, rows[2:], n, offset=2)


ODD_TIMES = [AT, AT.replace(microsecond=0), dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
             dt.datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=14))),
             dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]


def test_the_appenders_write_from_its_known_head_stores_any_time_as_sqlalchemy_would(store, monkeypatch):
    # PostgreSQL's one statement sends `at` as ISO 8601 text (psycopg: binary): same stored values
    entries = [AuditEntry("t1", "worker", "exchange.sent", "success", refs={"n": str(i)}, at=at)
               for i, at in enumerate(ODD_TIMES)]
    fast = []
    name = "_one_statement" if store.engine.dialect.name == "postgresql" else "_from_known_head"
    real = getattr(appender_module, name)
    monkeypatch.setattr(appender_module, name, lambda *args: fast.append(real(*args)) or fast[-1])
    appender = Appender(store.engine, max_batch=1)
    write = appender._writer()
    with appender._io:
        assert write(_batch(1)) == 0
        for i, e in enumerate(entries):
            assert write([e]) == 1 + i
    assert len(fast) == len(entries) and None not in fast  # every one from the known head
    appender.close()
    monkeypatch.setattr(log, "_prepared_insert", lambda dialect: False)
    with write_transaction(store.engine) as conn:
        append_many(conn, entries)
    rows = _rows(store)[1:]
    n = len(entries)
    for a, b in zip(rows[:n], rows[n:], strict=True):
        assert a[1:5] == b[1:5] and type(a[3]) is type(b[3])
        assert bytes(a[5]).replace(b'"seq":%d' % a[0], b'"seq":%d' % b[0]) == bytes(b[5])


def test_an_entry_too_long_for_a_leaf_fails_the_whole_batch_and_writes_nothing(store):
    batch = _batch(40) + [AuditEntry("t1", "worker", "exchange.sent", "success",
                                     refs={f"k{i}": "v" * 1000 for i in range(9)})]
    with pytest.raises(EntryError, match="trop longue"):  # found while COPY streams, on PostgreSQL
        with write_transaction(store.engine) as conn:
            append_many(conn, batch)
    with write_transaction(store.engine) as conn:
        assert append_many(conn, _batch(3)) == [0, 1, 2]
    assert [r[0] for r in _rows(store)] == [0, 1, 2]


@pytest.mark.parametrize("n", [40, log.SQLITE_ROWS + 1])
def test_a_database_error_during_copy_is_raised_as_sqlalchemy_raises_it(store, n):
    refuse_audit_inserts(store.engine)  # the database refuses every insert (COPY, multi-row INSERT)
    with pytest.raises(sa.exc.IntegrityError, match="audit"):
        with write_transaction(store.engine) as conn:
            append_many(conn, _batch(n))
    assert _rows(store) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
                       timezones=st.just(dt.UTC)) | st.datetimes(timezones=st.timezones()))
@example(at=dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))  # strftime's %Y unpadded: general path
@example(at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC))  # microsecond 0: still six digits
def test_the_clocks_time_is_stamped_and_bound_as_by_strftime_and_sqlalchemy(store, at):
    prepared = log._prepared_insert(store.engine.dialect)
    assert prepared[4] == ("text" if store.engine.dialect.name == "sqlite" else "datetime")  # the fast path runs
    stamp, bound = log.now_stamps(at, prepared)
    assert stamp == timestamp(at)
    expected = prepared[2](at)
    assert bound == expected and type(bound) is type(expected)
    if isinstance(bound, dt.datetime):
        assert bound.utcoffset() == dt.timedelta(0)


_LAST_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z, in µs since 1970


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instants=st.lists(st.integers(min_value=0, max_value=_LAST_US), min_size=1, max_size=4))
@example(instants=[1_795_000_000_000_000, 1_795_000_000_999_999, 1_795_000_001_000_000, 1_795_000_000_000_001])
def test_the_clocks_stamps_are_those_of_the_same_microsecond(store, instants):
    prepared = log._prepared_insert(store.engine.dialect)
    for us in instants:  # one after another: the second formatted last is reused, or replaced
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
        stamp, bound = log.clock_stamps(prepared, lambda: us * 1000 + 999)  # ns: the µs is floored
        expected_stamp, expected = log.now_stamps(at, prepared)
        assert stamp == expected_stamp == timestamp(at)
        assert bound == expected and type(bound) is type(expected)
        assert log.clock_stamps(None, lambda: us * 1000) == log.now_stamps(at, None)  # no fast path


def test_an_entry_without_a_time_gets_the_clocks(store):
    prepared = log._prepared_insert(store.engine.dialect)
    lone = AuditEntry(tenant_id="t1", actor="worker", action="exchange.sent", outcome="success")
    before = dt.datetime.now(dt.UTC)
    seq, _tenant, _action, bound, body = log.leaf_row(lone, 0, [], prepared, wrap_body=False)
    after = dt.datetime.now(dt.UTC)
    at = dt.datetime.strptime(orjson.loads(body)["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert before <= at <= after
    assert bound == log.now_stamps(at, prepared)[1]


def test_the_clocks_time_comparison_can_fail(store):
    prepared = log._prepared_insert(store.engine.dialect)
    at = dt.datetime(2026, 11, 27, 0, 5, 9, 7, tzinfo=dt.UTC)
    stamp, bound = log.now_stamps(at, prepared)
    assert stamp != timestamp(at.replace(microsecond=8)) and bound != prepared[2](at.replace(microsecond=8))
    assert log._stored_at_kind(store.engine.dialect, lambda value: f"{value:%Y-%m-%dT%H:%M:%S}") is None
