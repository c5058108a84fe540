"""``enroll est``: users kept in the database, password hashes, archived key export."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from enroll.protocols.est import passwords

from enroll.app import create_app
from enroll.cli.main import main
from enroll.testing import make_csr
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, csr_body, serverkeygen_parts

ARCHIVE_ENV = {"ENROLL_EST__ENDPOINTS__DEFAULT__ARCHIVE_KEYS": "true"}


def _env(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str] | None = None) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ENROLL_"):
            monkeypatch.delenv(name)
    for name, value in (extra or {}).items():
        monkeypatch.setenv(name, value)


def _post(app: Any, op: str, auth: tuple[str, str]) -> httpx.Response:
    import anyio

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://testserver") as c:
            return await c.post(f"{WELL_KNOWN}/{op}", content=csr_body(make_csr(cn="cli")),
                                headers=PKCS10_HEADERS, auth=auth)

    return anyio.run(go)


def test_user_added_from_the_cli_can_enroll_and_removed_cannot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch)
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "init"]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(data), "est", "user", "add", "carol"]) == 0
    password = capsys.readouterr().out.strip()
    assert len(password) >= 40
    app = create_app(data_dir=data, env={})
    try:
        assert _post(app, "simpleenroll", ("carol", password)).status_code == 200
        assert _post(app, "simpleenroll", ("carol", "wrong")).status_code == 401
        assert main(["--data-dir", str(data), "est", "user", "list"]) == 0
        assert "default\tcarol" in capsys.readouterr().out
        assert main(["--data-dir", str(data), "est", "user", "remove", "carol"]) == 0
    finally:
        app.state.enroll.db.dispose()
    fresh = create_app(data_dir=data, env={})  # a new worker: no cached user
    try:
        assert _post(fresh, "simpleenroll", ("carol", password)).status_code == 401
    finally:
        fresh.state.enroll.db.dispose()


def test_hash_password_makes_a_verifiable_scrypt_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["--data-dir", str(tmp_path), "est", "hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("scrypt$")
    assert passwords.verify("correct horse", stored)
    assert not passwords.verify("correct horsE", stored)


def test_archived_server_key_is_recovered_by_an_operator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, ARCHIVE_ENV)
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "init"]) == 0
    password = (data / "est-password").read_text().strip()
    app = create_app(data_dir=data, env=ARCHIVE_ENV)
    try:
        r = _post(app, "serverkeygen", ("est", password))
        assert r.status_code == 200, r.text
    finally:
        app.state.enroll.db.dispose()
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    capsys.readouterr()
    out = tmp_path / "recovered.pem"
    assert main(["--data-dir", str(data), "est", "archive", "export",
                 format(cert.serial_number, "x"), "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    recovered = serialization.load_pem_private_key(out.read_bytes(), None)
    assert recovered.public_key() == cert.public_key()
    assert main(["--data-dir", str(data), "est", "archive", "export", "abcdef"]) == 1
