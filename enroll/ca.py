"""The CA-backend contract (what the core asks of a signer) and the CA store it uses.

A backend signs three things: certificates, CRLs and OCSP responses. It holds its key;
the core holds everything else. `CAStore` lets a backend persist its certificate, chain
and an opaque key blob in the shared database, so every worker opens the same CA.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.x509 import ocsp

from enroll.model import IssuanceRequest, StoredCA


@runtime_checkable
class CABackend(Protocol):
    name: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """This CA's certificate first, then its issuers up to and including the root."""

    def issue(self, request: IssuanceRequest) -> x509.Certificate:
        """Sign `request` exactly as given, adding only issuer name and AKI."""
        ...

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder,
                 hash_name: str | None) -> x509.CertificateRevocationList:
        """Set the issuer and sign the CRL."""
        ...

    def sign_ocsp(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        """Add the responder id and sign an OCSP response."""
        ...


class CAStore(Protocol):
    def get(self, name: str) -> StoredCA | None: ...

    def put(self, ca: StoredCA) -> StoredCA:
        """Store a newly created CA; if another worker stored one first, return theirs."""
        ...
