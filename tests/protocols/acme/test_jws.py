"""The JWS layer against certbot's josepy (an independent implementation) and the
refusals RFC 8555 §6.2 requires. Pure functions: no app, no database."""

from __future__ import annotations

import json
from typing import Any

import josepy
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from enroll.protocols.acme import jws
from enroll.protocols.acme.problems import AcmeProblem

from enroll.testing.acme_client import sign


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
    (lambda: ec.generate_private_key(ec.SECP521R1()), josepy.ES512, "ES512"),
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
    ours = jws.thumbprint(jws.jwk_of(key.public_key()))
    theirs = josepy.b64encode(josepy.JWK.load(_pem(key)).public_key().thumbprint()).decode()
    assert ours == theirs


def test_eddsa_is_pinned_and_verified() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    protected = jws.b64e(json.dumps({"alg": "EdDSA", "jwk": jws.jwk_of(key.public_key())}).encode())
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
        jws.key_from_jwk(jws.jwk_of(small.public_key()))
    assert info.value.typ == "badPublicKey"
    for crv in ("P-521", "secp256k1"):  # too short a coordinate; a curve we do not take
        with pytest.raises(AcmeProblem) as info:
            jws.key_from_jwk({"kty": "EC", "crv": crv, "x": "AA", "y": "AA"})
        assert info.value.typ == "badPublicKey"


@pytest.mark.parametrize("jwk", [
    {"kty": "EC", "crv": ["P-256"], "x": "AA", "y": "AA"},   # unhashable crv
    {"kty": "EC", "crv": {"a": 1}, "x": "AA", "y": "AA"},
    {"kty": ["RSA"], "n": "AA", "e": "AQAB"},
    {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
])
def test_jwk_members_of_the_wrong_type_are_problems(jwk: dict[str, object]) -> None:
    with pytest.raises(AcmeProblem) as info:
        jws.key_from_jwk(jwk)
    assert info.value.typ in ("badPublicKey", "malformed")


def test_rsa_jwk_with_a_huge_exponent_is_badPublicKey() -> None:
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    jwk = {"kty": "RSA", "n": jws.b64e(n.to_bytes(256, "big")),
           "e": jws.b64e(((1 << 2000) + 1).to_bytes(251, "big"))}
    with pytest.raises(AcmeProblem) as info:
        jws.key_from_jwk(jwk)
    assert info.value.typ == "badPublicKey"


@pytest.mark.parametrize("body", [
    b'{"protected": "\\ud800", "payload": "", "signature": ""}',
    b'{"protected": "e30", "payload": "\\u00e9", "signature": ""}',
    b"[" * 5000, b'{"protected": ' + b"[" * 3000 + b"]" * 3000 + b"}",
])
def test_non_ascii_members_and_deep_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(AcmeProblem) as info:
        jws.parse(body)
    assert info.value.typ == "malformed"


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


# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
_RFC7638_N = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
              "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v"
              "-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD0"
              "8qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU"
              "8awapJzKnqDKgw")


def test_rfc7638_example_key_gives_the_rfc_jwk_and_thumbprint() -> None:
    n = int.from_bytes(jws.b64d(_RFC7638_N), "big")
    jwk = jws.jwk_of(rsa.RSAPublicNumbers(65537, n).public_key())
    assert jwk == {"kty": "RSA", "n": _RFC7638_N, "e": "AQAB"}
    assert jws.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(65537, 2048),
    ed25519.Ed25519PrivateKey.generate,
])
def test_the_jwk_of_a_key_reads_back_as_the_same_key(make: Any) -> None:
    public = make().public_key()
    jwk = jws.jwk_of(public)
    assert jws.key_from_jwk(jwk)[0] == public
    assert jws.public_jwk(jwk) == jwk


def test_ec_coordinates_keep_their_leading_zero_octets() -> None:
    # RFC 7518 §6.2.1.2: x and y are the full coordinate length, even with leading zeros.
    for _ in range(64):
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        if public.public_numbers().x < 1 << 248:
            break
    jwk = jws.jwk_of(public)
    assert len(jws.b64d(jwk["x"])) == len(jws.b64d(jwk["y"])) == 32


def test_keys_jwk_cannot_express_are_refused_with_value_error() -> None:
    with pytest.raises(ValueError, match="secp256k1"):
        jws.jwk_of(ec.generate_private_key(ec.SECP256K1()).public_key())
    with pytest.raises(ValueError, match="Ed448"):
        jws.jwk_of(ed448.Ed448PrivateKey.generate().public_key())
