"""ACME fixtures: a local DNS for the validator, an http-01 responder on loopback, an
in-process app (`harness.Harness` from the shared ``harness_factory``; async tests use
its one AsyncClient, so validation tasks finish on the test's event loop), and a real
`enroll serve` whose validator asks that DNS. Helpers live in tests/harness.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import ACME_BASE, Harness, LocalDns, acme_section, free_port, validator_env

from enroll.testing.acme_client import Http01Responder


@pytest.fixture
def acme_server(tmp_path: Path, local_dns: LocalDns,
                server_factory: Callable[..., Any]) -> Any:
    """`enroll serve` (embedded default) whose validator asks `local_dns` and connects
    to the ports in ``server.http01_port`` / ``server.tlsalpn01_port`` on loopback."""
    http01, tlsalpn01 = free_port(), free_port()
    server = server_factory(tmp_path / "data", extra_env=validator_env(local_dns, http01,
                                                                      tlsalpn01))
    server.http01_port, server.tlsalpn01_port = http01, tlsalpn01
    return server


@pytest.fixture
def make_harness(harness_factory: Callable[..., Harness], local_dns: LocalDns,
                 responder: Http01Responder) -> Callable[..., Harness]:
    """`make_harness(**acme_section_overrides, extra_profiles=...)`."""

    def factory(extra_profiles: dict[str, Any] | None = None, **acme: Any) -> Harness:
        return harness_factory(base_url=ACME_BASE, extra_profiles=extra_profiles,
                               **acme_section(local_dns, responder.port, **acme))

    return factory


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
