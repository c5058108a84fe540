"""`enroll serve`'s two listeners: ACME and EST only on HTTPS (a refusal naming the
HTTPS URL on plain HTTP); SCEP, CRLs, OCSP and CA certificates on both; a Replay-Nonce
on every ACME error answer, also those the app's outer layers make (404, 405, 413)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

NS = "urn:ietf:params:acme:error:"
pytestmark = pytest.mark.slow


@pytest.fixture
def clients(enroll_server: Any) -> Iterator[tuple[Any, httpx.Client, httpx.Client]]:
    with httpx.Client(base_url=enroll_server.http_url, trust_env=False, timeout=10) as http, \
            httpx.Client(base_url=enroll_server.https_url, verify=enroll_server.tls_ca,
                         trust_env=False, timeout=10) as https:
        yield enroll_server, http, https


def test_acme_on_plain_http_is_a_problem_naming_the_https_url(clients: Any) -> None:
    server, http, https = clients
    for method, path in (("GET", "/acme/directory"), ("HEAD", "/acme/new-nonce"),
                         ("POST", "/acme/new-order"), ("GET", "/acme/renewal-info/x.y")):
        r = http.request(method, path, content=b"{}" if method == "POST" else None,
                         headers={"content-type": "application/jose+json"})
        assert r.status_code == 403, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["replay-nonce"]
        if method != "HEAD":
            assert r.json()["type"] == NS + "malformed"
            assert r.json()["detail"] == ("ACME is served over HTTPS only (RFC 8555 section 6.1): "
                                          f"{server.https_url}{path}")
    directory = https.get("/acme/directory").json()
    assert directory["newOrder"] == f"{server.https_url}/acme/new-order"
    assert https.head("/acme/new-nonce").headers["replay-nonce"]


def test_est_on_plain_http_is_403_naming_the_https_url(clients: Any) -> None:
    server, http, https = clients
    for method, op in (("GET", "cacerts"), ("GET", "csrattrs"), ("POST", "simpleenroll")):
        r = http.request(method, f"/.well-known/est/{op}")
        assert r.status_code == 403
        assert r.text == ("EST is served over HTTPS only (RFC 7030 §3.3): "
                          f"{server.https_url}/.well-known/est/{op}\n")
    assert https.get("/.well-known/est/cacerts").status_code == 200


def test_scep_crl_ocsp_and_ca_certificates_stay_on_plain_http(clients: Any) -> None:
    server, http, https = clients
    assert http.get("/scep", params={"operation": "GetCACaps"}).status_code == 200
    assert http.get("/scep/pkiclient.exe", params={"operation": "GetCACert"}).status_code \
        == 200
    assert http.get("/ca/issuing.pem").status_code == 200
    assert http.get("/crl/issuing.crl").headers["content-type"] == "application/pkix-crl"
    ocsp = http.post("/ocsp", content=b"\x30\x00")  # malformedRequest, from OCSP itself
    assert ocsp.headers["content-type"] == "application/ocsp-response"
    assert http.get("/health").status_code == 200
    assert https.get("/scep", params={"operation": "GetCACaps"}).status_code == 200


def test_every_acme_error_answer_carries_a_replay_nonce(clients: Any) -> None:
    server, http, https = clients
    jose = {"content-type": "application/jose+json"}
    cases = {
        "404 unknown ACME path": https.post("/acme/no-such-thing", content=b"{}",
                                            headers=jose),
        "405 GET on a POST resource": https.get("/acme/new-order"),
        "405 POST on newNonce": https.post("/acme/new-nonce", content=b"{}", headers=jose),
        "413 declared length": https.post("/acme/new-order", content=b"x" * 300_000,
                                          headers=jose),
        "413 chunked": https.post("/acme/new-order", headers=jose,
                                  content=iter([b"x" * 100_000] * 3)),
    }
    nonces = set()
    for what, r in cases.items():
        assert r.status_code == int(what[:3]), (what, r.status_code, r.text)
        assert r.headers.get("replay-nonce"), what
        assert r.headers["cache-control"] == "no-store", what
        nonces.add(r.headers["replay-nonce"])
    assert len(nonces) == len(cases)  # each a fresh nonce
    # Outside the ACME paths nothing is added.
    for r in (https.get("/acmex"), https.get("/nope"), http.get("/acme-like/directory")):
        assert r.status_code == 404 and "replay-nonce" not in r.headers


def test_a_fresh_nonce_from_an_error_answer_is_accepted(clients: Any) -> None:
    """The nonce on a 405 is a real one: a JWS using it gets past the nonce check."""
    import json

    from enroll.protocols.acme.jws import jwk_of

    from enroll.testing import make_key
    from enroll.testing.acme_client import alg_of, jws

    server, http, https = clients
    nonce = https.get("/acme/new-order").headers["replay-nonce"]
    key = make_key()
    url = f"{server.https_url}/acme/new-account"
    body = jws(key, {"alg": alg_of(key), "nonce": nonce, "url": url,
                     "jwk": jwk_of(key.public_key())}, {"termsOfServiceAgreed": True})
    r = https.post("/acme/new-account", content=json.dumps(body),
                   headers={"content-type": "application/jose+json"})
    assert r.status_code == 201, r.text
