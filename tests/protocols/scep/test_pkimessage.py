"""The pure wire layer: vectors from real clients, CertRep round trips, bounds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from enroll.protocols.scep import der, envelope, signeddata
from enroll.protocols.scep.failinfo import FailInfo, ScepFailure
from enroll.protocols.scep.pkimessage import (
    MessageType,
    PKIStatus,
    build_certrep,
    parse_certrep,
    parse_pkimessage,
)

from enroll.testing.scep_client import ScepClient, self_signed

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "scep"
ALL_DIGESTS = ("sha1", "sha256", "sha512")


def _ra() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((VECTORS / "ra.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, x509.load_pem_x509_certificate((VECTORS / "ra.pem").read_bytes())


def _open(name: str) -> tuple[object, x509.CertificateSigningRequest, str]:
    key, cert = _ra()
    message = parse_pkimessage((VECTORS / name).read_bytes())
    signeddata.verify(message.signed, ALL_DIGESTS)
    assert message.signed.content is not None
    payload, cipher = envelope.decrypt(message.signed.content, cert, key, envelope.CIPHERS)
    return message, x509.load_der_x509_csr(payload), cipher


def test_scepclient_pkcsreq_vector_parses_verifies_and_decrypts() -> None:
    message, csr, cipher = _open("scepclient_pkcsreq_des_sha1.der")
    assert message.message_type == MessageType.PKCS_REQ.value  # type: ignore[attr-defined]
    assert cipher == "des" and message.signed.digest == "sha1"  # type: ignore[attr-defined]
    assert len(message.sender_nonce) == 16  # type: ignore[attr-defined]
    assert csr.is_signature_valid
    cn = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "vector-device"
    pw = csr.attributes.get_attribute_for_oid(x509.oid.AttributeOID.CHALLENGE_PASSWORD)
    assert pw.value == b"vector-challenge"
    assert message.signer.public_key() == csr.public_key()  # type: ignore[attr-defined]


def test_scepclient_renewalreq_vector_is_signed_by_the_existing_certificate() -> None:
    message, csr, _ = _open("scepclient_renewalreq_des_sha1.der")
    assert message.message_type == MessageType.RENEWAL_REQ.value  # type: ignore[attr-defined]
    signer = x509.load_pem_x509_certificate(
        (VECTORS / "scepclient_renewal_signer.pem").read_bytes())
    assert message.signer == signer  # type: ignore[attr-defined]


@pytest.mark.parametrize("name,cipher", [("pkcsreq_aes128_sha256.der", "aes128_cbc"),
                                         ("pkcsreq_aes256_sha512.der", "aes256_cbc"),
                                         ("pkcsreq_tripledes_sha1.der", "tripledes_3key")])
def test_own_client_vectors(name: str, cipher: str) -> None:
    _message, csr, got = _open(name)
    assert got == cipher and csr.is_signature_valid


def test_envelope_refuses_a_cipher_that_is_not_allowed() -> None:
    key, cert = _ra()
    message = parse_pkimessage((VECTORS / "scepclient_pkcsreq_des_sha1.der").read_bytes())
    with pytest.raises(ScepFailure) as info:
        envelope.decrypt(message.signed.content or b"", cert, key, ("aes128_cbc",))
    assert info.value.fail_info is FailInfo.BAD_ALG


def test_digest_not_allowed_is_badalg() -> None:
    message = parse_pkimessage((VECTORS / "scepclient_pkcsreq_des_sha1.der").read_bytes())
    with pytest.raises(ScepFailure) as info:
        signeddata.verify(message.signed, ("sha256",))
    assert info.value.fail_info is FailInfo.BAD_ALG


# Seeded: every xdist worker must collect the same parameters.
GARBAGE = random.Random(64).randbytes(64)  # noqa: S311 - test input, not a secret


@pytest.mark.parametrize("data", [b"", b"\x30", GARBAGE, b"\x30\x03\x02\x01\x01",
                                  b"\x30\x80" + b"\x00" * 10])
def test_garbage_is_badrequest(data: bytes) -> None:
    with pytest.raises(ScepFailure) as info:
        parse_pkimessage(data)
    assert info.value.fail_info is FailInfo.BAD_REQUEST


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ScepFailure):
        parse_pkimessage(b"\x30" * 100, max_bytes=50)


def test_certrep_round_trip_and_failure_has_no_content() -> None:
    key, ra = _ra()
    client = ScepClient(ra)
    inner = signeddata.degenerate([ra])
    enveloped = envelope.encrypt(inner, [client.signer], "aes256_cbc")
    rep = build_certrep(status=PKIStatus.SUCCESS, transaction_id="t", recipient_nonce=b"n" * 16,
                        signer=ra, key=key, enveloped=enveloped)
    reply = client.read(rep)
    assert reply.status is PKIStatus.SUCCESS and reply.certificate == ra
    assert reply.certrep.recipient_nonce == b"n" * 16
    fail = parse_certrep(build_certrep(status=PKIStatus.FAILURE, transaction_id="t",
                                       recipient_nonce=b"n" * 16, signer=ra, key=key,
                                       fail_info=FailInfo.BAD_TIME, fail_text="clock"), ra)
    assert fail.fail_info is FailInfo.BAD_TIME and fail.fail_text == "clock"
    assert fail.enveloped is None


def test_certrep_from_another_signer_is_rejected_by_the_client() -> None:
    key, ra = _ra()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = self_signed(other_key, "not the RA")
    rep = build_certrep(status=PKIStatus.PENDING, transaction_id="t", recipient_nonce=b"n" * 16,
                        signer=other, key=other_key)
    with pytest.raises(ScepFailure):
        parse_certrep(rep, ra)


def test_der_encoder_matches_asn1crypto() -> None:
    for value in (0, 1, 127, 128, 255, 256, 2**64, 2**159 + 5):
        assert der.integer(value) == core.Integer(value).dump()
    for oid in ("2.16.840.1.113733.1.9.2", "1.2.840.113549.1.7.2", "1.3.14.3.2.26"):
        assert der.oid(oid) == core.ObjectIdentifier(oid).dump()
    assert der.octets(b"x" * 300) == core.OctetString(b"x" * 300).dump()
    assert der.printable("19") == core.PrintableString("19").dump()


@pytest.mark.parametrize("name", sorted(p.name for p in VECTORS.glob("*.der")))
def test_fast_reader_agrees_with_asn1crypto(name: str) -> None:
    from enroll.protocols.scep import derreader

    data = (VECTORS / name).read_bytes()
    fast, general = signeddata._parse_fast(data), signeddata._parse_general(data)
    assert fast == general
    key, ra = _ra()
    assert fast.content is not None
    assert envelope._read_fast(fast.content, ra) == envelope._read_general(fast.content, ra)
    with pytest.raises(derreader.NotSimple):
        derreader.only(b"\x30\x80\x00\x00")  # indefinite length goes to asn1crypto


@pytest.mark.parametrize("cipher", ["aes128_cbc", "aes256_cbc", "tripledes_3key", "des"])
def test_ecdh_envelope_opens_with_openssl(tmp_path: Path, cipher: str) -> None:
    import datetime as dt
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    data = envelope.encrypt(b"degenerate pkcs7" * 9, [cert], cipher)
    assert envelope.open_with_ec_key(data, key) == b"degenerate pkcs7" * 9
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    pem = serialization.Encoding.PEM
    (tmp_path / "e.der").write_bytes(data)
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    out = subprocess.run([openssl, "cms", "-decrypt", "-inform", "DER", "-in",
                          str(tmp_path / "e.der"), "-recip", str(tmp_path / "c.pem"),
                          "-inkey", str(tmp_path / "k.pem")], capture_output=True,
                         timeout=30, check=True)
    assert out.stdout == b"degenerate pkcs7" * 9
