"""The one DNS-name check and matcher (enroll.names), used by profiles and ACME policies."""

from __future__ import annotations

import pytest

from enroll.names import MAX_DNS_NAME, dns_allowed, dns_matches, dns_pattern, normalise_dns


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    # `*` admits any name, wildcard names included.
    ("anything.example.org", "*", True),
    ("*.corp.example", "*", True),
    # An exact pattern admits that name only.
    ("host.corp.example", "host.corp.example", True),
    ("other.corp.example", "host.corp.example", False),
    ("sub.host.corp.example", "host.corp.example", False),
    # `*.x` admits names below x, at any depth (docs/configuration.md), and not x itself.
    ("a.corp.example", "*.corp.example", True),
    ("b.c.corp.example", "*.corp.example", True),
    ("corp.example", "*.corp.example", False),
    # The suffix starts at a label boundary: no look-alike domains.
    ("evilcorp.example", "*.corp.example", False),
    ("a.evilcorp.example", "*.corp.example", False),
    ("corp.example.evil", "*.corp.example", False),
    # Case-insensitive, one trailing dot ignored on either side.
    ("API.Corp.Example.", "*.corp.example", True),
    ("host.corp.example", "HOST.CORP.EXAMPLE.", True),
    ("host.corp.example..", "host.corp.example", False),
])
def test_patterns_match_as_documented(name: str, pattern: str, expected: bool) -> None:
    assert dns_matches(name, pattern) is expected


def test_a_wildcard_name_stands_for_one_label_and_is_not_a_glob() -> None:
    # *.corp.example covers one label below corp.example: an exact pattern for one of
    # those names does not admit it, nor does a pattern below it.
    assert dns_matches("*.corp.example", "*.corp.example")
    assert dns_matches("*.corp.example", "*.example")
    assert not dns_matches("*.corp.example", "host.corp.example")
    assert not dns_matches("*.corp.example", "*.host.corp.example")
    # A `*` inside a name is a literal: it does not make the name match other patterns.
    assert not dns_matches("*.example", "*.corp.example")


def test_idna_a_labels_are_compared_as_sent() -> None:
    assert dns_matches("xn--bcher-kva.example", "xn--bcher-kva.example")
    assert dns_matches("XN--BCHER-KVA.example", "*.example")
    # No conversion: a U-label matches neither its A-label nor anything else.
    assert not dns_matches("bücher.example", "xn--bcher-kva.example")
    assert not dns_matches("bücher.example", "*")
    # U+212A KELVIN SIGN lower-cases to an ASCII "k"; it must not pass for one.
    assert not dns_matches("\u212a.corp.example", "k.corp.example")


def test_names_beyond_the_length_bound_never_match() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(longest) == MAX_DNS_NAME
    assert dns_matches(longest, "*") and dns_matches(longest + ".", "*")
    assert not dns_matches("c" + longest, "*")
    assert not dns_matches("x" * 100_000, "*")
    assert not dns_matches("", "*")


def test_dns_allowed_is_any_pattern() -> None:
    assert dns_allowed("a.corp.example", ["host.example", "*.corp.example"])
    assert not dns_allowed("a.corp.example", [])


@pytest.mark.parametrize(("name", "wildcard", "expected"), [
    ("Host.Example.COM.", False, "host.example.com"),
    ("*.corp.example", True, "*.corp.example"),
    ("xn--bcher-kva.example", False, "xn--bcher-kva.example"),
    ("localhost", False, "localhost"),
])
def test_normalise_dns_lower_cases_and_drops_one_trailing_dot(name: str, wildcard: bool,
                                                             expected: str) -> None:
    assert normalise_dns(name, allow_wildcard=wildcard) == expected


@pytest.mark.parametrize(("name", "wildcard", "reason"), [
    ("", True, "empty or longer than 253"),
    ("a" * 254, True, "empty or longer than 253"),
    ("b" * 64 + ".example", True, "invalid label"),
    ("bad_label.example", True, "invalid label"),
    ("a..example", True, "invalid label"),
    ("example.com..", True, "invalid label"),
    ("-a.example", True, "starting or ending with '-'"),
    ("a.*.example", True, "invalid label"),
    ("a*.example.com", True, "invalid label"),
    ("*.com", True, "must sit below a registered domain"),
    ("*", True, "must sit below a registered domain"),
    ("*.corp.example", False, "wildcard names are not allowed"),
    ("bücher.example", True, "must be ASCII"),
    ("\u212aey.example", True, "must be ASCII"),
])
def test_normalise_dns_refuses_with_a_reason(name: str, wildcard: bool, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_dns(name, allow_wildcard=wildcard)


def test_dns_pattern_normalises_and_refuses_what_could_never_match() -> None:
    assert dns_pattern("*") == "*"
    assert dns_pattern("*.Corp.Example.") == "*.corp.example"
    assert dns_pattern("*.example") == "*.example"
    assert dns_pattern("Host.Example") == "host.example"
    for bad in ("", "*.", "a.*.example", "*foo.example", "**.example", "bad_label.example",
                "bücher.example", "x" * 300):
        with pytest.raises(ValueError, match="use '\\*', '\\*.suffix' or an exact name"):
            dns_pattern(bad)
