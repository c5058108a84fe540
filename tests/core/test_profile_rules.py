"""Every profile rule, accepted and refused, with the reason a client sees."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from enroll import config as config_mod
from enroll.errors import BadCSR, ConfigError
from enroll.profile_rules import AcceptedRequest, accept
from enroll.profiles import SUBJECT_ATTRS, Profile
from enroll.testing import make_csr, make_key


def profile(name: str = "p", **entry: Any) -> Profile:
    """A profile parsed exactly as start-up parses it (embedded CAs)."""
    raw = copy.deepcopy(config_mod.default_raw_config())
    raw["data_dir"] = "/nonexistent/enroll-test"
    if entry:
        raw["profiles"] = {name: {"ca": "issuing", **entry}}
    return config_mod.from_raw(raw).profiles[name]


def refused(p: Profile, csr: x509.CertificateSigningRequest) -> str:
    with pytest.raises(BadCSR) as info:
        accept(p, csr)
    return info.value.detail


ANY_NAMES = {"dns": ["*"], "ip": ["0.0.0.0/0", "::/0"], "email": ["*"], "uri": ["*"]}


# -- key types and sizes ------------------------------------------------------------------

def test_rsa_1024_key_is_refused_as_too_weak(vector: Callable[[str], bytes]) -> None:
    csr = x509.load_pem_x509_csr(vector("openssl_rsa1024.csr.pem"))
    assert refused(profile("device"), csr) == \
        "RSA key of 1024 bits is too weak (minimum 2048)"


def test_rsa_1024_is_refused_even_by_a_profile_listing_every_key_type() -> None:
    p = profile(key_types=list(config_mod.KEY_TYPES), san=ANY_NAMES)
    assert "too weak" in refused(p, make_csr(make_key("rsa-1024")))


def test_rsa_2048_key_is_accepted() -> None:
    assert accept(profile("device"), make_csr(make_key("rsa-2048"))).key_type == "rsa-2048"


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384"])
def test_ec_p256_and_p384_keys_are_accepted(key_type: str) -> None:
    assert accept(profile("device"), make_csr(make_key(key_type))).key_type == key_type


def test_key_type_outside_the_profile_list_is_refused_with_the_allowed_list() -> None:
    p = profile(key_types=["ec-p256"])
    assert refused(p, make_csr(make_key("ec-p384"))) == (
        "key type ec-p384 is not allowed by profile 'p' (allowed: ec-p256)")


def test_key_types_enroll_does_not_issue_for_are_refused() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k.example.com")])
    p521 = x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        ec.generate_private_key(ec.SECP521R1()), hashes.SHA256())
    ed = x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        ed448.Ed448PrivateKey.generate(), None)
    every = profile(key_types=list(config_mod.KEY_TYPES), san=ANY_NAMES)
    assert refused(every, p521).startswith("key type ec-p521 is not allowed by profile 'p'")
    assert refused(every, ed).startswith("key type ed448 is not allowed by profile 'p'")


def test_ed25519_is_refused_where_not_allowed_and_accepted_where_allowed() -> None:
    csr = make_csr(make_key("ed25519"), dns=["ed.example.com"])
    assert "key type ed25519 is not allowed by profile 'device'" in refused(profile("device"),
                                                                           csr)
    assert accept(profile("server"), csr).key_type == "ed25519"


# -- basic constraints, key usage, EKU ------------------------------------------------------

def test_csr_asking_for_ca_true_is_refused(vector: Callable[[str], bytes]) -> None:
    csr = x509.load_pem_x509_csr(vector("openssl_ca_true.csr.pem"))
    assert refused(profile("device"), csr) == (
        "CSR asks for CA:TRUE; profile 'device' issues end-entity certificates only")


def test_csr_asking_for_ca_false_is_accepted() -> None:
    accept(profile("device"), make_csr(ca=False))


def _ku(**on: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
             "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def test_key_usage_inside_the_profile_is_accepted() -> None:
    accept(profile("device"), make_csr(key_usage=_ku(digital_signature=True,
                                                     key_encipherment=True)))


def test_key_usage_outside_the_profile_is_refused_naming_the_usage() -> None:
    csr = make_csr(key_usage=_ku(digital_signature=True, content_commitment=True))
    assert refused(profile("device"), csr) == (
        "key usage content_commitment is not allowed by profile 'device'")


def test_key_cert_sign_asked_by_a_leaf_csr_is_refused() -> None:
    csr = make_csr(key_usage=_ku(key_cert_sign=True, crl_sign=True))
    assert refused(profile("device"), csr) == (
        "key usage key_cert_sign, crl_sign is not allowed by profile 'device'")


def test_eku_inside_the_profile_is_accepted() -> None:
    accept(profile("server"), make_csr(dns=["a.example.com"],
                                       eku=[ExtendedKeyUsageOID.SERVER_AUTH]))


def test_eku_outside_the_profile_is_refused_naming_the_oid(
        vector: Callable[[str], bytes]) -> None:
    csr = x509.load_pem_x509_csr(vector("openssl_eku_code_signing.csr.pem"))
    assert refused(profile("device"), csr) == (
        "extended key usage 1.3.6.1.5.5.7.3.3 is not allowed by profile 'device'")
    csr = make_csr(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert "1.3.6.1.5.5.7.3.1 is not allowed" in refused(profile("device"), csr)


# -- SAN rules ---------------------------------------------------------------------------

def test_dns_exact_pattern_accepts_that_name_only() -> None:
    p = profile(san={"dns": ["api.example.com"]})
    assert accept(p, make_csr(dns=["API.example.com."])).names == (
        x509.DNSName("api.example.com"),)
    assert refused(p, make_csr(dns=["www.example.com"])) == (
        "DNS name 'www.example.com' is not allowed by profile 'p'")


def test_dns_suffix_pattern_accepts_names_below_and_refuses_the_apex_and_lookalikes() -> None:
    p = profile(san={"dns": ["*.corp.example"]})
    accept(p, make_csr(dns=["a.corp.example", "b.c.corp.example"]))
    assert "'corp.example' is not allowed" in refused(p, make_csr(dns=["corp.example"]))
    assert "'evilcorp.example' is not allowed" in refused(p, make_csr(
        dns=["evilcorp.example"]))


def test_dns_star_pattern_accepts_any_valid_name() -> None:
    accept(profile(san={"dns": ["*"]}), make_csr(dns=["anything.example.org"]))


def test_dns_name_with_an_invalid_label_is_refused() -> None:
    p = profile(san={"dns": ["*"]})
    assert refused(p, make_csr(dns=["bad_label.example.com"])) == (
        "DNS name 'bad_label.example.com' has an invalid label")
    assert "starting or ending with '-'" in refused(p, make_csr(dns=["-a.example.com"]))


def test_wildcard_names_follow_the_profile_switch_and_must_sit_below_a_domain() -> None:
    allowed = profile(san={"dns": ["*.corp.example"]})
    assert accept(allowed, make_csr(dns=["*.corp.example"])).names == (
        x509.DNSName("*.corp.example"),)
    no_wild = profile(san={"dns": ["*"], "allow_wildcards": False})
    assert refused(no_wild, make_csr(dns=["*.corp.example"])) == (
        "wildcard names are not allowed by this profile")
    assert refused(profile(san={"dns": ["*"]}), make_csr(dns=["*.com"])) == (
        "wildcard '*.com' must sit below a registered domain")
    assert "invalid label" in refused(profile(san={"dns": ["*"]}),
                                      make_csr(dns=["a.*.example.com"]))


def test_ip_addresses_must_fall_in_an_allowed_network() -> None:
    p = profile(san={"ip": ["10.0.0.0/8", "2001:db8::/32"]})
    accept(p, make_csr(ips=["10.1.2.3", "2001:db8::1"]))
    assert refused(p, make_csr(ips=["192.168.1.1"])) == (
        "IP address 192.168.1.1 is not allowed by profile 'p'")
    assert "2001:db9::1 is not allowed" in refused(p, make_csr(ips=["2001:db9::1"]))


def test_email_addresses_must_be_in_an_allowed_domain() -> None:
    p = profile(san={"email": ["example.com"]})
    accept(p, make_csr(cn=None, emails=["alice@EXAMPLE.com"]))
    assert refused(p, make_csr(cn=None, emails=["mallory@example.net"])) == (
        "e-mail domain 'example.net' is not allowed by profile 'p'")
    assert refused(p, make_csr(cn=None, emails=["no-at-sign"])) == (
        "malformed e-mail address: e-mail address must have exactly one '@'")


def test_uris_must_start_with_an_allowed_prefix() -> None:
    p = profile(san={"uri": ["spiffe://corp.example/"]})
    accept(p, make_csr(cn=None, uris=["spiffe://corp.example/svc/api"]))
    assert refused(p, make_csr(cn=None, uris=["https://evil.example/"])) == (
        "URI 'https://evil.example/' is not allowed by profile 'p'")


def test_name_types_the_profile_has_no_rule_for_are_refused() -> None:
    p = profile(san={"dns": ["*"]})
    assert "e-mail domain 'example.com' is not allowed" in refused(
        p, make_csr(emails=["a@example.com"]))
    assert "IP address 10.0.0.1 is not allowed" in refused(p, make_csr(ips=["10.0.0.1"]))


def test_internationalised_names_are_accepted_as_a_labels() -> None:
    accepted = accept(profile(san={"dns": ["*.example"]}),
                      make_csr(dns=["XN--BCHER-KVA.example"]))
    assert accepted.names == (x509.DNSName("xn--bcher-kva.example"),)


def test_name_types_without_rules_such_as_directory_names_are_refused() -> None:
    key = make_key()
    dir_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))
           .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(dir_name)]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    assert refused(profile(san=ANY_NAMES), csr) == "name type DirectoryName is not allowed"


def test_more_names_than_max_names_is_refused() -> None:
    p = profile(san={"dns": ["*"], "max_names": 3})
    accept(p, make_csr(dns=[f"n{i}.example.com" for i in range(3)]))
    assert refused(p, make_csr(dns=[f"n{i}.example.com" for i in range(4)])) == (
        "4 names requested; profile 'p' allows 3")


def test_required_san_missing_is_refused() -> None:
    assert refused(profile("server"), make_csr(cn="no-sans.example.com")) == (
        "profile 'server' requires at least one subject alternative name")
    accept(profile("device"), make_csr(cn="no-sans.example.com"))


def test_duplicate_names_are_carried_once() -> None:
    accepted = accept(profile(san={"dns": ["*"]}),
                      make_csr(dns=["a.example.com", "A.EXAMPLE.COM"]))
    assert accepted.names == (x509.DNSName("a.example.com"),)


# -- subject template --------------------------------------------------------------------

_ATTR_NAMES = {oid: name for name, oid in SUBJECT_ATTRS.items()}


def _subject(accepted: AcceptedRequest) -> list[tuple[str, str]]:
    return [(_ATTR_NAMES[a.oid], str(a.value)) for a in accepted.subject]


def test_subject_fields_from_csr_are_copied_and_others_dropped() -> None:
    csr = make_csr(cn="dev-1", subject=[(NameOID.ORGANIZATION_NAME, "Acme"),
                                        (NameOID.COUNTRY_NAME, "FR"),
                                        (NameOID.LOCALITY_NAME, "Paris")])
    assert _subject(accept(profile("device"), csr)) == [("CN", "dev-1"), ("O", "Acme")]


def test_fixed_subject_fields_override_the_csr() -> None:
    p = profile(subject={"CN": "csr", "O": "Fixed Org", "C": "DE"})
    csr = make_csr(cn="dev-1", subject=[(NameOID.ORGANIZATION_NAME, "Evil Org")])
    assert _subject(accept(p, csr)) == [("CN", "dev-1"), ("O", "Fixed Org"), ("C", "DE")]


def test_required_subject_field_missing_from_the_csr_is_refused() -> None:
    p = profile(subject={"CN": "csr", "serialNumber": "required"})
    assert refused(p, make_csr(cn="dev-1")) == (
        "profile 'p' requires serialNumber in the CSR subject")
    ok = accept(p, make_csr(cn="dev-1", subject=[(NameOID.SERIAL_NUMBER, "A123")]))
    assert ("serialNumber", "A123") in _subject(ok)


def test_csr_with_neither_subject_nor_names_is_refused() -> None:
    assert refused(profile("device"), make_csr(cn=None)) == (
        "the certificate would have neither a subject nor any names")


def test_the_cn_must_be_one_of_the_names_unless_it_is_the_identity() -> None:
    p = profile(san={"dns": ["*.corp.example"]})
    assert p.identity == "san.dns"
    ok = accept(p, make_csr(cn="A.corp.example.", dns=["a.corp.example"]))
    assert _subject(ok) == [("CN", "a.corp.example")]  # written as the SAN is
    assert ok.identity == "san.dns:a.corp.example"
    # The issue's finding: under san.dns = ["*.corp.example"], CN=www.bank.example.
    assert refused(p, make_csr(cn="www.bank.example", dns=["a.corp.example"])) == (
        "common name 'www.bank.example' must also be one of the certificate's subject "
        "alternative names (profile 'p')")
    # A CN-only certificate on a profile identified by DNS names.
    assert refused(p, make_csr(cn="a.corp.example")) == (
        "common name 'a.corp.example' must also be one of the certificate's subject "
        "alternative names (profile 'p')")
    # identity = subject.CN: CN-only device certificates, only for the allowed CNs.
    d = profile(identity="subject.CN", san={"dns": ["*.corp.example"]},
                subject={"CN": {"from": "csr", "allow": ["dev-*"]}})
    assert accept(d, make_csr(cn="dev-42")).identity == "subject.CN:dev-42"
    assert refused(d, make_csr(cn="www.bank.example")) == (
        "subject CN 'www.bank.example' is not allowed by profile 'p'")


def test_control_characters_and_bad_strings_in_the_subject_are_a_bad_csr() -> None:
    p = profile(identity="subject.CN", subject={"CN": "csr", "serialNumber": "csr",
                                                 "C": "csr"})
    assert refused(p, make_csr(cn="dev\x00.corp.example")) == (
        "subject CN contains control characters")
    assert refused(p, make_csr(cn="dev\x9b1")) == "subject CN contains control characters"
    # A device may send serialNumber as a UTF8String; the certificate may only carry a
    # PrintableString (X.520), so the CSR is refused, not failed at signing time.
    utf8 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d"), x509.NameAttribute(
        NameOID.SERIAL_NUMBER, "a@b", _type=_ASN1Type.UTF8String)])
    bad = x509.CertificateSigningRequestBuilder().subject_name(utf8).sign(
        make_key(), hashes.SHA256())  # type: ignore[arg-type]
    assert refused(p, bad) == (
        "subject serialNumber may only hold PrintableString characters (letters, digits, "
        "space and '()+,-./:=?)")
    ok = accept(p, make_csr(cn="Gerät-7", subject=[(NameOID.SERIAL_NUMBER, "A-1")]))
    cn = ok.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
    assert cn.value == "Gerät-7" and cn._type.name == "UTF8String"


def test_cn_in_sans_is_a_removed_setting() -> None:
    with pytest.raises(ConfigError, match="removed"):
        profile(cn_in_sans=True)
