"""Every door audits its refusals through `Door.record_refusal`, with the client address
and the authenticated actor; an expired pending request is answered as a rejection by a
protocol poll."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from door_drivers import CHALLENGE_OID, DOORS, REFUSED, DoorDriver
from harness import ALICE

from enroll import refusals
from enroll.clock import FrozenClock
from enroll.model import RequestStatus
from enroll.store import audit_chain
from enroll.testing import make_csr, make_key
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, csr_body
from enroll.testing.scep_client import ScepClient

SERVER: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
}
ACTOR_PREFIX = {"scep": "scep:default", "est": "est-user:", "acme": "acme-account:"}
"""Who each door authenticated (SCEP: the endpoint's static challenge was right)."""


def refusal_rows(d: DoorDriver) -> list[dict[str, Any]]:
    d.h.ctx.authority.flush_refusals()
    with d.h.ctx.db.read() as tx:
        return refusals.open_counts(tx)


@pytest.mark.parametrize("door", DOORS)
async def test_a_refused_csr_is_audited_by_the_door_that_refused_it(
        door: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER)
    for _ in range(3):
        bad = await d.enroll(cn="www.bank.example", dns=["a.corp.example"])
        assert bad.error == REFUSED[door], bad
    rows = [r for r in refusal_rows(d) if r["door"] == f"{door}:default"]
    assert len(rows) == 1, refusal_rows(d)
    [row] = rows
    assert row["count"] == 3
    assert row["reason"] in {"bad_csr", "undecryptable", "scep_bad_request", "acme_badCSR"}
    assert row["source"] == "127.0.0.1"
    assert str(row["actor"]).startswith(ACTOR_PREFIX[door])
    assert d.h.counts() == (0, 0)  # nothing but the audit is stored for a refusal


async def test_failed_authentication_is_audited_without_an_actor(make_driver: Any) -> None:
    d = make_driver("est", SERVER)
    for _ in range(5):
        r = await d.h.http.post(f"{WELL_KNOWN}/simpleenroll",
                                content=csr_body(make_csr(dns=["a.corp.example"],
                                                          cn="a.corp.example")),
                                headers=PKCS10_HEADERS, auth=(ALICE[0], "wrong-password"))
        assert r.status_code == 401
    [row] = refusal_rows(d)
    assert (row["door"], row["reason"], row["actor"], row["count"]) == (
        "est:default", "unauthorized", "", 5)

    s = make_driver("scep", SERVER)
    key = make_key()
    csr = make_csr(key, dns=["a.corp.example"], cn="a.corp.example",
                   attributes=[(CHALLENGE_OID, b"not-the-challenge")])
    client = ScepClient(await s._scep_ra(), key=key)
    message, _ = client.pkcs_req(csr, None)
    answer = await s._scep_answer(client, message)
    assert answer.error == "BAD_REQUEST"
    assert [(r["door"], r["reason"], r["actor"]) for r in refusal_rows(s)
            if r["door"].startswith("scep:")] == [("scep:default", "unauthorized", "")]


async def test_an_expired_pending_request_is_rejected_when_the_client_polls(
        make_driver: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    d = make_driver("est", {**SERVER, "approval": "manual", "pending_expiry": "1h"},
                    clock=clock)
    body = csr_body(make_csr(make_key(), dns=["p.corp.example"], cn="p.corp.example"))

    async def post() -> httpx.Response:
        return await d.h.http.post(f"{WELL_KNOWN}/simpleenroll", content=body,
                                   headers=PKCS10_HEADERS, auth=ALICE)

    first = await post()
    assert first.status_code == 202  # RFC 7030 §4.2.3: pending, retry later
    assert (await post()).status_code == 202
    clock.advance(dt.timedelta(hours=1, seconds=1))
    polled = await post()
    assert polled.status_code == 403, polled.text
    assert "expired" in polled.text
    [record] = [r for r in d.h.ctx.authority.list_requests() if r.protocol == "est"]
    assert record.status is RequestStatus.EXPIRED
    with d.h.ctx.db.read() as tx:
        assert audit_chain.verify(tx).ok
