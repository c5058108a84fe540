"""Certificates built from the profile: extensions, validity, chain verification, lint."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from pkilint import loader
from pkilint.pkix import certificate, extension, name
from pkilint.validation import ValidationFindingSeverity

from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import BadCSR
from enroll.model import Issued
from enroll.testing import make_csr, make_key, request

Build = Callable[..., AppContext]
Counts = Callable[[AppContext], tuple[int, int]]


def issue(ctx: AppContext, profile: str, key_type: str = "ec-p256", **kw: object) -> Issued:
    kw.setdefault("dns", ["host.example.com"])
    outcome = ctx.authority.submit(request(make_csr(make_key(key_type), **kw), profile))  # type: ignore[arg-type]
    assert isinstance(outcome, Issued)
    return outcome


def key_usage(cert: x509.Certificate) -> set[str]:
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    names = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
    return {n for n in names if getattr(ku.value, n)}


# -- the template --------------------------------------------------------------------

def test_key_usage_is_adapted_to_the_key_type(sqlite_context: AppContext) -> None:
    # device allows digitalSignature + keyEncipherment; RFC 5480 §3: no keyEncipherment
    # for EC keys; RFC 8410 §5: Ed25519 signs only.
    assert key_usage(issue(sqlite_context, "device", "rsa-2048").certificate) == {
        "digital_signature", "key_encipherment"}
    for profile, key_type in (("device", "ec-p256"), ("server", "ed25519")):
        cert = issue(sqlite_context, profile, key_type).certificate
        assert key_usage(cert) == {"digital_signature"}


def test_certificate_carries_the_profile_not_the_csr(sqlite_context: AppContext) -> None:
    cert = issue(sqlite_context, "server", cn="web.example.com", dns=["web.example.com"],
                 ca=False).certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False and bc.value.path_length is None
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is False and list(san.value) == [x509.DNSName("web.example.com")]
    issuer = sqlite_context.authority.chain("issuing")[0]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert 64 <= cert.serial_number.bit_length() <= 127


def test_crl_ocsp_and_aia_urls_follow_the_profile(sqlite_context: AppContext) -> None:
    base = sqlite_context.config.public_http_url
    cert = issue(sqlite_context, "device").certificate
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in cdp[0].full_name or []] == [f"{base}/crl/issuing.crl"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {(a.access_method, a.access_location.value) for a in aia} == {
        (AuthorityInformationAccessOID.OCSP, f"{base}/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{base}/ca/issuing.der")}
    listener = issue(sqlite_context, "tls-listener").certificate
    for cls in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            listener.extensions.get_extension_for_class(cls)


def test_san_is_critical_when_the_subject_is_empty(build: Build) -> None:
    ctx = build(extra_profiles={"nameless": {"ca": "issuing", "subject": {},
                                             "san": {"dns": ["*"]}}})
    cert = issue(ctx, "nameless", cn="ignored").certificate
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_validity_follows_the_profile_with_a_small_backdate(context: AppContext) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = issue(context, "server").certificate
    assert cert.not_valid_before_utc <= before
    assert before - cert.not_valid_before_utc <= dt.timedelta(seconds=62)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=90, seconds=60)


def test_validity_is_capped_at_the_issuing_ca_not_after(build: Build) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    ctx = build(clock=clock)
    ca_end = ctx.authority.chain("issuing")[0].not_valid_after_utc
    clock.advance(ca_end - clock.now() - dt.timedelta(days=10))
    cert = issue(ctx, "device").certificate
    assert cert.not_valid_after_utc == ca_end


def test_nothing_is_issued_under_an_expired_ca(build: Build, stored: Counts) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    ctx = build(clock=clock)
    clock.advance(ctx.authority.chain("issuing")[0].not_valid_after_utc - clock.now()
                  + dt.timedelta(days=1))
    with pytest.raises(BadCSR, match="has expired"):
        ctx.authority.submit(request(make_csr()))
    assert stored(ctx)[0] == 0


# -- chain verification (cryptography's RFC 5280 path builder) ------------------------

def _verifier_store(ctx: AppContext) -> tuple[Store, list[x509.Certificate]]:
    chain = list(ctx.authority.chain("issuing"))
    return Store([chain[-1]]), chain[:-1]


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048", "ed25519"])
def test_server_certificates_verify_as_tls_servers(sqlite_context: AppContext,
                                                   key_type: str) -> None:
    issued = issue(sqlite_context, "server", key_type, dns=["api.example.com"],
                   ips=["192.0.2.7"])
    store, intermediates = _verifier_store(sqlite_context)
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(
        "api.example.com"))
    path = verifier.verify(issued.certificate, intermediates)
    assert path[-1] == issued.chain[-1]
    ip_verifier = PolicyBuilder().store(store).build_server_verifier(
        x509.IPAddress(ipaddress.ip_address("192.0.2.7")))
    ip_verifier.verify(issued.certificate, intermediates)


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048"])
def test_device_certificates_verify_as_tls_clients(sqlite_context: AppContext,
                                                   key_type: str) -> None:
    issued = issue(sqlite_context, "device", key_type, dns=["dev.example.com"])
    store, intermediates = _verifier_store(sqlite_context)
    verified = PolicyBuilder().store(store).build_client_verifier().verify(
        issued.certificate, intermediates)
    assert verified.chain[0] == issued.certificate
    assert x509.DNSName("dev.example.com") in list(verified.subjects or [])


def test_device_certificate_does_not_verify_as_a_server(sqlite_context: AppContext) -> None:
    issued = issue(sqlite_context, "device", dns=["dev.example.com"])
    store, intermediates = _verifier_store(sqlite_context)
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(
        "dev.example.com"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(issued.certificate, intermediates)


# -- pkilint (RFC 5280 linter) -------------------------------------------------------

def _lint(cert: x509.Certificate) -> list[str]:
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS,
                                               extension.EXTENSION_MAPPINGS),
        [certificate.create_issuer_validator_container([]),
         certificate.create_validity_validator_container(),
         certificate.create_subject_validator_container([]),
         certificate.create_extensions_validator_container([]),
         certificate.create_spki_validator_container([])])
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(
        cert.public_bytes(serialization.Encoding.DER), "issued")
    return [f"{r.node.path}: {d.finding.code} ({d.finding.severity.name}) {d.message or ''}"
            for r in validator.validate(doc.root) for d in r.finding_descriptions
            if d.finding.severity <= ValidationFindingSeverity.ERROR]


@pytest.mark.parametrize(("profile", "key_type", "names"), [
    ("device", "ec-p256", {"dns": ["dev.example.com"], "emails": ["dev@example.com"],
                           # pkilint checks URIs with `validators.url`, which refuses
                           # urn: and spiffe: names RFC 5280 §4.2.1.6 allows.
                           "uris": ["https://devices.example.com/d/1"]}),
    ("device", "rsa-2048", {"dns": ["dev.example.com"]}),
    ("server", "ec-p384", {"dns": ["a.example.com", "b.example.com"], "ips": ["2001:db8::1"]}),
    ("server", "rsa-2048", {"dns": ["a.example.com"]}),
    ("server", "ed25519", {"dns": ["a.example.com"]}),
    # pkilint wants a dot in a dNSName, so "localhost" (valid RFC 1034 §3.5 syntax, and
    # in the embedded listener's own certificate) is linted as an error; use an FQDN.
    ("tls-listener", "ec-p256", {"dns": ["enroll.example.com"],
                                 "ips": ["127.0.0.1", "::1"]}),
])
def test_every_default_profile_output_lints_without_errors(
        sqlite_context: AppContext, profile: str, key_type: str,
        names: dict[str, list[str]]) -> None:
    cert = issue(sqlite_context, profile, key_type, **names).certificate
    assert _lint(cert) == []


def test_ca_certificates_lint_without_errors(sqlite_context: AppContext) -> None:
    for ca in ("root", "issuing"):
        assert _lint(sqlite_context.authority.chain(ca)[0]) == []


def test_rsa_issuing_ca_output_lints_and_verifies(build: Build) -> None:
    cas = {"root": {"backend": "local", "subject": "CN=RSA Root,O=enroll",
                    "key_type": "rsa-2048", "validity_days": 3650},
           "issuing": {"backend": "local", "parent": "root", "subject": "CN=RSA Issuing",
                       "key_type": "rsa-2048", "validity_days": 1825}}
    ctx = build(cas=cas)
    issued = issue(ctx, "server", "rsa-2048", dns=["rsa.example.com"])
    assert _lint(issued.certificate) == []
    assert _lint(issued.chain[0]) == []
    store, intermediates = _verifier_store(ctx)
    PolicyBuilder().store(store).build_server_verifier(x509.DNSName(
        "rsa.example.com")).verify(issued.certificate, intermediates)


def test_a_ca_profile_issues_a_constrained_sub_ca_from_a_ca_true_csr(
        build: Build, vector: Callable[[str], bytes]) -> None:
    ctx = build(extra_profiles={"sub-ca": {
        "ca": "root", "validity": "365d", "is_ca": True, "path_length": 0,
        "key_usage": ["digital_signature", "key_cert_sign", "crl_sign"],
        "subject": {"CN": "csr", "O": "enroll sub-CAs"}, "key_types": ["ec-p256"]}})
    csr = x509.load_pem_x509_csr(vector("openssl_ca_true.csr.pem"))
    outcome = ctx.authority.submit(request(csr, "sub-ca"))
    assert isinstance(outcome, Issued)
    cert = outcome.certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert key_usage(cert) == {"digital_signature", "key_cert_sign", "crl_sign"}
    assert cert.issuer == ctx.authority.chain("root")[0].subject
    assert _lint(cert) == []


def test_signature_hash_and_backdate_follow_the_profile(build: Build) -> None:
    ctx = build(extra_profiles={"strong": {"ca": "issuing", "signature_hash": "sha384",
                                           "backdate": "5m", "validity": "1d",
                                           "san": {"dns": ["*"]}}})
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = issue(ctx, "strong").certificate
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    assert before - dt.timedelta(minutes=5, seconds=2) <= cert.not_valid_before_utc <= \
        before - dt.timedelta(minutes=5) + dt.timedelta(seconds=2)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=1,
                                                                                minutes=5)
    assert isinstance(issue(ctx, "device").certificate.signature_hash_algorithm,
                      hashes.SHA256)


def test_identity_profiles_output_lints_without_errors(build: Build) -> None:
    """The subject rules' encodings (UTF8String CN, PrintableString serialNumber and C,
    a CN-only certificate, a CN rewritten as its SAN) lint clean."""
    ctx = build(extra_profiles={
        "mdm": {"ca": "issuing", "identity": "subject.CN",
                "subject": {"CN": {"from": "required", "allow": ["dev-*", "Gerät-*"]},
                            "serialNumber": "csr", "C": "csr", "O": "Example Corp"},
                "extended_key_usage": ["client_auth"]}})
    from cryptography.x509.oid import NameOID

    for kw in ({"cn": "Gerät-7", "subject": [(NameOID.SERIAL_NUMBER, "SN 0042"),
                                              (NameOID.COUNTRY_NAME, "DE")]},
               {"cn": "dev-42"}):
        cert = issue(ctx, "mdm", "ec-p256", dns=[], **kw).certificate
        assert _lint(cert) == []
    cert = issue(ctx, "server", "ec-p256", cn="WWW.Example.com.",
                 dns=["www.example.com"]).certificate
    assert cert.subject.rfc4514_string() == "CN=www.example.com"
    assert _lint(cert) == []
