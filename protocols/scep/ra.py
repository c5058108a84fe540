"""The RA: the RSA key and certificate an endpoint decrypts and signs SCEP messages with.

Each endpoint gets its own RSA RA certificate issued by its CA through the core pipeline
(it is in the inventory and can be revoked like any certificate): RSA key transport needs
an RSA recipient whatever the CA's key. The key is kept in ``scep_ra_keys`` sealed with
the CA passphrase (`enroll.crypto.sealing`), so every worker shares it.

**Generations and rollover.** Every generation stays in ``scep_ra_keys``. When the
current RA has less than the endpoint's ``ra_overlap`` (default 30 days) left, the next
generation is issued and stored with ``activates_at`` half the overlap before the
current one expires: from then on GetNextCACert returns it (clients and MDM profiles can
learn it ahead), at ``activates_at`` it becomes current (GetCACert, CertRep signer), and
the old one still opens requests enveloped to it until its certificate expires. Every
worker reads the generations from the database on each use (`RAKeyring.snapshot`), so
workers and hosts agree, and a long-running worker switches without a restart. The
generation is the primary key, so two workers making the next one agree on one row.

The RA's request is made under its own protocol name, `RA_PROTOCOL` (``scep-ra``), with
the endpoint's label: the core scopes transactions by (protocol, endpoint,
transactionID) and a client's PKCSReq is always ``scep``, so no client can squat the
transactionID of a future RA generation. Until v1 the RA was requested as ``scep``
itself; such an RA is still found (it is read from ``scep_ra_keys``, never through
its request), and its next generation is requested under ``scep-ra``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.exc import IntegrityError

from enroll.config_values import Secret
from enroll.crypto import sealing
from enroll.crypto.sealing import UnsealError, seal_key, unseal_key
from enroll.door import FrontEnd
from enroll.errors import ConfigError, Conflict, DatabaseUnavailable
from enroll.model import EnrollmentRequest, Issued, Requester
from enroll.store.transaction import Tx

from . import store
from .settings import EndpointSettings

log = logging.getLogger("enroll.scep")
PEM = serialization.Encoding.PEM
RENEW_BEFORE = dt.timedelta(days=30)
"""The default ``ra_overlap``: how long before the current RA expires the next is made."""
WAIT_FOR_OTHER_WORKER = 15.0
RA_PROTOCOL = "scep-ra"
"""The request namespace of RA certificates: no client message is ever this protocol."""


@dataclass(frozen=True, slots=True)
class RA:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]
    """The CA's chain: the issuing CA first, the root last."""
    generation: int = 0
    activates_at: dt.datetime = dt.datetime.min.replace(tzinfo=dt.UTC)


def _passphrase(passphrase: Secret | None) -> Secret:
    if passphrase is None:
        raise ConfigError("ca_passphrase", "SCEP RA keys are encrypted with the CA passphrase")
    return passphrase


def _context(endpoint: str, ca: str) -> str:
    return f"scep/ra-key/{endpoint}/{ca}"


def _unseal(stored: store.StoredRA, passphrase: Secret | None) -> RA:
    try:
        key = unseal_key(stored.key_blob, _passphrase(passphrase),
                         context=_context(stored.endpoint, stored.ca))
    except UnsealError as exc:
        raise ConfigError("ca_passphrase", f"cannot decrypt the SCEP RA key of endpoint "
                          f"{stored.endpoint!r}: wrong passphrase?") from exc
    assert isinstance(key, rsa.RSAPrivateKey)
    return RA(x509.load_pem_x509_certificate(stored.certificate_pem.encode()), key, ())


def _issue(frontend: FrontEnd, endpoint: EndpointSettings, ca: str,
           transaction_id: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=endpoint.ra_key_size)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([
               x509.NameAttribute(NameOID.COMMON_NAME, f"enroll SCEP RA {endpoint.label}"),
               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "enroll")]))
           .sign(key, hashes.SHA256()))
    outcome = frontend.door.submit(EnrollmentRequest(
        csr=csr, profile=endpoint.ra_profile,
        requester=Requester(f"system:scep-ra:{endpoint.label}", "operator"),
        protocol=RA_PROTOCOL, endpoint=endpoint.label, transaction_id=transaction_id,
        ca=ca, attributes={"scep": "ra-certificate"}))
    if not isinstance(outcome, Issued):
        raise ConfigError(f"scep.endpoints.{endpoint.label}.ra_profile",
                          "the RA certificate's profile must approve automatically")
    return key, outcome.certificate


@dataclass(frozen=True, slots=True)
class Generations:
    """What one look at ``scep_ra_keys`` says, at one instant."""

    current: RA
    next: RA | None
    """The generation published ahead (GetNextCACert) that is not current yet."""
    live: tuple[RA, ...]
    """Every generation whose certificate has not expired, current first, then the next,
    then older ones: the RAs a request may be enveloped to."""


class RAKeyring:
    """The RA generations of one endpoint and CA. Rows are re-read on every `snapshot`
    (one small query); unsealed keys are cached by generation, which never changes."""

    def __init__(self, frontend: FrontEnd, endpoint: EndpointSettings, ca: str) -> None:
        self.frontend = frontend
        self.endpoint = endpoint
        self.ca = ca
        self._opened: dict[int, RA] = {}
        self._last: Generations | None = None

    def snapshot(self) -> Generations:
        """The generations now, issuing the first one, or the next one when the current
        has less than the overlap left (the database decides which worker's counts).
        While the database is unavailable, the last snapshot (RAs never change, a switch
        can wait), so a request still gets a signed "retry later" CertRep."""
        try:
            self._last = self._read()
        except DatabaseUnavailable:
            if self._last is None:
                raise
        return self._last

    def _read(self) -> Generations:
        now = self.frontend.clock.now()
        with self.frontend.db.read() as tx:
            rows = store.ra_generations(tx, self.endpoint.label, self.ca)
        if not rows:
            self._create(1, now, now)
            return self._read()
        gens = [self._open(generation, activates) for generation, activates in rows]
        active = [g for g in gens if g.activates_at <= now] or gens[:1]
        current = active[-1]
        pending = [g for g in gens if g.generation > current.generation]
        if not pending and self._due(current, now):
            try:
                self._create(current.generation + 1, now, self._activation(current, now))
            except Exception:  # the current RA still serves; the next request tries again
                log.exception("SCEP %s: issuing the next RA generation failed",
                              self.endpoint.label)
            else:  # made here or by another worker: either way the row is there now
                return self._read()
        nxt = pending[-1] if pending else None
        live = [current, *([nxt] if nxt else []),
                *(g for g in reversed(gens) if g is not current and g is not nxt)]
        return Generations(current, nxt, tuple(
            g for g in live if g is current or g.certificate.not_valid_after_utc > now))

    def _overlap(self, ra: RA) -> dt.timedelta:
        """The endpoint's overlap, at most half the RA's lifetime (a short-lived RA
        profile would otherwise ask for a next generation as soon as one takes over)."""
        lifetime = ra.certificate.not_valid_after_utc - ra.certificate.not_valid_before_utc
        return min(dt.timedelta(seconds=self.endpoint.ra_overlap), lifetime / 2)

    def _due(self, current: RA, now: dt.datetime) -> bool:
        return current.certificate.not_valid_after_utc - now < self._overlap(current)

    def _activation(self, current: RA, now: dt.datetime) -> dt.datetime:
        return max(now, current.certificate.not_valid_after_utc - self._overlap(current) / 2)

    def _open(self, generation: int, activates_at: dt.datetime) -> RA:
        cached = self._opened.get(generation)
        if cached is not None:
            return cached
        with self.frontend.db.read() as tx:
            stored = store.get_ra(tx, self.endpoint.label, self.ca, generation)
        assert stored is not None  # generations are never deleted
        opened = _unseal(stored, self.frontend.passphrase)
        ra = RA(opened.certificate, opened.key, self.frontend.door.chain(self.ca),
                generation, activates_at)
        self._opened[generation] = ra
        return ra

    def _create(self, generation: int, now: dt.datetime, activates_at: dt.datetime) -> bool:
        """Issue and store `generation`; False if another worker stored it first."""
        endpoint, ca = self.endpoint, self.ca
        tid = f"ra:{ca}:{generation}"
        try:
            key, cert = _issue(self.frontend, endpoint, ca, tid)
        except Conflict:
            if _wait_for_other_worker(self.frontend, endpoint, ca, generation):
                return False
            # Nobody stored this generation: an earlier start died between issuing its
            # certificate and storing the key (that key is lost). Issue it again under a
            # fresh transactionID; the orphaned certificate stays in the inventory.
            log.warning("SCEP %s: the RA certificate of transaction %s has no stored key; "
                        "issuing another", endpoint.label, tid)
            key, cert = _issue(self.frontend, endpoint, ca, f"{tid}:{secrets.token_hex(8)}")
        row = store.StoredRA(endpoint.label, ca, generation, cert.public_bytes(PEM).decode(),
                             seal_key(key, _passphrase(self.frontend.passphrase),
                                      context=_context(endpoint.label, ca)), activates_at)
        try:
            with self.frontend.db.write() as tx:
                store.insert_ra(tx, row, now)
        except IntegrityError:
            if not _wait_for_other_worker(self.frontend, endpoint, ca, generation):
                raise ConfigError(f"scep.endpoints.{endpoint.label}", "another worker is "
                                  "issuing the RA certificate and did not finish") from None
            return False
        if generation > 1:
            log.info("SCEP %s: RA generation %d issued (serial %x), current from %s",
                     endpoint.label, generation, cert.serial_number, activates_at.isoformat())
        return True


def load_or_create(frontend: FrontEnd, endpoint: EndpointSettings, ca: str) -> RA:
    """The endpoint's current RA for `ca`, issuing the first (or the next) generation
    when due. Safe when several workers start at once: one wins, the others use its row."""
    return RAKeyring(frontend, endpoint, ca).snapshot().current


def _wait_for_other_worker(frontend: FrontEnd, endpoint: EndpointSettings, ca: str,
                           generation: int) -> bool:
    """Whether another worker stores `generation` in time."""
    deadline = time.monotonic() + WAIT_FOR_OTHER_WORKER
    while time.monotonic() < deadline:
        with frontend.db.read() as tx:
            stored = store.get_ra(tx, endpoint.label, ca, generation)
        if stored is not None:
            return True
        time.sleep(0.1)
    return False


def reseal(tx: Tx, old: Secret, new: Secret) -> int:
    """Re-seal every RA key from `old` to `new` (``enroll ca rotate-passphrase``)."""
    keys = store.ra_key_blobs(tx)
    for endpoint, ca, blob in keys:
        fresh = sealing.reseal(blob, old, new, context=_context(endpoint, ca))
        if fresh != blob and not store.replace_ra_key_blob(tx, endpoint, ca, blob, fresh):
            raise sealing.UnsealError(f"{_context(endpoint, ca)} changed during the rotation")
    return len(keys)
