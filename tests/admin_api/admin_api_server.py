"""One real `enroll serve` for a test module of the admin API, configured for it:

- a ``gated`` profile (the embedded ``device`` one needing two approvers: ``approval =
  "manual"``, ``approvals_required = 2``) served by the EST endpoint ``gated`` to the
  default EST user, so an EST enrolment there is a pending request for the four-eyes
  tests;
- an ``admin-clients`` CA (under the root) with an ``operator`` profile served by the
  EST endpoint ``admin`` (Basic users made through the API itself), and ``[admin]
  client_ca = "admin-clients"`` with ``client_roles`` for the mTLS test.

The server is started with `harness.start_server`, on SQLite, and on a fresh PostgreSQL
schema too when ENROLL_TEST_DATABASE_URL is set (`backends`).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from harness import child_env

from enroll.testing import make_csr, make_key
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, csr_body

ADMIN_CA = "admin-clients"
GATED = "gated"
OPERATOR_CN = "ops.example"
VIEWER_CN = "noc.example"


def backends() -> list[Any]:
    """The module's server parameters: sqlite, and postgresql (skipped without
    ENROLL_TEST_DATABASE_URL)."""
    return [pytest.param("sqlite"), pytest.param("postgresql", marks=[pytest.mark.postgres, *(
        [] if os.environ.get("ENROLL_TEST_DATABASE_URL") else
        [pytest.mark.skip(reason="ENROLL_TEST_DATABASE_URL not set")])])]


def configure(data: Path, env: dict[str, str]) -> None:
    """``enroll init`` (with `env`: ``ENROLL_DATABASE_URL`` for PostgreSQL), then the
    tables above added to the generated ``enroll.toml``."""
    done = subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data),
                           "init"], env=child_env(ENROLL_DATA_DIR=str(data), **env),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    path = data / "enroll.toml"
    config = tomllib.loads(path.read_text())
    gated = dict(config["profiles"]["device"])
    gated["approval"] = "manual"
    gated["approvals_required"] = 2
    config["profiles"][GATED] = gated
    default_est = config["est"]["endpoints"]["default"]
    config["est"]["endpoints"][GATED] = {"profile": GATED, "users": default_est["users"]}
    config["cas"][ADMIN_CA] = {"backend": "local", "parent": "root",
                               "subject": "CN=enroll admin clients,O=enroll",
                               "key_type": "ec-p256", "validity_days": 365}
    config["profiles"]["operator"] = {
        "ca": ADMIN_CA, "validity": "30d", "identity": "subject.CN",
        "key_usage": ["digital_signature"], "extended_key_usage": ["client_auth"],
        "key_types": ["ec-p256"], "subject": {"CN": "csr"}}
    config["est"]["endpoints"]["admin"] = {"profile": "operator", "ca": ADMIN_CA}
    config["admin"] = {"client_ca": ADMIN_CA,
                       "client_roles": {OPERATOR_CN: "admin", VIEWER_CN: "viewer"}}
    path.write_text(tomli_w.dumps(config))


def est_password(data: Path) -> str:
    return (data / "est-password").read_text().strip()


def est_enroll(https_url: str, ca_bundle: str, user: str, password: str, cn: str,
               label: str = "", key: Any = None) -> httpx.Response:
    """A simpleenroll over HTTPS with Basic auth (202 when the profile needs approval)."""
    key = key or make_key("ec-p256")
    base = f"{https_url}{WELL_KNOWN}" + (f"/{label}" if label else "")
    return httpx.post(f"{base}/simpleenroll", content=csr_body(make_csr(key, cn=cn)),
                      headers={**PKCS10_HEADERS, "authorization": "Basic " + base64.b64encode(
                          f"{user}:{password}".encode()).decode()},
                      verify=ca_bundle, timeout=30, trust_env=False)
