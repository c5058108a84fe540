"""`create_app`: standalone, mounted under a prefix in FastAPI, metrics, body limits."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi import FastAPI
from starlette.applications import Starlette

from enroll import config as config_mod
from enroll.app import create_app
from enroll.errors import BadCSR
from enroll.model import Issued
from enroll.testing import make_csr, request


def call(app: Any, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request through httpx's ASGI transport (which never runs a lifespan)."""

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.request(method, url, **kw)

    return anyio.run(go)


@pytest.fixture
def pki(make_config: Callable[..., config_mod.Config]) -> Iterator[Starlette]:
    app = create_app(make_config(max_body_bytes=2048))
    yield app
    app.state.enroll.db.dispose()


def test_mounted_under_pki_in_fastapi_without_lifespan_urls_carry_the_prefix(
        pki: Starlette) -> None:
    parent = FastAPI()

    @parent.get("/")
    def home() -> dict[str, str]:
        return {"app": "parent"}

    parent.mount("/pki", pki)
    assert call(parent, "GET", "/").json() == {"app": "parent"}
    assert call(parent, "GET", "/pki/health").json() == {"status": "ok"}
    listing = call(parent, "GET", "/pki/ca").json()
    by_name = {entry["name"]: entry for entry in listing}
    assert set(by_name) == {"root", "issuing", "scep"}
    issuing = by_name["issuing"]
    assert issuing["pem"] == "http://testserver/pki/ca/issuing.pem"
    assert issuing["crl"] == "http://testserver/pki/crl/issuing.crl"
    assert issuing["chain"] == "http://testserver/pki/ca/issuing/chain.pem"
    for key in ("pem", "der", "chain", "crl"):
        r = call(parent, "GET", issuing[key].removeprefix("http://testserver"))
        assert r.status_code == 200, key
    assert call(parent, "GET", "/health").status_code == 404


def test_ocsp_get_and_post_work_through_the_mount(pki: Starlette) -> None:
    ctx = pki.state.enroll
    issued = ctx.authority.submit(request(make_csr()))
    assert isinstance(issued, Issued)
    der = ocsp.OCSPRequestBuilder().add_certificate(
        issued.certificate, issued.chain[0], hashes.SHA256()).build().public_bytes(
        serialization.Encoding.DER)
    parent = FastAPI()
    parent.mount("/pki", pki)
    post = call(parent, "POST", "/pki/ocsp", content=der,
                headers={"content-type": "application/ocsp-request"})
    get = call(parent, "GET", f"/pki/ocsp/{base64.b64encode(der).decode()}")
    for r in (post, get):
        assert r.status_code == 200
        assert ocsp.load_der_ocsp_response(r.content).certificate_status is \
            ocsp.OCSPCertStatus.GOOD


def _sample(metrics_text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_issuances_and_rejections(pki: Starlette) -> None:
    ctx = pki.state.enroll
    before = call(pki, "GET", "/metrics").text
    assert ctx.authority.submit(request(make_csr(), protocol="est"))
    with pytest.raises(BadCSR):
        ctx.authority.submit(request(make_csr(ca=True), protocol="est"))
    r = call(pki, "GET", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text
    assert "enroll_issuances_total" in after
    assert _sample(after, "enroll_issuances_total", profile="device", protocol="est") == \
        _sample(before, "enroll_issuances_total", profile="device", protocol="est") + 1
    assert _sample(after, "enroll_rejections_total", protocol="est", reason="BadCSR") == \
        _sample(before, "enroll_rejections_total", protocol="est", reason="BadCSR") + 1
    assert "enroll_issuance_duration_seconds_bucket" in after


def test_oversized_body_is_refused_with_413_with_or_without_content_length(
        pki: Starlette) -> None:
    r = call(pki, "POST", "/ocsp", content=b"\x30" * 4096,
             headers={"content-type": "application/ocsp-request"})
    assert r.status_code == 413

    async def chunks() -> Any:
        for _ in range(8):
            yield b"\x30" * 512

    r = call(pki, "POST", "/ocsp", content=chunks(),
             headers={"content-type": "application/ocsp-request"})
    assert r.status_code == 413


def test_unknown_ca_and_malformed_ocsp_get_are_client_errors(pki: Starlette) -> None:
    assert call(pki, "GET", "/crl/nosuch.crl").status_code == 404
    assert call(pki, "GET", "/ca/nosuch/chain.pem").status_code == 404
    # Base64 that decodes to no OCSPRequest: an RFC 6960 malformedRequest response.
    r = call(pki, "GET", "/ocsp/bm90IGFuIG9jc3AgcmVxdWVzdA==")
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).response_status is \
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_create_app_without_config_loads_the_data_dir(tmp_path: Any) -> None:
    from enroll.testing import TEST_PASSPHRASE

    app = create_app(data_dir=tmp_path, env={"ENROLL_CA_PASSPHRASE": TEST_PASSPHRASE})
    try:
        assert call(app, "GET", "/health").status_code == 200
        assert app.state.enroll.config.data_dir == tmp_path.resolve()
        assert isinstance(app.state.enroll.cas.get("issuing").certificate, x509.Certificate)
    finally:
        app.state.enroll.db.dispose()


def test_the_server_imports_no_test_support(tmp_path: Any) -> None:
    # The SCEP/EST/ACME test clients live in enroll.testing and import protocol wire
    # modules; nothing `enroll serve` loads may import them (a fresh interpreter, since
    # this one has imported enroll.testing already).
    import subprocess
    import sys

    from enroll.testing import TEST_PASSPHRASE

    code = (
        "import sys\n"
        "import enroll.cli.main, enroll.serve, enroll.embedded\n"
        "from enroll.app import create_app\n"
        f"app = create_app(data_dir={str(tmp_path)!r}, "
        f"env={{'ENROLL_CA_PASSPHRASE': {TEST_PASSPHRASE!r}}})\n"
        "app.state.enroll.db.dispose()\n"
        "print(sorted(m for m in sys.modules if m.startswith('enroll.testing')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
