"""RFC 9773 `replaces`: checked and recorded in newOrder's one write transaction, backed
by the partial unique index on acme_orders.replaces; an invalid order releases its
claim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography import x509
from enroll.protocols.acme import ari
from harness import acme_client, problem

from enroll.testing.acme_client import AcmeClient, Http01Responder

NAME = "replaced.test.example"


async def _issued(harness: Any, responder: Http01Responder) -> tuple[AcmeClient, str, str]:
    """An account, the certificate-ID of a certificate it holds, and its serial."""
    acme = acme_client(harness)
    await acme.register()
    leaf = x509.load_pem_x509_certificates((await acme.issue([NAME], responder)).encode())[0]
    return acme, ari.cert_id(leaf), format(leaf.serial_number, "x")


def _replacing(harness: Any, serial: str) -> list[dict[str, Any]]:
    return [r for r in harness.rows("acme_orders") if r["replaces"] == serial]


async def _new_order(acme: AcmeClient, cert_id: str, nonce: str | None = None) -> Any:
    d = await acme.directory()
    given = {"nonce": nonce} if nonce is not None else {}
    return await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": NAME}],
                                           "replaces": cert_id}, check=False, **given)


async def test_racing_new_orders_replacing_one_certificate_accept_exactly_one(
        harness: Any, responder: Http01Responder) -> None:
    acme, cert_id, serial = await _issued(harness, responder)
    nonces = [(await acme.http.head((await acme.directory())["newNonce"]))
              .headers["Replay-Nonce"] for _ in range(8)]
    results = await asyncio.gather(*[_new_order(acme, cert_id, n) for n in nonces])
    created = [r for r in results if r.status_code == 201]
    assert len(created) == 1, [r.text for r in results]
    for r in results:
        if r.status_code != 201:
            problem(r, "alreadyReplaced", 409)
    rows = _replacing(harness, serial)
    assert [r["id"] for r in rows] == [created[0].headers["Location"].rsplit("/", 1)[1]]
    assert len(harness.rows("acme_orders")) == 2  # the first issuance's and the winner
    assert harness.counts() == (1, 1)  # nothing issued by the newOrders


async def test_an_invalid_order_releases_the_certificate_for_a_new_replacement(
        harness: Any, responder: Http01Responder) -> None:
    acme, cert_id, serial = await _issued(harness, responder)
    first = await _new_order(acme, cert_id)
    assert first.status_code == 201, first.text
    problem(await _new_order(acme, cert_id), "alreadyReplaced", 409)
    # Validation failed or the client gave up: the order is invalid.
    r = await acme.post(first.json()["authorizations"][0], {"status": "deactivated"})
    assert r.json()["status"] == "deactivated"
    assert (await acme.get(first.headers["Location"])).json()["status"] == "invalid"
    second = await _new_order(acme, cert_id)
    assert second.status_code == 201, second.text
    problem(await _new_order(acme, cert_id), "alreadyReplaced", 409)
    assert sorted(r["status"] for r in _replacing(harness, serial)) == ["invalid", "pending"]


async def test_an_expired_replacing_order_releases_the_certificate(
        harness: Any, responder: Http01Responder) -> None:
    acme, cert_id, serial = await _issued(harness, responder)
    stale = await _new_order(acme, cert_id)
    assert stale.status_code == 201, stale.text
    stale_id = stale.headers["Location"].rsplit("/", 1)[1]
    with harness.ctx.db.write() as tx:  # expired, and nobody polled it since
        tx.run("UPDATE acme_orders SET expires = ? WHERE id = ?",
               (tx.when(harness.ctx.clock.now().replace(year=2000)), stale_id))
    fresh = await _new_order(acme, cert_id)
    assert fresh.status_code == 201, fresh.text
    by_id = {r["id"]: r for r in _replacing(harness, serial)}
    assert by_id[stale_id]["status"] == "invalid"
    assert "expired" in by_id[stale_id]["error"]
    assert by_id[fresh.headers["Location"].rsplit("/", 1)[1]]["status"] == "pending"


def test_the_migration_keeps_the_earliest_live_claim_of_orders_that_raced(db_url: str) -> None:
    """Orders stored before the index that share a `replaces` (only the old race made
    them): upgrading keeps the earliest live order's claim and can create the index."""
    import datetime as dt

    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from enroll.store import migrate
    from enroll.store.db import Database

    db = Database(db_url)
    try:
        command.upgrade(migrate.alembic_config(db), "0002_acme")
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        with db.write() as tx:
            for i, (status, replaces) in enumerate([
                    ("invalid", "aa"), ("valid", "aa"), ("pending", "aa"), ("ready", "bb")]):
                tx.run("INSERT INTO acme_orders (id, endpoint, account_id, status, "
                       "identifiers, profile, replaces, expires, created_at) VALUES "
                       "(?, 'default', 'acct', ?, '[]', 'server', ?, ?, ?)",
                       (f"o{i}", status, replaces, tx.when(start), tx.when(
                           start + dt.timedelta(seconds=i))))
        migrate.upgrade(db)
        with db.read() as tx:
            kept = {r["id"]: r["replaces"] for r in tx.all("SELECT id, replaces FROM "
                                                          "acme_orders")}
        assert kept == {"o0": "aa", "o1": "aa", "o2": None, "o3": "bb"}
        with pytest.raises(IntegrityError), db.write() as tx:  # two live claims on "aa"
            tx.run("UPDATE acme_orders SET replaces = 'aa' WHERE id = 'o2'")
    finally:
        db.dispose()
