"""What a caller records (`AuditEntry`) and the leaf it becomes (record v1, RFC 8785 bytes).

The leaf is the canonical JSON of:
    {"v": 1, "seq": <leaf index>, "at": "<UTC, µs, Z>", "tenant": …, "actor": …,
     "action": …, "outcome": …, "subject": <pseudonym>?, "system": …?, "refs": {…}}
(`subject`/`system` omitted when None). `seq` inside the leaf lets the verifier name an
entry that was moved, removed or inserted. No personal data: `subject` must be a pseudonym
from `pseudonym()`; refs carry ids and digests only (consent_audit §4.2).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.audit.jcs import canonical_ascii_keys, canonical_checked, canonical_fast

RECORD_VERSION = 1
MAX_ENTRY_BYTES = 8192  # well under the 65,535 bytes a tlog-tiles entry bundle allows

# Actions Relais records today (dotted verbs); others of the same shape are accepted.
ACTIONS = frozenset({
    "plan.version.stored", "consent.recorded", "consent.withdrawn", "decision.permit",
    "decision.deny", "exchange.queued", "exchange.sent", "exchange.acknowledged",
    "exchange.failed", "exchange.cancelled", "inbound.received", "console.viewed",
    "audit.key.created", "audit.key.rotated",
})
KEY_ACTIONS = ("audit.key.created", "audit.key.rotated")  # refs carry the key's vkey
SYSTEM_TENANT = "system"  # tenant id of the log's own entries (keys)
PSEUDONYM = re.compile(r"ps1-[0-9a-f]{32}")

_ACTION = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+\-]*")
_REF_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


class EntryError(ValueError):
    """An entry Relais refuses to record (message in French, no personal data)."""


_NEW_DICT = object()  # refs not given: a new empty dict
_set_dict = object.__setattr__  # past the frozen dataclass's __setattr__, as its generated __init__ does


@dataclass(frozen=True, init=False)
class AuditEntry:
    """One event that matters to a DPO; no directly identifying data of the person."""

    tenant_id: str
    actor: str  # "key:<slug>", "cli", "dpo:<login>", "worker", "system"
    action: str  # dotted verb, see ACTIONS
    outcome: str  # "success" | "failure" | "permit" | "deny" ...
    subject: str | None = None  # pseudonym of the person (pseudonym()), never a name or INS
    system: str | None = None  # "dmp", "mss", "viatrajectoire", "eparcours", "tddui" …
    refs: Mapping[str, str] = field(default_factory=dict)  # ids and digests only
    at: dt.datetime | None = None  # UTC; None = now

    def __init__(self, tenant_id: str, actor: str, action: str, outcome: str, subject: str | None = None,
                 system: str | None = None, refs: Mapping[str, str] = _NEW_DICT,  # type: ignore[assignment]
                 at: dt.datetime | None = None):
        # the generated __init__ of a frozen dataclass sets each field through object.__setattr__
        # (about half of the cost of building an entry); the instance dict given at once instead.
        # A dict of its own, not `self.__dict__` filled in: CPython 3.11 makes that one a split
        # dict, on which every later attribute load is the generic lookup (~5× the cost)
        _set_dict(self, "__dict__", {
            "tenant_id": tenant_id, "actor": actor, "action": action, "outcome": outcome, "subject": subject,
            "system": system, "refs": {} if refs is _NEW_DICT else refs, "at": at})


def _token(value, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not _TOKEN.fullmatch(value):
        raise EntryError(f"entrée d'audit : {what} invalide")
    return value


def timestamp(at: dt.datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise EntryError("entrée d'audit : date-heure sans fuseau horaire")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_T = r"[A-Za-z0-9][A-Za-z0-9._:@/+\-]"  # _TOKEN's first character and the rest
# The checks below of a usual entry in one match: "tenant\0actor\0outcome\0action(\0refkey)*".
# NUL appears in none of the classes, so each field is one segment (the NUL count is checked too).
_FAST = re.compile(
    _T + r"{0,63}\x00" + _T + r"{0,99}\x00" + _T + r"{0,31}\x00"  # tenant ≤ 64, actor ≤ 100, outcome ≤ 32
    r"(?![^\x00]{65})[a-z][a-z_]*(?:\.[a-z][a-z_]*)+"  # action ≤ 64 characters
    r"(?:\x00[A-Za-z][A-Za-z0-9_.\-]{0,63})*"  # ref names ≤ 64
)
_SYSTEM = re.compile(_T + r"{0,39}")  # system ≤ 40
# (tenant, actor, outcome, action, system, *ref names) the fast path accepted, all exact str (or
# None for system), with the sum of their lengths: a log sees few of them, and an equal tuple is
# accepted again without the regexes.
_ACCEPTED: dict[tuple, int] = {}
_ACCEPTED_MAX = 4096
_SUBJECTS: dict[str, None] = {}  # exact str pseudonyms the fast path accepted (a log sees the same persons again)


def check(entry: AuditEntry) -> None:
    """Refuse what would put personal data or malformed values in the log."""
    checked_length(entry)


def checked_length(entry: AuditEntry) -> int:
    """check(entry), then the number of characters of the entry's texts (tenant, actor, action,
    outcome, subject, system, ref names and values), which bounds the length of its leaf."""
    # Fast path: accepts only entries the full checks below accept (exact str and dict types, so
    # no subclass can change len() or matching); anything else, or any doubt, goes through them,
    # which give the decision and the message.
    if type(entry) is AuditEntry:
        tenant, actor, outcome, action = entry.tenant_id, entry.actor, entry.outcome, entry.action
        subject, system, refs = entry.subject, entry.system, entry.refs
        if (type(tenant) is str and type(actor) is str and type(outcome) is str and type(action) is str
                and type(refs) is dict and len(refs) <= 32 and (system is None or type(system) is str)):
            values = 0
            for key, value in refs.items():
                if type(key) is not str or type(value) is not str or (size := len(value)) > 1024:
                    break
                values += size
            else:  # exact str everywhere: the tokens can be hashed and compared safely
                tokens = (tenant, actor, outcome, action, system, *refs)
                length = _ACCEPTED.get(tokens)
                if length is None:
                    length = _tokens_pass(tokens)
                if length is not None:
                    if subject is None:
                        return length + values
                    if type(subject) is str and (subject in _SUBJECTS or _subject_passes(subject)):
                        return length + values + len(subject)
    _check(entry)
    texts = (entry.tenant_id, entry.actor, entry.action, entry.outcome, entry.subject or "", entry.system or "")
    return sum(map(len, texts)) + sum(map(len, entry.refs)) + sum(map(len, entry.refs.values()))


def _subject_passes(subject: str) -> bool:
    """The fast path's check of an exact str subject (a pseudonym), remembered when it passes."""
    if not PSEUDONYM.fullmatch(subject):
        return False
    if len(_SUBJECTS) >= _ACCEPTED_MAX:
        _SUBJECTS.clear()
    _SUBJECTS[subject] = None
    return True


def _tokens_pass(tokens: tuple) -> int | None:
    """The fast path's checks of (tenant, actor, outcome, action, system, *ref names), exact str:
    the sum of their lengths when they pass (remembered), else None."""
    tenant, actor, outcome, action, system, *names = tokens
    if system is not None and not _SYSTEM.fullmatch(system):
        return None
    joined = "\x00".join((tenant, actor, outcome, action, *names))
    if joined.count("\x00") != 3 + len(names) or not _FAST.fullmatch(joined):
        return None
    if len(_ACCEPTED) >= _ACCEPTED_MAX:
        _ACCEPTED.clear()
    length = _ACCEPTED[tokens] = len(joined) - 3 - len(names) + len(system or "")
    return length


def _check(entry: AuditEntry) -> None:
    """The full checks, in order (each refusal has its own message)."""
    if not isinstance(entry, AuditEntry):
        raise EntryError("entrée d'audit : AuditEntry attendu")
    _token(entry.tenant_id, "locataire", 64)
    _token(entry.actor, "auteur", 100)
    _token(entry.outcome, "résultat", 32)
    if not isinstance(entry.action, str) or len(entry.action) > 64 or not _ACTION.fullmatch(entry.action):
        raise EntryError("entrée d'audit : action invalide (verbe pointé, ex. consent.recorded)")
    if entry.subject is not None and not (
        isinstance(entry.subject, str) and PSEUDONYM.fullmatch(entry.subject)
    ):
        raise EntryError("entrée d'audit : le sujet doit être un pseudonyme (gateway.audit.pseudonym)")
    if entry.system is not None:
        _token(entry.system, "système", 40)
    if not isinstance(entry.refs, Mapping) or len(entry.refs) > 32:
        raise EntryError("entrée d'audit : références invalides")
    for key, value in entry.refs.items():
        if not isinstance(key, str) or len(key) > 64 or not _REF_KEY.fullmatch(key):
            raise EntryError("entrée d'audit : nom de référence invalide")
        if not isinstance(value, str) or len(value) > 1024:
            raise EntryError(f"entrée d'audit : la référence {key} doit être un texte court")


def record(entry: AuditEntry, seq: int, at: dt.datetime) -> dict:
    return _record(entry, seq, timestamp(at))


def _record(entry: AuditEntry, seq: int, stamp: str) -> dict:
    out = {
        "v": RECORD_VERSION,
        "seq": seq,
        "at": stamp,
        "tenant": entry.tenant_id,
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "refs": dict(entry.refs),
    }
    if entry.subject is not None:
        out["subject"] = entry.subject
    if entry.system is not None:
        out["system"] = entry.system
    return out


def _plain(entry, seq) -> bool:
    """True when every value of the record is a str (or None for subject/system) and seq an int,
    the shapes for which orjson and the reference encoder agree (entries passing check())."""
    return (type(seq) is int and isinstance(entry.tenant_id, str) and isinstance(entry.actor, str)
            and isinstance(entry.action, str) and isinstance(entry.outcome, str)
            and (entry.subject is None or isinstance(entry.subject, str))
            and (entry.system is None or isinstance(entry.system, str))
            and isinstance(entry.refs, Mapping) and all(isinstance(v, str) for v in entry.refs.values()))


def _body(record_: dict, plain: bool) -> bytes:
    body = canonical_checked(record_) if plain else canonical_ascii_keys(record_)
    if len(body) > MAX_ENTRY_BYTES:
        raise EntryError(f"entrée d'audit trop longue (plus de {MAX_ENTRY_BYTES} octets)")
    return body


def encode(entry: AuditEntry, seq: int, at: dt.datetime) -> bytes:
    """The leaf bytes (RFC 8785)."""
    # keys are ASCII (checked above), so sorting by code point is RFC 8785 §3.2.3's UTF-16 order
    return _body(record(entry, seq, at), _plain(entry, seq))


def encode_checked(entry: AuditEntry, seq: int, stamp: str) -> bytes:
    """`encode` for an entry that passed check(), with its `timestamp()` already computed (a batch
    shares one): check() leaves only str values, so the orjson path is always the right one."""
    tenant, actor, action, outcome = entry.tenant_id, entry.actor, entry.action, entry.outcome
    subject, system, refs = entry.subject, entry.system, entry.refs
    if (type(seq) is int and type(tenant) is str and type(actor) is str and type(action) is str
            and type(outcome) is str and (subject is None or type(subject) is str)
            and (system is None or type(system) is str) and type(refs) is dict):
        # The record written out directly, members in RFC 8785 §3.2.3 order: check() let through
        # only values that JSON writes as they are (tokens, dotted action, pseudonym; no quote,
        # backslash nor control character) and exact str, so formatting is str's own. The refs
        # object alone goes through orjson; anything it would not write as the reference does:
        # the general path below.
        encoded_refs = canonical_fast(refs)
        if encoded_refs is not None:
            body = (f'{{"action":"{action}","actor":"{actor}","at":"{stamp}","outcome":"{outcome}",'
                    f'"refs":{encoded_refs.decode()},"seq":{seq}'
                    + ("" if subject is None else f',"subject":"{subject}"')
                    + ("" if system is None else f',"system":"{system}"')
                    + f',"tenant":"{tenant}","v":{RECORD_VERSION}}}').encode()
            if len(body) > MAX_ENTRY_BYTES:
                raise EntryError(f"entrée d'audit trop longue (plus de {MAX_ENTRY_BYTES} octets)")
            return body
    return _body(_record(entry, seq, stamp), type(seq) is int)


_UNSET = object()  # no entry holds it: the cache of encode_many is empty


def encode_many(entries: Sequence[AuditEntry], seq: int, stamps: Sequence[str]) -> list[bytes]:
    """[encode_checked(entries[i], seq + i, stamps[i]) …] for entries that passed check(): the
    members before "refs" (action, actor, at, outcome) and after "seq" (subject, system, tenant,
    v) are written once for a run of entries holding the very same objects (a batch mostly does)."""
    if type(seq) is not int:
        return [encode_checked(entry, seq + offset, stamp) for offset, (entry, stamp) in enumerate(zip(entries, stamps))]
    bodies = []
    append = bodies.append
    # the objects the head / tail were written from (identical objects: exact str checked then)
    h_action = h_actor = h_outcome = h_stamp = t_subject = t_system = t_tenant = _UNSET
    head = tail = b""
    for entry, stamp in zip(entries, stamps):
        action, actor, outcome = entry.action, entry.actor, entry.outcome
        if action is not h_action or actor is not h_actor or outcome is not h_outcome or stamp is not h_stamp:
            h_action = _UNSET
            if type(action) is str and type(actor) is str and type(outcome) is str:  # as encode_checked
                h_action, h_actor, h_outcome, h_stamp = action, actor, outcome, stamp
                head = f'{{"action":"{action}","actor":"{actor}","at":"{stamp}","outcome":"{outcome}","refs":'.encode()
        subject, system, tenant = entry.subject, entry.system, entry.tenant_id
        if subject is not t_subject or system is not t_system or tenant is not t_tenant:
            t_tenant = _UNSET
            if (subject is None or type(subject) is str) and (system is None or type(system) is str) \
                    and type(tenant) is str:
                t_subject, t_system, t_tenant = subject, system, tenant
                tail = (("" if subject is None else f',"subject":"{subject}"')
                        + ("" if system is None else f',"system":"{system}"')
                        + f',"tenant":"{tenant}","v":{RECORD_VERSION}}}').encode()
        refs = entry.refs
        encoded_refs = None
        if h_action is not _UNSET and t_tenant is not _UNSET and type(refs) is dict:
            encoded_refs = canonical_fast(refs)
        if encoded_refs is None:
            append(encode_checked(entry, seq, stamp))  # what it gives (or raises) for this entry
        else:
            body = b"".join((head, encoded_refs, b',"seq":%d' % seq, tail))
            if len(body) > MAX_ENTRY_BYTES:
                raise EntryError(f"entrée d'audit trop longue (plus de {MAX_ENTRY_BYTES} octets)")
            append(body)
        seq += 1
    return bodies
