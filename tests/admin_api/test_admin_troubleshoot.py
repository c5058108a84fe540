"""The troubleshooting reads over the admin API and in the console, against one real
`enroll serve` (admin_api_server.py): a CSR checked against a profile (the refusing
rule, the certificate it would get, nothing stored), a request's trail while pending and
once approved, the drift of a certificate and of a profile after the profile changed
(the server restarted on the edited file); the roles; and the console's request,
certificate and "Check a CSR" pages over plain HTTPS with a signed-in user (the sign-in
helpers of tests/admin_ui)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from admin_api_server import backends, configure
from cryptography.hazmat.primitives import serialization
from harness import child_env, pg_schema_url, start_server, stop_server
from test_admin_api import Served, problem

from enroll.testing import make_csr, make_key

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "admin_ui"))
from test_console_browser import PASSWORD, _client, _csrf, _sign_in_enrolling  # noqa: E402

PEM = serialization.Encoding.PEM


def _pem(csr: Any) -> str:
    return str(csr.public_bytes(PEM).decode())


@pytest.fixture(scope="module", params=backends())
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    with contextlib.ExitStack() as stack:
        env = {} if request.param == "sqlite" else {
            "ENROLL_DATABASE_URL": stack.enter_context(contextlib.contextmanager(
                pg_schema_url)())}
        data = tmp_path_factory.mktemp("admin-trouble") / "data"
        configure(data, env)
        server = start_server(data, env)
        s = Served(server, data, env)
        stack.callback(lambda: stop_server(s.server))  # the last test restarts it
        user = subprocess.Popen(
            [sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data), "admin",
             "user", "add", "vera", "--role", "viewer"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(ENROLL_DATA_DIR=str(data), **env))
        s.make_tokens({"viewer": ("viewer",), "approver": ("approver",),
                       "approver2": ("approver",)})
        _, err = user.communicate(PASSWORD + "\n", timeout=120)
        assert user.returncode == 0, err
        yield s


def _counts(served: Served, after: int = 0) -> tuple[int, int, list[dict[str, Any]]]:
    """Requests and certificates stored, and the audit events after id `after` (the
    listings at their documented largest page, 500)."""
    with served.as_("viewer") as c:
        requests = c.get("/requests", params={"status": "all", "limit": 500}).json()
        certs = c.get("/certificates", params={"limit": 500}).json()
        events = c.get("/audit", params={"limit": 400, "after": str(after)}).json()
    assert requests["next"] is None and certs["next"] is None, (requests, certs)
    assert len(events["items"]) < 400
    return len(requests["items"]), len(certs["items"]), events["items"]


def _as_documented(served: Served, path: str, *responses: Any) -> None:
    """Each answer's status, headers and body as the served OpenAPI document says
    (schemathesis' own validation, on real 200 answers that its generated inputs,
    naming no real profile or request, rarely reach)."""
    import schemathesis

    with served.client() as c:
        schema = schemathesis.openapi.from_dict(c.get("/openapi.json").json())
    for r in responses:
        assert r.status_code == 200, r.text
        schema[path][r.request.method].validate_response(r)


# -- the API -------------------------------------------------------------------------------

def test_a_refused_csr_names_the_rule_and_a_good_one_its_certificate(served: Served) -> None:
    served.issued("before-the-check")  # something stored already
    before = _counts(served)
    rsa = _pem(make_csr(make_key("rsa-2048"), cn="ops-rsa.example"))
    good = _pem(make_csr(make_key("ec-p256"), cn="would-be.example",
                         dns=["would-be.example"]))
    with served.as_("viewer") as c:
        refused = c.post("/profiles/operator/check", json={"csr": rsa, "endpoint": "admin"})
        issued = c.post("/profiles/device/check", json={"csr": good})
        held = c.post("/profiles/gated/check", json={"csr": good, "endpoint": "gated",
                                                      "requester": "est"})
    _as_documented(served, "/profiles/{name}/check", refused, issued, held)
    r = refused.json()
    assert r["decision"] == "would refuse" and r["certificate"] is None
    (rule,) = [s for s in r["steps"] if s["verdict"] == "refused"]
    assert rule["rule"] == "profile rule: key type and size"
    assert rule["reason"] and rule["reason"] in r["reason"]
    assert r["requester"] == "token:viewer" and r["endpoint"] == "admin"
    assert issued.status_code == 200, issued.text
    i = issued.json()
    assert i["decision"] == "would issue", i
    assert {s["verdict"] for s in i["steps"]} == {"passed"}
    cert = i["certificate"]
    assert cert["subject"] == "CN=would-be.example" and cert["sans"] == ["dns:would-be.example"]
    assert cert["ca"] == "issuing" and cert["extended_key_usage"] == ["client_auth"]
    assert cert["validity_seconds"] >= 365 * 86400 and cert["key_type"] == "ec-p256"
    h = held.json()
    assert h["decision"] == "would wait for approval" and h["approvals_required"] == 2, h
    # nothing stored: no request, no certificate, no event but the API's own
    after = _counts(served, before[2][-1]["id"])
    assert after[:2] == before[:2]
    assert {e["type"] for e in after[2]} == {"admin.api"}  # the three checks, the counts
    assert [e["details"]["route"] for e in after[2]].count("/profiles/{name}/check") == 3


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"csr": "not a csr at all"}, 400, "csr"),
    ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"},
     400, "PKCS#10"),
    ({}, 400, "csr: required"),
    ({"csr": "x", "protocol": "smtp"}, 400, "protocol"),
    ({"csr": "x" * 17000}, 413, "larger"),
])
def test_a_bad_csr_is_a_problem_document(served: Served, body: dict[str, Any], status: int,
                                         words: str) -> None:
    with served.as_("viewer") as c:
        assert words in problem(c.post("/profiles/device/check", json=body), status)["detail"]


def test_unknown_names_are_404_and_no_token_is_401(served: Served) -> None:
    good = _pem(make_csr(make_key("ec-p256"), cn="x.example"))
    with served.as_("viewer") as c:
        problem(c.post("/profiles/nope/check", json={"csr": good}), 404)
        problem(c.get("/profiles/nope/drift"), 404)
        problem(c.get("/certificates/0f0f0f0f/check"), 404)
        problem(c.get("/requests/no-such-request/trail"), 404)
        issuing = next(ca for ca in c.get("/cas").json()["items"] if ca["name"] == "issuing")
        assert "a CA" in problem(c.get(f"/certificates/{issuing['serial']}/check"),
                                 400)["detail"]
    with served.client() as c:
        for method, path in (("POST", "/profiles/device/check"),
                             ("GET", "/profiles/device/drift"),
                             ("GET", "/certificates/0f0f/check"),
                             ("GET", "/requests/x/trail")):
            problem(c.request(method, path, json={"csr": good}), 401)
    with served.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert "Roles: viewer, approver, revoker, admin." in \
        paths["/profiles/{name}/check"]["post"]["description"]
    assert {"/certificates/{serial}/check", "/profiles/{name}/drift",
            "/requests/{request_id}/trail"} <= set(paths)


def test_the_trail_of_a_pending_then_approved_request(served: Served) -> None:
    rid = served.pending_request("trail-dev-1")
    with served.as_("viewer") as c:
        answer = c.get(f"/requests/{rid}/trail")
    _as_documented(served, "/requests/{request_id}/trail", answer)
    pending = answer.json()
    assert pending["status"] == "pending" and pending["approvals"] == []
    steps = [s["step"] for s in pending["steps"]]
    assert steps[:2] == ["authentication", "rules"] and "votes" in steps
    assert pending["answer"].startswith("pending (") and "0 of 2 approvals" in pending["answer"]
    assert "est endpoint gated" in pending["steps"][0]["summary"]
    for name in ("approver", "approver2"):
        with served.as_(name) as c:
            assert c.post(f"/requests/{rid}/approve").status_code == 200
    with served.as_("viewer") as c:
        answer = c.get(f"/requests/{rid}/trail")
    _as_documented(served, "/requests/{request_id}/trail", answer)
    done = answer.json()
    assert done["status"] == "issued" and done["certificate_serial"]
    assert sorted(a["approver"] for a in done["approvals"]) == ["token:approver",
                                                               "token:approver2"]
    assert [s["step"] for s in done["steps"]].count("approval") == 2
    assert "signing" in [s["step"] for s in done["steps"]]
    assert done["answer"] == f"certificate {done['certificate_serial']}"


# -- the console ---------------------------------------------------------------------------

def test_the_console_pages_show_the_trail_the_drift_and_check_a_csr(served: Served) -> None:
    rid = served.pending_request("console-trail-1")
    serial = format(served.issued("console-drift-1").serial_number, "x")
    with _client(served.server) as http:
        _sign_in_enrolling(http, "vera")
        page = http.get(f"/ui/approvals/{rid}").text
        trail = re.findall(r'<tr data-step="([a-z ]+)">', page)
        assert trail[:2] == ["authentication", "rules"] and "votes" in trail
        assert "0 of 2 approvals" in unescape(page.split('id="trail-answer"')[1])
        cert = http.get(f"/ui/certificates/{serial}").text
        assert "As profile device builds it today." in cert
        with served.as_("viewer") as c:
            ca_serial = c.get("/cas").json()["items"][0]["serial"]
        ca_page = http.get(f"/ui/certificates/{ca_serial}")
        assert ca_page.status_code == 200 and 'id="drift-summary"' not in ca_page.text
        form = http.get("/ui/check")
        assert form.status_code == 200 and 'name="csr"' in form.text
        assert re.search(r"<option[^>]*>gated</option>", form.text)
        token = _csrf(form.text)
        rsa = _pem(make_csr(make_key("rsa-2048"), cn="<b>ops</b>"))
        refused = http.post("/ui/check", data={"csrf": token, "csr": rsa,
                                               "profile": "operator", "protocol": "est",
                                               "endpoint": "admin"})
        good = http.post("/ui/check", data={"csrf": token, "profile": "device", "csr": _pem(
            make_csr(make_key("ec-p256"), cn="console-check.example"))})
        bad = http.post("/ui/check", data={"csrf": token, "csr": "garbage",
                                           "profile": "device"})
        stale = http.post("/ui/check", data={"csrf": "0" * 64, "csr": rsa,
                                             "profile": "device"})
        huge = http.post("/ui/check", data={"csrf": token, "csr": "A" * 50_000,
                                            "profile": "device"})
    assert refused.status_code == 200, refused.text
    assert 'id="check-decision" class="verdict-deny">Decision: would refuse' in refused.text
    assert re.search(r'<tr data-verdict="refused"><td>profile rule: key type and size</td>',
                     refused.text)
    assert "<b>ops</b>" not in refused.text  # the pasted text comes back escaped
    assert "None: a profile rule refused" in refused.text
    assert good.status_code == 200, good.text
    assert "Decision: would issue" in good.text and 'data-verdict="refused"' not in good.text
    assert 'id="would-subject">CN=console-check.example<' in good.text
    assert bad.status_code == 400 and 'id="error-message"' in bad.text
    assert stale.status_code == 403
    assert huge.status_code == 400 and "at most" in huge.text
    assert "style=" not in refused.text + good.text + page + cert  # the CSP allows none


# -- drift: last, it restarts the server on an edited profile -----------------------------

def test_drift_after_the_profile_changed(served: Served) -> None:
    serial = format(served.issued("drift-dev-1").serial_number, "x")
    with served.as_("viewer") as c:
        same = c.get(f"/certificates/{serial}/check").json()
        before = c.get("/profiles/device/drift").json()
    assert same["differs"] is False and same["differences"] == [], same
    assert before["differing"] == 0 and before["checked"] >= 1
    path = served.data / "enroll.toml"
    config = tomllib.loads(path.read_text())
    config["profiles"]["device"]["validity"] = "30d"
    config["profiles"]["device"]["extended_key_usage"] = ["client_auth", "server_auth"]
    path.write_text(tomli_w.dumps(config))
    stop_server(served.server)
    served.server = start_server(served.data, served.env)
    served.api = f"{served.server.https_url}/api/v1"
    with served.as_("viewer") as c:
        answers = (c.get(f"/certificates/{serial}/check"),
                   c.get("/profiles/device/drift", params={"limit": 1}),
                   c.get("/profiles/device/drift", params={"live_only": "false"}))
        problem(c.get("/profiles/device/drift", params={"limit": "0"}), 400)
    _as_documented(served, "/certificates/{serial}/check", answers[0])
    _as_documented(served, "/profiles/{name}/drift", *answers[1:])
    one, report, every = (a.json() for a in answers)
    aspects = {d["aspect"]: d for d in one["differences"]}
    assert one["differs"] is True and set(aspects) == {"validity", "extended key usage"}
    assert aspects["extended key usage"] == {"aspect": "extended key usage",
                                             "certificate": "client_auth",
                                             "profile": "client_auth, server_auth"}
    assert report["checked"] == before["checked"] == report["differing"]
    assert len(report["certificates"]) == 1 and report["truncated"] is (report["checked"] > 1)
    assert every["checked"] >= report["checked"] and every["live_only"] is False
