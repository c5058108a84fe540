"""`enroll.policy_votes`: every plugin's vote, attributed to the plugin, in pluggy's own
order, and the same decision as the plain hook call (a wrapper falls back to it)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from enroll.hookspecs import hookimpl
from enroll.model import Decision, EnrollmentRequest, Requester, Vote
from enroll.plugin_loader import build_plugin_manager
from enroll.policy_votes import MANUAL_APPROVAL, collect, combine, decide
from enroll.testing import make_csr


class Allow:
    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> Decision:
        return Decision.allow()


class Hold:
    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> Decision:
        return Decision.pending("an officer looks at it")


class Abstain:
    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> None:
        return None


class Wrapper:
    @hookimpl(wrapper=True)
    def enroll_policy_vote(self, request: Any, profile: Any) -> Generator[None, Any, Any]:
        answers = yield
        return [*answers, Decision.deny("the wrapper says no")]


class FakeProfile:
    approval = "auto"


def request() -> EnrollmentRequest:
    return EnrollmentRequest(csr=make_csr(cn="a.example", dns=["a.example"]), profile="p",
                             requester=Requester("tester", "check"), protocol="est")


def test_each_vote_is_named_for_its_plugin_in_the_hook_call_order() -> None:
    pm = build_plugin_manager()
    for plugin, name in ((Allow(), "allow-plugin"), (Hold(), "hold-plugin"),
                         (Abstain(), "abstain-plugin")):
        pm.register(plugin, name=name)
    votes = collect(pm, request(), FakeProfile())  # type: ignore[arg-type]
    mine = [v for v in votes if v.plugin.endswith("-plugin")]
    assert [v.plugin for v in mine] == ["abstain-plugin", "hold-plugin", "allow-plugin"]
    assert [v.as_json()["vote"] for v in mine] == ["abstain", "pending", "allow"]
    plain = pm.hook.enroll_policy_vote(request=request(), profile=FakeProfile())
    assert [v.decision for v in votes if v.decision is not None] == plain
    assert decide(votes, FakeProfile()) == combine(plain)  # type: ignore[arg-type]
    assert decide(votes, FakeProfile()).vote is Vote.PENDING  # type: ignore[arg-type]


def test_a_manual_profile_holds_what_the_votes_allow() -> None:
    class Manual:
        approval = "manual"

    pm = build_plugin_manager()
    pm.register(Allow(), name="allow-plugin")
    votes = collect(pm, request(), Manual())  # type: ignore[arg-type]
    assert decide(votes, Manual()) == Decision.pending(MANUAL_APPROVAL)  # type: ignore[arg-type]


def test_a_wrapper_is_run_by_pluggy_and_its_answers_are_unattributed() -> None:
    pm = build_plugin_manager()
    pm.register(Allow(), name="allow-plugin")
    pm.register(Wrapper(), name="wrapper-plugin")
    votes = collect(pm, request(), FakeProfile())  # type: ignore[arg-type]
    assert {v.plugin for v in votes} == {"(wrapped)"}
    assert decide(votes, FakeProfile()) == Decision.deny("the wrapper says no")  # type: ignore[arg-type]
