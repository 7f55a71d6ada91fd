"""The evaluation context of one request: regime, team membership, and what each stored
directive says about the request.

Combining (consent_audit §2.6.3): inside one Consent the root is the base decision and
nested provisions are exceptions (a matching nested deny wins over a nested permit); between
Consents, deny overrides permit. Matching (§2.6.4): period contains now; actor (role IRCP)
names the recipient (identifier, its structure's FINESS, its R.1110-2 category or the target
system); purpose subsumes the request's (ActReason hierarchy); `class` — for a permit, covers
every data category sent; for a deny, touches any of them. An element Relais does not
evaluate makes a provision match for deny and never for permit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from gateway.consent.capacity import still_capable
from gateway.consent.model import (
    DecisionRequest,
    Directive,
    Effect,
    PolicyState,
    Provision,
    TeamMember,
    Token,
)
from gateway.consent.vocab import (
    DEFAULT_FLOW,
    PURPOSE_ANCESTORS,
    ConsentKind,
    Flow,
    MembershipBasis,
    RecipientKind,
    System,
)

# Regimes (consent_audit §1.1, §2.6.2).
PERSON = "communication-personne"  # to the person's own mailbox (L.1111-7)
DMP_FEED = "dmp-alimentation"
DMP_BTG = "dmp-bris-de-glace"
ECHANGE = "echange"  # L.1110-4 II, recipient takes part in the care
TEAM_SHARING = "partage-equipe"  # L.1110-4 III al. 1
OUTSIDE_TEAM = "hors-equipe"  # L.1110-4 III al. 2

NOT_CONSENT = frozenset({ConsentKind.team_recognition, ConsentKind.agreement, ConsentKind.opposition,
                         ConsentKind.emergency_opposition})
IDENTIFIER_KINDS = frozenset({"rpps", "finess", "mssante", "adeli", "local"})


@dataclass(frozen=True)
class Verdict:
    """What one directive says about the request."""

    directive: Directive
    effect: Effect
    provision: Provision
    names_actor: bool  # the deciding provision (or its root) names recipients


@dataclass(frozen=True)
class Membership:
    basis: MembershipBasis
    since: dt.datetime | None
    member: TeamMember | None = None


@dataclass
class Context:
    request: DecisionRequest
    state: PolicyState
    now: dt.datetime
    flow: Flow
    names_ins: bool
    minor: bool
    tokens: frozenset[Token]
    membership: Membership | None
    regime: str
    verdicts: list[Verdict]
    withdrawn: list[Directive]  # inactive directives that would have permitted
    lapsed: list[Directive]  # permits whose performer no longer has capacity
    obligations: list[str] = field(default_factory=list)
    waived_information: bool = False

    @property
    def permits(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.effect is Effect.permit]

    @property
    def denies(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.effect is Effect.deny]

    def explicit_permits(self) -> list[Verdict]:
        """Permits that name their recipients: what L.1110-4 III al. 2 calls prior consent.
        An exception inside an opposition only lifts the opposition for what it names; it is
        not a consent (nor is a team recognition, nor a TDDUI agreement)."""
        return [v for v in self.permits if v.names_actor and v.directive.kind not in NOT_CONSENT]


def matches(p: Provision, ctx_tokens: frozenset[Token], purpose: str,
            categories: frozenset[str], now: dt.datetime, *, for_deny: bool) -> bool:
    if p.start is not None and now < p.start:
        return False
    if p.end is not None and now > p.end:
        return False
    if p.actors is not None and not (p.actors & ctx_tokens):
        return False
    if p.purposes is not None and not (p.purposes & PURPOSE_ANCESTORS.get(purpose, frozenset((purpose,)))):
        return False
    if p.classes is not None:
        if for_deny:
            if categories and not (p.classes & categories):
                return False
        elif not categories or not categories <= p.classes:
            return False
    if p.unevaluated and not for_deny:
        return False
    return True


def verdict(d: Directive, tokens: frozenset[Token], purpose: str,
            categories: frozenset[str], now: dt.datetime) -> Verdict | None:
    root = d.root
    if root is None or not matches(root, tokens, purpose, categories, now, for_deny=True):
        return None
    for child in root.children:
        if child.effect is Effect.deny and matches(child, tokens, purpose, categories, now, for_deny=True):
            return Verdict(d, Effect.deny, child, child.actors is not None or root.actors is not None)
    strict_root = matches(root, tokens, purpose, categories, now, for_deny=False)
    if strict_root:
        for child in root.children:
            if child.effect is Effect.permit and matches(child, tokens, purpose, categories, now,
                                                         for_deny=False):
                return Verdict(d, Effect.permit, child,
                               child.actors is not None or root.actors is not None)
    if root.effect is Effect.deny:
        return Verdict(d, Effect.deny, root, root.actors is not None)
    if strict_root:
        return Verdict(d, Effect.permit, root, root.actors is not None)
    return None


def _membership(state: PolicyState, request: DecisionRequest, tokens: frozenset[Token],
                verdicts: list[Verdict], now: dt.datetime) -> Membership | None:
    recipient = request.recipient
    ids = {t for t in recipient.identifiers if t[0] in IDENTIFIER_KINDS}
    if recipient.organisation:
        ids.add(("finess", recipient.organisation))
    # L.1110-12 a): the professionals of the person's own ESSMS are in the team.
    if ("finess", state.person.platform_finess) in ids:
        return Membership(MembershipBasis.same_structure, None)
    for member in state.team:
        if member.tokens & ids and member.active_at(now):
            return Membership(member.basis, member.start, member)
    # L.1110-12 b): professionals the person recognises as team members.
    for v in verdicts:
        if v.directive.kind is ConsentKind.team_recognition and v.effect is Effect.permit:
            if v.provision.actors and v.provision.actors & ids:
                return Membership(MembershipBasis.recognised_by_person, v.directive.date_time)
    return None


def build_context(state: PolicyState, request: DecisionRequest, now: dt.datetime) -> Context:
    system = request.system
    flow = request.flow or DEFAULT_FLOW[system]
    recipient = request.recipient
    to_person = recipient.kind is RecipientKind.person
    names_ins = True if system is System.dmp or to_person else bool(request.names_ins)
    tokens = recipient.tokens(system)
    purpose, categories = request.purpose, request.data_categories
    today = now.date()
    verdicts: list[Verdict] = []
    withdrawn: list[Directive] = []
    lapsed: list[Directive] = []
    for d in state.directives:
        if d.kind is ConsentKind.agreement:
            continue
        v = verdict(d, tokens, purpose, categories, now)
        if v is None:
            continue
        if not d.active:
            if v.effect is Effect.permit:
                withdrawn.append(d)
            continue
        if v.effect is Effect.permit and not still_capable(state.person, d.performers, today):
            lapsed.append(d)
            continue
        verdicts.append(v)
    membership = _membership(state, request, tokens, verdicts, now)
    if to_person:
        regime = PERSON
    elif system is System.dmp:
        regime = DMP_BTG if purpose == "BTG" else DMP_FEED
    elif recipient.kind is RecipientKind.system:
        regime = TEAM_SHARING  # a shared space whose circle mirrors the care team
    elif membership is not None:
        regime = ECHANGE if flow is Flow.echange else TEAM_SHARING
    else:
        regime = OUTSIDE_TEAM
    return Context(request=request, state=state, now=now, flow=flow, names_ins=names_ins,
                   minor=state.person.minor_on(today), tokens=tokens, membership=membership,
                   regime=regime, verdicts=verdicts, withdrawn=withdrawn, lapsed=lapsed)
