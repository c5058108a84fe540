"""EST test harness: an app with configured EST endpoints, and an HTTPS-like client.

`Harness.post(..., client_cert=cert, tls_unique=b"...")` runs the request through the
app with the ASGI TLS extension filled exactly as ``enroll serve``'s HTTPS listener
fills it (enroll/asgi/tls_client_cert.py), so the app sees what it sees in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from enroll.protocols.est import passwords

from enroll.testing import count_stored
from enroll.testing.est_client import csr_body

ALICE = ("alice", "alice-generated-secret-0f9e8d7c6b5a")
BOB = ("bob", "bob chose this")
# Hashes made once per session (scrypt is slow on purpose).
_HASHES: dict[str, str] = {}
PKCS10 = {"content-type": "application/pkcs10"}
EST = "/.well-known/est"


def users() -> dict[str, str]:
    if not _HASHES:
        _HASHES[ALICE[0]] = passwords.hash_fast(ALICE[1])
        _HASHES[BOB[0]] = passwords.hash_slow(BOB[1], log2_n=12)
    return dict(_HASHES)


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


@dataclass
class Harness:
    app: Any
    ctx: Any
    auth: tuple[str, str] | None = field(default=ALICE)

    def request(self, method: str, url: str, *, client_cert: x509.Certificate | None = None,
                tls_unique: bytes | None = None, peer: str = "127.0.0.1", tls: bool = True,
                **kw: Any) -> httpx.Response:
        import anyio

        app = with_transport(self.app, client_cert, tls_unique, peer, tls)
        transport = httpx.ASGITransport(app=app)

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport,
                                         base_url="https://testserver") as c:
                return await c.request(method, url, **kw)

        return anyio.run(go)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def enroll(self, csr: x509.CertificateSigningRequest, op: str = "simpleenroll",
               path: str = EST, auth: Any = "default", **kw: Any) -> httpx.Response:
        credentials = self.auth if auth == "default" else auth
        return self.request("POST", f"{path}/{op}", content=csr_body(csr), headers=PKCS10,
                            auth=credentials, **kw)

    def counts(self) -> tuple[int, int]:
        """(certificates, requests) stored, not counting enroll's own."""
        return count_stored(self.ctx)


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_est(make_config: Any) -> Iterator[HarnessFactory]:
    """`make_est(endpoints=..., extra_profiles=..., trusted_proxies=..., **default)`."""
    from enroll.app import create_app

    made: list[Harness] = []

    def factory(endpoints: dict[str, Any] | None = None,
                extra_profiles: dict[str, Any] | None = None,
                trusted_proxies: list[str] | None = None, clock: Any = None,
                labels: dict[str, Any] | None = None, **default: Any) -> Harness:
        eps = endpoints or {"default": {"users": users(), **default}}
        for label, table in (labels or {}).items():
            eps[label] = {"users": users(), **table}
        overrides: dict[str, Any] = {"est": {"endpoints": eps}}
        if extra_profiles:
            overrides["extra_profiles"] = extra_profiles
        if trusted_proxies is not None:
            overrides["trusted_proxies"] = trusted_proxies
        app = create_app(make_config(**overrides), clock=clock)
        harness = Harness(app, app.state.enroll)
        made.append(harness)
        return harness

    yield factory
    for h in made:
        h.ctx.db.dispose()


@pytest.fixture
def require_tools() -> None:
    """curl and openssl (and nginx where asked): skipped when missing, a failure when
    ``ENROLL_REQUIRE_INTEROP=1`` (CI)."""
    for name in ("curl", "openssl"):
        _require(name)


def _require(name: str) -> str:
    import os
    import shutil

    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if path:
        return path
    if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
        pytest.fail(f"interop tool {name!r} is required (ENROLL_REQUIRE_INTEROP=1)")
    pytest.skip(f"interop tool {name!r} not installed")


@pytest.fixture
def nginx_binary() -> str:
    return _require("nginx")


@pytest.fixture
def bob() -> tuple[str, str]:
    """A user whose password an operator chose (stored with scrypt)."""
    return BOB


@pytest.fixture
def est(make_est: HarnessFactory) -> Harness:
    return make_est()
