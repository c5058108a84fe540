"""A minimal EST client side (RFC 7030): encoding requests and reading answers.

Used by the tests, and handy for scripting against the server.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

WELL_KNOWN = "/.well-known/est"
PKCS10_HEADERS = {"content-type": "application/pkcs10"}


def csr_body(csr: x509.CertificateSigningRequest) -> bytes:
    """RFC 7030 §4.2.1: base64 of the DER request."""
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def certs_from(body: bytes) -> list[x509.Certificate]:
    """The certificates of a base64 certs-only PKCS#7 answer."""
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))


def serverkeygen_parts(body: bytes, content_type: str) -> tuple[bytes, list[x509.Certificate]]:
    """RFC 7030 §4.4.2: (PKCS#8 DER of the key, certificates) from a multipart answer."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    key_der = b""
    certs: list[x509.Certificate] = []
    for part in message.iter_parts():
        payload = base64.b64decode(str(part.get_payload(decode=False)))
        if part.get_content_type() == "application/pkcs8":
            key_der = payload
        elif part.get_content_type() == "application/pkcs7-mime":
            certs = pkcs7.load_der_pkcs7_certificates(payload)
    return key_der, certs
