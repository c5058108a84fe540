"""EST wire formats (RFC 7030 §4, RFC 8951): pure functions, no I/O.

- request bodies: base64 of a DER PKCS#10 (``application/pkcs10``, RFC 7030 §4.2.1);
  whitespace and line breaks are tolerated; a PEM body (``-----BEGIN …``) is not the
  RFC's encoding and is refused with a message naming the one expected;
- ``application/pkcs7-mime; smime-type=certs-only``: base64 of a degenerate SignedData;
- serverkeygen's ``multipart/mixed`` answer (RFC 7030 §4.4.2).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from enroll.errors import MalformedInput

MAX_CSR_BODY = 64 * 1024
CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
CSRATTRS = "application/csrattrs"
PKCS10 = "application/pkcs10"
PKCS8 = "application/pkcs8"
SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"
_WHITESPACE = b" \t\r\n\v\f"
PEM_REFUSED = ("the body is PEM; RFC 7030 §4.2.1 expects the base64 encoding of the DER "
               "PKCS#10 without PEM armour (openssl req -outform DER | openssl base64)")


def decode_base64_body(body: bytes, limit: int = MAX_CSR_BODY) -> bytes:
    """The DER inside a base64 body. Raises `MalformedInput`.

    RFC 8951 §3: the body is base64 whatever Content-Transfer-Encoding says.
    """
    if len(body) > limit:
        raise MalformedInput("request body too large")
    if b"-----BEGIN" in body[:256]:
        raise MalformedInput(PEM_REFUSED)
    compact = body.translate(None, _WHITESPACE)
    if not compact:
        raise MalformedInput("empty request body")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedInput("request body is not base64") from None


def b64(der: bytes) -> bytes:
    """Base64 with line breaks every 76 characters (what openssl and curl users see)."""
    return base64.encodebytes(der)


def certs_only(certs: list[x509.Certificate]) -> bytes:
    """RFC 7030 §4.1.3 / §4.2.3: base64 of a certs-only CMS SignedData."""
    return b64(pkcs7.serialize_certificates(certs, serialization.Encoding.DER))


def multipart_key_and_cert(key_der: bytes, certs: list[x509.Certificate],
                           encrypted: bool = False) -> tuple[bytes, str]:
    """RFC 7030 §4.4.2: the private key then the certificate. The key is a PKCS#8
    (the TLS channel protects it) or, when the client asked for it encrypted, the
    EnvelopedData `protocols.est.keyenvelope` made. Returns (body, content type)."""
    boundary = f"est-{secrets.token_hex(12)}"
    parts = [
        (f"Content-Type: {SERVER_GENERATED_KEY if encrypted else PKCS8}", b64(key_der)),
        (f"Content-Type: {CERTS_ONLY}", certs_only(certs)),
    ]
    out = bytearray()
    for headers, payload in parts:
        out += f"--{boundary}\r\n{headers}\r\nContent-Transfer-Encoding: base64\r\n\r\n" \
            .encode()
        out += payload.replace(b"\n", b"\r\n")
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f'multipart/mixed; boundary="{boundary}"'
