"""The plugin contract as the pipeline uses it: policy votes, amending the draft, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from enroll.authority import combine
from enroll.context import AppContext
from enroll.errors import PolicyDenied
from enroll.hookspecs import hookimpl
from enroll.model import CertificateDraft, Decision, Issued, Pending, Vote
from enroll.store import queries
from enroll.testing import make_csr, request

Counts = Callable[[AppContext], tuple[int, int]]


class Voter:
    """A policy plugin that always casts the same vote."""

    def __init__(self, decision: Decision | None) -> None:
        self.decision = decision
        self.calls = 0

    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> Decision | None:
        self.calls += 1
        return self.decision


def test_combine_deny_beats_pending_beats_allow_and_abstentions_do_not_count() -> None:
    allow, pend, deny = Decision.allow(), Decision.pending("look"), Decision.deny("no")
    assert combine([]).vote is Vote.ALLOW
    assert combine([None, allow]).vote is Vote.ALLOW
    assert combine([allow, pend, allow]) == pend
    assert combine([pend, deny, allow]) == deny
    assert combine([deny, pend]) == deny


def test_every_plugin_votes_and_deny_wins_with_its_reason_and_nothing_stored(
        build: Callable[..., AppContext], stored: Counts) -> None:
    voters = [Voter(Decision.allow()), Voter(Decision.pending("check it")),
              Voter(Decision.deny("outside corp.example")), Voter(None)]
    ctx = build(extra_plugins=voters)
    with pytest.raises(PolicyDenied, match="outside corp.example"):
        ctx.authority.submit(request(make_csr()))
    assert [v.calls for v in voters] == [1, 1, 1, 1]
    assert stored(ctx) == (0, 0)
    with ctx.db.read() as conn:
        [denial] = [e for e in queries.list_audit(conn) if e.type == "request.denied"]
    assert denial.details["reason"] == "outside corp.example"


def test_pending_beats_allow_even_under_an_auto_profile(
        build: Callable[..., AppContext], stored: Counts) -> None:
    ctx = build(extra_plugins=[Voter(Decision.allow()), Voter(Decision.pending("new device"))])
    outcome = ctx.authority.submit(request(make_csr()))
    assert isinstance(outcome, Pending) and outcome.reason == "new device"
    assert stored(ctx) == (0, 1)


def test_allow_votes_and_abstentions_issue(build: Callable[..., AppContext]) -> None:
    ctx = build(extra_plugins=[Voter(Decision.allow()), Voter(None)])
    assert isinstance(ctx.authority.submit(request(make_csr())), Issued)


class Amender:
    """Adds an extension and tries to turn the leaf into a CA."""

    @hookimpl
    def enroll_amend_certificate(self, draft: CertificateDraft, request: Any,
                                 profile: Any) -> None:
        policies = x509.CertificatePolicies([x509.PolicyInformation(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), None)])
        draft.extensions.append(x509.Extension(policies.oid, False, policies))
        draft.extensions = [e for e in draft.extensions
                            if not isinstance(e.value, x509.BasicConstraints)]
        bc = x509.BasicConstraints(ca=True, path_length=None)
        draft.extensions.append(x509.Extension(bc.oid, True, bc))


def test_amend_hook_adds_extensions_but_cannot_make_a_leaf_a_ca(
        build: Callable[..., AppContext]) -> None:
    ctx = build(extra_plugins=[Amender()])
    outcome = ctx.authority.submit(request(make_csr()))
    assert isinstance(outcome, Issued)
    cert = outcome.certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert policies[0].policy_identifier.dotted_string == "1.3.6.1.4.1.99999.1"


class Listener:
    """Records every event hook call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def enroll_certificate_issued(self, certificate: Any, request: Any) -> None:
        self.events.append(("issued", (certificate.serial_hex, request.id)))

    @hookimpl
    def enroll_certificate_revoked(self, certificate: Any, actor: str) -> None:
        self.events.append(("revoked", (certificate.serial_hex, actor)))

    @hookimpl
    def enroll_request_pending(self, request: Any) -> None:
        self.events.append(("pending", request.id))

    @hookimpl
    def enroll_request_rejected(self, request: Any, actor: str, reason: str) -> None:
        self.events.append(("rejected", (request.id, actor, reason)))


class Broken:
    @hookimpl
    def enroll_certificate_issued(self, certificate: Any, request: Any) -> None:
        raise RuntimeError("listener down")


def test_event_hooks_fire_after_commit_and_a_failing_listener_is_not_fatal(
        build: Callable[..., AppContext]) -> None:
    listener = Listener()
    # pluggy calls the last registered first: the listener hears each event before the
    # broken one raises (see the report: one failing listener still hides the event from
    # listeners called after it).
    ctx = build(extra_plugins=[Broken(), listener, Voter(Decision.pending("review"))])
    first = ctx.authority.submit(request(make_csr()))
    second = ctx.authority.submit(request(make_csr()))
    assert isinstance(first, Pending) and isinstance(second, Pending)
    issued = ctx.authority.approve(first.request_id, "alice")
    ctx.authority.reject(second.request_id, "bob", "no")
    ctx.authority.revoke(issued.serial_hex, x509.ReasonFlags.superseded, "carol")
    assert listener.events == [
        ("pending", first.request_id), ("pending", second.request_id),
        ("issued", (issued.serial_hex, first.request_id)),
        ("rejected", (second.request_id, "bob", "no")),
        ("revoked", (issued.serial_hex, "carol")),
    ]


def test_a_failing_listener_does_not_hide_the_event_from_other_listeners(
        build: Callable[..., AppContext]) -> None:
    listener = Listener()
    # pluggy calls the last registered first, so Broken runs before the listener here.
    ctx = build(extra_plugins=[listener, Broken()])
    issued = ctx.authority.submit(request(make_csr()))
    assert isinstance(issued, Issued)
    assert listener.events == [("issued", (issued.serial_hex, issued.request_id))]
