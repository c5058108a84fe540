"""The local software CA: keys generated here, sealed with the CA passphrase
(`enroll.crypto.sealing`) in the shared database; the clear key exists only in memory."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from enroll.ca import CABackend, CAStore
from enroll.config import CASettings, Config
from enroll.config_values import Secret
from enroll.crypto.keys import PrivateKey, generate_key, signing_hash
from enroll.crypto.sealing import UnsealError, reseal, seal_key, unseal_key
from enroll.crypto.serials import new_serial
from enroll.errors import ConfigError, NotInitialised
from enroll.model import IssuanceRequest, StoredCA
from enroll.store import queries
from enroll.store.transaction import Tx

BACKEND = "local"
MISSING = ("CA private keys are encrypted at rest: set ca_passphrase_file in the "
           "config or ENROLL_CA_PASSPHRASE")


def _ca_hash(key_type: str) -> str:
    return "sha384" if key_type in ("ec-p384", "rsa-4096") else "sha256"


class LocalCA:
    """A CA whose key is opened by `unseal` on first use (or at once: `open_ca`)."""

    def __init__(self, name: str, key: PrivateKey | Callable[[], PrivateKey],
                 certificate: x509.Certificate,
                 chain: tuple[x509.Certificate, ...]) -> None:
        self.name = name
        self._key_value: PrivateKey | None = None if callable(key) else key
        self._unseal: Callable[[], PrivateKey] | None = key if callable(key) else None
        self._key_lock = threading.Lock()
        self.certificate = certificate
        self.chain = chain
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            certificate.public_key())  # type: ignore[arg-type]

    @property
    def _key(self) -> PrivateKey:
        if self._key_value is None:
            with self._key_lock:
                if self._key_value is None:
                    assert self._unseal is not None
                    self._key_value = self._unseal()
        return self._key_value

    def unseal(self) -> None:
        """Open the key now (raises `ConfigError` for a missing or wrong passphrase)."""
        self._key  # noqa: B018 - the property unseals

    def issue(self, request: IssuanceRequest) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(request.subject)
                   .issuer_name(self.certificate.subject)
                   .public_key(request.public_key)
                   .serial_number(request.serial)
                   .not_valid_before(request.not_before)
                   .not_valid_after(request.not_after))
        for ext in request.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        builder = builder.add_extension(self._aki, critical=False)
        return builder.sign(self._key, signing_hash(self._key, request.hash_name))  # type: ignore[arg-type]

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder,
                 hash_name: str | None) -> x509.CertificateRevocationList:
        return builder.issuer_name(self.certificate.subject).sign(
            self._key, signing_hash(self._key, hash_name))  # type: ignore[arg-type]

    def sign_ocsp(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        return builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate).sign(
            self._key, signing_hash(self._key, "sha256"))


def _ca_extensions(key: PrivateKey, path_length: int | None,
                   crl_url: str | None) -> list[x509.ExtensionType]:
    exts: list[x509.ExtensionType] = [
        x509.BasicConstraints(ca=True, path_length=path_length),
        x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                      crl_sign=True, encipher_only=False, decipher_only=False),
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
    ]
    if crl_url:
        exts.append(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None,
            reasons=None, crl_issuer=None)]))
    return exts


def create_ca(name: str, settings: CASettings, parent: CABackend | None,
           config: Config) -> tuple[PrivateKey, x509.Certificate, tuple[x509.Certificate, ...]]:
    key = generate_key(settings.key_type)
    subject = x509.Name.from_rfc4514_string(settings.subject)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    not_after = now + dt.timedelta(days=settings.validity_days)
    if parent is None:
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(new_serial())
                   .not_valid_before(now).not_valid_after(not_after))
        for ext in _ca_extensions(key, None, None):
            builder = builder.add_extension(ext, critical=isinstance(
                ext, (x509.BasicConstraints, x509.KeyUsage)))
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False)
        cert = builder.sign(key, signing_hash(key, _ca_hash(settings.key_type)))  # type: ignore[arg-type]
        return key, cert, (cert,)
    crl_url = f"{config.public_http_url}/crl/{parent.name}.crl"
    exts = [x509.Extension(e.oid, isinstance(e, (x509.BasicConstraints, x509.KeyUsage)), e)
            for e in _ca_extensions(key, 0, crl_url)]
    cert = parent.issue(IssuanceRequest(
        public_key=key.public_key(), subject=subject, serial=new_serial(), not_before=now,
        not_after=min(not_after, parent.certificate.not_valid_after_utc),
        extensions=tuple(exts), hash_name=_ca_hash(settings.key_type)))
    return key, cert, (cert, *parent.chain)


def _context(name: str) -> str:
    return f"localca/ca-key/{name}"


def open_ca(name: str, settings: CASettings, store: CAStore, parent: CABackend | None,
            config: Config, *, create: bool = True, unseal: bool = True) -> LocalCA:
    """The stored CA, created first if missing and `create`. Its key is unsealed now if
    `unseal`, else when it first signs (read-only commands need no passphrase)."""
    passphrase = config.ca_passphrase
    context = _context(name)
    stored = store.get(name)
    if stored is None:
        if not create:
            raise NotInitialised(f"CA {name!r} is configured but not in the database: run "
                                 '"enroll init" or "enroll serve" first')
        if passphrase is None:
            raise ConfigError("ca_passphrase", MISSING)
        key, cert, chain = create_ca(name, settings, parent, config)
        stored = store.put(StoredCA(name=name, backend=BACKEND, certificate=cert, chain=chain,
                                    key_blob=seal_key(key, passphrase, context=context),
                                    parent=settings.parent))
    blob = stored.key_blob

    def open_key() -> PrivateKey:
        if passphrase is None:
            raise ConfigError("ca_passphrase", MISSING)
        try:
            return unseal_key(blob, passphrase, context=context)
        except UnsealError as exc:
            raise ConfigError("ca_passphrase",
                              f"cannot decrypt the key of CA {name!r}: wrong passphrase?") from exc

    ca = LocalCA(name, open_key, stored.certificate, stored.chain)
    if unseal:
        ca.unseal()  # fail start-up with a clear message rather than at the first signature
    return ca


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":")


def reseal_keys(tx: Tx, old: Secret, new: Secret) -> int:
    """Re-seal the key of every local CA from `old` to `new` (``enroll ca
    rotate-passphrase``); pre-v1 PEM keys come out in the current format."""
    keys = queries.ca_key_blobs(tx, BACKEND)
    for name, blob in keys:
        fresh = reseal(blob, old, new, context=_context(name))
        if fresh != blob and not queries.replace_ca_key_blob(tx, name, blob, fresh):
            raise UnsealError(f"{_context(name)} changed during the rotation")
    return len(keys)
