"""The policy votes on a request, each with the plugin that cast it.

The pipeline (`enroll.authority`) and the troubleshooting check (`enroll.request_check`)
collect the votes here, so both see the same votes in the same order, and the audit
trail can say which plugin denied or held a request. The implementations are called
in pluggy's own order (the last registered first, ``tryfirst`` before the others);
each answer is kept with the plugin's registered name. An exception a plugin raises
propagates, as it does from a plain hook call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from enroll.model import Decision, EnrollmentRequest, Vote
from enroll.profiles import Profile

MANUAL_APPROVAL = "profile requires manual approval"
"""The reason of the pending decision a ``approval = "manual"`` profile makes of an
allow."""


@dataclass(frozen=True, slots=True)
class PluginVote:
    """One plugin's vote (None: it abstained)."""

    plugin: str
    decision: Decision | None

    def as_json(self) -> dict[str, Any]:
        d = self.decision
        return {"plugin": self.plugin,
                "vote": "abstain" if d is None else d.vote.name.lower(),
                "reason": "" if d is None else d.reason}


def combine(decisions: Iterable[Decision | None]) -> Decision:
    """Deny beats pending beats allow; abstentions (None) do not count."""
    result = Decision.allow()
    for d in decisions:
        if d is not None and d.vote > result.vote:
            result = d
    return result


def collect(pm: pluggy.PluginManager, request: EnrollmentRequest,
            profile: Profile) -> tuple[PluginVote, ...]:
    """Every plugin's vote on `request` under `profile`."""
    impls = pm.hook.enroll_policy_vote.get_hookimpls()
    if any(i.hookwrapper or i.wrapper for i in impls):
        # A wrapper shapes the others' answers: let pluggy run them, unattributed.
        answers = pm.hook.enroll_policy_vote(request=request, profile=profile)
        return tuple(PluginVote("(wrapped)", a) for a in answers)
    votes = []
    for impl in reversed(impls):
        kwargs = {"request": request, "profile": profile}
        answer: Any = impl.function(**{name: kwargs[name] for name in impl.argnames})
        votes.append(PluginVote(impl.plugin_name, answer))
    return tuple(votes)


def decide(votes: Iterable[PluginVote], profile: Profile) -> Decision:
    """The decision the votes make under `profile`: a manual-approval profile holds
    what the votes allow."""
    decision = combine(v.decision for v in votes)
    if profile.approval == "manual" and decision.vote is Vote.ALLOW:
        return Decision.pending(MANUAL_APPROVAL)
    return decision


def as_details(votes: Iterable[PluginVote]) -> list[dict[str, Any]]:
    """The votes as an audit event keeps them (abstentions left out)."""
    return [v.as_json() for v in votes if v.decision is not None]
