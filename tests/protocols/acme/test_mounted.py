"""Embedded under a prefix in another Starlette app, every URL ACME hands out carries the
prefix and the whole flow works through it."""

from __future__ import annotations

from typing import Any

import httpx
from harness import acme_section
from starlette.applications import Starlette
from starlette.routing import Mount

from enroll.app import create_app
from enroll.testing.acme_client import AcmeClient, Http01Responder


async def test_mounted_app_issues_through_the_prefix(make_config: Any, local_dns: Any,
                                                     responder: Http01Responder) -> None:
    inner = create_app(make_config(**acme_section(local_dns, responder.port)))
    outer = Starlette(routes=[Mount("/pki", app=inner)])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer),
                                     base_url="https://host.test") as http:
            d = (await http.get("/pki/acme/directory")).json()
            assert all(d[k].startswith("https://host.test/pki/acme/")
                       for k in ("newNonce", "newAccount", "newOrder", "revokeCert"))
            acme = AcmeClient(http, "https://host.test/pki/acme/directory")
            await acme.register()
            assert acme.kid.startswith("https://host.test/pki/acme/acct/")
            pem = await acme.issue(["mounted.test.example"], responder)
            assert "BEGIN CERTIFICATE" in pem
    finally:
        inner.state.enroll.db.dispose()


async def test_mounted_app_adds_replay_nonce_to_outer_error_answers(make_config: Any) -> None:
    """Under a prefix the ACME paths are matched below the mount point: the router's 404
    and 405 carry a Replay-Nonce there, and a path outside ACME gets none."""
    inner = create_app(make_config())
    outer = Starlette(routes=[Mount("/pki", app=inner)])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer),
                                     base_url="http://host.test") as http:
            for r in (await http.get("/pki/acme/new-order"),
                      await http.post("/pki/acme/nothing-here")):
                assert r.status_code in (404, 405)
                assert r.headers["replay-nonce"]
            r = await http.get("/pki/nothing")
            assert r.status_code == 404 and "replay-nonce" not in r.headers
            # Embedded, no enroll serve listener: served whatever the scheme.
            assert (await http.get("/pki/acme/directory")).status_code == 200
    finally:
        inner.state.enroll.db.dispose()
