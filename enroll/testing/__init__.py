"""Helpers for testing enroll and plugins: keys, CSRs and a ready configuration.

    from enroll.testing import make_csr, make_key, test_config
    cfg = test_config(tmp_path, plugins=["my_policy"])
    ctx = build_context(cfg)

The protocol clients the test suite uses live in submodules:
`enroll.testing.scep_client` (`ScepClient`), `enroll.testing.est_client` (request bodies
and answer readers) and `enroll.testing.acme_client` (`AcmeClient`, `Http01Responder`).
They import the protocol front ends' wire modules, so this package is test support
only: nothing under `enroll serve` imports it, and this module imports no submodule.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from enroll import config as config_mod
from enroll.crypto.keys import PrivateKey, generate_key
from enroll.model import EnrollmentRequest, Requester

TEST_PASSPHRASE = "test passphrase for CA keys"  # noqa: S105 - tests only


def make_key(key_type: str = "ec-p256") -> PrivateKey:
    """A fresh private key (``ec-p256``, ``ec-p384``, ``rsa-2048``…, ``ed25519``)."""
    if key_type.startswith("rsa-") and int(key_type[4:]) < 2048:
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(65537, int(key_type[4:]))
    return generate_key(key_type)


_FIRST_NAME = "first name"


def make_csr(key: PrivateKey | None = None, *, cn: str | None = _FIRST_NAME,
             dns: Iterable[str] = (), ips: Iterable[str] = (), emails: Iterable[str] = (),
             uris: Iterable[str] = (), subject: Sequence[tuple[Any, str]] = (),
             key_usage: x509.KeyUsage | None = None, eku: Sequence[x509.ObjectIdentifier] = (),
             ca: bool | None = None,
             attributes: Sequence[tuple[x509.ObjectIdentifier, bytes]] = ()
             ) -> x509.CertificateSigningRequest:
    """A signed PKCS#10 request with the given names and requested extensions. The CN
    is, unless given, the first DNS name (as ACME clients do), else
    ``device.example.com``."""
    key = key or make_key()
    dns, ips = list(dns), list(ips)
    if cn == _FIRST_NAME:
        cn = dns[0] if dns else ips[0] if ips else "device.example.com"
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    attrs += [x509.NameAttribute(oid, value) for oid, value in subject]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    names += [x509.RFC822Name(e) for e in emails]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                        critical=True)
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def request(csr: x509.CertificateSigningRequest, profile: str = "device", *,
            protocol: str = "core", **kw: Any) -> EnrollmentRequest:
    """An `EnrollmentRequest` from a test operator."""
    return EnrollmentRequest(csr=csr, profile=profile,
                             requester=kw.pop("requester", Requester("test", "operator")),
                             protocol=protocol, **kw)


def count_stored(ctx: Any) -> tuple[int, int]:
    """(certificates, requests) in the store of an `AppContext`, leaving out enroll's own
    (``system:*`` requesters: the HTTPS listener's and the SCEP RA's certificates), so
    a test can assert that a refused request stored nothing."""
    with ctx.db.read() as tx:
        certs = tx.scalar("SELECT count(*) FROM certificates WHERE requester NOT LIKE ?",
                          ("system:%",))
        reqs = tx.scalar("SELECT count(*) FROM requests WHERE requester NOT LIKE ?",
                         ("system:%",))
    return int(certs), int(reqs)


def test_config(data_dir: Path, database_url: str | None = None,
                **overrides: Any) -> config_mod.Config:
    """The embedded default in `data_dir` with a test passphrase; top-level `overrides`
    replace tables (``profiles={...}``) or settings."""
    raw = copy.deepcopy(config_mod.default_raw_config())
    raw.update({"data_dir": str(data_dir), "ca_passphrase": TEST_PASSPHRASE})
    if database_url:
        raw["database_url"] = database_url
    raw.update(overrides)
    return config_mod.from_raw(raw)


test_config.__test__ = False  # type: ignore[attr-defined]
