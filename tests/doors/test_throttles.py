"""One rate-limit facility, every door (`enroll.rate_limits`): each limit answers in its
protocol's terms (EST 429 + Retry-After, a SCEP FAILURE CertRep, ACME ``rateLimited``
with Retry-After), a throttled client costs no password hash, no decryption and no SQL
write, and nothing is stored for a refusal. Counts are in the database, so two apps on
one store (two workers) share them. SQLite and, with ENROLL_TEST_DATABASE_URL,
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from enroll.protocols.acme.validation import http01, network
from enroll.protocols.est import passwords
from enroll.protocols.scep import envelope
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import (
    ACME_BASE,
    ALICE,
    CHALLENGE,
    Harness,
    LocalDns,
    acme_client,
    acme_section,
    est_enroll,
    est_section,
    problem,
    scep_client,
    scep_section,
)

from enroll.testing import make_csr
from enroll.testing.acme_client import AcmeError, Http01Responder
from enroll.testing.scep_client import csr_with_challenge

WRONG = ("alice", "not the password")


def counters(h: Harness) -> int:
    return len(h.rows("rate_counters"))


# -- EST: Basic failures lock an address (and a user name) out --------------------------


def test_est_basic_failures_lock_the_address_out_before_the_hash_runs(
        harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness_factory(listener=True, **est_section(rate_limits={
        "auth_failures_per_address": "3/15m"}))
    for _ in range(3):
        assert est_enroll(h, make_csr(), auth=WRONG, peer="198.51.100.7").status_code == 401
    hashed: list[str] = []
    real = passwords.VerifiedCache.check
    monkeypatch.setattr(passwords.VerifiedCache, "check",
                        lambda self, *a: (hashed.append(a[0]), real(self, *a))[1])
    rows = counters(h)
    # Locked out, even with the right password: 429 + Retry-After, no hash, no write.
    r = est_enroll(h, make_csr(), auth=ALICE, peer="198.51.100.7")
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 900
    assert "too many failed authentications" in r.text
    assert hashed == [] and counters(h) == rows
    assert h.counts() == (0, 0)
    # Another address is not locked out.
    assert est_enroll(h, make_csr(), peer="198.51.100.8").status_code == 200
    assert h.counts() == (1, 1)
    # The refusals are in the audit trail, counted per reason and address.
    h.ctx.authority.flush_refusals()
    counted = {(r["reason"], r["source"]): r["count"] for r in h.rows("audit_refusals")}
    assert counted[("rate_limited", "198.51.100.7")] == 1
    assert counted[("unauthorized", "198.51.100.7")] == 3


def test_est_failures_per_user_lock_the_name_out_from_every_address(
        harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(listener=True, **est_section(rate_limits={
        "auth_failures_per_user": "2/1h", "auth_failures_per_address": "off"}))
    for peer in ("198.51.100.1", "198.51.100.2"):
        assert est_enroll(h, make_csr(), auth=WRONG, peer=peer).status_code == 401
    assert est_enroll(h, make_csr(), auth=ALICE, peer="198.51.100.3").status_code == 429
    assert est_enroll(h, make_csr(), auth=("bob", "bob chose this"),
                      peer="198.51.100.3").status_code == 200


def test_est_limits_are_shared_by_two_workers_on_one_store(
        harness_factory: Callable[..., Harness], make_config: Any) -> None:
    from enroll.app import create_app

    worker_a = harness_factory(listener=True, **est_section(rate_limits={
        "auth_failures_per_address": "4/15m"}))
    worker_b = Harness(create_app(worker_a.ctx.config, run_migrations=False),
                       listener=True)
    try:
        for h in (worker_a, worker_b, worker_a, worker_b):
            assert est_enroll(h, make_csr(), auth=WRONG, peer="192.0.2.9").status_code == 401
        assert est_enroll(worker_a, make_csr(), peer="192.0.2.9").status_code == 429
        assert est_enroll(worker_b, make_csr(), peer="192.0.2.9").status_code == 429
    finally:
        worker_b.close()


# -- SCEP: wrong challenges and undecryptable contents --------------------------------------


def test_scep_failures_throttle_the_address_before_anything_is_decrypted(
        harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness_factory(listener=True, **scep_section(rate_limits={
        "failures_per_address": "2/15m"}))
    device = scep_client(h)

    def send(challenge: str, peer: str) -> Any:
        message, _ = device.pkcs_req(csr_with_challenge(device.key, "dev-1", challenge))
        r = h.post("/scep?operation=PKIOperation", content=message, peer=peer,
                   headers={"content-type": "application/x-pki-message"})
        assert r.status_code == 200
        return device.read(r.content).certrep

    for _ in range(2):
        rep = send("wrong challenge", "203.0.113.5")
        assert rep.status is PKIStatus.FAILURE and rep.fail_info is not None
    opened: list[int] = []
    real = envelope.open_sealed
    monkeypatch.setattr(envelope, "open_sealed",
                        lambda *a: (opened.append(1), real(*a))[1])
    rows = counters(h)
    rep = send(CHALLENGE, "203.0.113.5")
    assert rep.status is PKIStatus.FAILURE
    assert rep.fail_info is not None and rep.fail_info.name == "BAD_REQUEST"
    assert "too many failed requests" in (rep.fail_text or "")
    assert opened == [] and counters(h) == rows and h.counts() == (0, 0)
    rep = send(CHALLENGE, "203.0.113.6")
    assert rep.status is PKIStatus.SUCCESS and h.counts() == (1, 1)


def test_scep_challenge_api_locks_out_wrong_tokens(
        harness_factory: Callable[..., Harness]) -> None:
    import hashlib

    token = "mdm-api-token-5f0c"  # noqa: S105 - test value
    h = harness_factory(base_url="https://testserver", listener=True, **scep_section(
        api_token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        rate_limits={"challenge_api_failures_per_address": "2/15m"}))
    url = "/scep/challenge"
    for _ in range(2):
        assert h.post(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    r = h.post(url, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = h.post(url, headers={"authorization": f"Bearer {token}"}, peer="127.0.0.2")
    assert r.status_code == 200 and r.json()["challenge"]


# -- ACME: accounts, orders, pending authorizations, failed and concurrent validations --


@pytest.fixture
def acme_app(harness_factory: Callable[..., Harness], local_dns: LocalDns,
             responder: Http01Responder) -> Callable[..., Harness]:
    def make(section: dict[str, Any] | None = None, **endpoint: Any) -> Harness:
        acme = acme_section(local_dns, responder.port, **(section or {}))
        acme["acme"]["endpoints"] = {"default": endpoint}
        return harness_factory(base_url=ACME_BASE, **acme)
    return make


async def test_acme_new_accounts_per_address(acme_app: Callable[..., Harness]) -> None:
    h = acme_app(rate_limits={"new_accounts_per_address": "2/3h"})
    for _ in range(2):
        await acme_client(h).register()
    nonces = len(h.rows("acme_used_nonces"))
    client = acme_client(h)
    with pytest.raises(AcmeError) as err:
        await client.register()
    r = err.value.response
    problem(r, "rateLimited", 429)
    assert 1 <= int(r.headers["Retry-After"]) <= 3 * 3600
    # Refused before the JWS was verified: its nonce is not spent, no account is stored.
    assert len(h.rows("acme_used_nonces")) == nonces
    assert len(h.rows("acme_accounts")) == 2
    # An existing account may still look itself up (no account is created).
    again = acme_client(h, key=client.key)
    assert again.key is client.key


async def test_acme_orders_per_account_and_pending_authorization_quota(
        acme_app: Callable[..., Harness], local_dns: LocalDns) -> None:
    h = acme_app(rate_limits={"new_orders_per_account": "3/3h"},
                 max_pending_authorizations=3)
    client = acme_client(h)
    await client.register()
    await client.new_order(["a.example.test", "b.example.test"])
    with pytest.raises(AcmeError) as err:  # 2 pending + 2 more > 3
        await client.new_order(["c.example.test", "d.example.test"])
    problem(err.value.response, "rateLimited", 429)
    assert "pending authorizations" in err.value.problem["detail"]
    await client.new_order(["c.example.test"])
    assert len(h.rows("acme_orders")) == 2
    other = acme_client(h)
    await other.register()
    await other.new_order(["e.example.test"])
    with pytest.raises(AcmeError) as err:
        await other.new_order(["f.example.test"])
        await other.new_order(["g.example.test"])
        await other.new_order(["h.example.test"])
    problem(err.value.response, "rateLimited", 429)
    assert "new orders" in err.value.problem["detail"]
    assert len(h.rows("acme_orders")) == 2 + 3


async def test_acme_failed_validations_per_account_and_name(
        acme_app: Callable[..., Harness], local_dns: LocalDns,
        responder: Http01Responder) -> None:
    h = acme_app(rate_limits={"failed_validations_per_account_and_name": "1/1h"})
    client = acme_client(h)
    await client.register()
    _, order = await client.new_order(["fails.example.test"])
    authz = (await client.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    # No token on the responder: the validation fails.
    answered = (await client.post(chall["url"], {})).json()
    assert answered["status"] == "invalid"
    h.ctx.authority.flush_refusals()  # the failure is audited as a refusal
    assert [r["reason"] for r in h.rows("audit_refusals")] == ["acme_validation_failed"]
    with pytest.raises(AcmeError) as err:
        await client.new_order(["FAILS.example.test"])
    problem(err.value.response, "rateLimited", 429)
    assert "failed validations" in err.value.problem["detail"]
    # Another name, or another account, is not throttled.
    await client.new_order(["other.example.test"])
    other = acme_client(h)
    await other.register()
    await other.new_order(["fails.example.test"])


async def test_acme_concurrent_validations_per_account_and_per_worker(
        acme_app: Callable[..., Harness], local_dns: LocalDns,
        responder: Http01Responder, monkeypatch: pytest.MonkeyPatch) -> None:
    h = acme_app(section={"validation_concurrency": 2}, max_concurrent_validations=1)
    gate = asyncio.Event()
    real = network.addresses

    async def slow(name: str, settings: Any) -> Any:
        await gate.wait()
        return await real(name, settings)

    monkeypatch.setattr(http01, "addresses", slow)

    async def challenge_of(client: Any, name: str) -> dict[str, Any]:
        _, order = await client.new_order([name])
        authz = (await client.get(order["authorizations"][0])).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
        return chall

    first = acme_client(h)
    await first.register()
    c1 = await challenge_of(first, "one.example.test")
    c2 = await challenge_of(first, "two.example.test")
    running = asyncio.create_task(first.post(c1["url"], {}))
    for _ in range(100):  # until the first validation holds its slot
        if any(r["status"] == "processing" for r in h.rows("acme_challenges")):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(AcmeError) as err:  # the account's one validation is running
        await first.post(c2["url"], {})
    problem(err.value.response, "rateLimited", 429)
    assert "validations in progress" in err.value.problem["detail"]
    # Fill this worker's second slot from another account, then a third is refused.
    second, third = acme_client(h), acme_client(h)
    await second.register()
    await third.register()
    c3 = await challenge_of(second, "three.example.test")
    c4 = await challenge_of(third, "three.example.test")
    holding = asyncio.create_task(second.post(c3["url"], {}))
    for _ in range(100):
        if sum(r["status"] == "processing" for r in h.rows("acme_challenges")) == 2:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(AcmeError) as err:
        await third.post(c4["url"], {})
    problem(err.value.response, "rateLimited", 429)
    assert "as many validations" in err.value.problem["detail"]
    gate.set()
    assert (await running).json()["status"] == "valid"
    assert (await holding).json()["status"] == "valid"
    # Slots are given back: the refused challenge can now be answered.
    assert (await first.post(c2["url"], {})).json()["status"] == "valid"
