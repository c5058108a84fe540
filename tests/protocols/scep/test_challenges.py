"""One-time challenges (operator and MDM API), the webhook verifier, the error table."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from enroll.protocols.scep.challenges import OneTimeChallenges, digest
from enroll.protocols.scep.failinfo import FAIL_INFO, FailInfo, fail_info_for
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import scep_client, scep_operation, scep_ra, scep_section

from enroll.clock import FrozenClock
from enroll.errors import ALL_ERRORS, EnrollError
from enroll.hookspecs import hookimpl
from enroll.model import Decision
from enroll.testing.scep_client import ScepClient, csr_with_challenge

API_TOKEN = "mdm-api-token-for-tests-0123456789"  # noqa: S105 - test value


def _enroll(scep: Any, challenge: str | None, cn: str = "d") -> Any:
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, cn, challenge))
    return client.read(scep_operation(scep, message).content)


def test_every_enroll_error_has_a_failinfo() -> None:
    assert set(ALL_ERRORS) <= set(FAIL_INFO)
    for cls in ALL_ERRORS:
        info, text = fail_info_for(cls("why"))
        assert isinstance(info, FailInfo) and text == "why"
    assert fail_info_for(RuntimeError("secret detail")) == (FailInfo.BAD_REQUEST,
                                                            "internal error (request -)")
    assert fail_info_for(RuntimeError("secret"), "ab12") == (FailInfo.BAD_REQUEST,
                                                             "internal error (request ab12)")
    assert fail_info_for(type("Sub", (EnrollError,), {})("x"))[0] is FailInfo.BAD_REQUEST


def test_one_time_challenge_works_once(make_scep: Any) -> None:
    scep = make_scep(endpoints={"default": {}})  # no static challenge at all
    challenge, _ = OneTimeChallenges(scep.ctx.db, scep.ctx.clock).new("default", 3600, "t")
    assert _enroll(scep, challenge).status is PKIStatus.SUCCESS
    again = _enroll(scep, challenge)
    assert again.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)


def test_expired_one_time_challenge_is_refused(make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(endpoints={"default": {}}, clock=clock)
    challenge, _ = OneTimeChallenges(scep.ctx.db, clock).new("default", 600, "t")
    clock.advance(dt.timedelta(minutes=11))
    assert _enroll(scep, challenge).certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0)


def test_expired_one_time_challenges_are_purged_when_a_new_one_is_made(
        make_scep: Any) -> None:
    from enroll.protocols.scep import store

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(endpoints={"default": {}}, clock=clock)
    challenges = OneTimeChallenges(scep.ctx.db, clock)
    expired, _ = challenges.new("default", 60, "t")
    used, _ = challenges.new("default", 120, "t")
    assert challenges.consume("default", used, "r1")
    live, _ = challenges.new("default", 3600, "t")
    clock.advance(dt.timedelta(minutes=5))
    challenges.new("default", 3600, "t")  # purges on insert
    with scep.ctx.db.read() as tx:
        digests = {r["digest"] for r in tx.all("SELECT digest FROM scep_challenges")}
        assert store.count_challenges(tx, "default") == 2
    assert digest(expired) not in digests and digest(used) not in digests
    assert digest(live) in digests
    assert challenges.consume("default", live, "r2")


def test_purging_expired_challenges_is_bounded(make_scep: Any) -> None:
    from enroll.protocols.scep import store

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(endpoints={"default": {}}, clock=clock)
    now = clock.now()
    with scep.ctx.db.write() as tx:
        for i in range(5):
            store.insert_challenge(tx, digest=f"d{i}", endpoint="default", created_by="t",
                                   now=now, expires_at=now + dt.timedelta(seconds=i + 1))
    with scep.ctx.db.write() as tx:
        later = now + dt.timedelta(minutes=1)
        assert store.purge_expired_challenges(tx, later, limit=3) == 3
        assert [r["digest"] for r in tx.all("SELECT digest FROM scep_challenges "
                                            "ORDER BY digest")] == ["d3", "d4"]


def test_one_time_challenge_of_another_endpoint_is_refused(make_scep: Any) -> None:
    scep = make_scep(endpoints={"default": {}, "org-b": {}})
    challenge, _ = OneTimeChallenges(scep.ctx.db, scep.ctx.clock).new("org-b", 600, "t")
    assert _enroll(scep, challenge).certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0)


def test_racing_consumers_of_one_challenge_have_one_winner(make_scep: Any) -> None:
    scep = make_scep(endpoints={"default": {}})
    store = OneTimeChallenges(scep.ctx.db, scep.ctx.clock)
    challenge, _ = store.new("default", 600, "t")
    with ThreadPoolExecutor(10) as pool:
        wins = list(pool.map(lambda i: store.consume("default", challenge, f"r{i}"),
                             range(10)))
    assert wins.count(True) == 1


def test_mdm_fetches_a_one_time_challenge_over_https(make_scep: Any) -> None:
    scep = make_scep(endpoints={"default": {"api_token_sha256": digest(API_TOKEN)}})
    url = "https://testserver/scep/challenge"
    assert scep.post(url).status_code == 401
    assert scep.post(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    plain = scep.post("http://testserver/scep/challenge",
                      headers={"authorization": f"Bearer {API_TOKEN}"})
    assert plain.status_code == 403
    r = scep.post(url, headers={"authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    challenge = r.json()["challenge"]
    assert _enroll(scep, challenge).status is PKIStatus.SUCCESS
    assert _enroll(scep, challenge).certrep.fail_info is FailInfo.BAD_REQUEST


def test_challenge_api_is_absent_without_a_token(scep: Any) -> None:
    assert scep.post("https://testserver/scep/challenge").status_code == 404


class _Verifier(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        body["authorization"] = self.headers.get("authorization")
        _Verifier.seen.append(body)
        if body["challenge"] == "slow":
            return  # never answers: the client times out
        allow = body["challenge"] == "mdm-approved"
        payload = json.dumps({"allow": allow}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def verifier() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Verifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Verifier.seen = []
    yield f"http://127.0.0.1:{port}/verify"
    server.shutdown()
    server.server_close()


def test_webhook_allows_and_denies(make_scep: Any, verifier: str) -> None:
    scep = make_scep(endpoints={"default": {"webhook_url": verifier, "webhook_timeout": 2,
                                            "webhook_token": "hook-secret",
                                            "one_time_challenges": False}})
    assert _enroll(scep, "mdm-approved", "ok").status is PKIStatus.SUCCESS
    denied = _enroll(scep, "nope", "bad")
    assert denied.certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)
    first = _Verifier.seen[0]
    assert first["endpoint"] == "default" and first["protocol"] == "scep"
    assert first["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert first["authorization"] == "Bearer hook-secret"


def test_static_challenge_wins_before_the_webhook_is_asked(make_scep: Any,
                                                           verifier: str) -> None:
    scep = make_scep(endpoints={"default": {"webhook_url": verifier, "challenge": "static-1"}})
    assert _enroll(scep, "static-1").status is PKIStatus.SUCCESS
    assert _Verifier.seen == []


def test_unreachable_or_slow_webhook_fails_closed(make_scep: Any, verifier: str) -> None:
    scep = make_scep(endpoints={"default": {"webhook_url": verifier, "webhook_timeout": 1}})
    assert _enroll(scep, "slow").certrep.fail_info is FailInfo.BAD_REQUEST
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    scep2 = make_scep(endpoints={"default": {"webhook_url": dead}})
    assert _enroll(scep2, "x").certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 0) and scep2.counts() == (0, 0)


class DenyByName:
    """A policy plugin that denies CN=denied (and sends CN=review to approval); signing
    CN=ca-fails fails as a broken CA backend does."""

    @hookimpl
    def enroll_amend_certificate(self, draft: Any, request: Any, profile: Any) -> None:
        if request.csr.subject.rfc4514_string() == "CN=ca-fails":
            raise RuntimeError("the CA backend is down")

    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> Decision | None:
        cn = request.csr.subject.rfc4514_string()
        if cn == "CN=denied":
            return Decision.deny("this device is not welcome")
        if cn == "CN=review":
            return Decision.pending("an operator looks first")
        return None


def _one_time_with_policy(harness_factory: Any) -> tuple[Any, str]:
    scep = harness_factory(extra_plugins=(DenyByName(),),
                           **scep_section({"default": {}}))  # no static challenge
    challenge, _ = OneTimeChallenges(scep.ctx.db, scep.ctx.clock).new("default", 3600, "t")
    return scep, challenge


def _challenge_row(scep: Any, challenge: str) -> dict[str, Any]:
    [row] = [r for r in scep.rows("scep_challenges") if r["digest"] == digest(challenge)]
    return dict(row)


def test_a_one_time_challenge_refused_by_policy_is_not_spent(harness_factory: Any) -> None:
    scep, challenge = _one_time_with_policy(harness_factory)
    denied = _enroll(scep, challenge, "denied")
    assert denied.status is PKIStatus.FAILURE
    assert denied.certrep.fail_info is FailInfo.BAD_REQUEST
    assert denied.certrep.fail_text == "this device is not welcome"
    assert scep.counts() == (0, 0)
    assert _challenge_row(scep, challenge)["used_at"] is None  # given back
    # The same challenge then works for a good request, once.
    client = scep_client(scep)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "good", challenge), "tid-good")
    first = client.read(scep_operation(scep, message).content)
    assert first.status is PKIStatus.SUCCESS, first.certrep.fail_text
    assert _challenge_row(scep, challenge)["used_by"] == "transaction:tid-good"
    # A retry of that transaction still gets its answer; another device does not.
    again = client.read(scep_operation(scep, message).content)
    assert again.status is PKIStatus.SUCCESS
    assert again.certificate.serial_number == first.certificate.serial_number
    assert _enroll(scep, challenge, "other").certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)
    assert _challenge_row(scep, challenge)["used_by"] == "transaction:tid-good"


def test_a_one_time_challenge_is_not_spent_when_signing_fails(harness_factory: Any) -> None:
    scep, challenge = _one_time_with_policy(harness_factory)
    failed = _enroll(scep, challenge, "ca-fails")
    assert failed.status is PKIStatus.FAILURE
    assert scep.counts()[0] == 0  # no certificate (the core may record the attempt)
    assert _challenge_row(scep, challenge)["used_at"] is None
    assert _enroll(scep, challenge, "good").status is PKIStatus.SUCCESS
    assert scep.counts()[0] == 1
    assert _challenge_row(scep, challenge)["used_at"] is not None


def test_a_one_time_challenge_is_spent_by_a_request_that_goes_pending(
        harness_factory: Any) -> None:
    scep, challenge = _one_time_with_policy(harness_factory)
    assert _enroll(scep, challenge, "review").status is PKIStatus.PENDING
    assert _challenge_row(scep, challenge)["used_at"] is not None
    assert _enroll(scep, challenge, "good").certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (0, 1)


def test_concurrent_requests_with_one_one_time_challenge_issue_one_certificate(
        harness_factory: Any) -> None:
    scep, challenge = _one_time_with_policy(harness_factory)
    ra = scep_ra(scep)
    names = ["good", "denied"] * 4  # refused ones reserve and release it meanwhile
    clients = [ScepClient(ra) for _ in names]
    messages = [c.pkcs_req(csr_with_challenge(c.key, n, challenge))[0]
                for c, n in zip(clients, names, strict=True)]
    with ThreadPoolExecutor(len(messages)) as pool:
        answers = list(pool.map(lambda m: scep_operation(scep, m), messages))
    replies = [c.read(a.content) for c, a in zip(clients, answers, strict=True)]
    issued = [r for r in replies if r.status is PKIStatus.SUCCESS]
    assert len(issued) <= 1
    assert all(r.certrep.fail_info is FailInfo.BAD_REQUEST for r in replies
               if r.status is not PKIStatus.SUCCESS)
    row = _challenge_row(scep, challenge)
    if not issued:  # every good request met it held by a denied one: it is unspent
        assert row["used_at"] is None
        assert _enroll(scep, challenge, "good").status is PKIStatus.SUCCESS
    else:
        assert row["used_at"] is not None
    assert scep.counts() == (1, 1)
    assert _enroll(scep, challenge, "late").certrep.fail_info is FailInfo.BAD_REQUEST
    assert scep.counts() == (1, 1)
