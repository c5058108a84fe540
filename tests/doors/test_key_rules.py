"""The core's key and name rules through every door (SCEP PKCSReq, EST simpleenroll,
ACME finalize after real http-01 validation on loopback), with `door_drivers`:

- weak keys (e = 3, a Fermat-weak key) are refused with the door's error (SCEP failInfo
  badRequest, EST 400, ACME badCSR) and nothing is stored;
- a key revoked for keyCompromise (by the core, and for ACME also by revokeCert signed
  with the certificate's key) is refused for any new request, until an operator
  unblocks it;
- URI and e-mail names match on boundaries (SCEP and EST: ACME carries DNS and IP
  identifiers only, so its names are covered by tests/protocols/acme).
"""

from __future__ import annotations

from typing import Any

import pytest
import weak_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from door_drivers import DOORS, REFUSED, Answer, DoorDriver
from enroll.protocols.acme.jws import b64e
from harness import NS, acme_client

from enroll import key_blocklist
from enroll.crypto.keys import spki_sha256

HOSTS: dict[str, Any] = {"san": {"dns": ["*.test.example"]},
                         "key_types": ["rsa-2048", "ec-p256"],
                         "extended_key_usage": ["server_auth", "client_auth"]}
DEVICES: dict[str, Any] = {
    "extended_key_usage": ["client_auth"], "subject": {"CN": "csr"},
    "identity": "subject.CN",  # a device named by its CN, with URI and e-mail names
    "san": {"uri": ["spiffe://corp/ns/prod", "https://corp.example"],
            "email": ["corp.example", "*.corp.example"]}}


def refused(d: DoorDriver, answer: Answer, detail: str) -> None:
    """The door's own answer to a `BadCSR` (SCEP's failInfoText is not checked: the
    test client reads what the server wrote, and the RA-signed text is the same)."""
    assert answer.cert is None and answer.error == REFUSED[d.name], answer
    if d.name != "scep":
        assert detail in answer.detail, answer.detail


@pytest.mark.parametrize("door", DOORS)
async def test_weak_keys_are_refused_by_every_door_and_nothing_is_stored(
        door: str, make_driver: Any) -> None:
    d = make_driver(door, HOSTS)
    for key, detail in ((weak_keys.exponent_key(3), "RSA public exponent 3 is not allowed"),
                        (weak_keys.fermat_key(), "factors by Fermat's method")):
        refused(d, await d.enroll(key=key, dns=["host.test.example"]), detail)
        assert d.h.counts() == (0, 0)
    good = await d.enroll(key=rsa.generate_private_key(65537, 2048), dns=["host.test.example"])
    assert good.ok, good  # the same door, an ordinary key: issued
    assert d.h.counts() == (1, 1)


async def _revoke_by_acme_with_the_certificate_key(d: DoorDriver, key: Any,
                                                   cert: x509.Certificate) -> None:
    client = await d.acme()
    directory = await client.directory()
    r = await client.post(directory["revokeCert"], {
        "certificate": b64e(cert.public_bytes(serialization.Encoding.DER)), "reason": 1},
        use_jwk=True, key=key)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("door", "revoker"), [
    ("scep", "core"), ("est", "core"), ("acme", "core"), ("acme", "revokeCert")])
async def test_a_key_revoked_for_key_compromise_is_refused_by_every_door_until_unblocked(
        door: str, revoker: str, make_driver: Any) -> None:
    d = make_driver(door, HOSTS)
    key = rsa.generate_private_key(65537, 2048)
    first = await d.enroll(key=key, dns=["host.test.example"])
    assert first.cert is not None, first
    if revoker == "core":
        d.h.ctx.authority.revoke(first.cert.serial_number, x509.ReasonFlags.key_compromise,
                                 "operator")
    else:
        await _revoke_by_acme_with_the_certificate_key(d, key, first.cert)
    fingerprint = spki_sha256(key.public_key())
    with d.h.ctx.db.read() as tx:
        assert key_blocklist.is_blocked(tx, fingerprint)
    assert d.h.counts() == (1, 1)

    refused(d, await d.enroll(key=key, dns=["again.test.example"]), "this key is blocked")
    assert d.h.counts() == (1, 1)
    if door == "acme":  # nor can it become an ACME account key
        other = acme_client(d.h, key)
        directory = await other.directory()
        r = await other.post(directory["newAccount"], {"termsOfServiceAgreed": True},
                             use_jwk=True, check=False)
        assert (r.status_code, r.json()["type"]) == (400, NS + "badPublicKey")

    with d.h.ctx.db.write() as tx:
        assert key_blocklist.unblock(tx, fingerprint, actor="operator",
                                     now=d.h.ctx.clock.now())
    after = await d.enroll(key=key, dns=["after.test.example"])
    assert after.ok, after
    assert d.h.counts() == (2, 2)


@pytest.mark.parametrize("door", ["scep", "est"])
async def test_uri_and_email_names_match_on_boundaries_through_the_door(
        door: str, make_driver: Any) -> None:
    d = make_driver(door, DEVICES)
    key = ec.generate_private_key(ec.SECP256R1())
    for names, detail in (
            ({"uris": ("spiffe://corp/ns/production",)}, "is not allowed by profile"),
            ({"uris": ("spiffe://corporate/ns/prod",)}, "is not allowed by profile"),
            ({"uris": ("https://corp.example.evil.net/",)}, "is not allowed by profile"),
            ({"uris": ("spiffe://corp/ns/prod/../admin",)}, "dot segments"),
            ({"uris": ("https://u@corp.example/",)}, "userinfo"),
            ({"emails": ("alice@evilcorp.example",)}, "is not allowed by profile"),
            ({"emails": ("alice@corp.example.evil.net",)}, "is not allowed by profile"),
            ({"emails": ("a b@corp.example",)}, "local part")):
        refused(d, await d.enroll(key=key, cn="device", **names), detail)
        assert d.h.counts() == (0, 0)
    ok = await d.enroll(key=key, cn="device", uris=("spiffe://corp/ns/prod/sa/api",
                                                    "https://CORP.example/x"),
                        emails=("alice@corp.example", "bob@eu.corp.example"))
    assert ok.cert is not None, ok
    sans = ok.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://corp/ns/prod/sa/api", "https://CORP.example/x"]
    assert d.h.counts() == (1, 1)
