"""Issue only what was proven: each rule once in the core, the same test through SCEP,
EST and ACME (issue 9). Every refusal asserts the protocol's answer and that nothing
was stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from door_drivers import CHALLENGE_OID, DOORS, REFUSED, UNAUTHORIZED, DoorDriver
from harness import CHALLENGE

from enroll.clock import FrozenClock
from enroll.testing import make_key, request

# A server profile identified by its names, with one subject field besides the CN that
# the CSR may set, only to one value.
SERVER: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"], "email": ["corp.example"], "uri": ["*"]},
    "subject": {"CN": "csr", "O": {"from": "csr", "allow": ["Example Corp"]}},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
}
ALREADY_REPLACED = {"scep": "BAD_REQUEST", "est": "409", "acme": "alreadyReplaced"}


def record(d: DoorDriver, cert: x509.Certificate | None) -> Any:
    assert cert is not None
    found = d.h.ctx.authority.lookup(cert)
    assert found is not None
    return found


def serial(cert: x509.Certificate | None) -> str:
    assert cert is not None
    return format(cert.serial_number, "x")


@pytest.mark.parametrize("door", DOORS)
async def test_the_cn_is_a_name_like_any_other(door: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER)
    ok = await d.enroll(cn="a.corp.example", dns=["a.corp.example"])
    assert ok.ok, ok
    assert record(d, ok.cert).identity == "san:dns:a.corp.example"
    # The CN outside the profile's names (the issue's CN=www.bank.example) ...
    bad = await d.enroll(cn="www.bank.example", dns=["a.corp.example"])
    assert bad.error == REFUSED[door], bad
    # ... a CN-only certificate on a profile identified by its names ...
    cn_only = await d.enroll(cn="b.corp.example", order=["b.corp.example"])
    assert cn_only.error == REFUSED[door], cn_only
    assert "must also be one of the certificate's subject alternative names" in \
        cn_only.detail
    # ... and a NUL in the CN are refused.
    nul = await d.enroll(cn="c\x00.corp.example", dns=["c.corp.example"],
                         order=["c.corp.example"])
    assert nul.error == REFUSED[door], nul
    assert d.h.counts() == (1, 1)


@pytest.mark.parametrize("door", DOORS)
async def test_subject_fields_only_from_the_allow_list(door: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER)
    masters = await d.enroll(cn="k.corp.example", dns=["k.corp.example"],
                             subject=[(NameOID.ORGANIZATION_NAME, "system:masters")])
    assert masters.error == REFUSED[door], masters
    assert "subject O 'system:masters' is not allowed by profile 'p'" in masters.detail
    allowed = await d.enroll(cn="k.corp.example", dns=["k.corp.example"],
                             subject=[(NameOID.ORGANIZATION_NAME, "Example Corp")])
    if door == "acme":
        # An ACME order proves names, not an organisation.
        assert allowed.error == "badCSR", allowed
        assert "not among the order's identifiers" in allowed.detail
        assert d.h.counts() == (0, 0)
    else:
        assert allowed.ok, allowed
        assert allowed.cert is not None
        assert allowed.cert.subject.rfc4514_string() == "O=Example Corp,CN=k.corp.example"
        assert d.h.counts() == (1, 1)


@pytest.mark.parametrize("door", DOORS)
async def test_a_name_nobody_authorised_is_refused(door: str, make_driver: Any) -> None:
    """ACME: finalize with a CSR adding names to the order's (EJBCA's CVE class); SCEP
    and EST: a renewal adding a name to the renewed certificate's."""
    d = make_driver(door, SERVER)
    extra: dict[str, Any] = {"cn": "k.corp.example", "dns": ["k.corp.example"]}
    stored = (0, 0)
    if door == "acme":
        for smuggled in ({"emails": ["ceo@corp.example"]}, {"uris": ["spiffe://corp/admin"]},
                         {"dns": ["k.corp.example", "x.corp.example"]}):
            answer = await d.enroll(**{**extra, **smuggled}, order=["k.corp.example"])
            assert answer.error == "badCSR", answer
    else:
        first = await d.enroll(**extra)
        stored = (1, 1)
        for smuggled in ({"emails": ["ceo@corp.example"]},
                         {"dns": ["k.corp.example", "x.corp.example"]}):
            answer = await d.renew(first.cert, **{**extra, **smuggled})
            assert answer.error == REFUSED[door], answer
        assert record(d, first.cert).superseded_by is None
    assert d.h.counts() == stored


@pytest.mark.parametrize("door", DOORS)
async def test_a_renewal_keeps_the_identity_and_supersedes_once(door: str,
                                                                make_driver: Any) -> None:
    d = make_driver(door, SERVER)
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(**names)
    renewed = await d.renew(first.cert, **names)
    assert renewed.ok, renewed
    old, new = record(d, first.cert), record(d, renewed.cert)
    assert old.superseded_by == new.serial_hex and new.replaces == old.serial_hex
    assert new.identity == old.identity == "san:dns:a.corp.example"
    assert new.profile == "p"
    # The replaced certificate cannot be renewed a second time.
    again = await d.renew(first.cert, **names)
    assert again.error == ALREADY_REPLACED[door], again
    assert d.h.counts() == (2, 2)


@pytest.mark.parametrize("door", DOORS)
async def test_a_certificate_renews_only_on_its_profile_line(door: str,
                                                            make_driver: Any) -> None:
    d = make_driver(door, SERVER, other_profiles={"q": {"ca": "issuing", **SERVER},
                                                  "r": {"ca": "issuing", **SERVER,
                                                        "successor": "p"}})
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}

    async def issue_under(profile: str) -> x509.Certificate:
        if door == "acme":
            got = await d.enroll(acme_profile=profile, **names)
            assert got.cert is not None, got
            return got.cert
        key = make_key()
        from enroll.testing import make_csr

        issued = d.h.ctx.authority.submit(request(make_csr(key, **names), profile))
        d.keys[issued.certificate.serial_number] = key
        return issued.certificate  # type: ignore[no-any-return]

    other = await issue_under("q")
    refused = await d.renew(other, **names)
    assert refused.error == UNAUTHORIZED[door], refused
    if door != "est":  # EST's 401 carries no body (RFC 7030 §3.2.3)
        assert "was issued under profile 'q'" in refused.detail
    assert record(d, other).superseded_by is None
    # A profile whose configured successor is this one renews into it.
    predecessor = await issue_under("r")
    moved = await d.renew(predecessor, **names)
    assert moved.ok, moved
    assert record(d, moved.cert).profile == "p"
    assert record(d, predecessor).superseded_by == serial(moved.cert)


@pytest.mark.parametrize("door", DOORS)
async def test_a_revoked_certificate_is_no_credential(door: str, make_driver: Any) -> None:
    d = make_driver(door, SERVER)
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(**names)
    d.h.ctx.authority.revoke(serial(first.cert), x509.ReasonFlags.superseded, "test")
    answer = await d.renew(first.cert, **names)
    if door == "acme":
        # ACME's order proves the names again: `replaces` is a link, not a credential,
        # so replacing a revoked certificate is allowed (RFC 9773 §5 does not forbid it).
        assert answer.ok, answer
        assert d.h.counts() == (2, 2)
    else:
        assert answer.error == UNAUTHORIZED[door], answer
        assert d.h.counts() == (1, 1)


@pytest.mark.parametrize("door", ["scep", "est"])
async def test_a_retry_after_revocation_is_a_new_request(door: str, make_driver: Any) -> None:
    """Same transaction (SCEP transactionID; EST: same requester, key and names) after
    the certificate was revoked: a new certificate, never the revoked one."""
    d = make_driver(door, SERVER)
    key = make_key()
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(key=key, transaction_id="tid-retry", **names)
    replay = await d.enroll(key=key, transaction_id="tid-retry", **names)
    assert serial(replay.cert) == serial(first.cert)  # a retry gets the first answer
    d.h.ctx.authority.revoke(serial(first.cert), x509.ReasonFlags.superseded, "test")
    after = await d.enroll(key=key, transaction_id="tid-retry", **names)
    assert after.ok and serial(after.cert) != serial(first.cert), after
    assert record(d, after.cert).status.value == "valid"
    assert d.h.counts() == (2, 2)
    events = [e["type"] for e in d.h.rows("audit_events")]
    assert "request.transaction_released" in events


@pytest.mark.parametrize("door", DOORS)
async def test_a_transient_ca_failure_is_retryable(door: str, make_driver: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_driver(door, SERVER)
    backend = d.h.ctx.cas.get("issuing")
    real, calls = backend.issue, []

    def flaky(issuance: Any) -> x509.Certificate:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("HSM session lost")
        return real(issuance)  # type: ignore[no-any-return]

    monkeypatch.setattr(backend, "issue", flaky)
    key = make_key()
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    if door == "acme":
        client = await d.acme()
        from enroll.testing.acme_client import b64e, make_csr

        order_url, order = await client.new_order(["a.corp.example"])
        for authz_url in order["authorizations"]:
            authz = (await client.get(authz_url)).json()
            chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
            d.responder.tokens[chall["token"]] = client.key_authorization(chall["token"])
            await client.post(chall["url"], {})
        order = await client.poll(order_url, ("ready",))
        csr = {"csr": b64e(make_csr(["a.corp.example"], key))}
        failed = await client.post(order["finalize"], csr, check=False)
        assert failed.status_code == 503, failed.text
        assert failed.json()["type"].endswith("serverInternal")
        assert (await client.get(order_url)).json()["status"] == "ready"
        done = (await client.post(order["finalize"], csr)).json()
        assert done["status"] == "valid", done
    else:
        first = await d.enroll(key=key, transaction_id="tid-flaky", **names)
        assert first.error == {"scep": "BAD_REQUEST", "est": "503"}[door], first
        retry = await d.enroll(key=key, transaction_id="tid-flaky", **names)
        assert retry.ok, retry
    assert d.h.counts() == (1, 2)  # the failed attempt stays on record, released


@pytest.mark.parametrize("door", DOORS)
async def test_a_profile_revokes_what_a_renewal_superseded(door: str,
                                                           make_driver: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    d = make_driver(door, {**SERVER, "revoke_superseded_after": "1h"}, clock=clock)
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(**names)
    renewed = await d.renew(first.cert, **names)
    assert renewed.ok, renewed
    authority = d.h.ctx.authority
    assert authority.revoke_superseded() == []  # inside the grace
    clock.advance(dt.timedelta(hours=2))
    assert authority.revoke_superseded() == [serial(first.cert)]
    old = record(d, first.cert)
    assert old.status.value == "revoked"
    assert old.revocation_reason is x509.ReasonFlags.superseded
    assert record(d, renewed.cert).status.value == "valid"
    assert authority.revoke_superseded() == []


@pytest.mark.parametrize("door", DOORS)
async def test_revoke_superseded_after_zero_revokes_at_renewal(door: str,
                                                               make_driver: Any) -> None:
    d = make_driver(door, {**SERVER, "revoke_superseded_after": "0s"})
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(**names)
    assert (await d.renew(first.cert, **names)).ok
    assert record(d, first.cert).revocation_reason is x509.ReasonFlags.superseded


async def test_acme_replaces_needs_a_name_in_common(make_driver: Any) -> None:
    """RFC 9773: the order replacing a certificate shares at least one identifier."""
    d = make_driver("acme", SERVER)
    first = await d.enroll(cn="a.corp.example", dns=["a.corp.example"])
    disjoint = await d.renew(first.cert, cn="b.corp.example", dns=["b.corp.example"])
    assert disjoint.error == "unauthorized", disjoint
    assert "shares no name" in disjoint.detail
    wider = await d.renew(first.cert, cn="a.corp.example",
                          dns=["a.corp.example", "b.corp.example"])
    assert wider.ok, wider  # proven names may grow
    assert d.h.counts() == (2, 2)


async def test_scep_renewal_challenge_is_required_when_the_endpoint_says_so(
        make_driver: Any) -> None:
    d = make_driver("scep", SERVER, scep={"renewal_challenge": True})
    names: dict[str, Any] = {"cn": "a.corp.example", "dns": ["a.corp.example"]}
    first = await d.enroll(**names)
    without = await d.renew(first.cert, **names)
    assert without.error == "BAD_REQUEST" and "challenge" in without.detail, without
    with_challenge = await d.renew(first.cert, attributes=[(CHALLENGE_OID, CHALLENGE.encode())],
                                   **names)
    assert with_challenge.ok, with_challenge
