"""The JWS layer against certbot's josepy (an independent implementation) and the
refusals RFC 8555 §6.2 requires. Pure functions: no app, no database."""

from __future__ import annotations

import json

import josepy
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from enroll.protocols.acme import jws
from enroll.protocols.acme.problems import AcmeProblem

from enroll.testing.acme_client import jwk_of, sign


def _josepy_signed(key: object, alg: josepy.JWASignature, payload: bytes) -> bytes:
    from acme import jws as acme_jws  # certbot's ACME library

    jwk = josepy.JWK.load(_pem(key))
    signed = acme_jws.JWS.sign(payload, key=jwk, alg=alg, nonce=b"nonce",
                               url="https://acme.test/x")
    return signed.json_dumps().encode()


def _pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.mark.parametrize(("make", "alg", "name"), [
    (lambda: ec.generate_private_key(ec.SECP256R1()), josepy.ES256, "ES256"),
    (lambda: ec.generate_private_key(ec.SECP384R1()), josepy.ES384, "ES384"),
    (lambda: rsa.generate_private_key(65537, 2048), josepy.RS256, "RS256"),
])
def test_josepy_signatures_verify_and_thumbprints_agree(make: object, alg: object,
                                                        name: str) -> None:
    key = make()  # type: ignore[operator]
    body = _josepy_signed(key, alg, b'{"hello": "acme"}')  # type: ignore[arg-type]
    parsed = jws.parse(body)
    assert parsed.protected["url"] == "https://acme.test/x"
    public, pinned = jws.key_from_jwk(parsed.protected["jwk"])
    assert pinned == name
    jws.verify(parsed, public, pinned)
    assert parsed.payload() == {"hello": "acme"}
    ours = jws.thumbprint(jwk_of(key))
    theirs = josepy.b64encode(josepy.JWK.load(_pem(key)).public_key().thumbprint()).decode()
    assert ours == theirs


def test_eddsa_is_pinned_and_verified() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    protected = jws.b64e(json.dumps({"alg": "EdDSA", "jwk": jwk_of(key)}).encode())
    payload = jws.b64e(b"{}")
    sig = jws.b64e(sign(key, f"{protected}.{payload}".encode()))
    parsed = jws.parse({"protected": protected, "payload": payload, "signature": sig})
    public, alg = jws.key_from_jwk(parsed.protected["jwk"])
    assert alg == "EdDSA"
    jws.verify(parsed, public, alg)


@pytest.mark.parametrize("body", [
    b"[]", b'{"protected": "e30", "payload": "", "signature": "", "header": {}}',
    b'{"signatures": []}', b'{"protected": "e30=", "payload": "", "signature": ""}',
    b'{"protected": "!!", "payload": "", "signature": ""}', b"x" * (jws.MAX_JWS_BYTES + 1),
])
def test_malformed_jws_is_refused(body: bytes) -> None:
    with pytest.raises(AcmeProblem) as info:
        jws.parse(body)
    assert info.value.typ == "malformed"


def test_small_rsa_and_unknown_curves_are_badPublicKey() -> None:
    small = rsa.generate_private_key(65537, 1024)  # noqa: S505 - refused on purpose
    with pytest.raises(AcmeProblem) as info:
        jws.key_from_jwk(jwk_of(small))
    assert info.value.typ == "badPublicKey"
    with pytest.raises(AcmeProblem) as info:
        jws.key_from_jwk({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})
    assert info.value.typ == "badPublicKey"


@pytest.mark.parametrize(("name", "alg"), [("certbot_newaccount_es256.json", "ES256"),
                                           ("certbot_newaccount_rs256.json", "RS256")])
def test_certbot_vectors_verify(name: str, alg: str) -> None:
    from pathlib import Path

    body = (Path(__file__).parents[2] / "vectors" / "acme" / name).read_bytes()
    parsed = jws.parse(body)
    public, pinned = jws.key_from_jwk(parsed.protected["jwk"])
    assert pinned == alg
    jws.verify(parsed, public, pinned)
    assert parsed.payload()["termsOfServiceAgreed"] is True
    tampered = jws.Jws(parsed.protected, parsed.protected_b64, jws.b64e(b"{}"),
                       parsed.signature)
    with pytest.raises(AcmeProblem):
        jws.verify(tampered, public, pinned)
