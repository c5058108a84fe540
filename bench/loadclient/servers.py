"""The servers under test, each started on free loopback ports in a fresh temp dir:
`enroll serve` (embedded default), pebble (Debian `pebble`) and micromdm's scepserver
(Debian `scep`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/bench"
# A bench account places thousands of orders, far past the per-account ACME limits an
# operator sets for real clients (pebble has none): lifted for the bench's servers.
ACME_LIMITS_LIFTED = """
[acme.endpoints.default]
max_pending_authorizations = 100000
max_concurrent_validations = 1000

[acme.endpoints.default.rate_limits]
new_accounts_per_address = "off"
new_orders_per_account = "off"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment without our own or the peers' settings leaking in."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ENROLL_", "PEBBLE_"))
            and k not in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}


@dataclass
class Server:
    """A running server: its process (whose tree is measured) and what a client needs."""

    name: str
    proc: subprocess.Popen[bytes]
    work: Path
    info: dict[str, Any] = field(default_factory=dict)
    pg_database: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.work, ignore_errors=True)

    def log_tail(self) -> str:
        log = self.work / "server.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _get(url: str, cafile: str | None = None, timeout: float = 2.0) -> bytes:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(url, timeout=timeout, context=context) as r:  # noqa: S310
        return bytes(r.read())


def _wait(server: Server, ready: Any, timeout: float = 90.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"{server.name} exited: {tail}")
        try:
            if ready():
                return server
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"{server.name} did not start: {tail}")


def reset_postgres(url: str) -> str:
    """Drop and recreate the public schema of the scratch database; its name."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None
    return str(name[0])


def start_enroll(*, workers: int = 1, db: str = "sqlite", pg_url: str = DEFAULT_PG,
                 extra_env: dict[str, str] | None = None, config_extra: str = "") -> Server:
    """`enroll serve` on a fresh data dir (embedded default); `info` is its endpoints.json.
    `config_extra` (TOML) is appended to the generated enroll.toml before it starts."""
    work = Path(tempfile.mkdtemp(prefix="bench-enroll-"))
    env = clean_env() | {"ENROLL_DATA_DIR": str(work / "data"), "ENROLL_LOG_LEVEL": "warning",
                         "ENROLL_WORKERS": str(workers)} | (extra_env or {})
    pg_database = None
    if db == "postgres":
        pg_database = reset_postgres(pg_url)
        env["ENROLL_DATABASE_URL"] = pg_url
    elif db != "sqlite":
        raise ValueError(f"--db {db!r}: sqlite or postgres")
    if config_extra:
        subprocess.run([sys.executable, "-m", "enroll.cli.main", "init"], env=env, cwd=work,
                       check=True, capture_output=True)
        with open(work / "data" / "enroll.toml", "a", encoding="utf-8") as f:
            f.write("\n" + config_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "enroll.cli.main", "serve", "--http-port", str(free_port()),
         "--https-port", str(free_port())], env=env, cwd=work, stdin=subprocess.DEVNULL,
        stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    server = Server("enroll", proc, work, pg_database=pg_database)
    endpoints = work / "data" / "endpoints.json"

    def ready() -> bool:
        info = json.loads(endpoints.read_text())
        _get(info["health_url"], info["tls_ca_bundle"])
        server.info = info
        return True

    _wait(server, ready)
    if workers > 1:
        time.sleep(1.0)  # the other workers finish importing
    return server


def _self_signed_tls(work: Path) -> tuple[Path, Path]:
    """A throw-away TLS certificate for 127.0.0.1 (pebble ships none in Debian)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = work / "tls.pem", work / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start_pebble(*, skip_validation: bool, dns_port: int, http01_port: int) -> Server:
    """pebble with its own TLS certificate; `info`: directory, tls_ca, roots_url."""
    binary = shutil.which("pebble")
    if binary is None:
        raise FileNotFoundError("pebble (Debian package `pebble`) is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-pebble-"))
    cert, key = _self_signed_tls(work)
    port, mgmt = free_port(), free_port()
    (work / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}", "managementListenAddress": f"127.0.0.1:{mgmt}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http01_port,
        "tlsPort": free_port(), "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    env = clean_env() | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                         "PEBBLE_AUTHZREUSE": "0"}
    if skip_validation:
        env["PEBBLE_VA_ALWAYS_VALID"] = "1"
    proc = subprocess.Popen(
        [binary, "-config", str(work / "config.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        env=env, cwd=work, stdin=subprocess.DEVNULL,
        stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    info = {"directory": f"https://127.0.0.1:{port}/dir", "tls_ca": str(cert),
            "roots_url": f"https://127.0.0.1:{mgmt}/roots/0"}
    server = Server("pebble", proc, work, info)
    return _wait(server, lambda: bool(_get(info["directory"], str(cert))))


def start_scepserver(*, challenge: str) -> Server:
    """micromdm's scepserver with an RSA-2048 CA (which is also its RA) in a temp depot."""
    binary = shutil.which("scepserver")
    if binary is None:
        raise FileNotFoundError("scepserver (Debian package `scep`) is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-scepserver-"))
    depot = work / "depot"
    subprocess.run([binary, "ca", "-init", "-depot", str(depot), "-keySize", "2048"],
                   cwd=work, check=True, capture_output=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-depot", str(depot), "-port", str(port), "-challenge", challenge,
         "-allowrenew", "0"], cwd=work, stdin=subprocess.DEVNULL,
        stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}/scep"
    server = Server("scepserver", proc, work, {"url": url, "challenge": challenge})
    return _wait(server, lambda: bool(_get(f"{url}?operation=GetCACaps")))
