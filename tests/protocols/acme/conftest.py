"""ACME fixtures: a local DNS for the validator, an in-process app with a persistent
event loop (so validation tasks finish), and a real `enroll serve` whose validator asks
that DNS. Helpers live in `acme_harness`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from acme_harness import Harness, LocalDns, free_tcp_port, validator_env


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
def acme_server(tmp_path: Path, local_dns: LocalDns,
                server_factory: Callable[..., Any]) -> Any:
    """`enroll serve` (embedded default) whose validator asks `local_dns` and connects
    to the ports in ``server.http01_port`` / ``server.tlsalpn01_port`` on loopback."""
    http01, tlsalpn01 = free_tcp_port(), free_tcp_port()
    server = server_factory(tmp_path / "data", extra_env=validator_env(local_dns, http01,
                                                                      tlsalpn01))
    server.http01_port, server.tlsalpn01_port = http01, tlsalpn01
    return server


@pytest.fixture
async def make_harness(make_config: Callable[..., Any], local_dns: LocalDns) -> Any:
    """`await make_harness(**acme_section_overrides, extra_profiles=...)`."""
    import httpx

    from enroll.app import create_app
    from enroll.testing.acme_client import Http01Responder

    made: list[tuple[Any, Any, Any]] = []

    async def factory(extra_profiles: dict[str, Any] | None = None, **acme: Any) -> Harness:
        responder = Http01Responder()
        await responder.start()
        section = {"resolver": local_dns.address, "http01_port": str(responder.port),
                   "allow_loopback": "1", **acme}
        overrides: dict[str, Any] = {"acme": section}
        if extra_profiles:
            overrides["extra_profiles"] = extra_profiles
        app = create_app(make_config(**overrides))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://acme.test")
        made.append((app, http, responder))
        return Harness(app, http, responder, local_dns)

    yield factory
    for app, http, responder in made:
        await http.aclose()
        await responder.close()
        app.state.enroll.db.dispose()


@pytest.fixture
async def harness(make_harness: Any) -> Harness:
    return await make_harness()
