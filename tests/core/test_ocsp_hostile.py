"""Hostile OCSP requests over HTTP (POST and GET): an OCSP ``malformedRequest`` answer
(RFC 6960 §2.3), never a 5xx. Found by bench/fuzz.py: a request whose extensions do not
decode, and a negative serial, raised while the response was being built."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import OCSPNonce, ocsp

DER = serialization.Encoding.DER
NONCE = b"\x01" * 16


def _sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def _request(client: Any) -> bytes:
    """A request about serial 1 of the first CA, with a nonce."""
    from asn1crypto import x509 as ax509

    ctx = client.ctx
    ca = ctx.cas.get(ctx.cas.names()[0]).certificate
    spki = ax509.Certificate.load(ca.public_bytes(DER))["tbs_certificate"][
        "subject_public_key_info"]["public_key"].contents[1:]
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        _sha256(ca.subject.public_bytes()), _sha256(bytes(spki)), 1, hashes.SHA256())
    return builder.add_extension(OCSPNonce(NONCE), critical=False).build().public_bytes(DER)


def _status(r: Any) -> ocsp.OCSPResponseStatus:
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(r.content).response_status


def _hostile(good: bytes, case: str) -> bytes:
    if case == "negative_serial":  # INTEGER 1, just before requestExtensions [2]
        return good.replace(b"\x02\x01\x01\xa2", b"\x02\x01\xff\xa2", 1)
    if case == "extension_does_not_decode":
        # the nonce's value under id-pkix-ocsp-response (1.3.6.1.5.5.7.48.1.4), which
        # must be a SEQUENCE OF OBJECT IDENTIFIER
        nonce_oid = b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02"
        assert nonce_oid in good
        return good.replace(nonce_oid, nonce_oid[:-1] + b"\x04", 1)
    raise AssertionError(case)


def test_the_well_formed_request_is_answered(client: Any) -> None:
    # Serial 1 was never issued: unauthorized (unsigned, RFC 5019 §2.2.3), not malformed.
    r = client.post("/ocsp", content=_request(client),
                    headers={"content-type": "application/ocsp-request"})
    assert _status(r) is ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.parametrize("case", ["negative_serial", "extension_does_not_decode"])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_hostile_request_is_malformed_request(client: Any, case: str, method: str) -> None:
    body = _hostile(_request(client), case)
    if method == "POST":
        r = client.post("/ocsp", content=body,
                        headers={"content-type": "application/ocsp-request"})
    else:
        r = client.get("/ocsp/" + urllib.parse.quote(base64.b64encode(body).decode(), safe=""))
    assert _status(r) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert client.counts() == (0, 0)


@pytest.mark.parametrize("path", ["/ocsp/%ff%fe", "/ocsp/" + "A" * 13000, "/ocsp/!!!!",
                                  "/ocsp/" + "é" * 10])
def test_garbage_get_is_4xx_or_malformed_request(client: Any, path: str) -> None:
    r = client.get(path)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 200:
        assert _status(r) is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
