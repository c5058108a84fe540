"""CRLs and OCSP: core operations over the store, signed by the CA backends.

CRLs are kept in the ``crls`` table, so every worker serves the same one. A CRL is
re-signed on each revocation and whenever the stored one is older than the CA's
``crl_refresh`` (checked on request and by the scheduler, `enroll.scheduler`). CRL
numbers come from a per-CA counter in the database (``crl_numbers``), reserved before
signing; a conditional update stores a CRL only over a lower number, so the published
number only grows, across workers and hosts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll.clock import Clock
from enroll.config import CASettings
from enroll.store import queries
from enroll.store.db import Database

if TYPE_CHECKING:
    from enroll.ca_registry import CARegistry

Entry = tuple[str, dt.datetime, str | None]
"""(serial hex, revoked_at, reason) of one revoked certificate."""

# The CRL entry extensions per stored reason (none for unspecified, RFC 5280 §5.3.1).
_REASONS: dict[str | None, list[x509.Extension[x509.ExtensionType]]] = {
    r.value: [x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(r))]
    for r in x509.ReasonFlags
    if r not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)}


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """What the builders' setters store: naive UTC."""
    offset = value.utcoffset()
    return (value - offset if offset else value).replace(tzinfo=None)


def _hash_name(cert: x509.Certificate) -> str | None:
    alg = cert.signature_hash_algorithm
    return alg.name if alg is not None else None


class CRLService:
    def __init__(self, db: Database, cas: CARegistry, settings: Mapping[str, CASettings],
                 clock: Clock) -> None:
        self.db = db
        self.cas = cas
        self.settings = settings
        self.clock = clock
        # CRL entries of the last rebuild per CA, reused by the next one (a CRL is
        # re-signed on every revocation; building 100,000 entries costs ~0.5 s of CPU).
        self._entries: dict[str, dict[Entry, x509.RevokedCertificate]] = {}

    def current(self, ca: str) -> bytes:
        """DER of the CA's CRL, re-signed first if it is due."""
        backend = self.cas.get(ca)
        with self.db.read() as tx:
            stored = queries.get_crl(tx, ca)
        now = self.clock.now()
        refresh = dt.timedelta(seconds=self.settings[backend.name].crl_refresh)
        if stored is None or now - stored[1] >= refresh or now >= stored[2]:
            return self.regenerate(ca)
        return stored[3]

    def regenerate(self, ca: str) -> bytes:
        backend = self.cas.get(ca)
        settings = self.settings[ca]
        now = self.clock.now()
        with self.db.read() as tx:
            entries = list(queries.revoked_entries(tx, ca, now))
        # The number comes from the CA's counter in the database (reserved in its own
        # short write, so signing never holds the writer lock): it grows across workers
        # and hosts whatever their clocks say, and starts above every number published.
        with self.db.write() as tx:
            number = queries.next_crl_number(tx, ca)
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            backend.certificate.public_key())  # type: ignore[arg-type]
        # All entries go into one builder: add_revoked_certificate copies the list on every
        # call (quadratic: minutes for 100,000 entries). Times as the builder's setters
        # store them: naive UTC.
        builder = x509.CertificateRevocationListBuilder(
            last_update=_naive_utc(now),
            next_update=_naive_utc(now + dt.timedelta(seconds=settings.crl_validity)),
            extensions=[x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
                        x509.Extension(x509.AuthorityKeyIdentifier.oid, False, aki)],
            revoked_certificates=self._revoked(ca, entries))
        crl = backend.sign_crl(builder, _hash_name(backend.certificate))
        der = crl.public_bytes(serialization.Encoding.DER)
        with self.db.write() as tx:
            if not queries.put_crl(tx, ca, number, now, crl.next_update_utc or now, der):
                newer = queries.get_crl(tx, ca)
                if newer is not None:
                    return newer[3]
        return der

    def _revoked(self, ca: str, entries: list[Entry]) -> list[x509.RevokedCertificate]:
        """CRL entries, each built once (and without a builder chain: three copies)."""
        previous = self._entries.get(ca, {})
        built: dict[Entry, x509.RevokedCertificate] = {}
        for entry in entries:
            revoked = previous.get(entry)
            if revoked is None:
                serial, revoked_at, reason = entry
                revoked = x509.RevokedCertificateBuilder(
                    int(serial, 16), _naive_utc(revoked_at), _REASONS.get(reason, [])).build()
            built[entry] = revoked
        self._entries[ca] = built
        return list(built.values())

    def refresh_due(self) -> None:
        for ca in self.cas.names():
            self.current(ca)
