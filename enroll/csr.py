"""Loading a CSR from client bytes: bounded, parsed once, signature checked.

Every door loads client CSRs through `load_csr`, so the size bound, the parse and the
self-signature check (and their client-safe refusals) are the same whichever protocol
the request came through.

`cryptography` parses a CSR lazily: the extensions, the public key and the subject's
string values are decoded when first read, and each can raise then (two
subjectAltName extensions raise `x509.DuplicateExtension`, which is not a
`ValueError`; an RSA key with e = 1 or an EC point off its curve raise `ValueError`;
a UTF8String that is not UTF-8 raises when its value is read). `load_csr` reads all of
it once, so a CSR it returns never raises later in the pipeline, and what it raises is
only `MalformedInput` or a `BadCSR` refinement.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from enroll.errors import (
    BadPublicKey,
    CSRAlgorithmUnsupported,
    CSRSignatureInvalid,
    MalformedInput,
)

MAX_CSR_BYTES = 32 * 1024
"""The default bound on a CSR's encoded size, checked before parsing. A PKCS#10 with an
RSA-8192 key and 100 DNS names of 253 characters (ACME's identifier limit) is about
27 KiB; real device CSRs are a few hundred bytes to 2 KiB."""

MAX_RSA_BITS = 16384
MAX_RSA_EXPONENT_BITS = 64
"""Bounds on an RSA key checked before its signature is: a verification costs the
exponent's length in modular squarings of the modulus' size, so an unbounded key
inside 32 KiB is seconds of CPU. OpenSSL refuses exponents over 64 bits for large
moduli too."""
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
    x509.InvalidVersion, UnsupportedAlgorithm)
"""What `cryptography` raises for X.509 bytes it cannot parse (several are not
`ValueError`s); other loaders of client certificates catch the same set."""


def load_csr(data: bytes, max_bytes: int = MAX_CSR_BYTES, *,
             pem: bool = False) -> x509.CertificateSigningRequest:
    """Parse a DER PKCS#10 request (PEM only with ``pem=True``) and verify its
    self-signature.

    Raises `MalformedInput` for input longer than `max_bytes` or that does not parse
    (the subject, attributes and extensions included), `BadPublicKey` for a key that is
    invalid or of a kind enroll never certifies, and `BadCSR` when the signature does
    not verify or uses an algorithm we cannot check. Nothing else.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedInput("not a PKCS#10 certificate request")
    if len(data) > max_bytes:
        raise MalformedInput(f"CSR larger than {max_bytes} bytes")
    try:
        csr = x509.load_pem_x509_csr(bytes(data)) if pem \
            else x509.load_der_x509_csr(bytes(data))
    except PARSE_ERRORS as exc:
        raise MalformedInput("not a PKCS#10 certificate request") from exc
    _check_public_key(csr)
    _force_contents(csr)
    check_csr_signature(csr)
    return csr


def _check_public_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except UnsupportedAlgorithm as exc:
        raise BadPublicKey("the CSR's key algorithm or curve is not supported") from exc
    except (ValueError, TypeError) as exc:
        raise BadPublicKey("the CSR's public key is not valid") from exc
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        if numbers.n.bit_length() > MAX_RSA_BITS \
                or numbers.e.bit_length() > MAX_RSA_EXPONENT_BITS:
            raise BadPublicKey("the CSR's RSA key is out of bounds")
    elif not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                        | ed448.Ed448PublicKey):
        raise BadPublicKey(f"the CSR's key type ({type(key).__name__}) is not supported")


def _force_contents(csr: x509.CertificateSigningRequest) -> None:
    """Decode what the pipeline and the protocols read later, so it fails here."""
    try:
        decode_fields((csr.subject,), csr.extensions)
        csr.subject.rfc4514_string()
        for attribute in csr.attributes:
            _ = attribute.value
    except PARSE_ERRORS as exc:
        raise MalformedInput("the CSR's subject, attributes or extensions do not "
                             "parse") from exc


def decode_fields(names: Iterable[x509.Name], extensions: x509.Extensions) -> None:
    """Read every attribute value of `names` and every extension (the names of a SAN,
    the OIDs of an EKU) that `cryptography` decodes lazily; raises one of
    `PARSE_ERRORS` if one does not decode. Shared by the CSR and certificate loaders."""
    for name in names:
        for attribute in name:
            _ = attribute.value
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName | x509.ExtendedKeyUsage):
            list(value)


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

