"""Loading a CSR from client bytes: bounded, parsed once, signature checked.

Every door loads client CSRs through `load_csr`, so the size bound, the parse and the
self-signature check (and their client-safe refusals) are the same whichever protocol
the request came through.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cryptography import x509

from enroll.errors import CSRAlgorithmUnsupported, CSRSignatureInvalid, MalformedInput

MAX_CSR_BYTES = 32 * 1024
"""The default bound on a CSR's encoded size, checked before parsing. A PKCS#10 with an
RSA-8192 key and 100 DNS names of 253 characters (ACME's identifier limit) is about
27 KiB; real device CSRs are a few hundred bytes to 2 KiB."""


def load_csr(data: bytes, max_bytes: int = MAX_CSR_BYTES, *,
             pem: bool = False) -> x509.CertificateSigningRequest:
    """Parse a DER PKCS#10 request (PEM only with ``pem=True``) and verify its
    self-signature.

    Raises `MalformedInput` for input longer than `max_bytes` or that does not parse, and
    `BadCSR` when the signature does not verify or uses an algorithm we cannot check.
    """
    if len(data) > max_bytes:
        raise MalformedInput(f"CSR larger than {max_bytes} bytes")
    try:
        csr = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise MalformedInput("not a PKCS#10 certificate request") from exc
    check_csr_signature(csr)
    return csr


_VERIFIED: OrderedDict[x509.CertificateSigningRequest, None] = OrderedDict()
_VERIFIED_MAX = 256
_verified_lock = threading.Lock()


def check_csr_signature(csr: x509.CertificateSigningRequest) -> None:
    """Raise `CSRAlgorithmUnsupported` or `CSRSignatureInvalid` (both `BadCSR`) unless
    the CSR's self-signature verifies.

    A door checks the signature when it loads the CSR and the pipeline checks again, so
    the last few CSRs that verified are remembered (CSRs compare equal exactly when
    their DER is equal, so a remembered one is the same bytes that verified): one
    signature check per request instead of two or three."""
    with _verified_lock:
        if csr in _VERIFIED:
            return
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported key or algorithm  # noqa: BLE001
        raise CSRAlgorithmUnsupported("CSR signature algorithm or key is not supported") \
            from exc
    if not valid:
        raise CSRSignatureInvalid("CSR signature does not verify")
    with _verified_lock:
        _VERIFIED[csr] = None
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)

