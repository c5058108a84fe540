"""URI and e-mail names match a profile's patterns on boundaries (scheme + authority
exactly, path at a segment boundary; e-mail domain exactly or at a label boundary), bad
syntax is refused, and patterns are checked at start-up with the key path. Through the
SCEP and EST doors: tests/protocols/test_key_rules_doors.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography import x509

from enroll import config as config_mod
from enroll.errors import BadCSR, ConfigError
from enroll.names import check_general_names
from enroll.profiles import Profile


def _profile(**san: Any) -> Profile:
    raw = copy.deepcopy(config_mod.default_raw_config())
    raw["data_dir"] = "/nonexistent/enroll-test"
    raw["profiles"] = {"p": {"ca": "issuing", "san": san}}
    return config_mod.from_raw(raw).profiles["p"]


def _uri(p: Profile, uri: str) -> str | None:
    """None if admitted, else the refusal. The names are built as a parsed CSR builds
    them (cryptography validates only names it is asked to encode)."""
    try:
        name = x509.UniformResourceIdentifier._init_without_validation(uri)
        check_general_names([name], p.san, p.name)
    except BadCSR as exc:
        return exc.detail
    return None


def _email(p: Profile, address: str) -> str | None:
    try:
        name = x509.RFC822Name._init_without_validation(address)
        check_general_names([name], p.san, p.name)
    except BadCSR as exc:
        return exc.detail
    return None


# -- URIs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "uri"), [
    ("https://corp.example", "https://corp.example/"),
    ("https://corp.example", "https://corp.example/a/b?q=1"),
    ("https://corp.example", "HTTPS://Corp.Example/x"),
    ("https://corp.example/", "https://corp.example"),
    ("spiffe://corp/ns/prod", "spiffe://corp/ns/prod"),
    ("spiffe://corp/ns/prod", "spiffe://corp/ns/prod/sa/api"),
    ("spiffe://corp/ns/prod/", "spiffe://corp/ns/prod/x"),
    ("spiffe://corp", "spiffe://corp/anything"),
    ("https://corp.example:8443/dev", "https://corp.example:8443/dev/1"),
])
def test_uri_patterns_admit_on_boundaries(pattern: str, uri: str) -> None:
    assert _uri(_profile(uri=[pattern]), uri) is None


@pytest.mark.parametrize(("pattern", "uri"), [
    ("https://corp.example", "https://corp.example.evil.net/"),  # the old prefix bug
    ("https://corp.example", "https://corp.examplex/"),
    ("https://corp.example", "https://corp.example:8443/"),
    ("https://corp.example", "http://corp.example/"),
    ("spiffe://corp", "spiffe://corporate/ns/prod"),  # the old trust-domain bug
    ("spiffe://corp/ns/prod", "spiffe://corp/ns/production"),
    ("spiffe://corp/ns/prod", "spiffe://corp/ns"),
    ("spiffe://corp/ns/prod", "spiffe://other/ns/prod"),
])
def test_uri_patterns_refuse_what_only_shares_a_prefix(pattern: str, uri: str) -> None:
    assert _uri(_profile(uri=[pattern]), uri) == \
        f"URI {uri!r} is not allowed by profile 'p'"


@pytest.mark.parametrize(("uri", "reason"), [
    ("//corp.example/x", "not absolute"),
    ("corp.example/x", "not absolute"),
    ("1https://corp.example/", "not absolute"),
    ("https://user:pw@corp.example/", "userinfo"),
    ("https://corp.example@evil.net/", "userinfo"),
    ("https://corp.example/a b", "outside RFC 3986"),
    ("https://corp.example/\x00", "outside RFC 3986"),
    ("https://corp.example/\ttab", "outside RFC 3986"),
    ("https://corp.example\\.evil.net/", "outside RFC 3986"),
    ("https://corp.exämple/", "outside RFC 3986"),
    ("https://corp.example:99999999/", "does not parse"),
    ("https://corp.example/ns/prod/../admin", "dot segments"),
    ("https://corp.example/ns/prod/%2E%2e/admin", "dot segments"),
    ("spiffe://corp/ns/prod#frag", "query or a fragment"),
    ("spiffe://corp/ns/prod?x=1", "query or a fragment"),
    ("spiffe://Corp/ns", "trust domain"),
    ("spiffe://corp:8443/ns", "trust domain"),
    ("spiffe://corp/ns//prod", "non-empty"),
    ("spiffe://corp/ns/prod/", "non-empty"),
    ("spiffe://corp/ns/pr%6fd", "non-empty"),
    ("https://corp.example/" + "a" * 1024, "longer than 1024"),
])
def test_malformed_uris_are_refused_even_under_a_star(uri: str, reason: str) -> None:
    refusal = _uri(_profile(uri=["*"]), uri)
    assert refusal is not None and refusal.startswith("malformed URI name: "), refusal
    assert reason in refusal


def test_non_spiffe_fragments_and_urns_under_a_star() -> None:
    p = _profile(uri=["*"])
    assert _uri(p, "https://corp.example/doc#part") is None
    assert _uri(p, "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66") is None
    assert _uri(_profile(uri=["https://corp.example"]),
                "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66") is not None


@pytest.mark.parametrize("pattern", [
    "corp.example", "https:corp.example", "https://", "https://corp.example/?q",
    "https://corp.example/#f", "https://u@corp.example", "spiffe://Corp", "spiffe://c/a//b",
    "https://corp.example/a b", "urn:uuid:x",
])
def test_bad_uri_patterns_stop_start_up_with_the_key(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        _profile(uri=[pattern])
    assert info.value.key == "profiles.p.san.uri"


def test_uri_patterns_are_normalised() -> None:
    assert _profile(uri=["HTTPS://Corp.Example/Dev/", "*"]).san.uri == (
        "https://corp.example/Dev", "*")


# -- e-mail -----------------------------------------------------------------------------

def test_email_domains_match_exactly_or_below_a_star_label() -> None:
    exact = _profile(email=["corp.example"])
    below = _profile(email=["*.corp.example"])
    assert _email(exact, "alice@CORP.example") is None
    assert _email(below, "alice@eu.corp.example") is None
    assert _email(below, "alice@a.b.corp.example") is None
    for p, address in ((exact, "alice@eu.corp.example"), (exact, "alice@evilcorp.example"),
                       (exact, "alice@corp.example.evil.net"), (below, "alice@corp.example"),
                       (below, "alice@evilcorp.example")):
        domain = address.split("@")[1].lower()
        assert _email(p, address) == f"e-mail domain {domain!r} is not allowed by profile 'p'"
    assert _email(_profile(email=["*"]), "bob@anything.example") is None


@pytest.mark.parametrize(("address", "reason"), [
    ("no-at-sign", "exactly one '@'"),
    ("a@b@corp.example", "exactly one '@'"),
    ("@corp.example", "local part"),
    ("a b@corp.example", "local part"),
    ("a\x01b@corp.example", "local part"),
    ("\"a\"\t@corp.example", "local part"),
    ("x" * 65 + "@corp.example", "local part"),
    ("ä@corp.example", "not ASCII"),
    ("alice@", "domain is not valid"),
    ("alice@corp..example", "domain is not valid"),
    ("alice@*.corp.example", "domain is not valid"),
    ("a@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + "." + "e" * 70 + ".example",
     "longer than 254"),
])
def test_malformed_email_addresses_are_refused(address: str, reason: str) -> None:
    refusal = _email(_profile(email=["*"]), address)
    assert refusal is not None and refusal.startswith("malformed e-mail address: "), refusal
    assert reason in refusal


def test_a_64_octet_local_part_is_accepted() -> None:
    assert _email(_profile(email=["corp.example"]), "x" * 64 + "@corp.example") is None


@pytest.mark.parametrize("pattern", [".corp.example", "alice@corp.example", "corp..example",
                                     "*corp.example", "corp_example.com"])
def test_bad_email_patterns_stop_start_up_with_the_key(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        _profile(email=[pattern])
    assert info.value.key == "profiles.p.san.email"
