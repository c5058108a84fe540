"""Fixtures for the troubleshooting tests: one app serving profile ``p`` through SCEP,
EST and ACME (as tests/doors does), the test policy plugin loaded by import path, the
app's configuration written as an operator's file, and the ``enroll`` CLI run as a
subprocess against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "doors"))  # door_drivers, shared with tests/doors

from door_drivers import DoorDriver  # noqa: E402
from harness import (  # noqa: E402
    ACME_BASE,
    Harness,
    LocalDns,
    acme_section,
    child_env,
    est_section,
    scep_section,
)

from enroll.testing.acme_client import Http01Responder  # noqa: E402

PROFILE: dict[str, Any] = {
    "san": {"dns": ["*.corp.example"]},
    "subject": {"CN": "csr"},
    "key_types": ["ec-p256", "rsa-2048"],
    "extended_key_usage": ["server_auth", "client_auth"],
    "validity": "30d",
}
TABLES = ("requests", "certificates", "audit_events", "request_approvals", "identities",
          "audit_refusals", "blocked_keys")


@dataclass
class Setup:
    """The app, a driver per door, and the CLI over the app's database."""

    h: Harness
    responder: Http01Responder
    tmp: Path

    def driver(self, door: str) -> DoorDriver:
        return DoorDriver(door, self.h, self.responder)

    def config_file(self, **profile_changes: Any) -> Path:
        """The app's configuration as an operator's file; `profile_changes` edit
        profile ``p`` (the next CLI run sees the profile as changed)."""
        raw = dict(self.h.ctx.config.raw)
        profiles = {k: dict(v) for k, v in raw["profiles"].items()}
        profiles["p"].update(profile_changes)
        raw["profiles"] = profiles
        pfile = self.tmp / "ca-passphrase"
        pfile.write_text(str(raw.pop("ca_passphrase")) + "\n")
        pfile.chmod(0o600)
        raw["ca_passphrase_file"] = str(pfile)
        path = self.tmp / "enroll.toml"
        path.write_text(tomli_w.dumps(raw))
        return path

    def cli(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        path = config or self.config_file()
        env = child_env(PYTHONPATH=str(HERE))
        return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--config",
                               str(path), *args], capture_output=True, text=True,
                              timeout=120, env=env, check=False)

    def row_counts(self) -> dict[str, int]:
        with self.h.ctx.db.read() as tx:
            return {t: int(tx.scalar(f"SELECT count(*) FROM {t}"))  # noqa: S608 - tests
                    for t in TABLES}


@pytest.fixture
def setup(harness_factory: Callable[..., Harness], local_dns: LocalDns,
          responder: Http01Responder, tmp_path: Path) -> Callable[..., Setup]:
    def factory(profile: dict[str, Any] | None = None) -> Setup:
        profiles = {"p": {"ca": "issuing", **PROFILE, **(profile or {})}}
        acme = {"endpoints": {"default": {"profile": "p", "profiles": ["p"]}}}
        h = harness_factory(
            base_url=ACME_BASE, extra_profiles=profiles, listener=True,
            plugins=["trouble_policy"],
            **scep_section(profile="p"),
            **est_section(profile="p", auth=["basic", "client-cert"]),
            **acme_section(local_dns, responder.port, **acme))
        return Setup(h, responder, tmp_path)

    return factory
