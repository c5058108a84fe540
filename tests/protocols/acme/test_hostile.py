"""Hostile input through the ACME door over HTTP: always a typed problem document
(RFC 8555 §6.7), never a 5xx, and nothing stored.

Covers deeply nested JSON (protected header, payload, body), hostile CSRs at finalize,
ARI certIDs that are garbage or name a serial over 20 octets, dns-01 TXT records that are
not ASCII, malformed tls-alpn-01 peer certificates, and a validation that crashes (its
stored problem carries the request id)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import ssl
from pathlib import Path
from typing import Any

import crafted
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from enroll.protocols.acme import validation
from enroll.protocols.acme.jws import b64e
from enroll.protocols.acme.problems import AcmeProblem
from enroll.protocols.acme.validation.tlsalpn01 import ACME_IDENTIFIER
from harness import NS, LocalDns, acme_client, alpn_server_context, problem

from enroll.errors import EnrollError
from enroll.testing.acme_client import Http01Responder, jwk_of, sign

JOSE = {"Content-Type": "application/jose+json"}


def _raw_jws(key: Any, protected: bytes, payload: bytes) -> bytes:
    """A flattened JWS over exactly these protected-header and payload octets."""
    p64, b64 = b64e(protected), b64e(payload)
    return json.dumps({"protected": p64, "payload": b64,
                       "signature": b64e(sign(key, f"{p64}.{b64}".encode()))}).encode()


def _stored(harness: Any) -> tuple[int, int, int]:
    """(certificates, requests, ACME accounts) stored."""
    return (*harness.counts(), len(harness.rows("acme_accounts")))


async def _ready_order(acme: Any, responder: Http01Responder,
                       name: str) -> tuple[str, dict[str, Any]]:
    order_url, order = await acme.new_order([name])
    authz = (await acme.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
    await acme.post(chall["url"], {})
    order = await acme.poll(order_url, ("ready", "invalid"))
    assert order["status"] == "ready"
    return order_url, order


def test_acme_problem_and_validation_failed_are_enroll_errors() -> None:
    assert issubclass(AcmeProblem, EnrollError)
    assert issubclass(validation.ValidationFailed, AcmeProblem)
    failed = validation.ValidationFailed("dns", "no record")
    assert failed.detail == "no record" and failed.document() == {
        "type": NS + "dns", "detail": "no record", "status": 400}


@pytest.mark.parametrize("where", ["protected", "payload", "body"])
async def test_deeply_nested_json_is_malformed(harness: Any, where: str) -> None:
    acme = acme_client(harness)
    d = await acme.directory()
    deep = b"[" * 20000 + b"]" * 20000
    protected = {"alg": "ES256", "url": d["newAccount"], "nonce": await acme.nonce(),
                 "jwk": jwk_of(acme.key.public_key())}
    if where == "protected":
        body = _raw_jws(acme.key, json.dumps({**protected, "x": "@"}).encode()
                        .replace(b'"@"', b"[" * 3000 + b"]" * 3000), b"{}")
    elif where == "payload":
        body = _raw_jws(acme.key, json.dumps(protected).encode(),
                        b'{"termsOfServiceAgreed": true, "contact": ' + deep[:8000]
                        + deep[-8000:] + b"}")
    else:
        body = deep[:30000] + deep[-30000:]
    r = await harness.http.post(d["newAccount"], content=body, headers=JOSE)
    problem(r, "malformed", 400)
    assert "JSON" in r.json()["detail"] or "nests" in r.json()["detail"]
    assert _stored(harness) == (0, 0, 0)


async def test_payload_nested_just_past_the_depth_limit_is_malformed(harness: Any) -> None:
    acme = acme_client(harness)
    d = await acme.directory()
    protected = {"alg": "ES256", "url": d["newAccount"], "nonce": await acme.nonce(),
                 "jwk": jwk_of(acme.key.public_key())}
    payload = b'{"termsOfServiceAgreed": true, "x": ' + b"[" * 16 + b"]" * 16 + b"}"
    r = await harness.http.post(d["newAccount"], headers=JOSE,
                                content=_raw_jws(acme.key, json.dumps(protected).encode(),
                                                 payload))
    problem(r, "malformed", 400)
    assert "nests deeper" in r.json()["detail"]
    assert _stored(harness) == (0, 0, 0)


@pytest.mark.parametrize("vector", sorted(crafted.REFUSED))
async def test_hostile_csr_at_finalize_is_bad_csr(harness: Any, responder: Http01Responder,
                                                  vector: str) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await _ready_order(acme, responder, "device.example")
    r = await acme.post(order["finalize"], {"csr": b64e(crafted.REFUSED[vector]())},
                        check=False)
    problem(r, "badCSR", 400)
    assert (await acme.get(order_url)).json()["status"] == "ready"
    assert harness.counts() == (0, 0)


@pytest.mark.parametrize("cert_id", [
    b64e(b"\x01" * 20) + "." + b64e(b"\x01" * 21),     # serial of 21 octets
    b64e(b"\x01" * 20) + "." + b64e(b"\x7f" + b"\xff" * 40),
    b64e(b"\x01" * 20) + "." + b64e(b"\x80\x01"),      # negative
    b64e(b"\x01" * 20) + "." + b64e(b"\x00"),          # zero
    b64e(b"\x01" * 65) + "." + b64e(b"\x01"),          # key identifier too long
    "!!!!.????", "%00%ff.%fe", "a.b.c", "..x", "abc", "é.é", "AAAA.", ".AQ",
])
async def test_garbage_ari_cert_id_is_malformed(harness: Any, cert_id: str) -> None:
    d = await acme_client(harness).directory()
    r = await harness.http.get(f"{d['renewalInfo']}/{cert_id}")
    problem(r, "malformed", 400)
    assert harness.counts() == (0, 0)


async def test_ari_replaces_with_a_long_serial_is_malformed(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    r = await acme.post(d["newOrder"], {
        "identifiers": [{"type": "dns", "value": "x.test.example"}],
        "replaces": b64e(b"\x01" * 20) + "." + b64e(b"\x01" * 30)}, check=False)
    problem(r, "malformed", 400)
    assert harness.rows("acme_orders") == []


@pytest.mark.parametrize("strings", [
    [[b"\xff\xfe\xfd"]], [["é".encode()]], [[b"\x00" * 43]],
    [[b"\xc3\xa9" * 20, b"\x80"], [b"plain"]],
])
async def test_dns01_with_non_ascii_txt_records_fails_validation(
        harness: Any, local_dns: LocalDns, strings: list[list[bytes]]) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["txt.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    local_dns.txt_raw["_acme-challenge.txt.test.example"] = strings
    r = await acme.post(chall["url"], {})
    assert r.status_code == 200, r.text
    answered = r.json()
    assert answered["status"] == "invalid"
    assert answered["error"] == {"type": NS + "incorrectResponse", "status": 400,
                                 "detail": "no TXT record holds the key authorization"}
    final = (await acme.get(order_url)).json()
    assert final["status"] == "invalid"
    assert final["error"]["type"] == NS + "unauthorized"
    assert final["error"]["subproblems"][0]["identifier"] == {"type": "dns",
                                                              "value": "txt.test.example"}
    assert harness.counts() == (0, 0)


def _alpn_context(tmp: Path, der: bytes, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
    return alpn_server_context(tmp, x509.load_der_x509_certificate(der), key)


def _alpn_cert(key: ec.EllipticCurvePrivateKey, name: str, key_authorization: str,
               case: str) -> bytes:
    """A tls-alpn-01 certificate for `name`, spoilt as `case` says."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(hours=1)))
    if case != "x400_san":
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                        critical=False)
    value = b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()
    if case == "not_critical":
        builder = builder.add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, value),
                                        critical=False)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    acme_ext = crafted.extension(ACME_IDENTIFIER.dotted_string, value, critical=True)
    extra = {"duplicate_acme_identifier": [acme_ext, acme_ext],
             "x400_san": [crafted.extension("2.5.29.17", b"\x30\x04\xa3\x02\x30\x00"),
                          acme_ext],
             "garbage_acme_identifier": [crafted.extension(ACME_IDENTIFIER.dotted_string,
                                                           b"\xff\x00", critical=True)],
             }.get(case, [])
    return crafted.resigned_certificate(der, key, extra) if extra else der


@pytest.mark.parametrize("case", ["no_acme_identifier", "not_critical",
                                  "duplicate_acme_identifier", "x400_san",
                                  "garbage_acme_identifier"])
async def test_malformed_tls_alpn01_certificate_fails_validation(
        make_harness: Any, tmp_path: Path, case: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    holder: dict[str, ssl.SSLContext] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    class Lazy:  # the context is made once the token is known
        def __getattr__(self, attr: str) -> Any:
            return getattr(holder["ctx"], attr)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=Lazy())  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        harness = make_harness(tlsalpn01_port=str(port))
        acme = acme_client(harness)
        await acme.register()
        order_url, order = await acme.new_order(["alpn.test.example"])
        authz = (await acme.get(order["authorizations"][0])).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
        der = _alpn_cert(key, "alpn.test.example", acme.key_authorization(chall["token"]),
                         case)
        holder["ctx"] = _alpn_context(tmp_path, der, key)
        r = await acme.post(chall["url"], {})
        assert r.status_code == 200, r.text
        answered = r.json()
        assert answered["status"] == "invalid", answered
        assert answered["error"]["type"] == NS + "unauthorized", answered
        assert answered["error"]["status"] == 400
        assert (await acme.get(order_url)).json()["status"] == "invalid"
        assert harness.counts() == (0, 0)
    finally:
        server.close()


@pytest.mark.parametrize("der", [None, b"", b"garbage", b"\x30\x03\x02\x01\x01"])
def test_tls_alpn01_peer_certificate_that_does_not_parse(der: Any) -> None:
    from enroll.protocols.acme.validation.tlsalpn01 import check_certificate

    with pytest.raises(validation.ValidationFailed) as info:
        check_certificate(der, "a.example", "t.k")
    assert info.value.typ in ("tls", "unauthorized")


async def test_a_crashed_validation_stores_server_internal_with_the_request_id(
        harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(validation, "run", broken)
    acme = acme_client(harness)
    await acme.register()
    _, order = await acme.new_order(["crash.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    r = await acme.post(authz["challenges"][0]["url"], {})
    assert r.status_code == 200, r.text
    error = r.json()["error"]
    assert error == {"type": NS + "serverInternal", "status": 500,
                     "detail": f"internal error (request {r.headers['x-request-id']})"}
    assert "secret" not in r.text
    assert harness.counts() == (0, 0)


@pytest.mark.parametrize(("payload", "typ"), [
    ({"certificate": b64e(b"garbage")}, "malformed"),
    # version 4 (INTEGER 3): cryptography's InvalidVersion is not a ValueError
    ({"certificate": b64e(b"\x30\x0c\x30\x07\xa0\x03\x02\x01\x03\x02\x00\x30\x00\x03\x01"
                          b"\x00")}, "malformed"),
    ({"certificate": 5}, "malformed"),
    ({"certificate": "AAAA", "reason": [1]}, "malformed"),
    ({"certificate": "AAAA", "reason": {"a": 1}}, "malformed"),
])
async def test_garbage_revocation_is_a_problem(harness: Any, payload: dict[str, Any],
                                               typ: str) -> None:
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    r = await acme.post(d["revokeCert"], payload, check=False)
    problem(r, typ, 400)
    assert harness.counts() == (0, 0)


async def test_revocation_reason_that_is_not_a_number(harness: Any,
                                                      responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    pem = await acme.issue(["revoke.test.example"], responder)
    der = x509.load_pem_x509_certificates(pem.encode())[0].public_bytes(
        serialization.Encoding.DER)
    d = await acme.directory()
    for reason in ([1], {"r": 1}, True, "1", 2):
        r = await acme.post(d["revokeCert"], {"certificate": b64e(der), "reason": reason},
                            check=False)
        problem(r, "badRevocationReason", 400)
    assert harness.counts() == (1, 1)
