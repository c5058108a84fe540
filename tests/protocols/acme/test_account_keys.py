"""ACME account keys over HTTP: one key is one account whatever its JWK's encoding
(RFC 7638 thumbprints over the canonical JWK), and weak or blocked keys are refused with
``badPublicKey`` at newAccount and keyChange (RFC 8555 §6.7, §7.3.5)."""

from __future__ import annotations

from typing import Any

import weak_keys
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from enroll.protocols.acme.jws import b64d, b64e, jwk_of
from harness import acme_client, problem

from enroll import key_blocklist
from enroll.crypto.keys import spki_sha256
from enroll.testing.acme_client import AcmeClient, jws


def _accounts(h: Any) -> int:
    return len(h.rows("acme_accounts"))


async def _new_account(acme: AcmeClient, jwk: dict[str, str]) -> Any:
    d = await acme.directory()
    return await acme.post(d["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True,
                           jwk=jwk, check=False)


def _with_stray_bits(member: str) -> str:
    """The same octets in another base64url spelling: set the unused low bits of the last
    character (a decoder that is not strict ignores them)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 0b1111, 3: 0b11}[len(member) % 4]
    last = alphabet.index(member[-1])
    spelt = member[:-1] + alphabet[last | unused]
    assert spelt != member and b64d(spelt) == b64d(member)
    return spelt


async def test_the_same_rsa_key_in_another_jwk_spelling_is_the_same_account(
        harness: Any) -> None:
    """Canonical first (201); then n with a leading zero octet is refused as malformed
    (RFC 7518 §6.3.1.1) and creates nothing; stray base64 bits and extra members are
    accepted and answer the existing account (200, same Location)."""
    key = rsa.generate_private_key(65537, 2048)
    acme = acme_client(harness, key)
    canonical = jwk_of(key.public_key())
    created = await _new_account(acme, canonical)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]

    padded = {**canonical, "n": b64e(b"\x00" + b64d(canonical["n"]))}
    refused = await _new_account(acme, padded)
    problem(refused, "malformed", 400)
    assert "leading zero" in refused.json()["detail"]
    zero_e = {**canonical, "e": b64e(b"\x00\x01\x00\x01")}
    problem(await _new_account(acme, zero_e), "malformed", 400)

    for variant in ({**canonical, "n": _with_stray_bits(canonical["n"])},
                    {**canonical, "alg": "RS256", "use": "sig", "kid": "mine"}):
        again = await _new_account(acme, variant)
        assert again.status_code == 200, again.text
        assert again.headers["Location"] == location
        assert again.json()["key"] == canonical  # what the server stores and shows
    assert (await _new_account(acme, canonical)).headers["Location"] == location
    assert _accounts(harness) == 1


def _ec_key_with_short_x() -> ec.EllipticCurvePrivateKey:
    """A P-256 key whose x coordinate has a leading zero octet (1 in 256 keys)."""
    while True:
        key = ec.generate_private_key(ec.SECP256R1())
        if key.public_key().public_numbers().x < 1 << 248:
            return key


async def test_an_ec_jwk_with_a_short_coordinate_is_badpublickey(harness: Any) -> None:
    """RFC 7518 §6.2.1.2: x and y are the full coordinate length. A client that drops
    the leading zero octet is refused (no account); the full-length JWK then works."""
    key = _ec_key_with_short_x()
    acme = acme_client(harness, key)
    canonical = jwk_of(key.public_key())
    assert b64d(canonical["x"])[0] == 0 and len(b64d(canonical["x"])) == 32
    short = {**canonical, "x": b64e(b64d(canonical["x"])[1:])}
    problem(await _new_account(acme, short), "badPublicKey", 400)
    assert _accounts(harness) == 0
    assert (await _new_account(acme, canonical)).status_code == 201
    assert _accounts(harness) == 1


async def test_weak_account_keys_are_badpublickey_and_create_nothing(harness: Any) -> None:
    for key, detail in ((weak_keys.exponent_key(3), "RSA public exponent 3 is not allowed"),
                        (weak_keys.fermat_key(), "Fermat"), (weak_keys.roca_key(), "ROCA")):
        acme = acme_client(harness, key)
        r = await _new_account(acme, jwk_of(key.public_key()))
        problem(r, "badPublicKey", 400)
        assert detail in r.json()["detail"]
    assert _accounts(harness) == 0


async def test_a_blocked_account_key_is_badpublickey_even_for_its_existing_account(
        harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    fp = spki_sha256(acme.key.public_key())
    with harness.ctx.db.write() as tx:
        key_blocklist.block(tx, fp, reason="stolen", source="operator", actor="op",
                            now=harness.ctx.clock.now())
    r = await _new_account(acme, jwk_of(acme.key.public_key()))
    problem(r, "badPublicKey", 400)
    assert r.json()["detail"] == "this key is blocked: stolen"
    other = acme_client(harness, ec.generate_private_key(ec.SECP256R1()))
    # …and no account may move to it by key-change.
    await other.register()
    r = await _key_change(other, acme.key)
    problem(r, "badPublicKey", 400)
    assert _accounts(harness) == 2


async def _key_change(acme: AcmeClient, new_key: Any) -> Any:
    d = await acme.directory()
    inner = jws(new_key, {"alg": "RS256" if isinstance(new_key, rsa.RSAPrivateKey) else
                          "ES256", "jwk": jwk_of(new_key.public_key()), "url": d["keyChange"]},
                {"account": acme.kid, "oldKey": jwk_of(acme.key.public_key())})
    return await acme.post(d["keyChange"], inner, check=False)


async def test_key_change_to_a_weak_key_is_badpublickey_and_keeps_the_old_key(
        harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    before = harness.rows("acme_accounts")
    r = await _key_change(acme, weak_keys.fermat_key())
    problem(r, "badPublicKey", 400)
    assert "Fermat" in r.json()["detail"]
    assert harness.rows("acme_accounts") == before
    good = rsa.generate_private_key(65537, 2048)
    assert (await _key_change(acme, good)).status_code == 200
