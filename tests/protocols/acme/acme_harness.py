"""ACME test helpers: a local DNS for the validator, the in-process harness, child
environments for lego and certbot, and the problem-document assertion. Imported by the
fixtures in conftest.py and by the tests (a unique module name, so the whole suite can
import it whatever other conftest modules are loaded)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

NS = "urn:ietf:params:acme:error:"


def problem(r: Any, typ: str, status: int) -> None:
    """Assert an RFC 7807 ACME problem with a fresh Replay-Nonce."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == NS + typ, r.json()
    assert r.headers.get("Replay-Nonce")


class LocalDns:
    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
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
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def interop_env(**extra: str) -> dict[str, str]:
    """A child env without this machine's CA variables (tests pass CA files explicitly)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_") and k not in
           ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env.update(extra)
    return env


def validator_env(dns: LocalDns, http01_port: int, tlsalpn01_port: int = 443) -> dict[str, str]:
    return {"ENROLL_ACME_RESOLVER": dns.address, "ENROLL_ACME_HTTP01_PORT": str(http01_port),
            "ENROLL_ACME_TLSALPN01_PORT": str(tlsalpn01_port),
            "ENROLL_ACME_ALLOW_LOOPBACK": "1"}


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str:
    """A third-party client; skipped when missing unless ENROLL_REQUIRE_INTEROP=1."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{name} is required (ENROLL_REQUIRE_INTEROP=1) but not installed")
    pytest.skip(f"{name} not installed")


class Harness:
    """The app in-process (httpx ASGITransport, one event loop for the whole test so
    validation tasks run), an http-01 responder and the local DNS on loopback."""

    def __init__(self, app: Any, http: Any, responder: Any, dns: LocalDns) -> None:
        self.app = app
        self.http = http
        self.responder = responder
        self.dns = dns
        self.ctx = app.state.enroll
        self.baseline = (0, 0)
        self.baseline = self.counts()

    def client(self, key: Any = None, endpoint: str = "") -> Any:
        from enroll.testing.acme_client import AcmeClient

        path = f"/acme/{endpoint}/directory" if endpoint else "/acme/directory"
        return AcmeClient(self.http, f"https://acme.test{path}", key)

    def counts(self) -> tuple[int, int]:
        """(certificates, requests) stored by the core since the harness started (the
        embedded default issues its own TLS listener certificate at start-up)."""
        from enroll.store import queries

        with self.ctx.db.read() as conn:
            return (queries.count_certificates(conn) - self.baseline[0],
                    queries.count_requests(conn) - self.baseline[1])

    def rows(self, table: str) -> list[Any]:
        with self.ctx.db.read() as tx:
            return tx.all(f"select * from {table}")  # noqa: S608 - tests
