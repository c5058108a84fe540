"""ACME name policies (endpoint `allow`, EAB keys) match DNS names with the core's matcher."""

from __future__ import annotations

import pytest
from enroll.protocols.acme import fields, names

from enroll.errors import ConfigError


def test_dns_and_ip_patterns_each_admit_their_own_kind() -> None:
    allow = ["dns:*.Corp.Example", "ip:10.0.0.0/8"]
    assert names.allowed("dns", "a.b.corp.example", allow)
    assert not names.allowed("dns", "corp.example", allow)
    assert not names.allowed("dns", "evilcorp.example", allow)
    assert names.allowed("ip", "10.1.2.3", allow)
    assert not names.allowed("ip", "192.0.2.1", allow)
    assert not names.allowed("dns", "10.1.2.3", ["ip:10.0.0.0/8"])


@pytest.mark.parametrize("pattern", ["dns:", "dns:a.*.example", "dns:*foo.example",
                                     "dns:bad_label.example", "ip:10.0.0.300/8", "uri:x"])
def test_malformed_patterns_are_refused_when_configured(pattern: str) -> None:
    with pytest.raises(ConfigError):
        names.check_patterns([pattern], "acme.endpoints.default.allow")


@pytest.mark.parametrize(("value", "reason"), [
    ("*.com", "must sit below a registered domain"),
    ("bücher.example", "must be ASCII"),
    ("a..example", "invalid label"),
])
def test_identifiers_the_core_would_refuse_are_rejected_at_new_order(value: str,
                                                                      reason: str) -> None:
    good, refused = fields.identifiers([{"type": "dns", "value": value}])
    assert good == []
    problem = fields.refusal(refused)
    assert reason in problem.detail
    assert problem.typ == "rejectedIdentifier"
    assert problem.document()["subproblems"][0]["identifier"] == {"type": "dns",
                                                                  "value": value}


def test_identifiers_are_normalised_like_csr_names() -> None:
    assert fields.identifiers([{"type": "dns", "value": "WWW.Example.COM."}]) == ([
        {"type": "dns", "value": "www.example.com"}], [])
