"""Loading client CSR bytes: bounded, parsed once, signature checked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from enroll.csr import MAX_CSR_BYTES, load_csr
from enroll.errors import BadCSR, MalformedInput
from enroll.testing import make_csr


def test_pem_and_der_csrs_load_and_verify(vector: Callable[[str], bytes]) -> None:
    csr = load_csr(vector("openssl_ec_p256_san.csr.pem"))
    assert load_csr(csr.public_bytes(serialization.Encoding.DER)) == csr


@pytest.mark.parametrize("name", ["garbage.csr.pem", "truncated.csr.der"])
def test_unparseable_csr_is_malformed_input(vector: Callable[[str], bytes], name: str) -> None:
    with pytest.raises(MalformedInput, match="not a PKCS#10 certificate request"):
        load_csr(vector(name))


def test_csr_with_a_flipped_signature_byte_is_a_bad_csr(
        vector: Callable[[str], bytes]) -> None:
    with pytest.raises(BadCSR, match="CSR signature does not verify"):
        load_csr(vector("rsa2048_bad_signature.csr.der"))


def test_oversized_csr_is_refused_before_parsing() -> None:
    pem = make_csr().public_bytes(serialization.Encoding.PEM)
    with pytest.raises(MalformedInput, match="larger than"):
        load_csr(pem + b" " * MAX_CSR_BYTES)
