"""SCEP test harness: an app with a configured SCEP endpoint and a client for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from enroll.protocols.scep import signeddata

from enroll.testing import count_stored
from enroll.testing.scep_client import ScepClient

CHALLENGE = "static-test-challenge-7f3a9c2e5b1d"  # noqa: S105 - test value
PKI = {"content-type": "application/x-pki-message"}


@dataclass
class Harness:
    app: Any
    ctx: Any
    challenge: str = CHALLENGE

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        import anyio

        transport = httpx.ASGITransport(app=self.app)

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://testserver") as c:
                return await c.request(method, url, **kw)

        return anyio.run(go)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def ra(self, path: str = "/scep") -> x509.Certificate:
        r = self.get(path, params={"operation": "GetCACert"})
        assert r.status_code == 200, r.text
        certs, _ = signeddata.degenerate_contents(r.content)
        return next(c for c in certs if not _is_ca(c))

    def client(self, path: str = "/scep", **kw: Any) -> ScepClient:
        return ScepClient(self.ra(path), **kw)

    def operation(self, message: bytes, path: str = "/scep") -> httpx.Response:
        return self.post(f"{path}?operation=PKIOperation", content=message, headers=PKI)

    def counts(self) -> tuple[int, int]:
        """(certificates, requests) stored, not counting enroll's own."""
        return count_stored(self.ctx)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_scep(make_config: Any) -> Iterator[HarnessFactory]:
    """`make_scep(endpoint_overrides..., endpoints=..., extra_profiles=...)`."""
    from enroll.app import create_app

    made: list[Harness] = []

    def factory(endpoints: dict[str, Any] | None = None, clock: Any = None,
                extra_profiles: dict[str, Any] | None = None, **default: Any) -> Harness:
        eps = endpoints or {"default": {"challenge": CHALLENGE, **default}}
        overrides: dict[str, Any] = {"scep": {"endpoints": eps}}
        if extra_profiles:
            overrides["extra_profiles"] = extra_profiles
        app = create_app(make_config(**overrides), clock=clock)
        harness = Harness(app, app.state.enroll)
        made.append(harness)
        return harness

    yield factory
    for h in made:
        h.ctx.db.dispose()


@pytest.fixture
def scep(make_scep: HarnessFactory) -> Harness:
    return make_scep()


@pytest.fixture
def scepclient() -> str:
    """micromdm's scepclient; skipped when missing unless ENROLL_REQUIRE_INTEROP=1."""
    import os
    import shutil

    path = shutil.which("scepclient")
    if path:
        return path
    if os.environ.get("ENROLL_REQUIRE_INTEROP") == "1":
        pytest.fail("scepclient is required (ENROLL_REQUIRE_INTEROP=1) but not installed")
    pytest.skip("scepclient not installed")
