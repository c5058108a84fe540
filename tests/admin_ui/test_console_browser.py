"""The web console in a real browser (Debian's chromium driven by Playwright) against a
real `enroll serve`, used as an operator would: sign in with a password and enrol TOTP
from the QR page's key, approve a SCEP request that waits for approval (the client's
next CertPoll gets the certificate), revoke a device (`openssl ocsp` says revoked), read
the dashboard and the migration page (equal to the CLI's ``--json``), search the
inventory, check the audit chain, and revoke a CA behind the step-up. A screenshot of
each page goes to ``$ENROLL_TEST_ARTIFACTS`` (or the test's temp dir).

One server and one browser for the module: the tests run in file order and build on
each other (the operator's session, the devices enrolled at setup)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import RunningServer, child_env, require_binary, start_server, stop_server
from playwright.sync_api import sync_playwright

from enroll.testing.scep_client import ScepClient, csr_with_challenge

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"  # noqa: S105 - test value
CHROMIUM = "/usr/bin/chromium"
SCEP_DEVICES = ("scep-dev-1", "scep-dev-2")
EST_DEVICES = ("est-dev-1", "est-dev-2", "est-dev-3")
MOVED = "scep-dev-2"


@dataclass
class Console:
    server: RunningServer
    artifacts: Path
    page: Any
    secret: str = ""
    pending: dict[str, Any] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    """What chromium logged as errors (a CSP violation would be one)."""

    @property
    def ui(self) -> str:
        return f"{self.server.https_url}/ui"

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"console-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                               str(self.server.data_dir), *args], input=stdin,
                              capture_output=True, text=True, timeout=120, check=False,
                              env=child_env(ENROLL_DATA_DIR=str(self.server.data_dir)))
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args))

    def batch(self, *commands: tuple[str, ...], stdin: str = "") -> list[str]:
        """Several `enroll` commands in one interpreter (the CLI's own `main`, one
        after the other): what each printed. Saves a Python start-up per command."""
        script = ("import contextlib, io, json, sys\n"
                  "from enroll.cli.main import main\n"
                  "outs = []\n"
                  "for argv in json.loads(sys.argv[1]):\n"
                  "    buf = io.StringIO()\n"
                  "    with contextlib.redirect_stdout(buf):\n"
                  "        code = main(['--data-dir', sys.argv[2], *argv])\n"
                  "    outs.append([code, buf.getvalue()])\n"
                  "print(json.dumps(outs))\n")
        done = subprocess.run([sys.executable, "-c", script, json.dumps(commands),
                               str(self.server.data_dir)], input=stdin, capture_output=True,
                              text=True, timeout=120, check=False,
                              env=child_env(ENROLL_DATA_DIR=str(self.server.data_dir)))
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
        assert [code for code, _ in results] == [0] * len(commands), done.stderr
        return [out for _, out in results]


# -- setup: the server, its config, devices -------------------------------------------

def _configure(data: Path) -> None:
    """The embedded default plus: a profile whose requests wait for approval, served by
    a second SCEP endpoint; a spare CA to revoke; a migration of `device` to EST."""
    path = data / "enroll.toml"
    config = tomllib.loads(path.read_text())
    approved = json.loads(json.dumps(config["profiles"]["device"]))
    approved["approval"] = "manual"
    config["profiles"]["approved"] = approved
    config["profiles"]["device"]["migration"] = {"to": "est", "after": "2026-01-01",
                                                 "mode": "warn"}
    config["cas"]["retired"] = {"backend": "local", "parent": "root",
                                "subject": "CN=enroll Retired CA,O=enroll",
                                "key_type": "ec-p256", "validity_days": 365}
    default = config["scep"]["endpoints"]["default"]
    config["scep"]["endpoints"]["approval"] = {
        "path": "/scep-approval", "profile": "approved", "ca": "scep",
        "challenge_sha256": default["challenge_sha256"],
        "challenge_file": default["challenge_file"]}
    path.write_text(tomli_w.dumps(config))


def _ra(server: RunningServer, url: str) -> x509.Certificate:
    with httpx.Client(trust_env=False, timeout=30) as http:
        certs, _ = signeddata.degenerate_contents(
            http.get(url, params={"operation": "GetCACert"}).content)
    return next(c for c in certs if not c.extensions.get_extension_for_class(
        x509.BasicConstraints).value.ca)


def _scep(url: str, device: ScepClient, message: bytes) -> Any:
    with httpx.Client(trust_env=False, timeout=30) as http:
        r = http.post(url, params={"operation": "PKIOperation"}, content=message,
                      headers={"content-type": "application/x-pki-message"})
    assert r.status_code == 200, r.text
    return device.read(r.content)


def _scep_enrol(server: RunningServer, name: str, url: str | None = None
                ) -> tuple[ScepClient, x509.CertificateSigningRequest, str, Any]:
    scep = server.endpoints["scep"]
    url = url or scep["url"]
    device = ScepClient(_ra(server, url))
    csr = csr_with_challenge(device.key, name, scep["challenge"])
    tid = os.urandom(8).hex()
    message, _ = device.pkcs_req(csr, tid)
    return device, csr, tid, _scep(url, device, message)


def _est_enrol(server: RunningServer, name: str) -> x509.Certificate:
    est = server.endpoints["est"]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256())
    body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
    with httpx.Client(verify=server.tls_ca, trust_env=False, timeout=30) as http:
        r = http.post(f"{est['url']}/simpleenroll", content=body,
                      auth=(est["username"], est["password"]),
                      headers={"content-type": "application/pkcs10"})
    assert r.status_code == 200, r.text
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(r.content))[0]


def _spki_pin(https_url: str) -> str:
    """base64(SHA-256(SPKI)) of the certificate the HTTPS listener serves: chromium
    trusts exactly that key (``--ignore-certificate-errors-spki-list``)."""
    parts = urlsplit(https_url)
    pem = ssl.get_server_certificate((parts.hostname or "127.0.0.1", parts.port or 443))
    spki = x509.load_pem_x509_certificate(pem.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if require_binary("chromium") != CHROMIUM:
        pytest.fail(f"Debian's chromium is expected at {CHROMIUM}")
    tmp = tmp_path_factory.mktemp("console")
    artifacts = Path(os.environ.get("ENROLL_TEST_ARTIFACTS") or tmp / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    data = tmp / "data"
    init = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data),
                           "init"], capture_output=True, text=True, timeout=120, check=False,
                          env=child_env(ENROLL_DATA_DIR=str(data)))
    assert init.returncode == 0, init.stderr
    _configure(data)
    server = start_server(data)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--ignore-certificate-errors-spki-list="
                      + _spki_pin(server.https_url)])
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            made = Console(server, artifacts, page)
            page.on("console", lambda m: made.console_errors.append(m.text)
                    if m.type == "error" else None)
            made.batch(*[("admin", "user", "add", name, "--role", role) for name, role in
                         (("alice", "admin"), ("vera", "viewer"), ("tom", "approver"))],
                       stdin=(PASSWORD + "\n") * 3)
            for name in SCEP_DEVICES:
                assert _scep_enrol(server, name)[3].status is PKIStatus.SUCCESS
            for name in EST_DEVICES:
                _est_enrol(server, name)
            _est_enrol(server, MOVED)  # a SCEP device renewed over EST: one lineage
            device, csr, tid, reply = _scep_enrol(
                server, "needs-approval", server.endpoints["scep"]["url"] + "-approval")
            assert reply.status is PKIStatus.PENDING
            made.pending = {"device": device, "csr": csr, "tid": tid}
            yield made
            browser.close()
    finally:
        stop_server(server)


# -- the browser tests ------------------------------------------------------------------

def test_first_sign_in_enrols_totp_from_the_qr_page(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/")
    assert page.url.endswith("/ui/login")
    console.shot("sign-in")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url("**/ui/login/enrol")
    qr = page.get_attribute("#totp-qr", "src") or ""
    assert qr.startswith("data:image/svg+xml")
    console.secret = (page.text_content("#totp-secret") or "").replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", console.secret)
    console.shot("totp-enrolment")
    console.pending["sign-in code"] = pyotp.TOTP(console.secret).now()
    page.fill("#code", console.pending["sign-in code"])
    page.click("#confirm")
    page.wait_for_url("**/ui/")
    assert "alice (admin)" in (page.text_content(".who") or "")
    cookie = next(c for c in page.context.cookies() if c["name"] == "enroll_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"


def test_dashboard_figures_equal_the_cli(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/")
    console.shot("dashboard")
    assert page.locator("svg.chart rect").count() > 0
    outs = [json.loads(out) for out in console.batch(
        ("inventory", "--expiring-within", "30d", "--json"), ("requests", "list", "--json"),
        ("certs", "list", "--json", "--limit", "1000"), ("ca", "list", "--json"),
        ("migration", "status", "--json"))]
    expiring, pending, certs, cas, status = (outs[0]["items"], outs[1], outs[2], outs[3],
                                             outs[4]["profiles"])
    assert page.text_content("#expiring-30d") == str(len(expiring))
    assert page.text_content("#pending-approvals") == str(len(pending)) == "1"
    for protocol in ("scep", "est"):
        issued = sum(1 for c in certs if c["protocol"] == protocol)
        assert page.text_content(f"#issued-today-{protocol}") == str(issued) != "0"
    for ca in cas:
        cell = page.text_content(f'#ca-expiry tr[data-ca="{ca["name"]}"] .not-after') or ""
        assert dt.datetime.fromisoformat(cell) == dt.datetime.fromisoformat(ca["not_after"])
    assert [s["profile"] for s in status] == ["device"]
    row = page.locator('#migration-summary tr[data-profile="device"]')
    assert row.locator(".identities").text_content() == str(status[0]["identities"])
    assert row.locator(".on-target").text_content() == str(status[0]["on_target"])


def test_migration_page_equals_the_cli(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/migration")
    console.shot("migration")
    (status,) = console.json("migration", "status", "--json")["profiles"]
    panel = page.locator('section[data-profile="device"]')
    for key, css in (("identities", ".identities"), ("on_target", ".on-target"),
                     ("stragglers", ".stragglers"), ("migrated", ".migrated")):
        assert panel.locator(css).text_content() == str(status[key]), key
    for door in status["doors"]:
        cell = panel.locator(f'tr[data-protocol="{door["protocol"]}"]'
                             f'[data-endpoint="{door["endpoint"] or ""}"] .door-identities')
        assert cell.text_content() == str(door["identities"])
    assert status["on_target"] == len(EST_DEVICES) + 1
    assert status["stragglers"] == len(SCEP_DEVICES) - 1
    assert status["migrated"] == 1


def test_a_waiting_scep_request_is_approved_and_the_client_polls_its_certificate(
        console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/approvals")
    console.shot("approvals")
    row = page.locator("#requests tbody tr")
    assert row.count() == 1
    assert "CN=needs-approval" in (row.text_content() or "")
    row.locator("a").click()
    page.wait_for_selector("#csr")
    assert page.text_content("#csr-subject") == "CN=needs-approval"
    assert page.text_content("#csr-key") == "RSA 2048 bits"
    assert "manual" in (page.text_content("#request-reason") or "")
    console.shot("request")
    page.click("#approve")
    page.wait_for_selector("#notice")
    assert page.text_content("#request-status") == "issued"
    serial = page.text_content("#issued-serial")

    pending = console.pending
    url = console.server.endpoints["scep"]["url"] + "-approval"
    poll = pending["device"].cert_poll(pending["device"].ra.issuer, pending["csr"].subject,
                                       pending["tid"])
    reply = _scep(url, pending["device"], poll)
    assert reply.status is PKIStatus.SUCCESS
    assert format(reply.certificate.serial_number, "x") == serial
    assert reply.certificate.subject.rfc4514_string() == "CN=needs-approval"


def test_inventory_filters_and_pages(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/inventory?protocol=est&limit=3")
    rows = page.locator("#inventory tbody tr")
    assert rows.count() == 3
    first = {rows.nth(i).get_attribute("data-identity") for i in range(3)}
    page.click("#next-page")
    page.wait_for_selector("#first-page")
    rest = {rows.nth(i).get_attribute("data-identity") for i in range(rows.count())}
    assert len(rest) == 1 and not first & rest
    assert page.locator("#next-page").count() == 0
    assert first | rest == {f"subject.CN:{n}" for n in (*EST_DEVICES, MOVED)}
    page.goto(f"{console.ui}/inventory")
    page.fill("#search", "scep-dev")
    page.click("#filter")
    page.wait_for_url("**search=scep-dev**")
    assert page.locator("#inventory tbody tr").count() == len(SCEP_DEVICES)
    page.goto(f"{console.ui}/inventory")
    console.shot("inventory")
    text = '<b id="injected">x</b>'
    page.goto(f"{console.ui}/inventory?search={text}")
    assert page.locator("#injected").count() == 0
    assert page.input_value("#search") == text


def test_a_device_page_shows_its_lineage_across_protocols(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/device?identity=subject.CN:{MOVED}")
    chain = page.locator("ol.timeline li")
    assert chain.count() == 2
    assert chain.nth(0).get_attribute("class") == "proto-scep"
    assert chain.nth(1).get_attribute("class") == "proto-est"
    assert page.text_content("#device-state") == "migrated"
    lineage = console.json("certs", "lineage", f"subject.CN:{MOVED}", "--json")
    serials = [link["serial"] for c in lineage["chains"] for link in c]
    assert [chain.nth(i).get_attribute("data-serial") for i in range(2)] == serials
    console.shot("device-lineage")


def test_revoking_a_device_shows_in_openssl_ocsp(console: Console, tmp_path: Path) -> None:
    page = console.page
    identity = "subject.CN:est-dev-1"
    page.goto(f"{console.ui}/inventory?search=est-dev-1")
    page.locator("#inventory tbody tr a").first.click()
    page.wait_for_selector(".timeline")
    assert page.locator(".timeline li.proto-est").count() == 1
    serial = page.locator(".timeline li").first.get_attribute("data-serial") or ""
    console.shot("device")
    page.select_option("#reason", "keyCompromise")
    page.click("#revoke-identity")
    page.wait_for_selector("#notice")
    assert page.text_content("#notice") == "Revoked 1 certificate(s)."
    assert page.text_content("#device-state") == "revoked"

    page.click(f'.timeline li[data-serial="{serial}"] a')
    page.wait_for_selector("#certificate-status")
    assert (page.text_content("#certificate-status") or "").startswith("revoked (keyCompromise")
    console.shot("certificate")
    with page.expect_download() as download:
        page.click("#pem-download")
    cert_path = tmp_path / "cert.pem"
    download.value.save_as(cert_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert format(cert.serial_number, "x") == serial
    shown, chain_pem, issuer_pem = console.batch(
        ("certs", "show", serial, "--json"), ("ca", "export", "issuing", "--chain"),
        ("ca", "export", "issuing"))
    assert json.loads(shown)["status"] == "revoked"
    chain = tmp_path / "chain.pem"
    chain.write_text(chain_pem)
    issuer = tmp_path / "issuer.pem"
    issuer.write_text(issuer_pem)
    done = subprocess.run([require_binary("openssl"), "ocsp", "-issuer", str(issuer),
                           "-cert", str(cert_path), "-CAfile", str(chain),
                           "-url", console.server.endpoints["ocsp_url"]],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{cert_path}: revoked" in done.stdout, done.stdout
    assert "Reason: keyCompromise" in done.stdout
    assert identity in (page.text_content("main") or "")


def test_audit_view_filters_and_checks_the_chain(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/audit?type=certificate.revoked")
    types = {page.locator("table.audit tbody tr").nth(i).get_attribute("data-type")
             for i in range(page.locator("table.audit tbody tr").count())}
    assert types == {"certificate.revoked"}
    page.goto(f"{console.ui}/audit")
    console.shot("audit")
    page.click("#verify-chain")
    page.wait_for_selector("#verdict")
    assert (page.text_content("#verdict") or "").strip().startswith("The chain is intact")


def test_revoking_a_ca_asks_the_second_factor_again(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/cas")
    assert "the responder answers good" in (
        page.text_content('section[data-ca="issuing"] .ocsp') or "")
    console.shot("cas")
    page.click("#revoke-ca-retired")
    page.wait_for_selector("#step-up-code")
    console.shot("step-up")
    totp = pyotp.TOTP(console.secret)
    page.fill("#step-up-code", console.pending["sign-in code"])  # used once already
    page.click("#step-up-confirm")
    page.wait_for_selector("#error-message")
    assert "already used" in (page.text_content("#error-message") or "")
    assert "revoked" not in (page.text_content("main") or "")
    # The next time step's code (accepted for clock drift), not used yet.
    page.fill("#step-up-code", totp.at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)))
    page.click("#step-up-confirm")
    page.wait_for_selector("#notice")
    assert "revoked" in (page.text_content('section[data-ca="retired"] h2') or "")
    assert "revoked" in (page.text_content('section[data-ca="retired"] .ocsp') or "")
    serial = page.text_content('section[data-ca="retired"] dd.mono a') or ""
    assert console.json("certs", "show", serial, "--json")["status"] == "revoked"


def test_checking_a_csr_shows_each_verdict_and_the_would_be_certificate(
        console: Console) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(x509.NameOID.COMMON_NAME, "check-me")])).sign(key, hashes.SHA256())
    page = console.page
    page.goto(f"{console.ui}/check")
    page.fill("#csr-text", csr.public_bytes(serialization.Encoding.PEM).decode())
    page.select_option("#check-profile", "approved")
    page.click("#check")
    page.wait_for_selector("#check-decision")
    assert (page.text_content("#check-decision") or "").startswith(
        "Decision: would wait for approval")
    assert page.text_content("#would-subject") == "CN=check-me"
    assert page.locator('#check-steps tr[data-verdict="refused"]').count() == 0
    console.shot("check-a-csr")


# -- plain HTTP tests: CSRF, roles, throttling, replay -----------------------------------

def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.https_url, verify=server.tls_ca, trust_env=False,
                        timeout=30, follow_redirects=False)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found is not None, html[:2000]
    return found.group(1)


def _password(http: httpx.Client, user: str, password: str) -> httpx.Response:
    token = _csrf(http.get("/ui/login").text)
    return http.post("/ui/login", data={"csrf": token, "username": user,
                                        "password": password})


def _sign_in_enrolling(http: httpx.Client, user: str) -> tuple[str, str]:
    """Password, then TOTP enrolment; the seed and the code the enrolment used."""
    assert _password(http, user, PASSWORD).headers["location"].endswith("/ui/login/enrol")
    page = http.get("/ui/login/enrol").text
    found = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert found is not None
    seed = found.group(1).replace(" ", "")
    code = pyotp.TOTP(seed).now()
    r = http.post("/ui/login/enrol", data={"csrf": _csrf(page), "code": code})
    assert r.status_code == 303 and r.headers["location"].endswith("/ui/"), r.text
    return seed, code


def _pending_id(http: httpx.Client, subject: str) -> str:
    """The id of the pending request for `subject`, read off the approval queue."""
    page = http.get("/ui/approvals").text
    found = re.findall(r'data-request="([0-9a-f-]+)">((?:(?!</tr>).)*)</tr>', page, re.S)
    (request_id,) = [rid for rid, row in found if f">{subject}<" in row]
    return request_id


def _status(http: httpx.Client, request_id: str) -> str:
    found = re.search(r'id="request-status"[^>]*>([a-z]+)<',
                      http.get(f"/ui/approvals/{request_id}").text)
    assert found is not None
    return found.group(1)


def test_a_form_without_the_page_token_is_refused(console: Console) -> None:
    with _client(console.server) as http:
        _sign_in_enrolling(http, "tom")
        device, csr, tid, reply = _scep_enrol(
            console.server, "csrf-check", console.server.endpoints["scep"]["url"] + "-approval")
        assert reply.status is PKIStatus.PENDING
        request_id = _pending_id(http, "CN=csrf-check")
        page = http.get(f"/ui/approvals/{request_id}")
        assert page.status_code == 200
        action = f"/ui/approvals/{request_id}/approve"
        assert http.post(action, data={}).status_code == 403
        assert http.post(action, data={"csrf": "0" * 64}).status_code == 403
        assert http.post(action, data={"csrf": _csrf(page.text)},
                         headers={"origin": "https://evil.example"}).status_code == 403
        assert _status(http, request_id) == "pending"
        ok = http.post(action, data={"csrf": _csrf(page.text)})
        assert ok.status_code == 303, ok.text
        assert _status(http, request_id) == "issued"


def test_a_viewer_may_not_approve_and_a_replayed_code_is_refused(console: Console) -> None:
    device, csr, tid, reply = _scep_enrol(
        console.server, "viewer-check", console.server.endpoints["scep"]["url"] + "-approval")
    assert reply.status is PKIStatus.PENDING
    with _client(console.server) as http:
        seed, code = _sign_in_enrolling(http, "vera")
        request_id = _pending_id(http, "CN=viewer-check")
        page = http.get(f"/ui/approvals/{request_id}")
        assert page.status_code == 200 and 'id="approve"' not in page.text
        refused = http.post(f"/ui/approvals/{request_id}/approve",
                            data={"csrf": _csrf(page.text)})
        assert refused.status_code == 403
        assert "viewer role may not approve" in refused.text
        assert _status(http, request_id) == "pending"
    page = console.page  # an approver rejects it, with a reason
    page.goto(f"{console.ui}/approvals/{request_id}")
    page.fill("#reject-reason", "not one of ours <b>")
    page.click("#reject")
    page.wait_for_selector("#notice")
    assert page.text_content("#request-status") == "rejected"
    (rejected,) = [r for r in console.json("requests", "list", "--status", "rejected",
                                           "--json") if r["id"] == request_id]
    assert rejected["reason"].endswith("not one of ours <b>")
    with _client(console.server) as again:
        assert _password(again, "vera", PASSWORD).headers["location"].endswith("/login/code")
        page = again.get("/ui/login/code").text
        # The code the enrolment used, once more: refused (RFC 6238 §5.2).
        replay = again.post("/ui/login/code", data={"csrf": _csrf(page), "code": code})
        assert replay.status_code == 401
        assert "already used" in replay.text
        assert again.get("/ui/").status_code == 303  # still not signed in


def test_wrong_passwords_are_throttled_alike_for_unknown_users(console: Console) -> None:
    with _client(console.server) as http:
        wrong = _password(http, "tom", "not the password at all")
        unknown = _password(http, "nobody-here", "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        message = re.compile(r'id="error-message">([^<]*)<')
        assert message.findall(wrong.text) == message.findall(unknown.text) == [
            "Wrong user name or password."]
        for _ in range(4):
            assert _password(http, "tom", "still not the password").status_code == 401
        throttled = _password(http, "tom", PASSWORD)  # right, but over the rate
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert "too many failed sign-ins for this user" in throttled.text
        # Another user from the same address still signs in (30 per address).
        assert _password(http, "alice", PASSWORD).status_code == 303
    limits = console.cli("limits", "list")
    assert "admin.sign_in_failures|user|tom" in limits


def test_no_page_broke_the_content_security_policy(console: Console) -> None:
    """Chromium logs "Refused to apply inline style… Content Security Policy" for any
    style attribute, inline script or foreign resource; none was logged. (The other
    errors are the 401 of the wrong step-up code and the origin's absent favicon.)"""
    refused = [m for m in console.console_errors
               if "Content Security Policy" in m or m.startswith("Refused")]
    assert refused == []
    assert len(console.console_errors) <= 2


def test_signing_out_ends_the_session(console: Console) -> None:
    page = console.page
    page.goto(f"{console.ui}/")
    cookie = next(c for c in page.context.cookies() if c["name"] == "enroll_session")
    page.click("#sign-out")
    page.wait_for_url("**/ui/login")
    with _client(console.server) as http:
        http.cookies.set("enroll_session", cookie["value"])
        r = http.get("/ui/")
        assert r.status_code == 303 and r.headers["location"].endswith("/ui/login")
