"""The examples in examples/ run as documented."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from enroll.context import build_context
from enroll.errors import PolicyDenied
from enroll.store import queries
from enroll.testing import make_csr, request, test_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_domain_policy_plugin_denies_outside_names_and_allows_inside(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES / "policy_domain"))
    cfg = test_config(tmp_path, db_url, plugins=["enroll_policy_domain"])
    ctx = build_context(cfg)
    try:
        issued = ctx.authority.submit(request(make_csr(cn="a.corp.example",
                                                       dns=["a.corp.example"]), "server"))
        assert issued.certificate is not None  # type: ignore[union-attr]
        with pytest.raises(PolicyDenied, match="outside corp.example"):
            ctx.authority.submit(request(make_csr(cn="www.other.example",
                                                  dns=["www.other.example"]), "server"))
        with ctx.db.read() as conn:
            assert queries.count_certificates(conn) == 1
            assert queries.count_requests(conn) == 1
            denied = [e for e in queries.list_audit(conn) if e.type == "request.denied"]
        assert len(denied) == 1 and "outside" in denied[0].details["reason"]
    finally:
        ctx.db.dispose()


async def test_fastapi_example_serves_enroll_under_pki(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLL_DATA_DIR", str(tmp_path / "pki-data"))
    module = _load(EXAMPLES / "fastapi_embed" / "app.py", "fastapi_embed_app")
    transport = httpx.ASGITransport(app=module.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        assert (await client.get("/")).json()["pki"] == "/pki/ca"
        assert (await client.get("/pki/health")).json() == {"status": "ok"}
        cas = (await client.get("/pki/ca")).json()
        assert {c["name"] for c in cas} == {"root", "issuing", "scep"}
        assert all(c["pem"].startswith("http://svc/pki/ca/") for c in cas)
        pem = await client.get(cas[0]["pem"].removeprefix("http://svc"))
        assert pem.status_code == 200 and pem.text.startswith("-----BEGIN CERTIFICATE-----")
    module.pki.state.enroll.db.dispose()


async def test_token_door_example_is_a_whole_protocol_plugin(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from enroll.app import create_app
    from enroll.store.schema import metadata

    monkeypatch.syspath_prepend(str(EXAMPLES / "protocol_plugin"))
    digest = hashlib.sha256(b"s3cret-token").hexdigest()
    cfg = test_config(tmp_path, db_url, plugins=["enroll_token_door"],
                      token_door={"endpoints": {"lab": {"token_sha256": digest}}})
    app = create_app(cfg)
    ctx = app.state.enroll
    try:
        def stored() -> tuple[int, int]:
            with ctx.db.read() as tx:
                uses = tx.one("SELECT COUNT(*) AS n FROM token_door_uses")
                return queries.count_certificates(tx), (uses or {"n": 0})["n"]

        before = stored()
        der = make_csr(cn="lab-1", dns=[]).public_bytes(serialization.Encoding.DER)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pki") as client:
            refused = await client.post("/token-door/lab", content=der,
                                        headers={"authorization": "Bearer wrong"})
            garbage = await client.post("/token-door/lab", content=b"\x30\x03\x02\x01\x01",
                                        headers={"authorization": "Bearer s3cret-token"})
            assert (refused.status_code, garbage.status_code) == (401, 400)
            assert stored() == before
            ok = await client.post("/token-door/lab", content=der,
                                   headers={"authorization": "Bearer s3cret-token"})
            metrics = (await client.get("/metrics")).text
        assert ok.status_code == 200, ok.text
        cert = x509.load_pem_x509_certificate(ok.content)
        assert cert.subject.rfc4514_string() == "CN=lab-1"
        assert stored() == (before[0] + 1, before[1] + 1)
        assert 'protocol="enroll_token_door",status="2xx"' in metrics
    finally:
        ctx.db.dispose()
        metadata.remove(metadata.tables["token_door_uses"])
        sys.modules.pop("enroll_token_door", None)


def test_identity_profiles_example_issues_only_what_each_profile_identifies(
        tmp_path: Path, db_url: str) -> None:
    from enroll import config as config_mod
    from enroll.errors import BadCSR, Unauthorized

    cfg = config_mod.load(EXAMPLES / "identity_profiles" / "enroll.toml",
                          {"ENROLL_CA_PASSPHRASE": "example-passphrase",
                           "ENROLL_DATABASE_URL": db_url}, data_dir=tmp_path)
    ctx = build_context(cfg)
    try:
        authority = ctx.authority
        phone = authority.submit(request(make_csr(cn="dev-42"), "mdm"))
        assert phone.certificate.subject.rfc4514_string() == "O=Example Corp,CN=dev-42"  # type: ignore[union-attr]
        for cn in ("www.bank.example", "dev-\x00"):
            with pytest.raises(BadCSR):
                authority.submit(request(make_csr(cn=cn), "mdm"))
        with pytest.raises(BadCSR, match="must also be one of"):
            authority.submit(request(make_csr(cn="www.bank.example",
                                              dns=["a.corp.example"]), "server"))
        record = authority.lookup(phone.certificate)  # type: ignore[union-attr]
        assert record is not None and record.identity == "subject.CN:dev-42"
        # mdm's successor is mdm-v2: a renewal moves there, keeping the CN, adding nothing.
        with pytest.raises(BadCSR, match="not among the names of certificate"):
            authority.submit(request(make_csr(cn="dev-42", emails=["ceo@corp.example"]),
                                     "mdm-v2", replaces=record.serial_hex))
        with pytest.raises(Unauthorized, match="issued under profile 'mdm'"):
            authority.submit(request(make_csr(cn="dev-42"), "server",
                                     replaces=record.serial_hex))
        renewed = authority.submit(request(make_csr(cn="dev-42"), "mdm-v2",
                                           replaces=record.serial_hex))
        new = authority.lookup(renewed.certificate)  # type: ignore[union-attr]
        assert new is not None and new.profile == "mdm-v2"
        assert new.identity == "subject.CN:dev-42"
    finally:
        ctx.db.dispose()
