"""Certificates from clients (a SCEP signer, an EST client certificate): bounded,
decoded once, typed refusals only.

`cryptography` decodes a certificate lazily: the issuer, the subject, the extensions and
the key are parsed when first read, and each can raise then, with exceptions that are
not all `ValueError`s (`TypeError` for a string type an attribute may not have,
`x509.DuplicateExtension`, `x509.UnsupportedGeneralNameType`). `load_certificate` reads
everything a door or the core reads later, so a certificate it returns never raises
afterwards, and what it raises is `MalformedInput` only.
"""

from __future__ import annotations

from cryptography import x509

from enroll.csr import PARSE_ERRORS, decode_fields
from enroll.errors import MalformedInput

MAX_CERTIFICATE_BYTES = 64 * 1024


def load_certificate(data: bytes, *, pem: bool = False,
                     max_bytes: int = MAX_CERTIFICATE_BYTES,
                     public_key: bool = True) -> x509.Certificate:
    """Parse a DER (or, with ``pem=True``, PEM) certificate and decode its fields.

    With ``public_key=False`` the key is left for the caller to read (SCEP answers a key
    it cannot use with badAlg, not as a malformed message)."""
    if not isinstance(data, bytes) or not data or len(data) > max_bytes:
        raise MalformedInput("not a certificate")
    try:
        cert = x509.load_pem_x509_certificate(data) if pem \
            else x509.load_der_x509_certificate(data)
    except PARSE_ERRORS as exc:
        raise MalformedInput("not a certificate") from exc
    return decoded(cert, public_key=public_key)


def decoded(cert: x509.Certificate, *, public_key: bool = True) -> x509.Certificate:
    """`cert` once every field has been decoded; `MalformedInput` if one does not."""
    try:
        cert.issuer.public_bytes()
        cert.subject.public_bytes()
        decode_fields((cert.issuer, cert.subject), cert.extensions)
        _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
        if public_key:
            cert.public_key()
    except PARSE_ERRORS as exc:
        raise MalformedInput("the certificate's fields do not parse") from exc
    return cert
