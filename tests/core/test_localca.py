"""The local software CA: named CAs, encrypted keys, serials."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.errors import ConfigError
from enroll.model import Issued
from enroll.testing import make_csr, request

Build = Callable[..., AppContext]

ORGS = {
    "root": {"backend": "local", "subject": "CN=Group Root", "key_type": "ec-p384"},
    "org-a": {"backend": "local", "parent": "root", "subject": "CN=Org A Issuing,O=A"},
    "org-b": {"backend": "local", "parent": "root", "subject": "CN=Org B Issuing,O=B",
              "key_type": "rsa-2048"},
}


def test_several_named_cas_each_sign_their_own_profiles(build: Build) -> None:
    ctx = build(cas=ORGS, profiles={
        "a": {"ca": "org-a", "san": {"dns": ["*"]}},
        "b": {"ca": "org-b", "san": {"dns": ["*"]}}})
    assert isinstance(ctx.cas.get("root").certificate.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(ctx.cas.get("org-b").certificate.public_key(), rsa.RSAPublicKey)
    a = ctx.authority.submit(request(make_csr(dns=["a.example"]), "a"))
    b = ctx.authority.submit(request(make_csr(dns=["b.example"]), "b"))
    # An endpoint may bind its own intermediate, overriding the profile's CA.
    c = ctx.authority.submit(request(make_csr(dns=["c.example"]), "a", ca="org-b"))
    assert isinstance(a, Issued) and isinstance(b, Issued) and isinstance(c, Issued)
    assert a.certificate.issuer.rfc4514_string() == "CN=Org A Issuing,O=A"
    assert b.certificate.issuer == c.certificate.issuer
    assert c.certificate.issuer == ctx.cas.get("org-b").certificate.subject
    assert a.chain[-1] == b.chain[-1] == ctx.cas.get("root").certificate
    for ca in ("org-a", "org-b"):
        inter = ctx.cas.get(ca).certificate
        bc = inter.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca and bc.path_length == 0
        inter.verify_directly_issued_by(ctx.cas.get("root").certificate)
    record = ctx.authority.certificate(c.serial_hex)
    assert record is not None and record.ca == "org-b"


def test_wrong_passphrase_fails_start_up_naming_the_key(
        make_config: Callable[..., config_mod.Config]) -> None:
    cfg = make_config()
    build_context(cfg).db.dispose()
    wrong = make_config(ca_passphrase="not the passphrase used")  # noqa: S106
    with pytest.raises(ConfigError) as info:
        build_context(wrong)
    assert info.value.key == "ca_passphrase"
    assert "wrong passphrase" in info.value.message


def test_missing_passphrase_refuses_to_create_a_clear_key(tmp_path: Path) -> None:
    raw = config_mod.default_raw_config()
    raw.update({"data_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as info:
        build_context(config_mod.from_raw(raw))
    assert info.value.key == "ca_passphrase"
