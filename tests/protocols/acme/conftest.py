"""ACME fixtures: a local DNS for the validator, an http-01 responder on loopback, an
in-process app (`harness.Harness` from the shared ``harness_factory``; async tests use
its one AsyncClient, so validation tasks finish on the test's event loop), and a real
`enroll serve` whose validator asks that DNS. Helpers live in tests/harness.py."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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


@pytest.fixture
def webroot(acme_server: Any, tmp_path: Path) -> Iterator[Path]:
    """A directory served as static files on ``acme_server.http01_port`` (loopback), as a
    web server's document root: webroot-mode clients write their http-01 answers under
    ``<webroot>/.well-known/acme-challenge/``."""
    root = tmp_path / "webroot"
    (root / ".well-known" / "acme-challenge").mkdir(parents=True)
    handler = functools.partial(_QuietFiles, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", acme_server.http01_port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root
    httpd.shutdown()
    httpd.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass
