"""The admin API over HTTPS against one real `enroll serve` (admin_api_server.py):
authentication (tokens: none, bad, revoked, expired; admin client certificates), the
roles on every kind of action, four-eyes approval, rejection, revocation (one, by
identity) as the CRL and OCSP then say, audit paging and verification, the doors'
credentials, and problem documents for bad input."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from admin_api_server import (
    GATED,
    OPERATOR_CN,
    VIEWER_CN,
    backends,
    configure,
    est_enroll,
    est_password,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from harness import child_env, pg_schema_url, start_server, stop_server

from enroll.testing import make_key

PROBLEM = "application/problem+json"


class Served:
    def __init__(self, server: Any, data: Path, env: dict[str, str]) -> None:
        self.data = data
        self.env = env
        self.server = server
        self.api = f"{server.https_url}/api/v1"
        self.tokens: dict[str, str] = {}
        self.short_lived_made = 0.0

    def make_tokens(self, wanted: dict[str, tuple[str, ...]]) -> None:
        """``enroll admin token new --name N --role R …`` for each of `wanted` (name ->
        role and flags), the CLI runs side by side (each is a Python start-up)."""
        running = {name: subprocess.Popen(
            [sys.executable, "-m", "enroll.cli.main", "--data-dir", str(self.data), "admin",
             "token", "new", "--name", name, "--role", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=child_env(ENROLL_DATA_DIR=str(self.data),
                                                     **self.env))
            for name, args in wanted.items()}
        for name, proc in running.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            self.tokens[name] = out.strip()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, verify=self.server.tls_ca, headers=headers,
                            timeout=30, trust_env=False, **kwargs)

    def as_(self, name: str) -> httpx.Client:
        return self.client(self.tokens[name])

    def pending_request(self, cn: str) -> str:
        r = est_enroll(self.server.https_url, self.server.tls_ca, "est",
                       est_password(self.data), cn, label=GATED)
        assert r.status_code == 202, r.text
        with self.as_("viewer") as c:
            page = c.get("/requests", params={"status": "pending", "limit": 50}).json()
        found = [i for i in page["items"] if i["subject"] == f"CN={cn}"]
        assert len(found) == 1, page
        assert found[0]["approvals_required"] == 2 and found[0]["approvers"] == []
        return str(found[0]["id"])

    def issued(self, cn: str) -> x509.Certificate:
        r = est_enroll(self.server.https_url, self.server.tls_ca, "est",
                       est_password(self.data), cn)
        assert r.status_code == 200, r.text
        return pkcs7.load_der_pkcs7_certificates(base64.b64decode(r.content))[0]


@pytest.fixture(scope="module", params=backends())
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    with contextlib.ExitStack() as stack:
        env = {} if request.param == "sqlite" else {
            "ENROLL_DATABASE_URL": stack.enter_context(contextlib.contextmanager(
                pg_schema_url)())}
        data = tmp_path_factory.mktemp("admin-api") / "data"
        configure(data, env)
        server = start_server(data, env)
        stack.callback(stop_server, server)
        s = Served(server, data, env)
        s.make_tokens({"viewer": ("viewer",), "approver": ("approver",),
                       "revoker": ("revoker",), "admin": ("admin",),
                       "approver2": ("approver",), "soon-revoked": ("viewer",),
                       "short-lived": ("viewer", "--expires", "1s")})
        s.short_lived_made = time.monotonic()
        yield s


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    assert body["type"].startswith("tag:enroll,2026:problem/"), body
    return body


# -- authentication ------------------------------------------------------------------

def test_the_document_is_openapi_3_1_and_describes_every_route(served: Served) -> None:
    with served.client() as c:
        doc = c.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": served.api}]
    for path in ("/certificates", "/certificates/{serial}", "/certificates/{serial}/pem",
                 "/certificates/{serial}/der", "/certificates/{serial}/revoke",
                 "/certificates/revoke-identity", "/requests", "/requests/{request_id}",
                 "/requests/{request_id}/approve", "/requests/{request_id}/reject",
                 "/inventory", "/lineage", "/migration", "/cas", "/cas/{name}/chain",
                 "/audit", "/audit/verify", "/acme/eab-keys", "/acme/eab-keys/{kid}",
                 "/scep/challenges", "/est/users", "/est/users/{endpoint}/{username}"):
        assert path in doc["paths"], path
    approve = doc["paths"]["/requests/{request_id}/approve"]["post"]
    assert "Roles: approver, admin." in approve["description"]


@pytest.mark.parametrize("header", [None, "Bearer enr.0000000000000000.nope",
                                    "Basic ZXN0OmVzdA==", "Bearer " + "x" * 300])
def test_no_or_a_bad_credential_is_401_with_www_authenticate(
        served: Served, header: str | None) -> None:
    with served.client() as c:
        r = c.get("/certificates", headers={"authorization": header} if header else {})
    problem(r, 401)
    assert r.headers["www-authenticate"] == 'Bearer realm="enroll-admin"' + (
        ', error="invalid_token"' if header else "")


def test_revoked_and_expired_tokens_are_401(served: Served) -> None:
    revoked, expired = served.tokens["soon-revoked"], served.tokens["short-lived"]
    with served.client(revoked) as c:
        assert c.get("/cas").status_code == 200
    assert served.server.enroll("admin", "token", "revoke", "soon-revoked").returncode == 0
    with served.client(revoked) as c:
        problem(c.get("/cas"), 401)
    time.sleep(max(0.0, served.short_lived_made + 1.5 - time.monotonic()))
    with served.client(expired) as c:
        problem(c.get("/cas"), 401)


# -- roles -----------------------------------------------------------------------------

MISSING = "0f" * 8
ACTIONS = {
    # action: (method, path, json body); the target does not exist, so an allowed role
    # gets past the role check to a 404 (or the read's 200), a refused one a 403.
    "read": ("GET", "/certificates", None),
    "approve": ("POST", "/requests/no-such-request/approve", None),
    "revoke": ("POST", f"/certificates/{MISSING}/revoke", {"reason": "superseded"}),
    "manage": ("DELETE", "/acme/eab-keys/kid-missing", None),
}
ALLOWED = {"viewer": {"read"}, "approver": {"read", "approve"},
           "revoker": {"read", "revoke"}, "admin": {"read", "approve", "revoke", "manage"}}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_is_allowed_exactly_its_actions(served: Served, role: str) -> None:
    with served.as_(role) as c:
        for action, (method, path, body) in ACTIONS.items():
            r = c.request(method, path, json=body)
            if action in ALLOWED[role]:
                assert r.status_code in (200, 404), (role, action, r.text)
            else:
                assert "may not" in problem(r, 403)["detail"], (role, action)


# -- four-eyes, rejection ----------------------------------------------------------------

def test_four_eyes_two_approvers_issue_and_one_approver_twice_is_409(served: Served) -> None:
    rid = served.pending_request("four-eyes-1")
    with served.as_("approver") as first:
        one = first.post(f"/requests/{rid}/approve")
        assert one.status_code == 200, one.text
        assert one.json() == {"request_id": rid, "status": "pending", "serial": None,
                              "approvers": ["token:approver"], "approvals_required": 2}
        assert "already approved" in problem(first.post(f"/requests/{rid}/approve"),
                                             409)["detail"]
    with served.as_("viewer") as c:
        assert c.get(f"/requests/{rid}").json()["status"] == "pending"
    with served.as_("approver2") as second:
        two = second.post(f"/requests/{rid}/approve")
    assert two.status_code == 200, two.text
    done = two.json()
    assert done["status"] == "issued" and done["serial"]
    assert sorted(done["approvers"]) == ["token:approver", "token:approver2"]
    with served.as_("viewer") as c:
        rec = c.get(f"/requests/{rid}").json()
        assert rec["status"] == "issued" and rec["certificate_serial"] == done["serial"]
        cert = c.get(f"/certificates/{done['serial']}").json()
        assert cert["subject"] == "CN=four-eyes-1" and cert["profile"] == GATED
        pem = c.get(f"/certificates/{done['serial']}/pem")
        der = c.get(f"/certificates/{done['serial']}/der")
    assert x509.load_pem_x509_certificate(pem.content) == x509.load_der_x509_certificate(
        der.content)
    assert der.headers["content-type"] == "application/pkix-cert"


def test_reject_with_a_reason(served: Served) -> None:
    rid = served.pending_request("rejected-1")
    with served.as_("approver") as c:
        problem(c.post(f"/requests/{rid}/reject", json={}), 400)
        problem(c.post(f"/requests/{rid}/reject", json={"reason": "   "}), 400)
        r = c.post(f"/requests/{rid}/reject", json={"reason": "not one of ours"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "rejected" and r.json()["reason"] == "not one of ours"
        problem(c.post(f"/requests/{rid}/reject", json={"reason": "again"}), 409)
        problem(c.post(f"/requests/{rid}/approve"), 409)


# -- revocation --------------------------------------------------------------------------

def _ocsp_status(served: Served, cert: x509.Certificate) -> ocsp.OCSPCertStatus:
    issuer = x509.load_pem_x509_certificates(
        httpx.get(f"{served.server.http_url}/ca/issuing/chain.pem", trust_env=False).content)[0]
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    r = httpx.post(f"{served.server.http_url}/ocsp", content=req.public_bytes(
        serialization.Encoding.DER), headers={"content-type": "application/ocsp-request"},
        trust_env=False)
    return ocsp.load_der_ocsp_response(r.content).certificate_status


def _crl_serials(served: Served) -> set[int]:
    der = httpx.get(f"{served.server.http_url}/crl/issuing.crl", trust_env=False).content
    return {e.serial_number for e in x509.load_der_x509_crl(der)}


def test_revoke_one_shows_in_get_crl_and_ocsp(served: Served) -> None:
    cert = served.issued("revoke-me-1")
    serial = format(cert.serial_number, "x")
    assert _ocsp_status(served, cert) is ocsp.OCSPCertStatus.GOOD
    with served.as_("revoker") as c:
        problem(c.post(f"/certificates/{serial}/revoke", json={"reason": "bogus"}), 400)
        r = c.post(f"/certificates/{serial}/revoke", json={"reason": "keyCompromise"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "revoked"
        assert r.json()["revocation_reason"] == "keyCompromise"
        problem(c.post(f"/certificates/{serial}/revoke", json={}), 400)
        problem(c.post(f"/certificates/{serial}/revoke", json={"reason": "superseded"}), 409)
        # openssl's zero-padded, colon-separated form finds the same certificate
        padded = ":".join(f"{cert.serial_number:040x}"[i:i + 2] for i in range(0, 40, 2))
        assert c.get(f"/certificates/{padded}").json()["status"] == "revoked"
        cas = {ca["name"]: ca for ca in c.get("/cas").json()["items"]}
    assert cert.serial_number in _crl_serials(served)
    assert _ocsp_status(served, cert) is ocsp.OCSPCertStatus.REVOKED
    assert cas["issuing"]["crl"]["number"] >= 1 and not cas["issuing"]["crl"]["stale"]
    assert cas["issuing"]["ocsp"]["url"].endswith("/ocsp")


def test_revoke_by_identity_dry_run_then_for_real(served: Served) -> None:
    certs = [served.issued("fleet-dev-7"), served.issued("fleet-dev-7")]
    body = {"identity": "subject.CN:fleet-dev-7", "reason": "superseded", "dry_run": True}
    with served.as_("revoker") as c:
        dry = c.post("/certificates/revoke-identity", json=body).json()
        assert dry["count"] == 2 and dry["dry_run"] is True
        assert {i["status"] for i in dry["items"]} == {"valid"}
        real = c.post("/certificates/revoke-identity", json={**body, "dry_run": False})
        assert real.json()["count"] == 2, real.text
        listed = c.get("/certificates", params={"identity": "subject.CN:fleet-dev-7"}).json()
        chains = c.get("/lineage", params={"of": "subject.CN:fleet-dev-7"}).json()["chains"]
        assert c.get("/migration").json() == {"profiles": []}
    assert {i["status"] for i in listed["items"]} == {"revoked"}
    assert sorted(link["serial"] for chain in chains for link in chain) == sorted(
        i["serial"] for i in listed["items"])
    assert {format(c.serial_number, "x") for c in certs} == {i["serial"]
                                                             for i in listed["items"]}


# -- listings, audit -----------------------------------------------------------------------

def test_certificate_pages_follow_the_cursor(served: Served) -> None:
    for _ in range(3):
        served.issued("paged-dev")
    seen: list[str] = []
    with served.as_("viewer") as c:
        params: dict[str, Any] = {"identity": "subject.CN:paged-dev", "limit": 2}
        while True:
            page = c.get("/certificates", params=params).json()
            seen += [i["serial"] for i in page["items"]]
            if page["next"] is None:
                break
            params["after"] = page["next"]
        problem(c.get("/certificates", params={"after": "not-a-cursor"}), 400)
    assert len(seen) == 3 == len(set(seen))


def test_audit_pages_name_the_caller_never_the_token_and_verify(served: Served) -> None:
    with served.as_("viewer") as c:
        assert c.get("/inventory", params={"state": "ok"}).status_code == 200
        first = c.get("/audit", params={"limit": 3}).json()
        assert len(first["items"]) == 3 and first["next"] == str(first["items"][-1]["id"])
        second = c.get("/audit", params={"after": first["next"], "limit": 3}).json()
        assert second["items"][0]["id"] > first["items"][-1]["id"]
        api = c.get("/audit", params={"type": "admin.api", "actor": "token:viewer",
                                      "limit": 500}).json()["items"]
        verdict = c.post("/audit/verify")
        everything = c.get("/audit", params={"limit": 500}).text
    assert {"method": "GET", "route": "/inventory", "status": 200} in [
        e["details"] for e in api]
    assert all(set(e["details"]) == {"method", "route", "status"} for e in api)
    assert verdict.status_code == 200 and verdict.json()["ok"] is True, verdict.text
    assert verdict.json()["events"] > 0
    for secret in served.tokens.values():
        assert secret not in everything and secret.split(".")[2] not in everything


# -- credentials ---------------------------------------------------------------------------

def test_eab_keys_create_list_revoke(served: Served) -> None:
    with served.as_("admin") as c:
        made = c.post("/acme/eab-keys", json={"allow": ["dns:*.corp.example"]})
        assert made.status_code == 201, made.text
        kid, key = made.json()["kid"], made.json()["hmac"]
        assert len(base64.urlsafe_b64decode(key + "==")) == 32
        listed = c.get("/acme/eab-keys").json()["items"]
        assert {"kid": kid, "endpoint": "default", "allow": ["dns:*.corp.example"],
                "identity": None, "account_id": None} in listed
        assert key not in c.get("/acme/eab-keys").text
        problem(c.post("/acme/eab-keys", json={"endpoint": "nowhere"}), 404)
        problem(c.post("/acme/eab-keys", json={"allow": ["nonsense"]}), 400)
        assert c.delete(f"/acme/eab-keys/{kid}").status_code == 204
        assert kid not in c.get("/acme/eab-keys").text
        problem(c.delete(f"/acme/eab-keys/{kid}"), 404)
    with served.as_("revoker") as c:
        problem(c.get("/acme/eab-keys"), 403)


def test_scep_challenge_and_est_users(served: Served) -> None:
    with served.as_("admin") as c:
        made = c.post("/scep/challenges", json={"expires_in": 600})
        assert made.status_code == 201, made.text
        assert len(made.json()["challenge"]) >= 32
        user = c.post("/est/users", json={"endpoint": GATED, "username": "line-7"}).json()
        assert user["created"] is True and len(user["password"]) >= 16
        assert {"endpoint": GATED, "username": "line-7"} in c.get("/est/users").json()["items"]
    r = est_enroll(served.server.https_url, served.server.tls_ca, "line-7", user["password"],
                   "line-7-device", label=GATED)
    assert r.status_code == 202, r.text
    with served.as_("admin") as c:
        assert c.delete(f"/est/users/{GATED}/line-7").status_code == 204
        problem(c.delete(f"/est/users/{GATED}/line-7"), 404)


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), [
    ("GET", "/certificates/not-hex", {}, 400, "serial"),
    ("GET", "/certificates/" + "f" * 61, {}, 400, "serial"),
    ("GET", "/certificates", {"params": {"limit": "0"}}, 400, "limit"),
    ("GET", "/certificates", {"params": {"limit": "501"}}, 400, "limit"),
    ("GET", "/certificates", {"params": {"limit": "ten"}}, 400, "limit"),
    ("GET", "/certificates", {"params": {"status": "bogus"}}, 400, "status"),
    ("GET", "/certificates", {"params": {"colour": "red"}}, 400, "unknown query"),
    ("GET", "/certificates", {"params": [("limit", "1"), ("limit", "2")]}, 400, "once"),
    ("GET", "/inventory", {"params": {"state": "sleepy"}}, 400, "state"),
    ("GET", "/inventory", {"params": {"after": "garbage"}}, 400, "cursor"),
    ("GET", "/requests", {"params": {"status": "maybe"}}, 400, "status"),
    ("GET", "/audit", {"params": {"after": "-1"}}, 400, "after"),
    ("GET", "/lineage", {}, 400, "required"),
    ("GET", "/audit", {"params": {"actor": "token:\x00"}}, 400, "NUL"),
    ("POST", "/certificates/revoke-identity", {"json": {"identity": "a:\x00",
                                                        "reason": "superseded"}}, 400, "NUL"),
    ("GET", "/lineage", {"params": {"of": "subject.CN:nobody"}}, 404, "nobody"),
    ("GET", "/cas/nope/chain", {}, 404, "nope"),
    ("POST", "/certificates/revoke-identity", {"content": b"{" * 40,
                                              "headers": {"content-type":
                                                          "application/json"}}, 400, "JSON"),
    ("POST", "/certificates/revoke-identity", {"content": b'{"identity": "x:y"}',
                                              "headers": {"content-type": "text/plain"}},
     415, "application/json"),
    ("POST", "/certificates/revoke-identity", {"json": {"identity": "x" * 20000}}, 413,
     "larger"),
    ("POST", "/certificates/revoke-identity", {"json": {"identity": "a:b", "extra": 1}}, 400,
     "unknown member"),
    ("POST", "/certificates/revoke-identity", {"json": {"identity": 7}}, 400, "identity"),
    ("POST", "/certificates/revoke-identity", {"json": ["a"]}, 400, "object"),
    ("GET", "/no/such/route", {}, 404, "route"),
    ("DELETE", "/certificates", {}, 405, "GET"),
])
def test_bad_input_is_a_problem_document(served: Served, method: str, path: str,
                                         kwargs: dict[str, Any], status: int,
                                         words: str) -> None:
    with served.as_("admin") as c:
        r = c.request(method, path, **kwargs)
    assert words in problem(r, status)["detail"]


# -- admin client certificates -----------------------------------------------------------

def _admin_cert(served: Served, tmp: Path, cn: str) -> tuple[str, str, x509.Certificate]:
    """An operator certificate from the admin CA, via an EST user the API made."""
    with served.as_("admin") as c:
        user = c.post("/est/users", json={"endpoint": "admin", "username": cn}).json()
    key = make_key("ec-p256")
    r = est_enroll(served.server.https_url, served.server.tls_ca, cn, user["password"], cn,
                   label="admin", key=key)
    assert r.status_code == 200, r.text
    cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(r.content))[0]
    certfile, keyfile = tmp / f"{cn}.pem", tmp / f"{cn}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile), cert


def _tls_client(served: Served, certfile: str, keyfile: str) -> httpx.Client:
    import ssl

    context = ssl.create_default_context(cafile=served.server.tls_ca)
    context.load_cert_chain(certfile, keyfile)
    return httpx.Client(base_url=served.api, verify=context, timeout=30, trust_env=False)


def test_admin_client_certificates_sign_in_with_their_role(served: Served,
                                                           tmp_path: Path) -> None:
    ops = _admin_cert(served, tmp_path, OPERATOR_CN)
    noc = _admin_cert(served, tmp_path, VIEWER_CN)
    stranger = _admin_cert(served, tmp_path, "stranger.example")
    with _tls_client(served, ops[0], ops[1]) as c:
        r = c.get("/acme/eab-keys")
        assert r.status_code == 200, r.text
    with _tls_client(served, noc[0], noc[1]) as c:
        assert c.get("/cas").status_code == 200
        problem(c.post(f"/certificates/{MISSING}/revoke", json={"reason": "superseded"}),
                403)
    with _tls_client(served, stranger[0], stranger[1]) as c:
        assert "client_roles" in problem(c.get("/cas"), 403)["detail"]
    with served.as_("viewer") as c:
        events = c.get("/audit", params={"type": "admin.api", "actor": f"cert:{OPERATOR_CN}",
                                         "limit": 50}).json()["items"]
    assert [e["details"]["route"] for e in events] == ["/acme/eab-keys"]
    serial = format(noc[2].serial_number, "x")
    with served.as_("revoker") as c:
        assert c.post(f"/certificates/{serial}/revoke",
                      json={"reason": "affiliationChanged"}).status_code == 200
    with _tls_client(served, noc[0], noc[1]) as c:
        problem(c.get("/cas"), 401)
    # a device certificate from another CA is no admin certificate, whatever its CN
    device_key = make_key("ec-p256")
    r = est_enroll(served.server.https_url, served.server.tls_ca, "est",
                   est_password(served.data), OPERATOR_CN, key=device_key)
    device = pkcs7.load_der_pkcs7_certificates(base64.b64decode(r.content))[0]
    (tmp_path / "dev.pem").write_bytes(device.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "dev.key").write_bytes(device_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with _tls_client(served, str(tmp_path / "dev.pem"), str(tmp_path / "dev.key")) as c:
        problem(c.get("/cas"), 401)


# -- the document against the served app (schemathesis) --------------------------------
# Last in the module: it runs every operation with generated input as the admin, which
# may revoke or delete what it happens to name.

SCHEMATHESIS_EXAMPLES = 6


def test_every_operation_answers_as_documented(served: Served) -> None:
    """schemathesis, over HTTPS on loopback: for each operation of the served document,
    generated valid inputs (a few per operation) get no 5xx, and every answer's status,
    content type, headers and body match the document."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance]
    with served.client() as c:
        document = c.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    session.verify = served.server.tls_ca
    session.trust_env = False
    headers = {"authorization": f"Bearer {served.tokens['admin']}"}
    calls: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()
    def exercise(operation: Any) -> None:
        @given(case=operation.as_strategy())
        @settings(max_examples=SCHEMATHESIS_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: Any) -> None:
            response = case.call(base_url=served.api, session=session, headers=headers,
                                 timeout=30, verify=served.server.tls_ca)
            calls[operation.label] = calls.get(operation.label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=checks)

        check()

    try:
        for result in schema.get_all_operations():
            exercise(result.ok())
    finally:
        session.close()  # an idle keep-alive connection would hold up the server's stop
    elapsed = time.monotonic() - started
    print(f"schemathesis: {sum(calls.values())} calls over {len(calls)} operations in "
          f"{elapsed:.1f}s; statuses {dict(sorted(statuses.items()))}")
    assert len(calls) == sum(len(v) for v in document["paths"].values())
    assert not [s for s in statuses if s >= 500]
