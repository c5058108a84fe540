"""A CSR an operator pastes or posts as text: PEM (``-----BEGIN CERTIFICATE
REQUEST-----``) or base64 of the DER, whitespace ignored. Parsed and its signature
verified by `enroll.csr.load_csr`; anything else is `MalformedInput` (or `BadCSR`,
`BadPublicKey`: the class `load_csr` raised, its detail prefixed ``csr:``), never
another exception."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509

from enroll.csr import MAX_CSR_BYTES, load_csr
from enroll.errors import BadCSR, MalformedInput

MAX_TEXT = 12 * 1024
"""Characters of text accepted (a PEM CSR of an RSA-8192 key is under 5 KiB)."""


def load(text: str) -> x509.CertificateSigningRequest:
    text = text.strip()
    if not text:
        raise MalformedInput("csr: empty")
    if len(text) > MAX_TEXT:
        raise MalformedInput(f"csr: longer than {MAX_TEXT} characters")
    if text.startswith("-----BEGIN"):
        data, pem = text.encode("utf-8", "replace"), True
    else:
        try:
            data, pem = base64.b64decode("".join(text.split()), validate=True), False
        except (binascii.Error, ValueError):
            raise MalformedInput("csr: neither a PEM CSR nor base64 of a DER one") from None
    try:
        return load_csr(data, MAX_CSR_BYTES, pem=pem)
    except (MalformedInput, BadCSR) as exc:  # all load_csr raises
        raise type(exc)(f"csr: {exc.detail}") from None
