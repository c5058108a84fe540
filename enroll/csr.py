"""Loading a CSR from client bytes: bounded, parsed once, signature checked."""

from __future__ import annotations

from cryptography import x509

from enroll.errors import BadCSR, MalformedInput

MAX_CSR_BYTES = 64 * 1024


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER PKCS#10 request and verify its self-signature.

    Raises `MalformedInput` for oversized or unparseable input and `BadCSR` when the
    signature does not verify.
    """
    if len(data) > MAX_CSR_BYTES:
        raise MalformedInput(f"CSR larger than {MAX_CSR_BYTES} bytes")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise MalformedInput("not a PKCS#10 certificate request") from exc
    check_csr_signature(csr)
    return csr


def check_csr_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported key or algorithm  # noqa: BLE001
        raise BadCSR("CSR signature algorithm or key is not supported") from exc
    if not valid:
        raise BadCSR("CSR signature does not verify")
