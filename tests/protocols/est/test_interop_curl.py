"""curl + openssl against a real `enroll serve` HTTPS listener (the README walkthrough).

Everything a newcomer needs comes from endpoints.json: the EST URL, the generated Basic
user and the TLS CA bundle.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AttributeOID
from harness import child_env

from enroll.testing import make_csr, make_key
from enroll.testing.est_client import csr_body

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def sh(cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell pipeline of curl/openssl in `cwd`."""
    result = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=child_env(),
                            capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd}\nrc={result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _status(cwd: Path, args: str) -> str:
    return sh(f"curl -sS -o body.out -w '%{{http_code}}' {args}", cwd).stdout.strip()


def _certs_listed(server: Any) -> list[dict[str, Any]]:
    out = server.enroll("certs", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return [r for r in rows if r["protocol"] == "est"]


def test_walkthrough_cacerts_csrattrs_enroll_reenroll_serverkeygen(
        enroll_server: Any, tmp_path: Path, require_tools: None) -> None:
    est = enroll_server.endpoints["est"]
    url, user, password = est["url"], est["username"], est["password"]
    ca = enroll_server.tls_ca
    w = tmp_path
    tls = f"--cacert {ca}"

    # /cacerts: no authentication; base64 certs-only PKCS#7
    sh(f"curl -sS {tls} {url}/cacerts | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out cacerts.pem", w)
    subjects = sh("openssl crl2pkcs7 -nocrl -certfile cacerts.pem | "
                  "openssl pkcs7 -print_certs -noout", w).stdout
    assert "enroll Root CA" in subjects and "enroll Issuing CA" in subjects

    # /csrattrs: the default profile asks for nothing
    assert _status(w, f"{tls} {url}/csrattrs") == "204"

    # /simpleenroll with Basic auth
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout device.key -subj /CN=device-1 -addext subjectAltName=DNS:device-1.example "
       "-outform DER | openssl base64 > device.b64", w)
    code = _status(w, f"{tls} -u {user}:{password} -H 'Content-Type: application/pkcs10' "
                      f"--data-binary @device.b64 {url}/simpleenroll")
    assert code == "200", (w / "body.out").read_text()
    sh("openssl base64 -d -in body.out | openssl pkcs7 -inform DER -print_certs "
       "-out device.pem", w)
    sh(f"openssl verify -CAfile {enroll_server.endpoints['root_ca']} "
       "-untrusted cacerts.pem device.pem", w)
    key_pub = sh("openssl pkey -in device.key -pubout", w).stdout
    assert sh("openssl x509 -in device.pem -pubkey -noout", w).stdout == key_pub

    # /simplereenroll with the issued certificate as the TLS client certificate
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout device2.key -subj /CN=device-1 -addext subjectAltName=DNS:device-1.example "
       "-outform DER | openssl base64 > renew.b64", w)
    code = _status(w, f"{tls} --cert device.pem --key device.key "
                      f"-H 'Content-Type: application/pkcs10' --data-binary @renew.b64 "
                      f"{url}/simplereenroll")
    assert code == "200", (w / "body.out").read_text()
    sh("openssl base64 -d -in body.out | openssl pkcs7 -inform DER -print_certs "
       "-out renewed.pem", w)
    old_serial = sh("openssl x509 -in device.pem -serial -noout", w).stdout.split("=")[1]
    rows = {r["serial"]: r for r in _certs_listed(enroll_server)}
    new_serial = sh("openssl x509 -in renewed.pem -serial -noout", w).stdout.split("=")[1]
    assert rows[new_serial.strip().lower().lstrip("0")]["replaces"] == \
        old_serial.strip().lower().lstrip("0")

    # reenroll with another subject: refused
    sh("openssl req -new -key device2.key -subj /CN=someone-else -outform DER | "
       "openssl base64 > other.b64", w)
    code = _status(w, f"{tls} --cert device.pem --key device.key "
                      f"-H 'Content-Type: application/pkcs10' --data-binary @other.b64 "
                      f"{url}/simplereenroll")
    assert code in ("400", "403")

    # /serverkeygen: the key in the answer matches the certificate
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout /dev/null -subj /CN=keyless-1 -outform DER | openssl base64 > kg.b64", w)
    sh(f"curl -sS {tls} -u {user}:{password} -H 'Content-Type: application/pkcs10' "
       f"--data-binary @kg.b64 -D kg.headers -o kg.body {url}/serverkeygen", w)
    _split_multipart(w / "kg.headers", w / "kg.body", w)
    sh("openssl base64 -d -in part-pkcs8.b64 | openssl pkey -inform DER -out kg.key", w)
    sh("openssl base64 -d -in part-pkcs7.b64 | openssl pkcs7 -inform DER -print_certs "
       "-out kg.pem", w)
    assert sh("openssl pkey -in kg.key -pubout", w).stdout == \
        sh("openssl x509 -in kg.pem -pubkey -noout", w).stdout
    assert len(_certs_listed(enroll_server)) == 3

    # a revoked certificate passes TLS (no CRL check there) but cannot re-enroll
    revoked = enroll_server.enroll("certs", "revoke", old_serial.strip().lower().lstrip("0"),
                                   "--reason", "superseded")
    assert revoked.returncode == 0, revoked.stderr
    code = _status(w, f"{tls} --cert device.pem --key device.key "
                      f"-H 'Content-Type: application/pkcs10' --data-binary @renew.b64 "
                      f"{url}/simplereenroll")
    assert code == "401"
    assert (w / "body.out").read_bytes() == b""
    assert len(_certs_listed(enroll_server)) == 3


def _split_multipart(headers: Path, body: Path, out: Path) -> None:
    """Write each part's base64 payload to part-<subtype>.b64 (what a shell script would
    do with csplit; done here to keep the test readable)."""
    ctype = next(line.split(":", 1)[1].strip() for line in headers.read_text().splitlines()
                 if line.lower().startswith("content-type:"))
    assert ctype.startswith("multipart/mixed")
    boundary = ctype.split("boundary=", 1)[1].strip('"')
    for part in body.read_bytes().split(b"--" + boundary.encode())[1:-1]:
        head, _, payload = part.strip(b"\r\n").partition(b"\r\n\r\n")
        kind = b"pkcs8" if b"application/pkcs8" in head else b"pkcs7"
        (out / f"part-{kind.decode()}.b64").write_bytes(payload)


def test_refusals_over_real_tls(enroll_server: Any, tmp_path: Path,
                                require_tools: None) -> None:
    est = enroll_server.endpoints["est"]
    url, user, password = est["url"], est["username"], est["password"]
    tls = f"--cacert {enroll_server.tls_ca}"
    w = tmp_path
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout k.pem -subj /CN=device-x -outform DER | openssl base64 > csr.b64", w)
    post = f"{tls} -H 'Content-Type: application/pkcs10' --data-binary @csr.b64"

    # no credentials / wrong password: 401, WWW-Authenticate, empty body
    for creds in ("", f"-u {user}:wrong-{password[:4]}"):
        out = sh(f"curl -sS -i {post} {creds} {url}/simpleenroll", w).stdout
        head, _, body = out.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 401")
        assert "www-authenticate: Basic" in head.lower().replace("www-authenticate: basic",
                                                                 "www-authenticate: Basic")
        assert body == ""
    # garbage body: 400, and the body is not echoed
    (w / "garbage.b64").write_text("this is !!! not base64 secret-marker")
    code = _status(w, f"{tls} -u {user}:{password} -H 'Content-Type: application/pkcs10' "
                      f"--data-binary @garbage.b64 {url}/simpleenroll")
    assert code == "400"
    assert "secret-marker" not in (w / "body.out").read_text()
    assert password not in (w / "body.out").read_text()
    # CSR violating the profile (RSA-1024): 400 with a short reason
    sh("openssl req -new -newkey rsa:1024 -nodes -keyout /dev/null -subj /CN=weak "
       "-outform DER | openssl base64 > weak.b64", w)
    code = _status(w, f"{tls} -u {user}:{password} -H 'Content-Type: application/pkcs10' "
                      f"--data-binary @weak.b64 {url}/simpleenroll")
    assert code == "400"
    assert "too weak" in (w / "body.out").read_text()

    # a client certificate from a CA nobody trusts: the TLS layer refuses it
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout stranger.key -subj /CN=device-x -days 1 -out stranger.pem", w)
    result = sh(f"curl -sS -o body.out -w '%{{http_code}}' {post} --cert stranger.pem "
                f"--key stranger.key {url}/simplereenroll", w, check=False)
    assert result.returncode != 0 or result.stdout in ("401", "403")

    # a forged proxy header straight to the listener (no trusted proxies): ignored
    issued = _issue_with_python(url, user, password, enroll_server.tls_ca)
    pem = issued.public_bytes(serialization.Encoding.PEM).decode()
    (w / "forged.hdr").write_text(f"X-SSL-Client-Cert: {urllib.parse.quote(pem)}\n")
    code = _status(w, f"{post} -H @forged.hdr {url}/simplereenroll")
    assert code == "401"
    # plain HTTP: EST is not served there
    http_url = url.replace(enroll_server.https_url, enroll_server.http_url)
    assert _status(w, f"-u {user}:{password} -H 'Content-Type: application/pkcs10' "
                      f"--data-binary @csr.b64 {http_url}/simpleenroll") == "403"
    assert len(_certs_listed(enroll_server)) == 1  # only the one issued above


def _issue_with_python(url: str, user: str, password: str, ca: str) -> x509.Certificate:
    import httpx

    from enroll.testing.est_client import certs_from

    r = httpx.post(f"{url}/simpleenroll", content=csr_body(make_csr(cn="py-device")),
                   headers={"content-type": "application/pkcs10"}, auth=(user, password),
                   verify=ssl.create_default_context(cafile=ca), trust_env=False)
    assert r.status_code == 200, r.text
    return certs_from(r.content)[0]


def _raw_https_post(host: str, port: int, ca: str, path: str, body: bytes,
                    auth: str, csr_for: Any) -> tuple[int, bytes]:
    """One request on a TLS 1.2 connection whose tls-unique goes into the CSR."""
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:
        binding = conn.get_channel_binding("tls-unique")
        assert binding
        body = csr_body(csr_for(binding))
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Basic {auth}\r\nContent-Type: application/pkcs10\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_tls_unique_proof_of_possession_over_tls12(enroll_server: Any,
                                                  require_tools: None) -> None:
    est = enroll_server.endpoints["est"]
    parsed = urllib.parse.urlsplit(est["url"])
    auth = base64.b64encode(f"{est['username']}:{est['password']}".encode()).decode()

    def bound(binding: bytes) -> x509.CertificateSigningRequest:
        return make_csr(make_key(), cn="pop-device", attributes=[
            (AttributeOID.CHALLENGE_PASSWORD, base64.b64encode(binding))])

    def wrong(binding: bytes) -> x509.CertificateSigningRequest:
        return bound(bytes(len(binding)))

    path = f"{parsed.path}/simpleenroll"
    status, _ = _raw_https_post(parsed.hostname or "", parsed.port or 443,
                                enroll_server.tls_ca, path, b"", auth, bound)
    assert status == 200
    status, body = _raw_https_post(parsed.hostname or "", parsed.port or 443,
                                   enroll_server.tls_ca, path, b"", auth, wrong)
    assert status == 400
    assert b"tls-unique" in body
