"""Hostile input through the SCEP door over HTTP: a pkiMessage is always answered with a
signed FAILURE CertRep carrying a failInfo (RFC 8894 §3.2.1.4), anything that is not one
with HTTP 400, never a 5xx, and nothing is stored. An internal error's failInfoText
carries the request id and nothing else."""

from __future__ import annotations

import base64
import os
from typing import Any

import crafted
import pytest
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus, build_request
from harness import Harness, scep_operation, scep_ra

from enroll.testing.scep_client import ScepClient

ONE_ANSWER = "the encrypted content is not a valid request"
"""A hostile CSR that does not load fails once decryption started, so it gets the one
answer that closes the padding oracle (docs/scep.md, "One answer once decryption starts"): an
unusable key, a subject that does not decode and a CSR whose key is not the signer's
are told apart only in the operator's log."""


def _pkcs_req(scep: Harness, csr_der: bytes) -> tuple[ScepClient, bytes]:
    client = ScepClient(scep_ra(scep), key=crafted.SIGNER)
    message = build_request(MessageType.PKCS_REQ, csr_der, [client.ra], client.signer,
                            client.key, os.urandom(8).hex())
    return client, message


@pytest.mark.parametrize("vector", sorted(crafted.HOSTILE))
def test_hostile_csr_is_a_failure_certrep(scep: Harness, vector: str) -> None:
    client, message = _pkcs_req(scep, crafted.HOSTILE[vector]())
    r = scep_operation(scep, message)
    assert r.status_code == 200, r.text
    reply = client.read(r.content)
    assert reply.status is PKIStatus.FAILURE
    # A CSR that does not load gets the one answer; one that loads, self-signed with the
    # signer's key, is a well-formed request and gets its refusal (the challenge...).
    if reply.certrep.fail_info is FailInfo.BAD_MESSAGE_CHECK:
        assert reply.certrep.fail_text == ONE_ANSWER
    else:
        assert reply.certrep.fail_info is FailInfo.BAD_REQUEST, reply.certrep.fail_text
        assert "internal" not in (reply.certrep.fail_text or "")
    assert scep.counts() == (0, 0)


def test_internal_error_failinfotext_carries_the_request_id(
        scep: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(scep.ctx.authority, "submit", broken)
    client = ScepClient(scep_ra(scep))
    from harness import CHALLENGE

    from enroll.testing.scep_client import csr_with_challenge

    message, _ = client.pkcs_req(csr_with_challenge(client.key, "dev", CHALLENGE))
    r = scep_operation(scep, message)
    assert r.status_code == 200, r.text
    reply = client.read(r.content)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert reply.certrep.fail_text == f"internal error (request {r.headers['x-request-id']})"
    assert scep.counts() == (0, 0)


def _vector() -> bytes:
    from pathlib import Path

    return (Path(__file__).parents[2] / "vectors" / "scep" /
            "pkcsreq_aes128_sha256.der").read_bytes()


@pytest.mark.parametrize("mangle", [
    lambda v: b"", lambda v: v[:1], lambda v: v[:40], lambda v: v[:-1],
    lambda v: v + b"\x00", lambda v: b"\x30\x80" + v[2:], lambda v: b"\x31" + v[1:],
    lambda v: v.replace(b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02",
                        b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03"),
    lambda v: b"\x30\x84\xff\xff\xff\xff" + v, lambda v: b"\x05\x00",
])
def test_a_body_that_is_not_a_pkimessage_is_http_400(scep: Harness, mangle: Any) -> None:
    r = scep_operation(scep, mangle(_vector()))
    assert r.status_code in (200, 400), (r.status_code, r.text)
    assert "internal" not in r.text
    assert scep.counts() == (0, 0)


@pytest.mark.parametrize("message", ["", "!!!", "é", "A" * 3, base64.b64encode(b"\xff" * 9)
                                     .decode(), "%00"])
def test_get_pkioperation_with_garbage_is_http_400(scep: Harness, message: str) -> None:
    r = scep.get("/scep", params={"operation": "PKIOperation", "message": message})
    assert r.status_code == 400, (r.status_code, r.text)
    assert scep.counts() == (0, 0)
