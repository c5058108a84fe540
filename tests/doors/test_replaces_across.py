"""ACME ``replaces`` naming a certificate another door (SCEP, EST) issued (issue 11):
accepted when the account's EAB key carries an identity pattern the certificate's
identity matches (link ``eab``), or when the profile links by names and the certificate's
names are exactly the order's identifiers (link ``names``); otherwise ``unauthorized``
and nothing stored. Over HTTP, on one app serving every door."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography import x509
from door_drivers import DoorDriver
from enroll.protocols.acme import eab
from enroll.protocols.acme.jws import b64e, jwk_of
from harness import ACME_BASE

from enroll.profile_fleet import parse_fleet
from enroll.testing.acme_client import AcmeClient

PROFILE: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
}
HOST = "dev7.corp.example"


def rec(d: DoorDriver, cert: x509.Certificate | None) -> Any:
    assert cert is not None
    found = d.h.ctx.authority.lookup(cert)
    assert found is not None
    return found


async def acme_door(d: DoorDriver, identity: list[str] | None = None) -> DoorDriver:
    """An ACME driver on `d`'s app whose account is bound by an EAB key (with identity
    patterns), or a plain account when `identity` is None."""
    acme = DoorDriver("acme", d.h, d.responder)
    client = AcmeClient(d.h.http, f"{ACME_BASE}/acme/directory")
    if identity is None:
        await client.register()
    else:
        ctx = d.h.ctx
        with ctx.db.write() as conn:
            kid, encoded = eab.create(conn, "default", None, ctx.config.ca_passphrase,
                                      ctx.clock.now(), identity=identity)
        key = base64.urlsafe_b64decode(encoded + "=")
        url = (await client.directory())["newAccount"]
        p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
        body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
        sig = hmac.new(key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
        await client.register(externalAccountBinding={"protected": p64, "payload": body,
                                                      "signature": b64e(sig)})
    acme._acme = client
    return acme


async def issued_by(d: DoorDriver, door: str, names: list[str]) -> x509.Certificate:
    other = DoorDriver(door, d.h, d.responder)
    answer = await other.enroll(cn=names[0], dns=names)
    assert answer.cert is not None, answer
    return answer.cert


def orders(d: DoorDriver) -> int:
    return len(d.h.rows("acme_orders"))


@pytest.mark.parametrize("origin", ["scep", "est"])
async def test_an_eab_identity_pattern_lets_acme_replace_another_doors_certificate(
        origin: str, make_driver: Any) -> None:
    d = make_driver("acme", PROFILE)
    old = await issued_by(d, origin, [HOST])
    acme = await acme_door(d, identity=["san.dns:*.corp.example"])
    new = await acme.renew(old, cn=HOST, dns=[HOST])
    assert new.ok, new
    renewed = rec(d, new.cert)
    assert (renewed.protocol, renewed.replaces, renewed.link) == \
        ("acme", rec(d, old).serial_hex, "eab")
    assert rec(d, old).superseded_by == renewed.serial_hex
    requests = {r["certificate_serial"]: r for r in d.h.rows("requests")}
    assert requests[renewed.serial_hex]["link"] == "eab"
    # Replaced once: a second order naming it is refused.
    again = await acme.renew(old, cn=HOST, dns=[HOST])
    assert again.error == "alreadyReplaced", again


async def test_a_pattern_that_does_not_match_is_unauthorized_and_stores_nothing(
        make_driver: Any) -> None:
    d = make_driver("acme", PROFILE)
    old = await issued_by(d, "scep", [HOST])
    acme = await acme_door(d, identity=["san.dns:*.lab.example"])
    before = (d.h.counts(), orders(d))
    refused = await acme.renew(old, cn=HOST, dns=[HOST])
    assert refused.error == "unauthorized", refused
    assert "issued over scep that this account is not bound to" in refused.detail
    assert (d.h.counts(), orders(d)) == before
    assert rec(d, old).superseded_by is None


@pytest.mark.parametrize("by_names", [True, False])
async def test_the_names_policy_links_by_exactly_equal_names(
        by_names: bool, make_driver: Any) -> None:
    d = make_driver("acme", {**PROFILE, "replaces_by_names": by_names})
    old = await issued_by(d, "est", [HOST])
    acme = await acme_door(d)  # no EAB: only the names can bind it
    before = (d.h.counts(), orders(d))
    new = await acme.renew(old, cn=HOST, dns=[HOST])
    if not by_names:
        assert new.error == "unauthorized", new
        assert (d.h.counts(), orders(d)) == before
        return
    assert new.ok, new
    assert (rec(d, new.cert).replaces, rec(d, new.cert).link) == \
        (rec(d, old).serial_hex, "names")


@pytest.mark.parametrize(("old_names", "order"), [
    ([HOST, "www.corp.example"], [HOST]),      # fewer names than the old certificate
    ([HOST], [HOST, "www.corp.example"]),      # one more
])
async def test_names_not_exactly_equal_are_unauthorized(
        old_names: list[str], order: list[str], make_driver: Any) -> None:
    d = make_driver("acme", {**PROFILE, "replaces_by_names": True})
    old = await issued_by(d, "scep", old_names)
    acme = await acme_door(d)
    before = (d.h.counts(), orders(d))
    refused = await acme.renew(old, cn=order[0], dns=order)
    assert refused.error == "unauthorized", refused
    assert (d.h.counts(), orders(d)) == before


async def test_an_eab_link_keeps_the_cores_profile_line(make_driver: Any) -> None:
    # The pattern binds the identity; the core still refuses another profile line.
    d = make_driver("acme", PROFILE, other_profiles={"q": {"ca": "issuing", **PROFILE}})
    old = await issued_by(d, "est", [HOST])
    with d.h.ctx.db.write() as tx:
        tx.run("UPDATE certificates SET profile = 'q' WHERE serial = ?",
               (format(old.serial_number, "x"),))
    acme = await acme_door(d, identity=["san.dns:*.corp.example"])
    refused = await acme.renew(old, cn=HOST, dns=[HOST])
    assert refused.error == "unauthorized", refused
    assert "cannot be used for profile 'p'" in refused.detail
    assert d.h.counts()[0] == 1


def test_a_migration_turns_linking_by_names_on_unless_the_profile_says_no() -> None:
    migration = {"to": "acme", "after": "2027-03-01"}
    assert parse_fleet({}, "p", 86400 * 90).replaces_by_names is False
    assert parse_fleet({"migration": migration}, "p", 86400 * 90).replaces_by_names is True
    assert parse_fleet({"migration": migration, "replaces_by_names": False}, "p",
                       86400 * 90).replaces_by_names is False


def test_identity_patterns_are_fnmatch_on_the_stored_identity() -> None:
    assert eab.identity_matches(["san.dns:*.corp.example"], "san.dns:A.corp.example")
    assert not eab.identity_matches(["san.dns:*.corp.example"], "san.dns:corp.example")
    assert not eab.identity_matches(["san.dns:*.corp.example"], None)
    assert not eab.identity_matches(None, "san.dns:a.corp.example")
    from enroll.errors import ConfigError

    with pytest.raises(ConfigError):
        eab.check_identity_patterns(["*"], "--identity")
