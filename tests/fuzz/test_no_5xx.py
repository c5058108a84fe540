"""A deterministic mutation smoke through the in-process app: thousands of mutated
SCEP PKIOperation bodies, EST simpleenroll bodies and headers, and ACME JWS POSTs to
newAccount, newOrder and finalize (mutated bytes, and mutated payloads signed for real
with fresh nonces so they reach the handlers). No answer may be a 5xx, and no request
may log an internal error (SCEP answers one as a 200 CertRep, so the log is the check).

The mutator is seeded (`SEED`), so a failure replays exactly; ``ENROLL_FUZZ_SMOKE_N``
changes the number of requests per protocol (default 3000). The coverage-guided fuzzers
with 10^6 executions per target are ``bench/fuzz.py`` (docs/fuzzing.md)."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
from typing import Any

import crafted
import pytest
from cryptography.hazmat.primitives import serialization
from enroll.protocols.acme.jws import b64e
from harness import ALICE, PKI_MESSAGE, Harness, acme_client

from enroll.testing import make_csr
from enroll.testing.acme_client import jwk_of, sign
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN
from enroll.testing.scep_client import csr_with_challenge

SEED = 20261202
N = int(os.environ.get("ENROLL_FUZZ_SMOKE_N", "3000"))
INTERESTING = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\x81\xff", b"\x84\xff\xff\xff\xff",
               b"\x30\x80", b"[", b"{", b'"', b"\\", b"\xc3", b"\xed\xa0\x80", b"=", b"-"]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


def mutate(rng: random.Random, data: bytes, rounds: int = 0) -> bytes:
    """One to four byte-level mutations of `data` (flip, set, insert, delete, splice,
    duplicate, truncate)."""
    out = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op == 2:
            out[pos:pos] = rng.choice(INTERESTING)
        elif op == 3 and out:
            del out[pos:pos + rng.randint(1, 16)]
        elif op == 4:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5 and out:
            start = rng.randrange(len(out))
            out[pos:pos] = out[start:start + rng.randint(1, 64)]
        elif op == 6:
            del out[pos:]
        elif op == 7 and len(out) > 4:
            i = rng.randrange(len(out) - 4)
            out[i:i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                       b"\x7f\xff\xff\xff", b"\x80\x00\x00\x01"])
    return bytes(out)


def _header_text(data: bytes) -> bytes:
    """A header value an HTTP client can send (any octet but CR, LF and NUL)."""
    return data.translate(None, b"\r\n\x00")[:4000]


def _no_internal_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR
              and r.name.startswith("enroll")]
    assert not errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors[:5])


def _check(r: Any, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"


async def test_mutated_scep_pkioperations(harness_factory: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    from harness import CHALLENGE, scep_section

    h = harness_factory(**scep_section())
    rng = random.Random(SEED)  # noqa: S311 - a replayable mutator, not a secret
    from enroll.protocols.scep import signeddata

    from enroll.testing.scep_client import ScepClient

    r = await h.http.get("/scep", params={"operation": "GetCACert"})
    certs, _ = signeddata.degenerate_contents(r.content)
    client = ScepClient(certs[0])
    seeds = [client.pkcs_req(csr_with_challenge(client.key, "fuzz", CHALLENGE))[0],
             client.pkcs_req(csr_with_challenge(client.key, "fuzz", "wrong"))[0],
             client.get_cert(client.signer.issuer, 1),
             client.cert_poll(client.signer.issuer, client.signer.subject, "tid-1")]
    seeds += [p.read_bytes() for p in sorted((crafted.HOSTILE_DIR.parent.parent / "scep")
                                             .glob("*.der"))]
    for i in range(N):
        body = mutate(rng, rng.choice(seeds))
        if i % 10 == 0:
            r = await h.http.get("/scep", params={
                "operation": "PKIOperation", "message": base64.b64encode(body).decode()})
        else:
            r = await h.http.post("/scep?operation=PKIOperation", content=body,
                                  headers=PKI_MESSAGE)
        _check(r, f"scep #{i}")
    _no_internal_errors(caplog)


async def test_mutated_est_simpleenroll(harness_factory: Any, tmp_path: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from harness import est_section

    secret = "fuzz-proxy-secret-" + "0" * 32
    (tmp_path / "proxy-secret").write_text(secret)
    section = est_section()
    section["est"]["proxy"] = {"secret_file": str(tmp_path / "proxy-secret")}
    h = harness_factory(listener=True, base_url="https://testserver",
                        trusted_proxies=["127.0.0.1"], **section)
    rng = random.Random(SEED + 1)  # noqa: S311 - a replayable mutator, not a secret
    ders = [make_csr(cn="fuzz").public_bytes(serialization.Encoding.DER)]
    ders += [p.read_bytes() for p in sorted(crafted.HOSTILE_DIR.glob("*.der"))]
    basic = b"Basic " + base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode())
    cert_pem = (crafted.HOSTILE_DIR.parent.parent / "scep" / "ra.pem").read_bytes()
    for i in range(N):
        headers: dict[str, Any] = dict(PKCS10_HEADERS)
        headers["authorization"] = _header_text(mutate(rng, basic) if i % 3 == 0 else basic)
        if i % 4 == 0:
            headers["x-ssl-client-cert"] = _header_text(mutate(rng, cert_pem, 2))
            headers["x-enroll-proxy-secret"] = secret if i % 8 else _header_text(
                mutate(rng, secret.encode()))
        if i % 17 == 0:
            headers["content-type"] = _header_text(mutate(rng, b"application/pkcs10"))
        op = ("simpleenroll", "simplereenroll", "serverkeygen")[i % 3]
        der = rng.choice(ders)
        # Mutated DER in good base64 reaches the CSR loader; mutated base64 the decoder.
        body = base64.encodebytes(mutate(rng, der)) if i % 2 else mutate(
            rng, base64.encodebytes(der))
        r = await h.http.post(f"{WELL_KNOWN}/{op}", content=body, headers=headers)
        _check(r, f"est #{i}")
    _no_internal_errors(caplog)


async def test_mutated_acme_posts(make_harness: Any, caplog: pytest.LogCaptureFixture) -> None:
    h: Harness = make_harness(skip_validation="1")
    rng = random.Random(SEED + 2)  # noqa: S311 - a replayable mutator, not a secret
    acme = acme_client(h)
    await acme.register()
    d = await acme.directory()
    order_url, order = await acme.new_order(["fuzz.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    await acme.post(authz["challenges"][0]["url"], {})
    finalize = order["finalize"]
    csr_der = make_csr(cn="fuzz.test.example", dns=["fuzz.test.example"]).public_bytes(
        serialization.Encoding.DER)
    payloads = {
        d["newAccount"]: json.dumps({"termsOfServiceAgreed": True,
                                     "contact": ["mailto:a@example.com"]}).encode(),
        d["newOrder"]: json.dumps({"identifiers": [{"type": "dns", "value": "a.example"}],
                                   "replaces": "AAAA.AQ"}).encode(),
        finalize: json.dumps({"csr": b64e(csr_der)}).encode(),
    }
    raw = {url: json.dumps(await acme.signed(url, json.loads(p), use_jwk=url ==
                                             d["newAccount"])).encode()
           for url, p in payloads.items()}
    nonce = await acme.nonce()
    for i in range(N):
        url = rng.choice(list(payloads))
        if i % 3 == 0:  # bytes of a whole signed request, mutated
            body = mutate(rng, raw[url])
        else:  # a mutated payload or header, signed for real with a fresh nonce
            protected: dict[str, Any] = {"alg": "ES256", "url": url, "nonce": nonce}
            if url == d["newAccount"]:
                protected["jwk"] = jwk_of(acme.key.public_key())
            else:
                protected["kid"] = acme.kid
            p_bytes = json.dumps(protected).encode()
            payload = payloads[url]
            if url == finalize and i % 2:
                payload = json.dumps({"csr": b64e(mutate(rng, csr_der))}).encode()
            elif i % 5 == 1:
                p_bytes = mutate(rng, p_bytes)
            else:
                payload = mutate(rng, payload)
            p64, b64 = b64e(p_bytes), b64e(payload)
            body = json.dumps({"protected": p64, "payload": b64, "signature": b64e(
                sign(acme.key, f"{p64}.{b64}".encode()))}).encode()
        r = await h.http.post(url, content=body,
                              headers={"content-type": "application/jose+json"})
        _check(r, f"acme #{i} {url}")
        nonce = r.headers.get("Replay-Nonce") or nonce
    assert (await h.http.get(order_url)).status_code < 500
    _no_internal_errors(caplog)

