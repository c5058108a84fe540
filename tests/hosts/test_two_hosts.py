"""F9: two hosts behind nginx share one PostgreSQL; one is cut off mid-run.

Each host is a network namespace this test creates, running `enroll serve` on its own
address; both reach the machine's PostgreSQL through a forwarder on our side of their
links. nginx (Debian) on loopback balances SCEP (HTTP) and EST and ACME (HTTPS) over
both. Clients of all three protocols enrol through nginx in a loop; then

1. host B is cut off: an ACME order is created and its authorization validated, and a
   SCEP PKCSReq is issued, all on host A;
2. B comes back and A is cut off: the ACME order is finalized and downloaded on B with
   the nonce A handed out, and the SCEP client's retry of its transaction (same
   transactionID, same message) gets the same certificate from B;
3. the load finishes on B.

Nothing is lost: every certificate a client received is in the store, valid and
revocable, no serial twice, no request left approved without a certificate, no ACME
order left processing. ACME validation is skipped (``acme.skip_validation``): the
validator would need a DNS server and responder inside each namespace, and what this
test proves is that state started on one host completes on the other.
"""

from __future__ import annotations

import asyncio
import json
import shutil
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
from cryptography import x509
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import child_env, free_port, require_binary
from netns import Forwarder, Host
from sqlalchemy import create_engine, text

from enroll.store.db import normalise_url
from enroll.testing import make_csr
from enroll.testing.acme_client import AcmeClient, AcmeError, b64e
from enroll.testing.acme_client import make_csr as acme_csr
from enroll.testing.est_client import PKCS10_HEADERS, certs_from, csr_body
from enroll.testing.scep_client import ScepClient, csr_with_challenge

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.interop]
NGINX = string.Template("""
pid $PREFIX/nginx.pid;
error_log $PREFIX/error.log warn;
events { worker_connections 512; }
http {
    log_format upstreams '$$request_method $$uri $$status $$upstream_addr';
    access_log $PREFIX/access.log upstreams;
    client_body_temp_path $PREFIX/body;
    proxy_temp_path $PREFIX/proxy;
    upstream enroll_https { server $A:8443 max_fails=1 fail_timeout=2s;
                            server $B:8443 max_fails=1 fail_timeout=2s; }
    upstream enroll_http  { server $A:8080 max_fails=1 fail_timeout=2s;
                            server $B:8080 max_fails=1 fail_timeout=2s; }
    proxy_connect_timeout 2s;
    proxy_read_timeout 8s;
    proxy_next_upstream error timeout http_502 http_503 non_idempotent;
    proxy_set_header Host $$http_host;
    server {
        listen 127.0.0.1:$HTTPS_PORT ssl;
        ssl_certificate $TLS_CERT;
        ssl_certificate_key $TLS_KEY;
        location / {
            proxy_pass https://enroll_https;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 3;
            proxy_ssl_trusted_certificate $TLS_CA;
            proxy_ssl_name localhost;
        }
    }
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location / { proxy_pass http://enroll_http; }
    }
}
""")


class Site:
    """The two hosts, the forwarder to PostgreSQL, nginx, and what clients need."""

    def __init__(self, root: Path, pg_url: str) -> None:
        self.root, self.pg_url = root, pg_url
        self.hosts: list[Host] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.forwarder: Forwarder | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.https_port, self.http_port = free_port(), free_port()
        self.https = f"https://127.0.0.1:{self.https_port}"
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.data = root / "data"
        self.info: dict[str, Any] = {}

    def env(self, url: str) -> dict[str, str]:
        return child_env(ENROLL_DATABASE_URL=url, ENROLL_ACME_SKIP_VALIDATION="true",
                         ENROLL_PUBLIC_HTTPS_URL=self.https, ENROLL_PUBLIC_HTTP_URL=self.http,
                         ENROLL_LOG_REQUESTS="1")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                               str(self.data), *args], env=self.env(self.pg_url),
                              capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        done = self.cli("init")
        assert done.returncode == 0, done.stderr
        self.hosts = [Host(0), Host(1)]
        self.forwarder = Forwarder([h.outer for h in self.hosts], ("127.0.0.1", 5432))
        parsed = urllib.parse.urlsplit(self.pg_url)
        for i, host in enumerate(self.hosts):
            data = self.root / f"host{i}"
            shutil.copytree(self.data, data)
            url = urllib.parse.urlunsplit(parsed._replace(
                netloc=f"{parsed.username}@{host.outer}:{self.forwarder.port}"))
            env = self.env(url) | {"ENROLL_DATA_DIR": str(data)}
            log = open(data / "serve.log", "wb")  # noqa: SIM115 - closed with the process
            self.procs.append(subprocess.Popen(host.command(
                sys.executable, "-m", "enroll.cli.main", "serve", "--host", host.address,
                "--http-port", "8080", "--https-port", "8443"), env=env, stdout=log,
                stderr=subprocess.STDOUT))
        for i in range(len(self.hosts)):
            self.wait_healthy(i)
        self.info = json.loads((self.root / "host0" / "endpoints.json").read_text())
        self.start_nginx()

    def wait_healthy(self, i: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.procs[i].poll() is not None:
                raise RuntimeError(self.log(i))
            try:
                r = httpx.get(f"http://{self.hosts[i].address}:8080/health", timeout=2,
                              trust_env=False)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {i} did not start: {self.log(i)}")
            time.sleep(0.2)

    def log(self, i: int) -> str:
        return (self.root / f"host{i}" / "serve.log").read_text()[-3000:]

    def start_nginx(self) -> None:
        prefix = self.root / "nginx"
        prefix.mkdir()
        tls = self.data / "tls"
        (prefix / "nginx.conf").write_text(NGINX.substitute(
            PREFIX=prefix, A=self.hosts[0].address, B=self.hosts[1].address,
            HTTPS_PORT=self.https_port, HTTP_PORT=self.http_port,
            TLS_CERT=tls / "server.pem", TLS_KEY=tls / "server.key",
            TLS_CA=self.info["tls_ca_bundle"]))
        self.nginx = subprocess.Popen([require_binary("nginx"), "-p", str(prefix), "-c",
                                       str(prefix / "nginx.conf"), "-g",
                                       "daemon off; user root;"],
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(prefix / "stderr.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{self.http}/health", timeout=2, trust_env=False)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.nginx.poll() is not None:
                    raise RuntimeError("nginx did not start: " + (
                        prefix / "stderr.log").read_text()[-2000:]) from None
                time.sleep(0.1)

    def served_by(self) -> list[tuple[str, str, str]]:
        """(method, path, upstream address) of every request nginx passed on."""
        lines = (self.root / "nginx" / "access.log").read_text().splitlines()
        return [(p[0], p[1], p[3].split(":")[0]) for p in (line.split() for line in lines)
                if len(p) >= 4]

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            self.nginx.wait(10)
        for proc in self.procs:
            proc.kill()
            proc.wait(10)
        if self.forwarder is not None:
            self.forwarder.close()
        for host in self.hosts:
            host.close()


@pytest.fixture
def site(tmp_path: Path, pg_url: str) -> Iterator[Site]:
    require_binary("nginx")
    s = Site(tmp_path, pg_url)
    try:
        s.start()
        yield s
    finally:
        s.close()


class Clients:
    """One client per protocol through nginx, retrying as real clients do."""

    def __init__(self, site: Site, http: httpx.AsyncClient) -> None:
        self.site, self.http = site, http
        self.received: dict[str, set[int]] = {"scep": set(), "est": set(), "acme": set()}
        self.errors: list[str] = []
        info = site.info
        self.est_auth = (info["est"]["username"], info["est"]["password"])
        self.scep_url = f"{site.http}/scep"
        self.challenge = info["scep"]["challenge"]
        self.ra: x509.Certificate | None = None

    async def retrying(self, what: str, attempt: Any) -> Any:
        for _ in range(120):  # up to a minute: a loaded machine restores a host slowly
            try:
                return await attempt()
            except (httpx.HTTPError, AcmeError, RuntimeError, AssertionError, ValueError,
                    KeyError, TimeoutError) as exc:
                # KeyError: a 502 from nginx has no Replay-Nonce. TimeoutError: an
                # authorization whose validation ran on the host just cut off stays
                # pending; the client starts over with a new order, as a real one would.
                self.errors.append(f"{what}: {type(exc).__name__}: {str(exc)[:120]}")
                await asyncio.sleep(0.5)
        raise AssertionError(f"{what} never succeeded: {self.errors[-3:]}")

    async def scep_device(self) -> ScepClient:
        if self.ra is None:
            r = await self.http.get(self.scep_url, params={"operation": "GetCACert"})
            certs, _ = signeddata.degenerate_contents(r.content)
            self.ra = next(c for c in certs if not c.extensions.get_extension_for_class(
                x509.BasicConstraints).value.ca)
        return ScepClient(self.ra)

    async def scep_send(self, device: ScepClient, message: bytes) -> x509.Certificate:
        r = await self.http.post(self.scep_url, params={"operation": "PKIOperation"},
                                 content=message,
                                 headers={"content-type": "application/x-pki-message"})
        if r.status_code != 200:
            raise RuntimeError(f"SCEP HTTP {r.status_code}")
        reply = device.read(r.content)
        if reply.status is not PKIStatus.SUCCESS or reply.certificate is None:
            raise RuntimeError(f"SCEP {reply.status.name} {reply.certrep.fail_text}")
        return reply.certificate

    async def scep(self, device: ScepClient, cn: str) -> x509.Certificate | None:
        message, _ = device.pkcs_req(csr_with_challenge(device.key, cn, self.challenge))
        try:
            cert: x509.Certificate = await self.retrying(
                "scep", lambda: self.scep_send(device, message))  # the same message each time
        except AssertionError:
            # A host cut off mid-issuance leaves the transaction to the recovery pass
            # (after `recovery_grace`); until then every retry is rightly PENDING, and
            # `_nothing_lost` runs that pass and checks it finished.
            if not self.errors[-1].startswith("scep: RuntimeError: SCEP PENDING"):
                raise
            return None
        self.received["scep"].add(cert.serial_number)
        return cert

    async def est(self, cn: str) -> None:
        body = csr_body(make_csr(cn=cn, dns=[]))

        async def attempt() -> x509.Certificate:
            r = await self.http.post(f"{self.site.https}/.well-known/est/simpleenroll",
                                     content=body, headers=PKCS10_HEADERS, auth=self.est_auth)
            if r.status_code != 200:
                raise RuntimeError(f"EST HTTP {r.status_code}")
            return certs_from(r.content)[0]

        cert = await self.retrying("est", attempt)
        self.received["est"].add(cert.serial_number)

    async def acme(self, client: AcmeClient, name: str) -> None:
        async def attempt() -> str:
            return await client.issue([name])

        pem = await self.retrying("acme", attempt)
        self.received["acme"].add(x509.load_pem_x509_certificate(pem.encode()).serial_number)

    async def loop(self, stop: asyncio.Event, tag: str) -> None:
        device = await self.scep_device()
        acme = AcmeClient(self.http, f"{self.site.https}/acme/directory")
        await self.retrying("acme account", lambda: acme.register())
        i = 0
        while not stop.is_set():
            i += 1
            await self.scep(device, f"{tag}-scep-{i}")
            await self.est(f"{tag}-est-{i}")
            await self.acme(acme, f"{tag}-{i}.hosts.example")


async def test_two_hosts_share_one_database_and_one_survives_the_other(site: Site) -> None:
    async with httpx.AsyncClient(verify=site.info["tls_ca_bundle"], trust_env=False,
                                 timeout=20) as http:
        clients = Clients(site, http)
        stop = asyncio.Event()
        load = [asyncio.create_task(clients.loop(stop, f"u{n}")) for n in range(3)]
        try:
            order_url, chall_url = await _scenario(site, clients, http, stop, load)
        finally:
            stop.set()
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)

    # The straddling order was validated on A and finalized on B (nginx's log).
    a, b = site.hosts
    served = site.served_by()
    order_path = urllib.parse.urlsplit(order_url).path
    assert ("POST", urllib.parse.urlsplit(chall_url).path, a.address) in served
    assert ("POST", f"{order_path}/finalize", b.address) in served
    assert ("POST", f"{order_path}/finalize", a.address) not in served

    received = {p: s for p, s in clients.received.items()}
    assert all(len(s) >= 2 for s in received.values()), received
    _nothing_lost(site, received)


async def _scenario(site: Site, clients: Clients, http: httpx.AsyncClient,
                    stop: asyncio.Event, load: list[asyncio.Task[None]]
                    ) -> tuple[str, str]:
    await asyncio.sleep(6)
    both = {addr for _, _, addr in site.served_by()}
    assert both == {h.address for h in site.hosts}, both

    # 1. B is cut off: an ACME order and its authorization on A, a SCEP issuance on A.
    a, b = site.hosts
    b.cut()
    straddler = AcmeClient(http, f"{site.https}/acme/directory")
    await clients.retrying("register", lambda: straddler.register())
    order_url, order = await clients.retrying(
        "new-order", lambda: straddler.new_order(["straddle.hosts.example"]))
    authz = (await straddler.get(order["authorizations"][0])).json()
    chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
    assert (await straddler.post(chall["url"], {})).json()["status"] == "valid"
    device = await clients.scep_device()
    message, _ = device.pkcs_req(csr_with_challenge(device.key, "straddle", clients.challenge))
    first = await clients.retrying("scep on A", lambda: clients.scep_send(device, message))

    # 2. B comes back, A is cut off: finish both on B.
    b.restore()
    site.wait_healthy(1)
    await asyncio.sleep(2.5)  # nginx's fail_timeout: B is tried again
    a.cut()
    order = await clients.retrying("finalize on B", lambda: _finalize(straddler, order_url))
    pem = (await straddler.get(order["certificate"])).text
    straddled = x509.load_pem_x509_certificate(pem.encode())
    again = await clients.retrying("scep retry on B",
                                   lambda: clients.scep_send(device, message))
    assert again.serial_number == first.serial_number  # the transaction, not a new one
    clients.received["acme"].add(straddled.serial_number)
    clients.received["scep"].add(first.serial_number)

    # 3. The load finishes on B.
    await asyncio.sleep(4)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*load), timeout=180)
    return order_url, chall["url"]


async def _finalize(client: AcmeClient, order_url: str) -> dict[str, Any]:
    order: dict[str, Any] = (await client.get(order_url)).json()
    if order["status"] == "ready":
        csr = acme_csr(["straddle.hosts.example"])
        order = (await client.post(order["finalize"], {"csr": b64e(csr)})).json()
    if order["status"] != "valid":
        order = await client.poll(order_url, ("valid", "invalid"))
    assert order["status"] == "valid", order
    return order


def _nothing_lost(site: Site, received: dict[str, set[int]]) -> None:
    import datetime as dt

    from enroll import config as config_mod
    from enroll import recovery
    from enroll.context import build_context

    # Host A was cut off mid-issuance: what it left `approved` is what B's scheduled
    # recovery pass finishes after `recovery_grace`; run that pass now.
    ctx = build_context(config_mod.load(None, {"ENROLL_DATABASE_URL": site.pg_url},
                                        data_dir=site.data), run_migrations=False)
    try:
        ctx.authority.recovery_grace = dt.timedelta(0)
        recovery.run(ctx)
    finally:
        ctx.db.dispose()
    engine = create_engine(normalise_url(site.pg_url))
    try:
        with engine.connect() as conn:
            stored = {int(r[0], 16): r[1] for r in conn.execute(text(
                "SELECT serial, status FROM certificates"))}
            stuck = conn.execute(text(
                "SELECT count(*) FROM requests WHERE status IN ('approved', 'requested')")
            ).scalar()
            processing = conn.execute(text(
                "SELECT count(*) FROM acme_orders WHERE status = 'processing'")).scalar()
            serials = [r[0] for r in conn.execute(text("SELECT serial FROM certificates"))]
    finally:
        engine.dispose()
    everything = set().union(*received.values())
    assert everything <= set(stored), everything - set(stored)
    assert all(stored[s] == "valid" for s in everything)
    assert len(serials) == len(set(serials))
    assert stuck == 0 and processing == 0
    for serial in sorted(everything)[:3]:  # revocable from the operator's side
        done = site.cli("certs", "revoke", format(serial, "x"))
        assert done.returncode == 0, done.stderr
