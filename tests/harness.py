"""The test harness shared by the SCEP, EST and ACME suites.

- `Harness`: an app built from a test config (the ``harness_factory`` fixture in
  conftest.py), requests through it in-process (httpx over ASGI: sync `request`, `get`,
  `post`, or `http`, one AsyncClient for an async test, so background tasks such as ACME
  validation run on the test's event loop), and what the store holds.
- Per-protocol conveniences are functions over a `Harness`: the config sections
  (`scep_section`, `est_section`, `acme_section`), SCEP `scep_ra` / `scep_client` /
  `scep_operation`, EST `est_enroll`, ACME `acme_client`, the `LocalDns` the ACME
  validator asks, and the `problem` assertion.
- For the interop tests: `free_port`, `child_env`, `require_binary`.

The protocol clients themselves are `enroll.testing.{scep,est,acme}_client`. This module
has a unique top-level name because tests/ is on sys.path and every conftest module is
called ``conftest``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TXT import TXT

from enroll.testing import count_stored
from enroll.testing.acme_client import AcmeClient
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, csr_body
from enroll.testing.scep_client import ScepClient

# -- the app --------------------------------------------------------------------------


class Harness:
    """One app in-process. With ``listener=True`` every request is presented as
    ``enroll serve``'s HTTPS listener presents it (enroll/asgi/tls_client_cert.py): the
    ASGI TLS extension and ``enroll.transport`` are filled, so a test can pass
    ``client_cert=``, ``tls_unique=``, ``peer=`` or ``tls=False`` per request."""

    def __init__(self, app: Any, base_url: str = "http://testserver", *,
                 listener: bool = False) -> None:
        self.app = app
        self.ctx = app.state.enroll
        self.base_url = base_url
        self.listener = listener
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app()),
                                      base_url=base_url)

    def _app(self, client_cert: x509.Certificate | None = None,
             tls_unique: bytes | None = None, peer: str = "127.0.0.1",
             tls: bool = True) -> Any:
        if not self.listener:
            assert client_cert is None and tls_unique is None, "needs listener=True"
            return self.app
        return with_transport(self.app, client_cert, tls_unique, peer, tls)

    def request(self, method: str, url: str, *, client_cert: x509.Certificate | None = None,
                tls_unique: bytes | None = None, peer: str = "127.0.0.1", tls: bool = True,
                **kw: Any) -> httpx.Response:
        """One request on a fresh event loop (for sync tests)."""
        transport = httpx.ASGITransport(app=self._app(client_cert, tls_unique, peer, tls))

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url) as c:
                return await c.request(method, url, **kw)

        return anyio.run(go)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def head(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("HEAD", url, **kw)

    def counts(self) -> tuple[int, int]:
        """(certificates, requests) stored, not counting enroll's own."""
        return count_stored(self.ctx)

    def rows(self, table: str) -> list[Any]:
        with self.ctx.db.read() as tx:
            return tx.all(f"select * from {table}")  # noqa: S608 - tests

    def close(self) -> None:
        # A private loop: asyncio.run would unset the thread's loop under pytest-asyncio.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.http.aclose())
        finally:
            loop.close()
        self.ctx.db.dispose()


def with_transport(app: Any, client_cert: x509.Certificate | None,
                   tls_unique: bytes | None, peer: str = "127.0.0.1",
                   tls: bool = True) -> Any:
    """The app behind a simulated connection, as ``enroll serve`` presents it."""
    chain = [client_cert.public_bytes(serialization.Encoding.PEM).decode()] \
        if client_cert is not None else []

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            ext = dict(scope.get("extensions") or {})
            if tls:
                ext["tls"] = {"client_cert_chain": chain, "tls_version": 0x0303}
            ext["enroll.transport"] = {"peer": (peer, 40000), "tls_unique": tls_unique}
            scope["extensions"] = ext
        await app(scope, receive, send)

    return wrapped


# -- SCEP -----------------------------------------------------------------------------

CHALLENGE = "static-test-challenge-7f3a9c2e5b1d"  # noqa: S105 - test value
PKI_MESSAGE = {"content-type": "application/x-pki-message"}


def scep_section(endpoints: dict[str, Any] | None = None, **default: Any) -> dict[str, Any]:
    """``[scep]`` with `endpoints`, or one default endpoint with the static `CHALLENGE`."""
    return {"scep": {"endpoints": endpoints or {"default": {"challenge": CHALLENGE,
                                                             **default}}}}


def scep_ra(h: Harness, path: str = "/scep") -> x509.Certificate:
    """The endpoint's RA certificate, from GetCACert."""
    from enroll.protocols.scep import signeddata

    r = h.get(path, params={"operation": "GetCACert"})
    assert r.status_code == 200, r.text
    certs, _ = signeddata.degenerate_contents(r.content)
    return next(c for c in certs if not _is_ca(c))


def scep_client(h: Harness, path: str = "/scep", **kw: Any) -> ScepClient:
    """A new device for the endpoint at `path`."""
    return ScepClient(scep_ra(h, path), **kw)


def scep_operation(h: Harness, message: bytes, path: str = "/scep") -> httpx.Response:
    """POST a pkiMessage as PKIOperation."""
    return h.post(f"{path}?operation=PKIOperation", content=message, headers=PKI_MESSAGE)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# -- EST ------------------------------------------------------------------------------

ALICE = ("alice", "alice-generated-secret-0f9e8d7c6b5a")
BOB = ("bob", "bob chose this")
_HASHES: dict[str, str] = {}  # made once per session (scrypt is slow on purpose)


def users() -> dict[str, str]:
    """EST users: ALICE with a generated secret (fast hash), BOB with a chosen one."""
    from enroll.protocols.est import passwords

    if not _HASHES:
        _HASHES[ALICE[0]] = passwords.hash_fast(ALICE[1])
        _HASHES[BOB[0]] = passwords.hash_slow(BOB[1], log2_n=12)
    return dict(_HASHES)


def est_section(endpoints: dict[str, Any] | None = None,
                labels: dict[str, Any] | None = None, **default: Any) -> dict[str, Any]:
    """``[est]`` with `endpoints`, or a default endpoint (plus `labels`) with `users()`."""
    eps = endpoints or {"default": {"users": users(), **default}}
    for label, table in (labels or {}).items():
        eps[label] = {"users": users(), **table}
    return {"est": {"endpoints": eps}}


def est_enroll(h: Harness, csr: x509.CertificateSigningRequest, op: str = "simpleenroll",
               path: str = WELL_KNOWN, auth: Any = ALICE, **kw: Any) -> httpx.Response:
    """POST `csr` to ``{path}/{op}`` with HTTP Basic `auth` (None: no credentials)."""
    return h.request("POST", f"{path}/{op}", content=csr_body(csr), headers=PKCS10_HEADERS,
                     auth=auth, **kw)


# -- ACME -----------------------------------------------------------------------------

ACME_BASE = "https://acme.test"
NS = "urn:ietf:params:acme:error:"


def acme_section(dns: LocalDns, http01_port: int, **acme: Any) -> dict[str, Any]:
    """``[acme]`` whose validator asks `dns` and fetches http-01 from loopback."""
    return {"acme": {"resolver": dns.address, "http01_port": str(http01_port),
                     "allow_loopback": "1", **acme}}


def acme_client(h: Harness, key: Any = None, endpoint: str = "") -> AcmeClient:
    """A new account key against the default or a named ACME endpoint."""
    path = f"/acme/{endpoint}/directory" if endpoint else "/acme/directory"
    return AcmeClient(h.http, f"{ACME_BASE}{path}", key)


def problem(r: Any, typ: str, status: int) -> None:
    """Assert an RFC 7807 ACME problem with a fresh Replay-Nonce."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == NS + typ, r.json()
    assert r.headers.get("Replay-Nonce")


def validator_env(dns: LocalDns, http01_port: int, tlsalpn01_port: int = 443) -> dict[str, str]:
    """The same validator settings for a child ``enroll serve``."""
    return {"ENROLL_ACME_RESOLVER": dns.address, "ENROLL_ACME_HTTP01_PORT": str(http01_port),
            "ENROLL_ACME_TLSALPN01_PORT": str(tlsalpn01_port),
            "ENROLL_ACME_ALLOW_LOOPBACK": "1"}


def alpn_server_context(tmp: Any, cert: x509.Certificate, key: Any) -> Any:
    """A TLS server context presenting `cert` (with `key`) for ALPN ``acme-tls/1``, as a
    tls-alpn-01 responder does (files under `tmp`, a `pathlib.Path`)."""
    import ssl

    from enroll.protocols.acme.validation.tlsalpn01 import ACME_TLS_1

    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    ctx.set_alpn_protocols([ACME_TLS_1])
    return ctx


class LocalDns:
    """A UDP DNS on loopback: every A query is 127.0.0.1, TXT answers come from `txt`
    (text) and `txt_raw` (records of any octets, one list of strings per record)."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.txt_raw: dict[str, list[list[bytes]]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001, S112 - ignore garbage
                continue
            reply = dns.message.make_response(query)
            for q in query.question:
                name = q.name.to_text().rstrip(".").lower()
                if q.rdtype == dns.rdatatype.A:
                    reply.answer.append(dns.rrset.from_text(q.name, 5, "IN", "A", "127.0.0.1"))
                elif q.rdtype == dns.rdatatype.TXT and name in self.txt:
                    reply.answer.append(dns.rrset.from_text_list(
                        q.name, 5, "IN", "TXT", [f'"{v}"' for v in self.txt[name]]))
                elif q.rdtype == dns.rdatatype.TXT and name in self.txt_raw:
                    reply.answer.append(dns.rrset.from_rdata_list(q.name, 5, [
                        TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
                        for strings in self.txt_raw[name]]))
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# -- interop --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """This environment without ``ENROLL_*`` and this machine's CA variables (tests pass
    CA files explicitly), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_") and k not in
           ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env.update(extra)
    return env


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def with_system_ca(ca_file: str, argv: list[str]) -> list[str]:
    """`argv` run where the system CA bundle is `ca_file`, for clients with no CA option
    of their own (uacme: libcurl's built-in bundle path; lacme: Debian's LWP default, its
    environment wiped): an operator adds enroll's root to the system store, a private
    mount namespace does that here without touching the machine."""
    script = f'mount --bind "$0" {SYSTEM_CA_BUNDLE} && exec "$@"'
    user_ns = ["--map-root-user"] if os.geteuid() != 0 else []
    return [require_binary("unshare"), "--mount", *user_ns, "sh", "-c", script, ca_file,
            *argv]


def require_binary(name: str) -> str:
    """An interop client or tool (also looked for in /usr/sbin, where nginx lives),
    skipped when missing unless ``ENROLL_REQUIRE_INTEROP=1`` (CI), which turns the skip
    into a failure."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if path:
        return path
    if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
        pytest.fail(f"interop client {name!r} is required (ENROLL_REQUIRE_INTEROP=1) "
                    "but not installed")
    pytest.skip(f"interop client {name!r} not installed")


@dataclass
class RunningServer:
    data_dir: Path
    process: subprocess.Popen[bytes]
    endpoints: dict[str, Any]
    log_path: Path
    extra_env: dict[str, str] | None = None

    @property
    def http_url(self) -> str:
        return str(self.endpoints["http_url"])

    @property
    def https_url(self) -> str:
        return str(self.endpoints["https_url"])

    @property
    def tls_ca(self) -> str:
        return str(self.endpoints["tls_ca_bundle"])

    def enroll(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an `enroll` CLI command against this server's data dir."""
        return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                               str(self.data_dir), *args], capture_output=True, text=True,
                              timeout=120, env=_child_env(self.data_dir, self.extra_env or {}),
                              check=False)


def _child_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    return child_env(**{"ENROLL_DATA_DIR": str(data_dir), **extra})


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), timeout: float = 60.0) -> RunningServer:
    http_port, https_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    endpoints_file = data_dir / "endpoints.json"
    if endpoints_file.exists():
        endpoints_file.unlink()
    env = _child_env(data_dir, extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "enroll.cli.main", "serve", "--http-port", str(http_port),
         "--https-port", str(https_port), *args],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env)  # noqa: SIM115
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"enroll serve exited: {log_path.read_text()[-4000:]}")
        if endpoints_file.exists():
            try:
                endpoints = json.loads(endpoints_file.read_text())
                r = httpx.get(f"{endpoints['http_url']}/health", timeout=2, trust_env=False)
                if r.status_code == 200:
                    return RunningServer(data_dir, proc, endpoints, log_path, extra_env)
            except (ValueError, httpx.HTTPError):
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"enroll serve did not start: {log_path.read_text()[-4000:]}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


def pg_schema_url() -> Iterator[str]:
    """A fresh schema on ENROLL_TEST_DATABASE_URL's PostgreSQL, dropped afterwards."""
    pg_url = os.environ["ENROLL_TEST_DATABASE_URL"]
    import sqlalchemy

    from enroll.store.db import normalise_url

    schema = f"t_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(normalise_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
