"""Issue 11, lineage across protocols: on a profile that links renewals by identity, an
issuance through any door to an identity holding a live certificate links to it
(``replaces``, link ``identity``), whatever door issued that one; the old certificate is
superseded and revoked after the grace. The link is lineage, not a credential: it puts
no name limit on the request, and never fails an issuance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from door_drivers import DOORS, DoorDriver

from enroll.clock import FrozenClock
from enroll.store import lineage as lineage_store

LINKED: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
    "link_renewals": "identity",
    "revoke_superseded_after": "1h",
}
HOST = "host.corp.example"


def rec(d: DoorDriver, cert: x509.Certificate | None) -> Any:
    assert cert is not None
    found = d.h.ctx.authority.lookup(cert)
    assert found is not None
    return found


def other_door(d: DoorDriver, door: str) -> DoorDriver:
    """A driver for `door` on the same app (every door serves profile ``p``)."""
    return DoorDriver(door, d.h, d.responder)


def identity_row(d: DoorDriver, identity: str) -> Any:
    return next(r for r in d.h.rows("identities") if r["identity"] == identity)


@pytest.mark.parametrize("door", DOORS)
async def test_an_issuance_through_any_door_links_to_the_identitys_scep_certificate(
        door: str, make_driver: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    d = make_driver(door, LINKED, clock=clock)
    old = await other_door(d, "scep").enroll(cn=HOST, dns=[HOST])
    assert old.ok, old
    new = await d.enroll(cn=HOST, dns=[HOST])  # a fresh enrolment, no replaces named
    assert new.ok, new
    first, second = rec(d, old.cert), rec(d, new.cert)
    assert (first.protocol, second.protocol) == ("scep", door)
    assert second.replaces == first.serial_hex
    assert second.link == "identity"
    assert rec(d, old.cert).superseded_by == second.serial_hex
    assert identity_row(d, f"san.dns:{HOST}")["serial"] == second.serial_hex
    # Not revoked yet (the grace), then by the existing revoke-superseded job.
    assert d.h.ctx.authority.revoke_superseded() == []
    clock.advance(dt.timedelta(hours=2))
    assert d.h.ctx.authority.revoke_superseded() == [first.serial_hex]
    gone = rec(d, old.cert)
    assert gone.status.value == "revoked"
    assert gone.revocation_reason is x509.ReasonFlags.superseded


@pytest.mark.parametrize("door", DOORS)
async def test_the_default_profile_links_only_what_the_client_names(
        door: str, make_driver: Any) -> None:
    d = make_driver(door, {k: v for k, v in LINKED.items() if k != "link_renewals"})
    old = await other_door(d, "est").enroll(cn=HOST, dns=[HOST])
    new = await d.enroll(cn=HOST, dns=[HOST])
    assert old.ok and new.ok, (old, new)
    assert rec(d, new.cert).replaces is None
    assert rec(d, new.cert).link is None
    assert rec(d, old.cert).superseded_by is None


@pytest.mark.parametrize("door", DOORS)
async def test_a_link_by_identity_puts_no_name_limit_on_the_request(
        door: str, make_driver: Any) -> None:
    # Identified by its CN: a renewal the client names may add no name, but a link by
    # identity is not a credential.
    d = make_driver(door, {**LINKED, "identity": "subject.CN"})
    old = await other_door(d, "est").enroll(cn=HOST, dns=[HOST])
    assert old.ok, old
    more = await d.enroll(cn=HOST, dns=[HOST, "extra.corp.example"])
    assert more.ok, more
    assert rec(d, more.cert).replaces == rec(d, old.cert).serial_hex
    assert rec(d, more.cert).link == "identity"


async def test_another_profiles_certificate_of_the_same_identity_is_not_linked(
        make_driver: Any) -> None:
    d = make_driver("est", LINKED, other_profiles={"q": {"ca": "issuing", **LINKED}})
    old = await d.enroll(cn=HOST, dns=[HOST])
    assert old.ok, old
    serial = rec(d, old.cert).serial_hex
    with d.h.ctx.db.write() as tx:  # as if issued under the other purpose's profile
        tx.run("UPDATE certificates SET profile = 'q' WHERE serial = ?", (serial,))
    new = await d.enroll(cn=HOST, dns=[HOST])
    assert new.ok, new
    assert rec(d, new.cert).replaces is None
    assert rec(d, old.cert).superseded_by is None


async def test_a_link_lost_to_a_concurrent_issuance_moves_to_the_newest_or_to_nothing(
        make_driver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_driver("est", LINKED)
    x = rec(d, (await other_door(d, "scep").enroll(cn=HOST, dns=[HOST])).cert)
    a = rec(d, (await d.enroll(cn=HOST, dns=[HOST])).cert)
    assert a.replaces == x.serial_hex
    # B read the identity's live certificate before A committed: it still sees X.
    monkeypatch.setattr(lineage_store, "live_serial", lambda tx, i, now: (x.serial_hex, "p"))
    b = await d.enroll(cn=HOST, dns=[HOST])
    assert b.ok, b  # never a Conflict
    b_rec = rec(d, b.cert)
    assert (b_rec.replaces, b_rec.link) == (a.serial_hex, "identity")
    assert d.h.ctx.authority.certificate(a.serial_hex).superseded_by == b_rec.serial_hex
    # The newest of the line is no longer live: linked to nothing, still issued.
    d.h.ctx.authority.revoke(b_rec.serial_hex, x509.ReasonFlags.unspecified, "test")
    c = await d.enroll(cn=HOST, dns=[HOST])
    assert c.ok, c
    c_rec = rec(d, c.cert)
    assert (c_rec.replaces, c_rec.link) == (None, None)
    assert d.h.ctx.authority.certificate(b_rec.serial_hex).superseded_by is None
    assert d.h.counts() == (4, 4)
