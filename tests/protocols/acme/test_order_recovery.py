"""An order whose finalizing worker died stays `processing` until the recovery pass
submits its stored CSR again; the client's next poll ends with a certificate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from harness import ACME_BASE, Harness, LocalDns, acme_client, acme_section

from enroll import recovery
from enroll.clock import FrozenClock
from enroll.testing.acme_client import AcmeClient, Http01Responder, b64e, make_csr

GRACE = dt.timedelta(seconds=61)


class Died(BaseException):
    """What the worker 'does' mid-finalize (BaseException: nothing catches it)."""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC))


@pytest.fixture
def h(harness_factory: Callable[..., Harness], local_dns: LocalDns,
      responder: Http01Responder, clock: FrozenClock) -> Harness:
    return harness_factory(base_url=ACME_BASE, clock=clock,
                           **acme_section(local_dns, responder.port))


async def ready_order(acme: AcmeClient, responder: Http01Responder,
                      name: str) -> tuple[str, dict[str, Any]]:
    order_url, order = await acme.new_order([name])
    for authz_url in order["authorizations"]:
        authz = (await acme.get(authz_url)).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
        await acme.post(chall["url"], {})
        await acme.poll(authz_url, ("valid", "invalid"))
    return order_url, await acme.poll(order_url, ("ready", "invalid"))


async def finalize_dies(h: Harness, acme: AcmeClient, order: dict[str, Any],
                        name: str) -> None:
    with pytest.raises(Died):
        await acme.post(order["finalize"], {"csr": b64e(make_csr([name]))}, check=False)


@pytest.mark.parametrize("where", ["before-submit", "after-sign"])
async def test_an_order_left_processing_is_finished_and_the_poll_gets_the_certificate(
        h: Harness, responder: Http01Responder, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    acme = acme_client(h)
    await acme.register()
    name = f"{where}.test.example"
    order_url, order = await ready_order(acme, responder, name)
    assert order["status"] == "ready"

    def die(*_: Any, **__: Any) -> Any:
        raise Died

    authority = h.ctx.authority
    if where == "before-submit":  # died after ready -> processing, before the core
        monkeypatch.setattr(authority, "submit", die)
    else:  # died between signing and storing: the core request is left approved
        monkeypatch.setattr(authority, "_crash_after_sign", die)
    await finalize_dies(h, acme, order, name)
    monkeypatch.undo()
    assert (await acme.get(order_url)).json()["status"] == "processing"
    assert h.counts() == (0, 0 if where == "before-submit" else 1)

    # Within the grace period the order is its finalizer's; after it, recovery's.
    clock.advance(dt.timedelta(seconds=30))
    assert recovery.run(h.ctx) == recovery.Recovered(0, 0)
    clock.advance(GRACE)
    done = recovery.run(h.ctx)
    assert done.protocols == 1
    assert done.requests == (0 if where == "before-submit" else 1)
    polled = await acme.poll(order_url, ("valid", "invalid"))
    assert polled["status"] == "valid", polled
    pem = (await acme.get(polled["certificate"])).text
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    record = h.ctx.authority.lookup(leaf)
    assert record is not None and record.protocol == "acme"
    assert h.counts() == (1, 1)
    # Nothing left to do, and nothing done twice.
    clock.advance(GRACE)
    assert recovery.run(h.ctx) == recovery.Recovered(0, 0)
    assert h.counts() == (1, 1)


async def test_two_workers_recovering_one_order_submit_it_once(
        h: Harness, harness_factory: Callable[..., Harness], local_dns: LocalDns,
        responder: Http01Responder, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = harness_factory(base_url=ACME_BASE, clock=clock,
                            **acme_section(local_dns, responder.port))
    acme = acme_client(h)
    await acme.register()
    order_url, order = await ready_order(acme, responder, "twice.test.example")

    def die(*_: Any, **__: Any) -> Any:
        raise Died

    monkeypatch.setattr(h.ctx.authority, "submit", die)
    await finalize_dies(h, acme, order, "twice.test.example")
    monkeypatch.undo()
    clock.advance(GRACE)
    first, second = recovery.run(h.ctx), recovery.run(other.ctx)
    assert first.protocols + second.protocols == 1
    assert (await acme.poll(order_url, ("valid", "invalid")))["status"] == "valid"
    assert h.counts() == (1, 1)


async def test_an_order_finalized_before_the_csr_was_stored_returns_to_ready(
        h: Harness, responder: Http01Responder, clock: FrozenClock) -> None:
    acme = acme_client(h)
    await acme.register()
    order_url, order = await ready_order(acme, responder, "old.test.example")
    with h.ctx.db.write() as tx:  # what a worker of an older version left behind
        tx.run("UPDATE acme_orders SET status = 'processing' WHERE id = ?",
               (order_url.rsplit("/", 1)[1],))
    clock.advance(GRACE)
    assert recovery.run(h.ctx).protocols == 1
    again = (await acme.get(order_url)).json()
    assert again["status"] == "ready"
    # The client finalizes again and gets its certificate.
    done = (await acme.post(again["finalize"],
                            {"csr": b64e(make_csr(["old.test.example"]))})).json()
    assert done["status"] == "valid"
    assert h.counts() == (1, 1)
