"""What real ACME clients send that was refused before issue 12: notBefore/notAfter in
newOrder (RFC 8555 §7.4; cert-manager ``duration``, acme.sh ``--valid-to``, Posh-ACME),
ES512 (P-521) account keys (RFC 7518 §3.4), EAB with HS384/HS512 (RFC 8555 §7.3.4).
Over HTTP through the app, on SQLite and PostgreSQL: each accepted; out of bounds
refused with the right problem and nothing stored; the certificate's validity as asked,
within the profile (enroll.validity_rules) and under a migration's ``short`` cap."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from enroll.protocols.acme import eab
from enroll.protocols.acme.jws import b64e, jwk_of
from harness import ACME_BASE, NS, Harness, LocalDns, acme_client, acme_section, problem

from enroll import recovery
from enroll.clock import FrozenClock
from enroll.config import default_raw_config
from enroll.model import RequestStatus
from enroll.testing.acme_client import AcmeClient, Http01Responder, alg_of, jws, make_csr


def _leaf(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


def _z(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


async def _order_problem(acme: AcmeClient, payload: dict[str, Any]) -> Any:
    d = await acme.directory()
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns",
                                                         "value": "v.test.example"}],
                                        **payload}, check=False)
    return r


# -- notBefore / notAfter -----------------------------------------------------------------

async def test_not_after_is_echoed_stored_and_honoured(harness: Any,
                                                       responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    not_after = _now() + dt.timedelta(days=10)
    order_url, order = await acme.new_order(["na.test.example"], notAfter=_z(not_after))
    assert order["notAfter"] == _z(not_after) and "notBefore" not in order
    [row] = harness.rows("acme_orders")
    assert row["not_before"] is None
    leaf = _leaf(await acme.issue(["na.test.example"], responder, notAfter=_z(not_after)))
    assert leaf.not_valid_after_utc == not_after
    # The profile's backdate still applies to the start (60 s in the default profile).
    assert leaf.not_valid_before_utc <= _now()
    assert (await acme.get(order_url)).json()["notAfter"] == _z(not_after)


async def test_both_bounds_with_offsets_and_fractions(harness: Any,
                                                      responder: Http01Responder) -> None:
    """acme.sh and Posh-ACME send offsets and fractions: read as the same instant, to
    the second; a future notBefore is honoured too (RFC 8555 §7.4)."""
    acme = acme_client(harness)
    await acme.register()
    start, end = _now() + dt.timedelta(hours=2), _now() + dt.timedelta(days=30)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    leaf = _leaf(await acme.issue(
        ["nb.test.example"], responder,
        notBefore=start.astimezone(plus2).isoformat().replace("+02:00", ".250+02:00"),
        notAfter=end.strftime("%Y-%m-%dT%H:%M:%S.123456789z").replace("T", "t")))
    assert leaf.not_valid_before_utc == start
    assert leaf.not_valid_after_utc == end
    [row] = harness.rows("acme_orders")
    body = (await acme.get(f"{acme.directory_url.rsplit('/', 1)[0]}/order/{row['id']}")).json()
    assert (body["notBefore"], body["notAfter"]) == (_z(start), _z(end))


async def test_a_not_after_at_the_profiles_limit_is_clamped_to_it(
        harness: Any, responder: Http01Responder) -> None:
    """cert-manager asks ``now + duration`` by its own clock: a few seconds beyond the
    profile's 90 days is accepted and clamped, never longer than the profile."""
    acme = acme_client(harness)
    await acme.register()
    asked = _now() + dt.timedelta(days=90, seconds=120)
    leaf = _leaf(await acme.issue(["max.test.example"], responder, notAfter=_z(asked)))
    assert leaf.not_valid_after_utc <= _now() + dt.timedelta(days=90)
    assert leaf.not_valid_after_utc >= _now() + dt.timedelta(days=90, seconds=-30)


OUT_OF_BOUNDS = [
    ({"notAfter": dt.timedelta(days=91)}, "beyond the profile's validity of 90d"),
    ({"notAfter": dt.timedelta(seconds=-5)}, "notAfter must be in the future"),
    ({"notBefore": dt.timedelta(days=-1)}, "notBefore may be at most 5m"),
    ({"notBefore": dt.timedelta(days=5), "notAfter": dt.timedelta(days=4)},
     "notBefore must be before notAfter"),
    ({"notBefore": dt.timedelta(days=95)}, "notBefore is beyond the profile's validity"),
]


@pytest.mark.parametrize(("asked", "detail"), OUT_OF_BOUNDS)
async def test_out_of_bounds_is_malformed_and_nothing_is_stored(
        harness: Any, asked: dict[str, dt.timedelta], detail: str) -> None:
    acme = acme_client(harness)
    await acme.register()
    r = await _order_problem(acme, {k: _z(_now() + v) for k, v in asked.items()})
    problem(r, "malformed", 400)
    assert detail in r.json()["detail"], r.json()
    assert harness.rows("acme_orders") == [] and harness.rows("acme_authzs") == []


@pytest.mark.parametrize("value", ["2030-01-01", "2030-01-01T00:00:00", "tomorrow", 1893456000,
                                   "2030-13-01T00:00:00Z", "2030-02-30T00:00:00Z",
                                   "2030-01-01T00:00:00Z" + "0" * 40, ["2030"]])
async def test_a_timestamp_that_is_not_rfc3339_is_malformed(harness: Any, value: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    for field in ("notBefore", "notAfter"):
        r = await _order_problem(acme, {field: value})
        problem(r, "malformed", 400)
        assert field in r.json()["detail"]
    assert harness.rows("acme_orders") == []


MIGRATION = {"to": "scep", "after": "2020-01-01", "mode": "short", "short_validity": "1d",
             "message": "Enrol over SCEP"}


async def test_a_migrations_short_cap_wins_over_the_requested_not_after(
        make_harness: Any, responder: Http01Responder) -> None:
    server = copy.deepcopy(default_raw_config()["profiles"]["server"])
    harness = make_harness(extra_profiles={"moving": {**server, "migration": MIGRATION}},
                           endpoints={"default": {"profile": "moving"}})
    acme = acme_client(harness)
    await acme.register()
    leaf = _leaf(await acme.issue(["short.test.example"], responder,
                                  notAfter=_z(_now() + dt.timedelta(days=30))))
    assert leaf.not_valid_after_utc <= _now() + dt.timedelta(days=1)
    assert leaf.not_valid_after_utc >= _now() + dt.timedelta(hours=23)


async def test_an_approved_request_keeps_the_requested_validity(
        make_harness: Any, responder: Http01Responder) -> None:
    """Signed later, from the stored request (enroll.authority._stored_request)."""
    manual = copy.deepcopy(default_raw_config()["profiles"]["server"])
    manual["approval"] = "manual"
    harness = make_harness(extra_profiles={"manual": manual},
                           endpoints={"default": {"profile": "manual"}})
    acme = acme_client(harness)
    await acme.register()
    not_after = _now() + dt.timedelta(days=3)
    order_url, order = await acme.new_order(["later.test.example"], notAfter=_z(not_after))
    chall = next(c for c in (await acme.get(order["authorizations"][0])).json()["challenges"]
                 if c["type"] == "http-01")
    responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
    await acme.post(chall["url"], {})
    order = await acme.poll(order_url, ("ready",))
    r = await acme.post(order["finalize"], {"csr": b64e(make_csr(["later.test.example"]))})
    assert r.json()["status"] == "processing"
    (pending,) = harness.ctx.authority.list_requests(RequestStatus.PENDING)
    assert pending.attributes["requested_validity"] == {
        "not_before": None, "not_after": not_after.isoformat()}
    harness.ctx.authority.approve(pending.id, "operator")
    order = await acme.poll(order_url, ("valid",))
    leaf = _leaf((await acme.get(order["certificate"])).text)
    assert leaf.not_valid_after_utc == not_after


# -- ES512 account keys -------------------------------------------------------------------

def _rfc7638(jwk: dict[str, str]) -> str:
    """RFC 7638 §3.2 by hand: the required EC members, sorted, no whitespace."""
    canon = f'{{"crv":"{jwk["crv"]}","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(
        b"=").decode()


async def test_an_es512_account_registers_and_issues(harness: Any,
                                                     responder: Http01Responder) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    acme = acme_client(harness, key)
    assert alg_of(key) == "ES512"
    r = await acme.register()
    jwk = r.json()["key"]
    assert jwk["crv"] == "P-521" and len(base64.urlsafe_b64decode(jwk["x"] + "==")) == 66
    [row] = harness.rows("acme_accounts")
    assert row["thumbprint"] == _rfc7638(jwk_of(key.public_key()))
    # http-01 validates only if the server's thumbprint is the client's.
    await acme.issue(["p521.test.example"], responder)


async def test_es512_signatures_must_be_66_byte_r_and_s(harness: Any) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    acme = acme_client(harness, key)
    await acme.register()
    d = await acme.directory()
    body = await acme.signed(d["newOrder"], {"identifiers": [{"type": "dns",
                                                              "value": "x.example"}]})
    sig = base64.urlsafe_b64decode(body["signature"] + "==")
    assert len(sig) == 132
    body["signature"] = b64e(sig[1:66] + sig[67:])  # 65-byte halves: not ES512
    r = await harness.http.post(d["newOrder"], content=json.dumps(body),
                                headers={"Content-Type": "application/jose+json"})
    problem(r, "malformed", 400)
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example"}]},
                        alg="ES384", check=False)
    problem(r, "badSignatureAlgorithm", 400)
    assert "ES512" in r.json()["algorithms"]
    assert harness.rows("acme_orders") == []


@pytest.mark.parametrize(("old_curve", "new_curve"), [(ec.SECP256R1, ec.SECP521R1),
                                                      (ec.SECP521R1, ec.SECP384R1)])
async def test_key_rollover_to_and_from_es512(harness: Any, responder: Http01Responder,
                                              old_curve: Any, new_curve: Any) -> None:
    acme = acme_client(harness, ec.generate_private_key(old_curve()))
    await acme.register()
    d = await acme.directory()
    new_key = ec.generate_private_key(new_curve())
    inner = jws(new_key, {"alg": alg_of(new_key), "jwk": jwk_of(new_key.public_key()),
                          "url": d["keyChange"]},
                {"account": acme.kid, "oldKey": jwk_of(acme.key.public_key())})
    r = await acme.post(d["keyChange"], inner)
    assert r.json()["key"] == jwk_of(new_key.public_key())
    [row] = harness.rows("acme_accounts")
    assert row["thumbprint"] == _rfc7638(jwk_of(new_key.public_key()))
    acme.key = new_key
    await acme.issue(["rolled521.test.example"], responder)


# -- EAB MAC algorithms -------------------------------------------------------------------

HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _binding(client: AcmeClient, url: str, kid: str, key: bytes, alg: str,
             mac: str | None = None) -> dict[str, str]:
    p64 = b64e(json.dumps({"alg": alg, "kid": kid, "url": url}).encode())
    body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
    digest = HASHES[mac or alg] if (mac or alg) in HASHES else hashlib.sha256
    sig = hmac.new(key, f"{p64}.{body}".encode(), digest).digest()
    return {"protected": p64, "payload": body, "signature": b64e(sig)}


def _eab_harness(make_harness: Any) -> tuple[Any, str, bytes]:
    harness = make_harness(endpoints={"default": {}, "corp": {"eab_required": True}})
    ctx = harness.ctx
    with ctx.db.write() as conn:
        kid, encoded = eab.create(conn, "corp", None, ctx.config.ca_passphrase,
                                  ctx.clock.now())
    return harness, kid, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_eab_binds_with_each_hmac(make_harness: Any, responder: Http01Responder,
                                        alg: str) -> None:
    harness, kid, key = _eab_harness(make_harness)
    acme = acme_client(harness, endpoint="corp")
    d = await acme.directory()
    r = await acme.register(externalAccountBinding=_binding(acme, d["newAccount"], kid, key,
                                                            alg))
    assert r.json()["externalAccountBinding"]["kid"] == kid
    await acme.issue(["eab.test.example"], responder)


@pytest.mark.parametrize(("alg", "mac", "typ", "status"), [
    ("HS512", "HS256", "unauthorized", 403),   # the header's MAC is the one checked
    ("HS384", "HS512", "unauthorized", 403),
    ("HS1", None, "badSignatureAlgorithm", 400),
    ("none", None, "badSignatureAlgorithm", 400),
    ("ES256", None, "badSignatureAlgorithm", 400),
])
async def test_eab_refuses_a_wrong_or_unknown_mac(make_harness: Any, alg: str,
                                                  mac: str | None, typ: str,
                                                  status: int) -> None:
    harness, kid, key = _eab_harness(make_harness)
    acme = acme_client(harness, endpoint="corp")
    d = await acme.directory()
    r = await acme.post(d["newAccount"], {"termsOfServiceAgreed": True,
                                          "externalAccountBinding": _binding(
                                              acme, d["newAccount"], kid, key, alg, mac)},
                        use_jwk=True, check=False)
    problem(r, typ, status)
    if typ == "badSignatureAlgorithm":
        assert r.json()["algorithms"] == ["HS256", "HS384", "HS512"]
    assert r.json()["type"] == NS + typ
    assert harness.rows("acme_accounts") == []


# -- recovery signs what was asked ----------------------------------------------------------

class Died(BaseException):
    """What the worker 'does' mid-finalize (BaseException: nothing catches it)."""


@pytest.mark.parametrize("where", ["before-submit", "after-sign"])
async def test_recovery_signs_the_requested_validity(
        harness_factory: Callable[..., Harness], local_dns: LocalDns,
        responder: Http01Responder, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Before the core saw it, the ACME pass resubmits from the order's columns; after
    signing, the core's pass signs from the request's stored attributes."""
    clock = FrozenClock(_now())
    h = harness_factory(base_url=ACME_BASE, clock=clock,
                        **acme_section(local_dns, responder.port))
    acme = acme_client(h)
    await acme.register()
    name = f"{where}.rv.test.example"
    not_after = clock.now() + dt.timedelta(days=7)
    order_url, order = await acme.new_order([name], notAfter=_z(not_after))
    chall = next(c for c in (await acme.get(order["authorizations"][0])).json()["challenges"]
                 if c["type"] == "http-01")
    responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
    await acme.post(chall["url"], {})
    order = await acme.poll(order_url, ("ready",))

    def die(*_: Any, **__: Any) -> Any:
        raise Died

    if where == "before-submit":
        monkeypatch.setattr(h.ctx.authority, "submit", die)
    else:
        monkeypatch.setattr(h.ctx.authority, "_crash_after_sign", die)
    with pytest.raises(Died):
        await acme.post(order["finalize"], {"csr": b64e(make_csr([name]))}, check=False)
    monkeypatch.undo()
    clock.advance(dt.timedelta(seconds=61))
    assert recovery.run(h.ctx).protocols == 1
    polled = await acme.poll(order_url, ("valid", "invalid"))
    assert polled["status"] == "valid", polled
    leaf = _leaf((await acme.get(polled["certificate"])).text)
    assert leaf.not_valid_after_utc == not_after
