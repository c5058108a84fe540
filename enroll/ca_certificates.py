"""Every CA certificate is also a certificate row, so an operator can revoke a CA.

A root is stored as a certificate of itself, an intermediate as a certificate of its
parent: the parent's CRL then lists a revoked intermediate (`enroll.revocation`), and
OCSP answers ``revoked`` for it (the responder looks the serial up under the issuer).
`store_all` runs when ``enroll init``/``enroll serve``/`enroll.create_app` open the CAs,
so data dirs created before this existed are backfilled at their next start. Issuance
from a CA whose certificate, or an issuer's, is revoked is refused in
`enroll.authority` (`PolicyDenied`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError

from enroll.ca_registry import CARegistry
from enroll.clock import Clock
from enroll.config import CASettings
from enroll.crypto.keys import spki_sha256
from enroll.errors import NotFound
from enroll.store import queries
from enroll.store.db import Database


def issuer_of(name: str, settings: Mapping[str, CASettings]) -> str:
    """The CA whose CRL lists CA `name`'s certificate: its parent, or itself (a root)."""
    return settings[name].parent or name


def store_all(db: Database, cas: CARegistry, settings: Mapping[str, CASettings],
              clock: Clock) -> list[str]:
    """Store each CA's certificate as a certificate row if it is not yet one (race-safe:
    a second worker's insert of the same serial is skipped). Returns the CAs stored."""
    stored: list[str] = []
    for name in cas.names():
        cert = cas.get(name).certificate
        now = clock.now()
        try:
            with db.write() as tx:
                if not queries.insert_ca_certificate(
                        tx, cert=cert, issuer_ca=issuer_of(name, settings), name=name,
                        key_fingerprint=spki_sha256(cert.public_key()), now=now):
                    continue
                queries.add_audit(tx, at=now, type="ca.certificate_stored", actor="system",
                                  serial=format(cert.serial_number, "x"),
                                  details={"ca": name, "issuer": issuer_of(name, settings)})
        except IntegrityError:  # another worker (PostgreSQL) stored it at the same time
            continue
        stored.append(name)
    return stored


def serial_of(cas: CARegistry, name: str) -> str:
    """The stored serial (hex) of CA `name`'s certificate (`NotFound` for no such CA)."""
    try:
        return format(cas.get(name).certificate.serial_number, "x")
    except NotFound:
        raise NotFound(f"no CA named {name!r}") from None
