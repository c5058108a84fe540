"""keyChange, ARI, profiles, EAB with a name policy, revocation by the certificate key,
authorization deactivation, manual approval, alternate chains, identifier rules."""

from __future__ import annotations

import copy
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from enroll.protocols.acme import ari, eab
from enroll.protocols.acme.jws import b64e, jwk_of
from harness import NS, acme_client, problem

from enroll.config import default_raw_config
from enroll.testing.acme_client import AcmeClient, Http01Responder, alg_of, jws, make_csr


def _leaf(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


async def test_key_change_rolls_the_account_key(harness: Any, responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    new_key = ec.generate_private_key(ec.SECP256R1())
    inner = jws(new_key, {"alg": alg_of(new_key), "jwk": jwk_of(new_key.public_key()),
                          "url": d["keyChange"]},
                {"account": acme.kid, "oldKey": jwk_of(acme.key.public_key())})
    r = await acme.post(d["keyChange"], inner)
    assert r.json()["key"] == jwk_of(new_key.public_key())
    old = acme.key
    acme.key = new_key
    await acme.issue(["rolled.test.example"], responder)
    acme.key = old
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example"}]},
                        check=False)
    problem(r, "malformed", 400)  # the old key's signature no longer verifies


async def test_key_change_to_a_key_in_use_is_409_with_location(harness: Any) -> None:
    alice, bob = acme_client(harness), acme_client(harness)
    await alice.register()
    await bob.register()
    d = await alice.directory()
    inner = jws(bob.key, {"alg": "ES256", "jwk": jwk_of(bob.key.public_key()),
                          "url": d["keyChange"]},
                {"account": alice.kid, "oldKey": jwk_of(alice.key.public_key())})
    r = await alice.post(d["keyChange"], inner, check=False)
    problem(r, "malformed", 409)
    assert r.headers["Location"] == bob.kid


async def test_renewal_info_and_replaces(harness: Any, responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    leaf = _leaf(await acme.issue(["ari.test.example"], responder))
    d = await acme.directory()
    cert_id = ari.cert_id(leaf)
    r = await harness.http.get(f"{d['renewalInfo']}/{cert_id}")
    assert r.status_code == 200 and "suggestedWindow" in r.json()
    assert r.headers["Retry-After"]
    renewed = _leaf(await acme.issue(["ari.test.example"], responder,
                                     replaces=cert_id))
    record = harness.ctx.authority.lookup(renewed)
    assert record.replaces == format(leaf.serial_number, "x")
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value":
                                        "ari.test.example"}], "replaces": cert_id}, check=False)
    problem(r, "alreadyReplaced", 409)
    other = acme_client(harness)
    await other.register()
    r = await other.post(d["newOrder"], {"identifiers": [{"type": "dns", "value":
                                         "ari.test.example"}], "replaces": ari.cert_id(renewed)},
                         check=False)
    problem(r, "unauthorized", 403)


async def test_profiles_extension_maps_onto_enroll_profiles(make_harness: Any,
                                                            responder: Http01Responder) -> None:
    harness = make_harness(endpoints={"default": {"profiles": ["server", "device"]}})
    d = (await harness.http.get("/acme/directory")).json()
    assert set(d["meta"]["profiles"]) == {"server", "device"}
    acme = acme_client(harness)
    await acme.register()
    leaf = _leaf(await acme.issue(["dev.test.example"], responder, profile="device"))
    assert harness.ctx.authority.lookup(leaf).profile == "device"
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example"}],
                                        "profile": "tls-listener"}, check=False)
    problem(r, "invalidProfile", 400)


async def test_eab_required_with_name_policy_binds_once(make_harness: Any,
                                                        responder: Http01Responder) -> None:
    harness = make_harness(endpoints={
        "default": {}, "corp": {"eab_required": True, "allow": ["dns:*"]}})
    ctx = harness.ctx
    from enroll.protocols.acme import store
    from enroll.protocols.acme.endpoint import deployment_secret

    kid = eab.new_kid()
    with ctx.db.write() as conn:  # a key made before 0005: derived when used, not sealed
        store.add_eab_key(conn, kid, "corp", ["dns:*.corp.example"], ctx.clock.now())
    hmac_key = eab.derive_key(deployment_secret(ctx.db, "eab"), kid)
    acme = acme_client(harness, endpoint="corp")
    d = await acme.directory()
    assert d["meta"]["externalAccountRequired"] is True
    r = await acme.post(d["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True,
                        check=False)
    problem(r, "externalAccountRequired", 403)

    def binding(client: AcmeClient, key: bytes) -> dict[str, str]:
        import hashlib
        import hmac
        import json

        p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": d["newAccount"]}).encode())
        body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
        sig = hmac.new(key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
        return {"protected": p64, "payload": body, "signature": b64e(sig)}

    r = await acme.post(d["newAccount"], {"externalAccountBinding": binding(acme, b"x" * 32)},
                        use_jwk=True, check=False)
    problem(r, "unauthorized", 403)
    assert harness.rows("acme_accounts") == []
    r = await acme.register(externalAccountBinding=binding(acme, hmac_key))
    assert r.json()["externalAccountBinding"]["kid"] == kid
    await acme.issue(["web.corp.example"], responder)
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns",
                                                         "value": "evil.example"}]},
                        check=False)
    problem(r, "rejectedIdentifier", 400)
    again = acme_client(harness, endpoint="corp")
    r = await again.post(d["newAccount"], {"externalAccountBinding": binding(again, hmac_key)},
                         use_jwk=True, check=False)
    problem(r, "unauthorized", 403)
    assert len(harness.rows("acme_accounts")) == 1


def _eab_binding(client: AcmeClient, url: str, kid: str, key: bytes) -> dict[str, str]:
    import hashlib
    import hmac
    import json

    p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
    body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
    sig = hmac.new(key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
    return {"protected": p64, "payload": body, "signature": b64e(sig)}


async def test_an_eab_key_sealed_under_the_ca_passphrase_binds_an_account(
        make_harness: Any, responder: Http01Responder) -> None:
    import base64

    from enroll.protocols.acme import store
    from enroll.protocols.acme.endpoint import deployment_secret

    from enroll.config import Secret
    from enroll.crypto import sealing

    harness = make_harness(endpoints={"default": {}, "corp": {"eab_required": True}})
    ctx = harness.ctx
    with ctx.db.write() as conn:
        kid, encoded = eab.create(conn, "corp", None, ctx.config.ca_passphrase, ctx.clock.now())
        stranger_kid = eab.new_kid()  # a row whose key was sealed under another passphrase
        store.add_eab_key(conn, stranger_kid, "corp", None, ctx.clock.now(), sealing.seal(
            b"k" * 32, Secret("not the CA passphrase"), context=eab.context(stranger_kid)))
    key = base64.urlsafe_b64decode(encoded + "=")
    with ctx.db.read() as conn:
        row = store.get_eab_key(conn, kid)
    assert row is not None and sealing.is_current(row["hmac_key"])
    assert key not in row["hmac_key"]
    # Nothing in the database derives it: a new deployment has no EAB secret at all, and
    # the pre-0005 scheme's derivation gives another key.
    assert "eab" not in [r["name"] for r in harness.rows("acme_secrets")]
    assert key != eab.derive_key(deployment_secret(ctx.db, "eab"), kid)

    acme = acme_client(harness, endpoint="corp")
    d = await acme.directory()
    r = await acme.post(d["newAccount"], {"externalAccountBinding": _eab_binding(
        acme, d["newAccount"], stranger_kid, b"k" * 32)}, use_jwk=True, check=False)
    problem(r, "unauthorized", 403)  # a key the server cannot open: refused, not a 500
    r = await acme.post(d["newAccount"], {"externalAccountBinding": _eab_binding(
        acme, d["newAccount"], kid, b"x" * 32)}, use_jwk=True, check=False)
    problem(r, "unauthorized", 403)
    assert harness.rows("acme_accounts") == []
    r = await acme.register(externalAccountBinding=_eab_binding(acme, d["newAccount"], kid,
                                                                key))
    assert r.json()["externalAccountBinding"]["kid"] == kid
    await acme.issue(["sealed.test.example"], responder)


async def test_revoke_with_the_certificate_key(harness: Any, responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    cert_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(await acme.issue(["rk.test.example"], responder,
                                  csr=make_csr(["rk.test.example"], cert_key)))
    d = await acme.directory()
    stranger = AcmeClient(harness.http, acme.directory_url, cert_key)
    der = b64e(leaf.public_bytes(Encoding.DER))
    r = await stranger.post(d["revokeCert"], {"certificate": der, "reason": 1}, use_jwk=True)
    assert r.status_code == 200
    assert harness.ctx.authority.lookup(leaf).status.value == "revoked"
    r = await acme.post(d["revokeCert"], {"certificate": der}, check=False)
    problem(r, "alreadyRevoked", 400)
    r = await harness.http.get(f"{d['renewalInfo']}/{ari.cert_id(leaf)}")
    assert r.status_code == 200


async def test_authorization_deactivation_invalidates_the_order(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["deact.test.example"])
    r = await acme.post(order["authorizations"][0], {"status": "deactivated"})
    assert r.json()["status"] == "deactivated"
    assert (await acme.get(order_url)).json()["status"] == "invalid"
    assert harness.counts() == (0, 0)


async def test_manual_approval_keeps_the_order_processing(make_harness: Any,
                                                          responder: Http01Responder) -> None:
    manual = copy.deepcopy(default_raw_config()["profiles"]["server"])
    manual["approval"] = "manual"
    harness = make_harness(extra_profiles={"manual": manual},
                                 endpoints={"default": {"profile": "manual"}})
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["wait.test.example"])
    chall = next(c for c in (await acme.get(order["authorizations"][0])).json()["challenges"]
                 if c["type"] == "http-01")
    responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
    await acme.post(chall["url"], {})
    order = await acme.poll(order_url, ("ready",))
    r = await acme.post(order["finalize"], {"csr": b64e(make_csr(["wait.test.example"]))})
    assert r.json()["status"] == "processing" and int(r.headers["Retry-After"]) > 0
    r = await acme.get(order_url)
    assert r.json()["status"] == "processing" and r.headers["Retry-After"]
    assert harness.counts() == (0, 1)
    from enroll.model import RequestStatus

    (pending,) = harness.ctx.authority.list_requests(RequestStatus.PENDING)
    harness.ctx.authority.approve(pending.id, "operator")
    order = await acme.poll(order_url, ("valid",))
    r = await acme.get(order["certificate"])
    assert r.headers["content-type"] == "application/pem-certificate-chain"
    assert 'rel="alternate"' in r.headers["Link"]
    alternate = r.headers["Link"].split('rel="index"')[-1].split("<")[1].split(">")[0]
    longer = await acme.get(alternate)
    assert len(x509.load_pem_x509_certificates(longer.content)) == 3


async def test_identifier_rules(make_harness: Any, responder: Http01Responder) -> None:
    harness = make_harness(endpoints={"default": {
        "challenges": ["http-01"], "allow": ["dns:*.test.example", "ip:127.0.0.0/8"]}})
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    for value in ("outside.example", "*.test.example"):
        r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": value}]},
                            check=False)
        problem(r, "rejectedIdentifier", 400)
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "email", "value": "a@b"}]},
                        check=False)
    problem(r, "unsupportedIdentifier", 400)
    assert harness.rows("acme_orders") == []
    leaf = _leaf(await acme.issue(["127.0.0.1"], responder))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


async def test_skip_validation_is_an_explicit_test_switch(make_harness: Any) -> None:
    harness = make_harness(skip_validation="1")
    acme = acme_client(harness)
    await acme.register()
    await acme.issue(["nobody-answers.test.example"])  # no responder token at all
    assert harness.counts() == (1, 1)


async def test_expired_order_is_invalid_and_cannot_be_finalized(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["old.test.example"])
    with harness.ctx.db.write() as tx:
        tx.run("update acme_orders set expires = ?",
               (tx.when(harness.ctx.clock.now().replace(year=2000)),))
    body = (await acme.get(order_url)).json()
    assert body["status"] == "invalid" and "expired" in body["error"]["detail"]
    r = await acme.post(order["finalize"], {"csr": b64e(make_csr(["old.test.example"]))},
                        check=False)
    problem(r, "orderNotReady", 403)
    assert harness.counts() == (0, 0)


async def test_every_bad_identifier_is_a_subproblem(make_harness: Any) -> None:
    """RFC 8555 §6.7.1: one problem whose subproblems name each refused identifier, not
    only the first; nothing is stored."""
    harness = make_harness(endpoints={"default": {
        "challenges": ["http-01"], "allow": ["dns:*.test.example"]}})
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    idents = [{"type": "dns", "value": "ok.test.example"},
              {"type": "dns", "value": "outside.example"},
              {"type": "dns", "value": "bad..name"},
              {"type": "email", "value": "a@b"},
              {"type": "ip", "value": "not-an-ip"}]
    r = await acme.post(d["newOrder"], {"identifiers": idents}, check=False)
    problem(r, "malformed", 400)
    subs = r.json()["subproblems"]
    assert [s["identifier"] for s in subs] == [
        {"type": "dns", "value": "bad..name"}, {"type": "email", "value": "a@b"},
        {"type": "ip", "value": "not-an-ip"}, {"type": "dns", "value": "outside.example"}]
    assert [s["type"].removeprefix(NS) for s in subs] == [
        "rejectedIdentifier", "unsupportedIdentifier", "rejectedIdentifier",
        "rejectedIdentifier"]
    assert "4 identifiers are refused" in r.json()["detail"]
    # Two refused by the name policy alone: one type, so it is the top-level type.
    r = await acme.post(d["newOrder"], {"identifiers": [
        {"type": "dns", "value": "a.example"}, {"type": "dns", "value": "b.example"}]},
        check=False)
    problem(r, "rejectedIdentifier", 400)
    assert [s["identifier"]["value"] for s in r.json()["subproblems"]] == ["a.example",
                                                                           "b.example"]
    assert harness.rows("acme_orders") == []
    assert harness.rows("acme_authzs") == []
