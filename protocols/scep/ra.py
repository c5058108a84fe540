"""The RA: the RSA key and certificate an endpoint decrypts and signs SCEP messages with.

The default CA is EC P-256, which cannot do RSA key transport, so every endpoint gets
its own RSA RA certificate issued by its CA through the core pipeline (it is in the
inventory and can be revoked like any certificate). The key is kept in
``scep_ra_keys`` sealed with the CA passphrase (`enroll.crypto.sealing`), so every worker
shares it. A new generation is issued when the current one is within `RENEW_BEFORE` of expiry.

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
from enroll.errors import ConfigError, Conflict
from enroll.model import EnrollmentRequest, Issued, Requester
from enroll.store.transaction import Tx

from . import store
from .settings import EndpointSettings

log = logging.getLogger("enroll.scep")
PEM = serialization.Encoding.PEM
RENEW_BEFORE = dt.timedelta(days=30)
WAIT_FOR_OTHER_WORKER = 15.0
RA_PROTOCOL = "scep-ra"
"""The request namespace of RA certificates: no client message is ever this protocol."""


@dataclass(frozen=True, slots=True)
class RA:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]
    """The CA's chain: the issuing CA first, the root last."""


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


def load_or_create(frontend: FrontEnd, endpoint: EndpointSettings, ca: str) -> RA:
    """The endpoint's RA for `ca`, issuing (or renewing) it on first use. Safe when
    several workers start at once: one wins, the others wait for its row."""
    now = frontend.clock.now()
    with frontend.db.read() as tx:
        stored = store.get_ra(tx, endpoint.label, ca)
    if stored is not None:
        ra = _unseal(stored, frontend.passphrase)
        if ra.certificate.not_valid_after_utc - now > RENEW_BEFORE:
            return RA(ra.certificate, ra.key, frontend.door.chain(ca))
    generation = stored.generation + 1 if stored else 1
    tid = f"ra:{ca}:{generation}"
    try:
        key, cert = _issue(frontend, endpoint, ca, tid)
    except Conflict:
        other = _wait_for_other_worker(frontend, endpoint, ca, generation)
        if other is not None:
            return other
        # Nobody stored this generation: an earlier start died between issuing its
        # certificate and storing the key (that key is lost). Issue it again under a
        # fresh transactionID; the orphaned certificate stays in the inventory.
        log.warning("SCEP %s: the RA certificate of transaction %s has no stored key; "
                    "issuing another", endpoint.label, tid)
        key, cert = _issue(frontend, endpoint, ca, f"{tid}:{secrets.token_hex(8)}")
    row = store.StoredRA(endpoint.label, ca, generation, cert.public_bytes(PEM).decode(),
                         seal_key(key, _passphrase(frontend.passphrase),
                                  context=_context(endpoint.label, ca)))
    try:
        with frontend.db.write() as tx:
            if stored is None:
                store.insert_ra(tx, row, now)
            elif not store.replace_ra(tx, row, stored.generation, now):
                raise IntegrityError("replace", None, Exception("renewed concurrently"))
    except IntegrityError:
        other = _wait_for_other_worker(frontend, endpoint, ca, generation)
        if other is None:
            raise ConfigError(f"scep.endpoints.{endpoint.label}", "another worker is "
                              "issuing the RA certificate and did not finish") from None
        return other
    return RA(cert, key, frontend.door.chain(ca))


def _wait_for_other_worker(frontend: FrontEnd, endpoint: EndpointSettings, ca: str,
                           generation: int) -> RA | None:
    """The RA another worker stores for `generation` (None if none did in time)."""
    deadline = time.monotonic() + WAIT_FOR_OTHER_WORKER
    while time.monotonic() < deadline:
        with frontend.db.read() as tx:
            stored = store.get_ra(tx, endpoint.label, ca)
        if stored is not None and stored.generation >= generation:
            ra = _unseal(stored, frontend.passphrase)
            return RA(ra.certificate, ra.key, frontend.door.chain(ca))
        time.sleep(0.1)
    return None


def reseal(tx: Tx, old: Secret, new: Secret) -> int:
    """Re-seal every RA key from `old` to `new` (``enroll ca rotate-passphrase``)."""
    keys = store.ra_key_blobs(tx)
    for endpoint, ca, blob in keys:
        fresh = sealing.reseal(blob, old, new, context=_context(endpoint, ca))
        if fresh != blob and not store.replace_ra_key_blob(tx, endpoint, ca, blob, fresh):
            raise sealing.UnsealError(f"{_context(endpoint, ca)} changed during the rotation")
    return len(keys)
