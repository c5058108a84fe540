"""Loading client CSR bytes: bounded, parsed once, signature checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll.csr import MAX_CSR_BYTES, check_csr_signature, load_csr
from enroll.errors import (
    BadCSR,
    CSRAlgorithmUnsupported,
    CSRSignatureInvalid,
    MalformedInput,
)
from enroll.testing import make_csr

DER = serialization.Encoding.DER


def test_pem_loads_only_when_asked_and_der_by_default(vector: Callable[[str], bytes]) -> None:
    pem = vector("openssl_ec_p256_san.csr.pem")
    csr = load_csr(pem, pem=True)
    assert load_csr(csr.public_bytes(DER)) == csr
    with pytest.raises(MalformedInput, match="not a PKCS#10 certificate request"):
        load_csr(pem)


@pytest.mark.parametrize("name", ["garbage.csr.pem", "truncated.csr.der"])
def test_unparseable_csr_is_malformed_input(vector: Callable[[str], bytes], name: str) -> None:
    with pytest.raises(MalformedInput, match="not a PKCS#10 certificate request"):
        load_csr(vector(name), pem=name.endswith(".pem"))


def test_csr_with_a_flipped_signature_byte_is_a_bad_csr(
        vector: Callable[[str], bytes]) -> None:
    with pytest.raises(CSRSignatureInvalid, match="CSR signature does not verify") as info:
        load_csr(vector("rsa2048_bad_signature.csr.der"))
    assert isinstance(info.value, BadCSR)


def test_a_signature_that_cannot_be_checked_is_an_unsupported_algorithm() -> None:
    class Unverifiable:
        @property
        def is_signature_valid(self) -> bool:
            raise ValueError("unsupported signature algorithm")

    with pytest.raises(CSRAlgorithmUnsupported, match="not supported") as info:
        check_csr_signature(cast(x509.CertificateSigningRequest, Unverifiable()))
    assert isinstance(info.value, BadCSR)


def test_oversized_csr_is_refused_before_parsing(monkeypatch: Any) -> None:
    def never(data: bytes) -> None:
        raise AssertionError("parsed an oversized CSR")

    monkeypatch.setattr(x509, "load_der_x509_csr", never)
    with pytest.raises(MalformedInput, match=f"larger than {MAX_CSR_BYTES} bytes"):
        load_csr(b"\x30" * (MAX_CSR_BYTES + 1))


def test_a_door_may_pass_its_own_limit() -> None:
    der = make_csr().public_bytes(DER)
    assert load_csr(der, max_bytes=len(der)).public_bytes(DER) == der
    with pytest.raises(MalformedInput, match=f"larger than {len(der) - 1} bytes"):
        load_csr(der, max_bytes=len(der) - 1)


def test_a_verified_csr_is_remembered_but_a_tampered_twin_is_not() -> None:
    csr = make_csr()
    check_csr_signature(csr)
    check_csr_signature(x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER)))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature: same request, other bytes
    with pytest.raises(CSRSignatureInvalid):
        check_csr_signature(x509.load_der_x509_csr(bytes(der)))
