"""The order lifecycle in-process with real validation on loopback (RFC 8555 §7.1.6)."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from harness import LocalDns, acme_client

from enroll.testing.acme_client import Http01Responder


async def test_http01_flow_issues_a_server_certificate(harness: Any,
                                                       responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register(contact=["mailto:ops@example.com"])
    pem = await acme.issue(["host.test.example", "alt.test.example"], responder)
    chain = x509.load_pem_x509_certificates(pem.encode())
    leaf = chain[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["alt.test.example",
                                                              "host.test.example"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert len(chain) == 2  # leaf + issuing CA; the alternate chain adds the root
    assert harness.counts() == (1, 1)
    record = harness.ctx.authority.lookup(leaf)
    assert record.protocol == "acme" and record.profile == "server"
    assert record.requester == f"acme-account:{acme.kid}"


async def test_dns01_flow_issues_a_wildcard(harness: Any, local_dns: LocalDns) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["*.wild.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    assert authz["wildcard"] is True and authz["identifier"]["value"] == "wild.test.example"
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
    chall = authz["challenges"][0]
    local_dns.txt["_acme-challenge.wild.test.example"] = [acme.dns01_value(chall["token"])]
    await acme.post(chall["url"], {})
    assert (await acme.poll(order["authorizations"][0], ("valid", "invalid")))["status"] == \
        "valid"
    assert (await acme.poll(order_url, ("ready", "invalid")))["status"] == "ready"


async def test_wrong_http01_answer_makes_the_order_invalid_and_issues_nothing(
        harness: Any, responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["bad.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[chall["token"]] = "wrong"
    await acme.post(chall["url"], {})
    final = await acme.poll(order_url, ("invalid", "ready"))
    assert final["status"] == "invalid"
    chall = (await acme.get(chall["url"])).json()
    assert chall["status"] == "invalid"
    assert chall["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert harness.counts() == (0, 0)


async def test_loopback_is_refused_unless_allowed(make_harness: Any,
                                                  responder: Http01Responder) -> None:
    harness = make_harness(allow_loopback="0")
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["loop.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
    await acme.post(chall["url"], {})
    assert (await acme.poll(order_url, ("invalid", "ready")))["status"] == "invalid"
    chall = (await acme.get(chall["url"])).json()
    assert chall["error"]["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
    assert harness.counts() == (0, 0)


async def test_directory_and_new_nonce(harness: Any) -> None:
    d = (await harness.http.get("/acme/directory")).json()
    assert d["newNonce"] == "https://acme.test/acme/new-nonce"
    assert d["meta"]["externalAccountRequired"] is False
    assert d["meta"]["profiles"] == {"server": "enroll profile server"}
    assert d["renewalInfo"] == "https://acme.test/acme/renewal-info"
    head = await harness.http.head(d["newNonce"])
    get = await harness.http.get(d["newNonce"])
    assert (head.status_code, get.status_code) == (200, 204)
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert head.headers["Cache-Control"] == "no-store"
    assert 'rel="index"' in head.headers["Link"]


def test_endpoint_info_and_named_endpoints(make_config: Any) -> None:
    from enroll.protocols.acme import plugin

    from enroll.context import build_context

    ctx = build_context(make_config(acme={"endpoints": {"default": {}, "corp": {}}}))
    info = plugin.enroll_endpoint_info(ctx.frontend, "http://h:1", "https://h:2")
    assert info["acme"]["directory"] == "https://h:2/acme/directory"
    assert info["acme"]["directories"]["corp"] == "https://h:2/acme/corp/directory"
    ctx.db.dispose()


def test_bad_config_names_the_key(make_config: Any) -> None:
    import pytest
    from enroll.protocols.acme import settings

    from enroll.errors import ConfigError

    for acme, key in [({"http01_port": "0"}, "acme.http01_port"),
                      ({"resolver": "dns.example:53"}, "acme.resolver"),
                      ({"endpoints": {"x": {"challenges": ["http-02"]}}},
                       "acme.endpoints.x.challenges"),
                      ({"endpoints": {"x": {"allow": ["dns:"]}}}, "acme.endpoints.x.allow"),
                      ({"endpoints": {"x": {"profile": "nope"}}}, "acme.endpoints.x.profile")]:
        with pytest.raises(ConfigError) as info:
            settings.parse(make_config(acme=acme))
        assert info.value.key == key
