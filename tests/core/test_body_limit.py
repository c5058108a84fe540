"""Request bodies past ``max_body_bytes`` are answered 413 on every route, whether the
length is declared or the body is chunked, and whatever the handler does with the
refused read (ACME's handler used to turn it into a serverInternal 500); an unknown
path or method is 404 / 405, not 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from harness import ALICE, Harness, est_section, scep_section

LIMIT = 4096
ROUTES = [
    ("/scep?operation=PKIOperation", {"content-type": "application/x-pki-message"}),
    ("/.well-known/est/simpleenroll", {"content-type": "application/pkcs10"}),
    ("/.well-known/est/simplereenroll", {"content-type": "application/pkcs10"}),
    ("/.well-known/est/serverkeygen", {"content-type": "application/pkcs10"}),
    ("/acme/new-account", {"content-type": "application/jose+json"}),
    ("/acme/new-order", {"content-type": "application/jose+json"}),
    ("/acme/order/x/finalize", {"content-type": "application/jose+json"}),
    ("/ocsp", {"content-type": "application/ocsp-request"}),
]


@pytest.fixture
def pki(harness_factory: Callable[..., Harness]) -> Harness:
    return harness_factory(max_body_bytes=LIMIT, listener=True, base_url="https://testserver",
                           **scep_section(), **est_section())


async def _chunks(total: int, size: int = 1000) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"A" * size
        sent += size


async def _post(h: Harness, path: str, headers: dict[str, str], content: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=h._app())
    async with httpx.AsyncClient(transport=transport, base_url=h.base_url) as client:
        return await client.post(path, content=content, headers=headers, auth=ALICE)


@pytest.mark.parametrize(("path", "headers"), ROUTES)
async def test_chunked_body_past_the_limit_is_413(pki: Harness, path: str,
                                                  headers: dict[str, str]) -> None:
    r = await _post(pki, path, headers, _chunks(LIMIT * 4))
    assert r.status_code == 413, (r.status_code, r.text)
    assert r.text == "request body too large\n"
    assert r.headers["x-request-id"]
    assert pki.counts() == (0, 0)


@pytest.mark.parametrize(("path", "headers"), ROUTES)
async def test_declared_length_past_the_limit_is_413(pki: Harness, path: str,
                                                     headers: dict[str, str]) -> None:
    r = await _post(pki, path, headers, b"A" * (LIMIT + 1))
    assert r.status_code == 413, (r.status_code, r.text)
    assert pki.counts() == (0, 0)


async def test_chunked_body_within_the_limit_reaches_the_handler(pki: Harness) -> None:
    r = await _post(pki, "/acme/new-account", {"content-type": "application/jose+json"},
                    _chunks(LIMIT - 1000))
    assert r.status_code == 400 and r.json()["type"].endswith(":malformed"), r.text


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/no/such/path", 404), ("POST", "/acme/renewal-info/", 404),
    ("DELETE", "/health", 405), ("PUT", "/acme/new-account", 405),
    ("POST", "/no/such/path", 404),
])
def test_unknown_path_or_method_is_4xx_not_500(pki: Harness, method: str, path: str,
                                               status: int) -> None:
    r = pki.request(method, path, content=b"x")
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["x-request-id"]
