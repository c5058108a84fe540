"""No padding oracle: once the server starts decrypting a pkiMessage's envelope, every
failure up to a parsed, self-signed CSR for the signer's key gets one answer (same
pkiStatus, failInfo and failInfoText), and nothing is stored.

The messages are real PKCSReqs whose EnvelopedData is altered the way an attacker who
captured one over plain HTTP would alter it, then signed again (the outer signature
protects nothing: anyone can sign with a throw-away certificate)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from enroll.protocols.scep import der, envelope, signeddata
from enroll.protocols.scep.failinfo import UNDECRYPTABLE_TEXT, FailInfo
from enroll.protocols.scep.pkimessage import (
    OID_MESSAGE_TYPE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    MessageType,
    PKIStatus,
    parse_certrep,
)
from harness import CHALLENGE, Harness, scep_client, scep_operation

from enroll.testing.scep_client import ScepClient, csr_with_challenge, self_signed

DER = serialization.Encoding.DER
Mutation = Callable[[cms.EnvelopedData], None]


def _sign(client: ScepClient, enveloped: bytes, tid: str,
          kind: MessageType = MessageType.PKCS_REQ,
          signer: tuple[Any, Any] | None = None) -> bytes:
    """A pkiMessage around `enveloped`, signed by the client or by `signer`."""
    cert, key = signer or (client.signer, client.key)
    attrs = [signeddata.attribute(OID_MESSAGE_TYPE, der.printable(kind.value)),
             signeddata.attribute(OID_TRANSACTION_ID, der.printable(tid)),
             signeddata.attribute(OID_SENDER_NONCE, der.octets(os.urandom(16)))]
    return signeddata.sign(enveloped, attrs, cert, key)


def _enveloped(client: ScepClient, content: bytes, mutate: Mutation | None = None) -> bytes:
    data = envelope.encrypt(content, [client.ra])
    if mutate is None:
        return data
    info = cms.ContentInfo.load(data)
    mutate(info["content"])
    return bytes(info.dump(force=True))


def _ciphertext(ed: cms.EnvelopedData) -> bytearray:
    return bytearray(ed["encrypted_content_info"]["encrypted_content"].native)


def _set_ciphertext(ed: cms.EnvelopedData, data: bytes) -> None:
    ed["encrypted_content_info"]["encrypted_content"] = bytes(data)


@pytest.fixture
def scep(make_scep: Any) -> Harness:
    """The probes below compare the answers themselves, so the failure throttle that
    ends such a probe after 20 tries is off here; it is tested on its own
    (`test_the_probe_is_throttled_after_twenty_failures`)."""
    h: Harness = make_scep(rate_limits={"failures_per_address": "off"})
    return h


def _answer(h: Harness, client: ScepClient, message: bytes) -> tuple[Any, ...]:
    r = scep_operation(h, message)
    assert r.status_code == 200, r.text
    rep = parse_certrep(r.content, client.ra)
    return rep.status, rep.fail_info, rep.fail_text, rep.enveloped


def _last_byte_flip(csr_len: int, to: int) -> Mutation:
    """XOR the last byte of the next-to-last ciphertext block so the last plaintext
    byte (the padding length, known from the CSR's length) becomes `to`."""
    pad = 16 - csr_len % 16

    def mutate(ed: cms.EnvelopedData) -> None:
        c = _ciphertext(ed)
        c[-17] ^= pad ^ to
        _set_ciphertext(ed, c)
    return mutate


def _first_block_flip(ed: cms.EnvelopedData) -> None:
    """Garbles the first plaintext block; the last block (the padding) is untouched."""
    c = _ciphertext(ed)
    c[3] ^= 0x5A
    _set_ciphertext(ed, c)


def _corrupt_key(ed: cms.EnvelopedData) -> None:
    ri = ed["recipient_infos"][0].chosen
    key = bytearray(ri["encrypted_key"].native)
    key[len(key) // 2] ^= 0x01
    ri["encrypted_key"] = bytes(key)


def _wrong_key_length(ra: Any) -> Mutation:
    """An AES-128 envelope whose key transport carries 24 bytes (a 3DES key)."""
    def mutate(ed: cms.EnvelopedData) -> None:
        ed["recipient_infos"][0].chosen["encrypted_key"] = ra.public_key().encrypt(
            os.urandom(24), padding.PKCS1v15())
    return mutate


def test_every_failure_after_decryption_starts_gets_one_identical_answer(
        scep: Harness, caplog: pytest.LogCaptureFixture) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "oracle-device", CHALLENGE).public_bytes(DER)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    broken_sig = bytearray(csr)
    broken_sig[-3] ^= 0xFF
    cases: dict[str, bytes] = {
        "bad padding": _enveloped(client, csr, _last_byte_flip(len(csr), 0x00)),
        "good padding, garbage content": _enveloped(client, csr, _first_block_flip),
        "corrupt encrypted key": _enveloped(client, csr, _corrupt_key),
        "wrong content key length": _enveloped(client, csr, _wrong_key_length(client.ra)),
        "content not a PKCS#10": _enveloped(client, os.urandom(200)),
        "CSR signature bad": _enveloped(client, bytes(broken_sig)),
        "CSR key not the signer's": _enveloped(
            client, csr_with_challenge(other, "oracle-device", CHALLENGE).public_bytes(DER)),
    }
    answers = {}
    with caplog.at_level(logging.INFO, logger="enroll.scep"):
        for name, enveloped in cases.items():
            answers[name] = _answer(scep, client, _sign(client, enveloped, os.urandom(8).hex()))
    assert set(answers.values()) == {
        (PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK, UNDECRYPTABLE_TEXT, None)}, answers
    assert scep.counts() == (0, 0)
    # The operator's log still says what went wrong, never the content.
    for reason in ("the CBC padding is wrong", "the RSA key transport does not give",
                   "not a valid PKCS#10", "the signer certificate's key is not the CSR's"):
        assert reason in caplog.text
    assert CHALLENGE not in caplog.text

    # The same construction, unaltered, still issues.
    valid = _answer(scep, client, _sign(client, _enveloped(client, csr), "oracle-valid"))
    assert valid[0] is PKIStatus.SUCCESS
    assert scep.counts() == (1, 1)


def test_failures_before_decryption_keep_their_own_answers(scep: Harness) -> None:
    """What depends only on what an eavesdropper sees keeps a specific answer."""
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "d", CHALLENGE).public_bytes(DER)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_ours = envelope.encrypt(csr, [self_signed(stranger, "another-ra")])
    rep = _answer(scep, client, _sign(client, not_ours, "t-not-ours"))
    assert rep[1:3] == (FailInfo.BAD_MESSAGE_CHECK,
                        "the envelope is not addressed to this endpoint")
    des = envelope.encrypt(csr, [client.ra], "des")
    rep = _answer(scep, client, _sign(client, des, "t-des"))
    assert rep[1] is FailInfo.BAD_ALG
    assert scep.counts() == (0, 0)


def _padding_probes(h: Harness, guesses: range) -> Iterator[tuple[ScepClient, bytes]]:
    """The attacker's loop: a captured PKCSReq's envelope, re-signed with the attacker's
    own certificate, with the last byte of the next-to-last ciphertext block XORed with
    each guess."""
    victim = scep_client(h)
    captured = _enveloped(victim, csr_with_challenge(
        victim.key, "victim", CHALLENGE).public_bytes(DER))
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker = (self_signed(attacker_key, "attacker"), attacker_key)
    info = cms.ContentInfo.load(captured)
    original = _ciphertext(info["content"])
    for guess in guesses:
        c = bytearray(original)
        c[-17] ^= guess
        _set_ciphertext(info["content"], c)
        yield victim, _sign(victim, bytes(info.dump(force=True)), f"probe-{guess}",
                            signer=attacker)


def test_a_classic_padding_oracle_probe_learns_nothing(
        scep: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Each of the 256 values of the guessed byte: valid padding (the original value and
    the one giving 0x01) and invalid padding must answer alike."""
    answers = set()
    with caplog.at_level(logging.INFO, logger="enroll.scep"):
        for victim, message in _padding_probes(scep, range(256)):
            answers.add(_answer(scep, victim, message))
    assert len(answers) == 1, answers  # not one bit of information
    assert scep.counts() == (0, 0)
    # The probe did reach both sides of the padding check: the answers hide a real
    # difference, they do not merely all fail the same early check.
    padding_wrong = caplog.text.count("the CBC padding is wrong")
    assert 0 < padding_wrong < 256
    assert "not a valid PKCS#10" in caplog.text or "is not the CSR's" in caplog.text


def test_the_probe_is_throttled_after_twenty_failures(make_scep: Any) -> None:
    """With the default limit (20 failures per address in 15 minutes) the same probe
    stops after 20 guesses: every later answer is the throttle's, decided before the
    envelope is opened, whatever the padding."""
    h: Harness = make_scep()
    texts = [_answer(h, victim, message)[2]
             for victim, message in _padding_probes(h, range(1, 31))]
    assert len(set(texts[:20])) == 1
    assert all(t.startswith("too many failed requests from this address") for t in texts[20:])


def test_certpoll_content_is_never_decrypted(scep: Harness) -> None:
    """CertPoll is answered from its transactionID and signer, so an undecryptable
    content gets the same answer as a good one (no structure oracle either)."""
    client = scep_client(scep)
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    from enroll.protocols.scep.pkimessage import issuer_and_subject

    content = issuer_and_subject(issuer, issuer)
    good = _sign(client, _enveloped(client, content), "no-such-tid", MessageType.CERT_POLL)
    bad = _sign(client, _enveloped(client, content, _corrupt_key), "no-such-tid",
                MessageType.CERT_POLL)
    garbage = _sign(client, _enveloped(client, os.urandom(64)), "no-such-tid",
                    MessageType.CERT_POLL)
    answers = {_answer(scep, client, m) for m in (good, bad, garbage)}
    assert answers == {(PKIStatus.FAILURE, FailInfo.BAD_CERT_ID,
                        "no request with this transactionID", None)}
    assert scep.counts() == (0, 0)


def test_getcert_not_found_and_unparsable_content_answer_alike(scep: Harness) -> None:
    client = scep_client(scep)
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    from enroll.protocols.scep.pkimessage import issuer_and_serial

    not_found = _sign(client, _enveloped(client, issuer_and_serial(issuer, 424242)), "g1",
                      MessageType.GET_CERT)
    garbage = _sign(client, _enveloped(client, os.urandom(40)), "g2", MessageType.GET_CERT)
    crl_garbage = _sign(client, _enveloped(client, os.urandom(40)), "g3",
                        MessageType.GET_CRL)
    answers = {_answer(scep, client, m) for m in (not_found, garbage, crl_garbage)}
    assert answers == {(PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK, UNDECRYPTABLE_TEXT,
                        None)}


def test_implicit_rejection_key_is_deterministic_per_ciphertext() -> None:
    sealed = envelope.Sealed(b"\x01" * 256, "aes128_cbc", b"\0" * 16, b"\0" * 32)
    again = envelope.Sealed(b"\x01" * 256, "aes128_cbc", b"\0" * 16, b"\0" * 32)
    other = envelope.Sealed(b"\x02" * 256, "aes128_cbc", b"\0" * 16, b"\0" * 32)
    key = envelope._substitute_key(sealed, 16)
    assert len(key) == 16 and key == envelope._substitute_key(again, 16)
    assert key != envelope._substitute_key(other, 16)
