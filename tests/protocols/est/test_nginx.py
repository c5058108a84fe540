"""EST behind real nginx (Debian package) terminating TLS: curl + openssl through it.

nginx runs `examples/nginx_est/nginx.conf` as a subprocess in a temp prefix on loopback,
forwarding the client certificate in a header over mutual TLS to enroll's HTTPS
listener from 127.0.0.2, the only address `enroll serve` trusts
(ENROLL_TRUSTED_PROXIES), with its own client certificate (``[est.proxy]
client_certs``) as the proof.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import child_env, free_port

pytestmark = [pytest.mark.interop, pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "nginx_est" / "nginx.conf"


def sh(cmd: str, cwd: Path) -> str:
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=child_env(),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture
def behind_nginx(server_factory: Any, tmp_path: Path, nginx_binary: str,
                 require_tools: None) -> Iterator[tuple[Any, str]]:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    # The proxy's own client certificate, made as an operator would.
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout proxy.key -subj /CN=nginx-proxy -days 2 -out proxy.pem", prefix)
    data_dir = tmp_path / "data"
    init = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                           str(data_dir), "init"], env=child_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    with (data_dir / "enroll.toml").open("a") as toml:
        toml.write(f'\n[est.proxy]\nclient_certs = ["{prefix / "proxy.pem"}"]\n')
    server = server_factory(data_dir, extra_env={"ENROLL_TRUSTED_PROXIES": "127.0.0.2"})
    port = free_port()
    data = server.data_dir / "tls"
    conf = string.Template(EXAMPLE.read_text()).safe_substitute(
        PREFIX=str(prefix), LISTEN=f"127.0.0.1:{port}",
        ENROLL_HTTPS=urllib.parse.urlsplit(server.https_url).netloc,
        TLS_CERT=str(data / "server.pem"), TLS_KEY=str(data / "server.key"),
        CLIENT_CAS=str(data / "client-cas.pem"), PROXY_BIND="127.0.0.2",
        PROXY_CERT=str(prefix / "proxy.pem"), PROXY_KEY=str(prefix / "proxy.key"),
        ENROLL_TLS_CA=str(server.tls_ca))
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx_binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                             "-g", "daemon off; user root;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"https://localhost:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {proc.stderr.read().decode()[-2000:]}"
                                   if proc.stderr else "nginx exited")
            try:
                httpx.get(f"{base}/.well-known/est/cacerts", verify=server.tls_ca,
                          trust_env=False, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _est_certs(server: Any) -> list[dict[str, Any]]:
    out = server.enroll("certs", "list", "--json")
    assert out.returncode == 0, out.stderr
    return [r for r in json.loads(out.stdout) if r["protocol"] == "est"]


def test_enroll_reenroll_and_serverkeygen_through_nginx(behind_nginx: Any,
                                                        tmp_path: Path) -> None:
    server, base = behind_nginx
    est = server.endpoints["est"]
    url = f"{base}/.well-known/est"
    creds = f"-u {est['username']}:{est['password']}"
    tls = f"--cacert {server.tls_ca}"
    pkcs10 = "-H 'Content-Type: application/pkcs10'"
    w = tmp_path

    sh(f"curl -sSf {tls} {url}/cacerts | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out cacerts.pem", w)
    assert "enroll Issuing CA" in (w / "cacerts.pem").read_text()
    assert sh(f"curl -sS -o /dev/null -w '%{{http_code}}' {tls} {url}/csrattrs", w) == "204"

    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key "
       "-subj /CN=via-nginx -outform DER | openssl base64 > d.b64", w)
    sh(f"curl -sSf {tls} {creds} {pkcs10} --data-binary @d.b64 {url}/simpleenroll | "
       "openssl base64 -d | openssl pkcs7 -inform DER -print_certs -out d.pem", w)

    # re-enroll with the certificate as TLS client certificate, presented to nginx
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d2.key "
       "-subj /CN=via-nginx -outform DER | openssl base64 > d2.b64", w)
    sh(f"curl -sSf {tls} --cert d.pem --key d.key {pkcs10} --data-binary @d2.b64 "
       f"{url}/simplereenroll | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out d2.pem", w)
    old = sh("openssl x509 -in d.pem -noout -serial", w).split("=")[1].strip().lower()
    new = sh("openssl x509 -in d2.pem -noout -serial", w).split("=")[1].strip().lower()
    rows = {r["serial"]: r for r in _est_certs(server)}
    assert rows[new.lstrip("0")]["replaces"] == old.lstrip("0")

    # serverkeygen: key and certificate match
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null "
       "-subj /CN=kg-nginx -outform DER | openssl base64 > kg.b64", w)
    headers = sh(f"curl -sSf {tls} {creds} {pkcs10} --data-binary @kg.b64 -D - -o kg.body "
                 f"{url}/serverkeygen", w)
    boundary = headers.split("boundary=", 1)[1].splitlines()[0].strip().strip('"')
    parts = (w / "kg.body").read_bytes().split(b"--" + boundary.encode())[1:-1]
    for part in parts:
        head, _, payload = part.strip(b"\r\n").partition(b"\r\n\r\n")
        (w / ("kg.key.b64" if b"pkcs8" in head else "kg.p7.b64")).write_bytes(payload)
    sh("openssl base64 -d -in kg.key.b64 | openssl pkey -inform DER -pubout -out a.pub", w)
    sh("openssl base64 -d -in kg.p7.b64 | openssl pkcs7 -inform DER -print_certs | "
       "openssl x509 -pubkey -noout -out b.pub", w)
    assert (w / "a.pub").read_text() == (w / "b.pub").read_text()
    assert len(_est_certs(server)) == 3


def server_proxy(w: Path) -> Path:
    """Where the fixture made the proxy's certificate and key."""
    return w / "nginx"


def test_the_proxy_proof_itself_through_curl(behind_nginx: Any, tmp_path: Path) -> None:
    """The proven proxy (its address and its certificate) forwards a real client's
    certificate: curl stands in for nginx, straight to enroll's HTTPS listener."""
    server, base = behind_nginx
    est = server.endpoints["est"]
    w = tmp_path
    tls = f"--cacert {server.tls_ca}"
    pkcs10 = "-H 'Content-Type: application/pkcs10'"
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key "
       "-subj /CN=proxied -outform DER | openssl base64 > d.b64", w)
    sh(f"curl -sSf {tls} -u {est['username']}:{est['password']} {pkcs10} "
       f"--data-binary @d.b64 {base}/.well-known/est/simpleenroll | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out d.pem", w)
    quoted = urllib.parse.quote((w / "d.pem").read_text())
    (w / "fwd.hdr").write_text(f"X-SSL-Client-Cert: {quoted}\n")
    proxy = f"--interface 127.0.0.2 --cert {server_proxy(w)}/proxy.pem " \
        f"--key {server_proxy(w)}/proxy.key"
    sh(f"curl -sSf {proxy} {tls} -H @fwd.hdr {pkcs10} --data-binary @d.b64 "
       f"{server.https_url}/.well-known/est/simplereenroll | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out d2.pem", w)
    assert "proxied" in sh("openssl x509 -in d2.pem -noout -subject", w)
    assert len(_est_certs(server)) == 2


def test_nginx_refusals_and_forged_headers(behind_nginx: Any, tmp_path: Path) -> None:
    server, base = behind_nginx
    url = f"{base}/.well-known/est"
    tls = f"--cacert {server.tls_ca}"
    pkcs10 = "-H 'Content-Type: application/pkcs10'"
    w = tmp_path
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key "
       "-subj /CN=forger -outform DER | openssl base64 > d.b64", w)

    def status(args: str, target: str) -> str:
        return sh(f"curl -sS -o body.out -w '%{{http_code}}' {args} {target}", w)

    assert status(f"{tls} {pkcs10} --data-binary @d.b64", f"{url}/simpleenroll") == "401"
    assert (w / "body.out").read_bytes() == b""
    # a client certificate from an untrusted CA reaches enroll through nginx: refused
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout s.key -subj /CN=forger -days 1 -out s.pem", w)
    assert status(f"{tls} --cert s.pem --key s.key {pkcs10} --data-binary @d.b64",
                  f"{url}/simplereenroll") in ("401", "403")
    # a real certificate, but only claimed in a header: nginx overwrites it ...
    est = server.endpoints["est"]
    sh(f"curl -sSf {tls} -u {est['username']}:{est['password']} {pkcs10} "
       f"--data-binary @d.b64 {url}/simpleenroll | openssl base64 -d | "
       "openssl pkcs7 -inform DER -print_certs -out d.pem", w)
    quoted = urllib.parse.quote((w / "d.pem").read_text())
    (w / "forged.hdr").write_text(f"X-SSL-Client-Cert: {quoted}\n")
    assert status(f"{tls} -H @forged.hdr {pkcs10} --data-binary @d.b64",
                  f"{url}/simplereenroll") == "401"
    # ... and sent straight to enroll from 127.0.0.1 (not a trusted proxy) it is ignored
    direct = f"{server.https_url}/.well-known/est"
    assert status(f"{tls} -H @forged.hdr {pkcs10} --data-binary @d.b64",
                  f"{direct}/simplereenroll") == "401"
    # ... and from the proxy's own address without the proxy's certificate too: the
    # address alone proves nothing
    from_proxy_addr = f"--interface 127.0.0.2 {tls} -H @forged.hdr {pkcs10} " \
        "--data-binary @d.b64"
    assert status(from_proxy_addr, f"{direct}/simplereenroll") == "401"
    # the proxy's certificate from another address is no proof either
    proxy_cert = f"--cert {server_proxy(w)}/proxy.pem --key {server_proxy(w)}/proxy.key"
    assert status(f"{proxy_cert} {tls} -H @forged.hdr {pkcs10} --data-binary @d.b64",
                  f"{direct}/simplereenroll") == "401"
    # a repeated header is refused even from the proven proxy (never first/last wins)
    (w / "twice.hdr").write_text(f"X-SSL-Client-Cert: {quoted}\nX-SSL-Client-Cert: x\n")
    assert status(f"--interface 127.0.0.2 {proxy_cert} {tls} -H @twice.hdr {pkcs10} "
                  "--data-binary @d.b64", f"{direct}/simplereenroll") == "400"
    assert "x-ssl-client-cert header is repeated" in (w / "body.out").read_text()
    # nginx itself sends one header whatever the client sent
    assert status(f"{tls} -H @twice.hdr {pkcs10} --data-binary @d.b64",
                  f"{url}/simplereenroll") == "401"
    # plain HTTP to enroll: EST is not served there
    plain = f"{server.http_url}/.well-known/est/simplereenroll"
    assert status(f"{pkcs10} --data-binary @d.b64", plain) == "403"
    assert (w / "body.out").read_text().startswith("EST is served over HTTPS only")
    assert len(_est_certs(server)) == 1
