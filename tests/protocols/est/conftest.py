"""EST fixtures: an app with configured EST endpoints (`harness.Harness`, made by the
shared ``harness_factory``), and the interop tools.

The harness is built with ``listener=True``: `est.request(..., client_cert=cert,
tls_unique=b"...")` runs the request through the app with the ASGI TLS extension filled
exactly as ``enroll serve``'s HTTPS listener fills it (enroll/asgi/tls_client_cert.py),
so the app sees what it sees in production. `harness.est_enroll` posts a CSR.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import BOB, Harness, est_section, require_binary

HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_est(harness_factory: HarnessFactory) -> HarnessFactory:
    """`make_est(endpoints=..., extra_profiles=..., trusted_proxies=..., proxy=...,
    listener=True, **default)`; `proxy` is the ``[est.proxy]`` table."""

    def factory(endpoints: dict[str, Any] | None = None,
                extra_profiles: dict[str, Any] | None = None,
                trusted_proxies: list[str] | None = None, clock: Any = None,
                labels: dict[str, Any] | None = None,
                proxy: dict[str, Any] | None = None, listener: bool = True,
                **default: Any) -> Harness:
        overrides = est_section(endpoints, labels, **default)
        if trusted_proxies is not None:
            overrides["trusted_proxies"] = trusted_proxies
        if proxy is not None:
            overrides["est"]["proxy"] = proxy
        return harness_factory(clock=clock, base_url="https://testserver",
                               listener=listener, extra_profiles=extra_profiles,
                               **overrides)

    return factory


@pytest.fixture
def require_tools() -> None:
    """curl and openssl: skipped when missing, a failure when ``ENROLL_REQUIRE_INTEROP=1``
    (CI)."""
    for name in ("curl", "openssl"):
        require_binary(name)


@pytest.fixture
def nginx_binary() -> str:
    return require_binary("nginx")


@pytest.fixture
def bob() -> tuple[str, str]:
    """A user whose password an operator chose (stored with scrypt)."""
    return BOB


@pytest.fixture
def est(make_est: HarnessFactory) -> Harness:
    return make_est()
