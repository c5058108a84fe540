"""Each JWS and access rule (RFC 8555 §6) answers the right problem type, carries a
fresh Replay-Nonce, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from enroll.protocols.acme.jws import b64e, jwk_of
from harness import acme_client, problem

from enroll.testing.acme_client import Http01Responder, jws, make_csr


async def _ready_order(responder: Http01Responder, acme: Any,
                       names: list[str]) -> tuple[str, dict[str, Any]]:
    order_url, order = await acme.new_order(names)
    for authz_url in order["authorizations"]:
        authz = (await acme.get(authz_url)).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
        await acme.post(chall["url"], {})
    return order_url, await acme.poll(order_url, ("ready", "invalid"))


async def test_replayed_nonce_is_badNonce_and_creates_nothing(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    nonce = await acme.nonce()
    ident = {"identifiers": [{"type": "dns", "value": "a.test.example"}]}
    first = await acme.post(d["newOrder"], ident, nonce=nonce)
    assert first.status_code == 201
    again = await acme.post(d["newOrder"], ident, nonce=nonce, check=False)
    problem(again, "badNonce", 400)
    forged = await acme.post(d["newOrder"], ident, nonce=b64e(b"x" * 36), check=False)
    problem(forged, "badNonce", 400)
    assert len(harness.rows("acme_orders")) == 1


async def test_url_mismatch_is_unauthorized(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "x.example"}]},
                        url=d["newAccount"], check=False)
    problem(r, "unauthorized", 403)
    assert harness.rows("acme_orders") == []


async def test_a_missing_url_header_is_malformed(harness: Any) -> None:
    """RFC 8555 §6.4: a JWS without the url header is malformed (a wrong one is
    unauthorized, above)."""
    acme = acme_client(harness)
    await acme.register()
    d = await acme.directory()
    body = await acme.signed(d["newOrder"], {"identifiers": [
        {"type": "dns", "value": "x.example"}]}, url=...)
    r = await harness.http.post(d["newOrder"], content=json.dumps(body),
                                headers={"Content-Type": "application/jose+json"})
    problem(r, "malformed", 400)
    assert "no url" in r.json()["detail"]
    assert harness.rows("acme_orders") == []


async def test_wrong_alg_is_badSignatureAlgorithm(harness: Any) -> None:
    acme = acme_client(harness)
    d = await acme.directory()
    for alg in ("ES384", "RS256", "none", "HS256"):
        r = await acme.post(d["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True,
                            alg=alg, check=False)
        problem(r, "badSignatureAlgorithm", 400)
        # RFC 8555 §6.2: the problem lists the algorithms the server supports.
        assert r.json()["algorithms"] == ["RS256", "ES256", "ES384", "ES512", "EdDSA"]
    assert harness.rows("acme_accounts") == []


async def test_bad_signature_kid_jwk_and_media_type_rules(harness: Any) -> None:
    acme = acme_client(harness)
    d = await acme.directory()
    body = await acme.signed(d["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True)
    body["signature"] = b64e(b"\x00" * 64)
    r = await harness.http.post(d["newAccount"], content=json.dumps(body),
                                headers={"Content-Type": "application/jose+json"})
    problem(r, "malformed", 400)
    body = await acme.signed(d["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True)
    r = await harness.http.post(d["newAccount"], content=json.dumps(body),
                                headers={"Content-Type": "application/json"})
    problem(r, "malformed", 415)
    r = await acme.post(d["newAccount"], {}, kid="https://acme.test/acme/acct/x",
                        check=False, use_jwk=True)
    problem(r, "malformed", 400)  # both jwk and kid
    assert harness.rows("acme_accounts") == []
    await acme.register()
    r = await acme.post(d["newOrder"], {"identifiers": []}, use_jwk=True, check=False)
    problem(r, "malformed", 400)  # newOrder needs kid
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example"}]},
                        kid="https://acme.test/acme/acct/nobody", check=False)
    problem(r, "accountDoesNotExist", 400)
    r = await acme.post(d["newOrder"], None, check=False)  # POST-as-GET to newOrder
    problem(r, "malformed", 400)
    assert harness.rows("acme_orders") == []


async def test_unprotected_header_and_general_serialization_are_refused(harness: Any) -> None:
    acme = acme_client(harness)
    d = await acme.directory()
    body: dict[str, Any] = await acme.signed(d["newAccount"], {}, use_jwk=True)
    body["header"] = {"kid": "x"}
    r = await harness.http.post(d["newAccount"], content=json.dumps(body),
                                headers={"Content-Type": "application/jose+json"})
    problem(r, "malformed", 400)
    assert harness.rows("acme_accounts") == []


async def test_account_b_cannot_touch_account_a_resources(harness: Any,
                                                          responder: Http01Responder) -> None:
    alice, mallory = acme_client(harness), acme_client(harness)
    await alice.register()
    await mallory.register()
    pem = await alice.issue(["mine.test.example"], responder)
    order_url, order = await alice.new_order(["other.test.example"])
    authz_url = order["authorizations"][0]
    chall_url = (await alice.get(authz_url)).json()["challenges"][0]["url"]
    done = json.loads((await alice.get((await alice.get(alice.kid + "/orders"))
                                       .json()["orders"][-1])).text)
    for url in (order_url, authz_url, chall_url, alice.kid, alice.kid + "/orders",
                done.get("certificate") or order_url):
        problem(await mallory.post(url, None, check=False), "unauthorized", 403)
    problem(await mallory.post(chall_url, {}, check=False), "unauthorized", 403)
    problem(await mallory.post(authz_url, {"status": "deactivated"}, check=False),
            "unauthorized", 403)
    problem(await mallory.post(order["finalize"], {"csr": b64e(make_csr(["other.test.example"]))},
                               check=False), "unauthorized", 403)
    d = await mallory.directory()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    problem(await mallory.post(d["revokeCert"], {"certificate": b64e(leaf.public_bytes(
        Encoding.DER))}, check=False), "unauthorized", 403)
    assert [r["status"] for r in harness.rows("acme_challenges")
            if r["authz_id"] == authz_url.rsplit("/", 1)[-1]] == ["pending"] * 3
    assert harness.ctx.authority.lookup(leaf).status.value == "valid"
    assert harness.counts() == (1, 1)


async def test_finalize_with_other_names_is_badCSR_and_issues_nothing(
        harness: Any, responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await _ready_order(responder, acme, ["one.test.example"])
    for names in (["two.test.example"], ["one.test.example", "two.test.example"]):
        r = await acme.post(order["finalize"], {"csr": b64e(make_csr(names))}, check=False)
        problem(r, "badCSR", 400)
    r = await acme.post(order["finalize"], {"csr": b64e(b"not a csr")}, check=False)
    problem(r, "badCSR", 400)
    assert (await acme.get(order_url)).json()["status"] == "ready"
    assert harness.counts() == (0, 0)


async def test_finalize_before_ready_is_orderNotReady(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await acme.new_order(["early.test.example"])
    r = await acme.post(order["finalize"], {"csr": b64e(make_csr(["early.test.example"]))},
                        check=False)
    problem(r, "orderNotReady", 403)
    assert harness.counts() == (0, 0)


async def test_racing_finalize_calls_issue_one_certificate(harness: Any,
                                                           responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await _ready_order(responder, acme, ["race.test.example"])
    csr = b64e(make_csr(["race.test.example"]))
    nonces = [(await acme.http.head((await acme.directory())["newNonce"]))
              .headers["Replay-Nonce"] for _ in range(8)]
    results = await asyncio.gather(*[
        acme.post(order["finalize"], {"csr": csr}, nonce=n, check=False) for n in nonces])
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 1 and set(codes) <= {200, 403}
    for r in results:
        if r.status_code == 403:
            problem(r, "orderNotReady", 403)
    assert (await acme.poll(order_url, ("valid",)))["status"] == "valid"
    assert harness.counts() == (1, 1)


async def test_deactivated_account_cannot_act(harness: Any) -> None:
    acme = acme_client(harness)
    await acme.register()
    r = await acme.post(acme.kid, {"status": "deactivated"})
    assert r.json()["status"] == "deactivated"
    d = await acme.directory()
    r = await acme.post(d["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example"}]},
                        check=False)
    problem(r, "unauthorized", 401)  # RFC 8555 §7.3.6
    assert harness.rows("acme_orders") == []


async def test_oversized_and_garbage_bodies_are_malformed(harness: Any) -> None:
    d = (await harness.http.get("/acme/directory")).json()
    headers = {"Content-Type": "application/jose+json"}
    r = await harness.http.post(d["newAccount"], content=b"{" * 10, headers=headers)
    problem(r, "malformed", 400)
    r = await harness.http.post(d["newAccount"], content=b"x" * 70000, headers=headers)
    assert r.status_code in (400, 413)
    key = ec.generate_private_key(ec.SECP256R1())
    body = jws(key, {"alg": "ES256", "jwk": jwk_of(key.public_key()), "url": d["newAccount"]}, {})
    r = await harness.http.post(d["newAccount"], content=json.dumps(body), headers=headers)
    problem(r, "badNonce", 400)  # no nonce at all
    assert harness.rows("acme_accounts") == []


async def test_account_key_cannot_be_the_certificate_key(harness: Any,
                                                         responder: Http01Responder) -> None:
    acme = acme_client(harness)
    await acme.register()
    order_url, order = await _ready_order(responder, acme, ["same.test.example"])
    csr = make_csr(["same.test.example"], acme.key)
    problem(await acme.post(order["finalize"], {"csr": b64e(csr)}, check=False), "badCSR", 400)
    assert (await acme.get(order_url)).json()["status"] == "ready"
    assert harness.counts() == (0, 0)


async def test_finalize_with_an_unparseable_or_oversized_csr_is_badCSR(
        harness: Any, responder: Http01Responder) -> None:
    from enroll.csr import MAX_CSR_BYTES

    acme = acme_client(harness)
    await acme.register()
    order_url, order = await _ready_order(responder, acme, ["junk.test.example"])
    for der in (b"\x30\x03\x02\x01\x01", b"\x30" * (MAX_CSR_BYTES + 1)):
        r = await acme.post(order["finalize"], {"csr": b64e(der)}, check=False)
        problem(r, "badCSR", 400)
    assert (await acme.get(order_url)).json()["status"] == "ready"
    assert harness.counts() == (0, 0)


async def test_challenge_answers_valid_and_a_failed_result_store_is_serverInternal(
        harness: Any, responder: Http01Responder, monkeypatch: Any) -> None:
    from enroll.protocols.acme import authorizations

    acme = acme_client(harness)
    await acme.register()
    for name, broken in (("ok.test.example", False), ("db.test.example", True)):
        _, order = await acme.new_order([name])
        authz = (await acme.get(order["authorizations"][0])).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[chall["token"]] = acme.key_authorization(chall["token"])
        if broken:
            def fail(*_args: Any) -> None:
                raise RuntimeError("database gone")

            monkeypatch.setattr(authorizations, "record_result", fail)
        r = await acme.post(chall["url"], {}, check=False)
        if broken:
            # Not a bare 500: a problem document whose detail names only the request id.
            problem(r, "serverInternal", 500)
            assert "database gone" not in r.text
        else:
            # RFC 8555 §7.5.1: validated before the answer.
            assert r.status_code == 200 and r.json()["status"] == "valid"
