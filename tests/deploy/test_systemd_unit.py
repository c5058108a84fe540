"""deploy/systemd/enroll.service: `systemd-analyze verify` prints nothing about it, its
offline security exposure stays under a threshold, the CA passphrase reaches the engine
as a credential file (never an environment value), and the engine runs and issues under
the unit's process restrictions that can be applied without systemd as PID 1 (seccomp
allow list, address families, MDWE, no capabilities, no new privileges;
tests/deploy/unit_sandbox.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import anyio
import httpx
import pytest
import unit_file
from deploy_served import ENROLL, est_enroll, serve
from harness import LocalDns, free_port, validator_env

from enroll.testing.acme_client import AcmeClient, Http01Responder

SANDBOX = Path(__file__).with_name("unit_sandbox.py")
MAX_EXPOSURE = 1.5
"""`systemd-analyze security` scale 0 (locked down) .. 10; the unit scores 1.1 with systemd 252."""

pytestmark = pytest.mark.skipif(not Path(unit_file.SYSTEMD_ANALYZE).exists(),
                                reason="systemd-analyze not installed (Debian: systemd)")


def _installed_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart= naming this environment's installed `enroll` (verify
    checks that the binary exists), under the same file name."""
    text = unit_file.UNIT.read_text() if text is None else text
    assert "ExecStart=/opt/enroll/bin/enroll " in text
    copy = tmp_path / "enroll.service"
    copy.write_text(text.replace("ExecStart=/opt/enroll/bin/enroll ", f"ExecStart={ENROLL} "))
    return copy


def _verify(unit: Path) -> tuple[int, list[str]]:
    """Exit status and every line `systemd-analyze verify` prints about `unit`."""
    r = subprocess.run([unit_file.SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True,
                       text=True, timeout=120, check=False)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if unit.name in ln]
    return r.returncode, lines


def test_systemd_analyze_verify_prints_nothing_about_the_unit(tmp_path: Path) -> None:
    assert Path(ENROLL).exists()
    assert _verify(_installed_copy(tmp_path)) == (0, [])


def test_verify_check_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting and a missing binary are reported."""
    text = unit_file.UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    _, lines = _verify(_installed_copy(tmp_path, text))
    assert any("ProtectHomes" in ln for ln in lines), lines
    missing = tmp_path / "missing"
    missing.mkdir()
    copy = missing / "enroll.service"
    copy.write_text(unit_file.UNIT.read_text())  # ExecStart=/opt/enroll/bin/enroll
    status, lines = _verify(copy)
    assert status != 0 or lines


def test_security_exposure_is_under_the_threshold(tmp_path: Path) -> None:
    r = subprocess.run([unit_file.SYSTEMD_ANALYZE, "security", "--offline=yes",
                        f"--threshold={int(MAX_EXPOSURE * 10)}", "--no-pager",
                        str(_installed_copy(tmp_path))],
                       capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r"Overall exposure level for enroll\.service: (\d+\.\d+)", r.stdout)
    assert match, r.stdout + r.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_hardening_settings_and_the_passphrase_credential() -> None:
    settings = {k: v for s, k, v in unit_file.settings() if s == "Service"}
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict",
                       "StateDirectory": "enroll", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes",
                       "CapabilityBoundingSet": "", "AmbientCapabilities": "",
                       "MemoryDenyWriteExecute": "yes"}.items():
        assert settings[key] == value, key
    assert unit_file.values("SystemCallFilter")[0] == "@system-service"
    assert unit_file.values("LoadCredential") == ["ca-passphrase:/etc/enroll/ca-passphrase"]
    env = unit_file.environment({"S": "/var/lib", "d": "/run/credentials/enroll.service"})
    assert env == {"ENROLL_DATA_DIR": "/var/lib/enroll",
                   "ENROLL_CA_PASSPHRASE_FILE": "/run/credentials/enroll.service/ca-passphrase"}
    # The default ports are unprivileged, so the empty capability set is enough.
    text = unit_file.UNIT.read_text()
    assert "ENROLL_CA_PASSPHRASE=" not in text and "EnvironmentFile" not in text
    assert "--http-port" not in text and "--https-port" not in text


def _unit_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The unit's Environment= for a state root and credentials directory under
    `tmp_path`, with the credential written as `systemctl start` would load it."""
    creds = tmp_path / "run" / "credentials" / "enroll.service"
    creds.mkdir(parents=True)
    env = unit_file.environment({"S": str(tmp_path / "var-lib"), "d": str(creds)})
    credential = Path(env["ENROLL_CA_PASSPHRASE_FILE"])
    credential.write_text("correct horse battery staple\n")
    credential.chmod(0o400)
    return env, credential


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    from harness import child_env

    return subprocess.run([sys.executable, "-m", "enroll.cli.main", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=child_env(**env))


@pytest.mark.slow
def test_first_start_uses_the_credential_and_writes_no_passphrase(tmp_path: Path) -> None:
    env, credential = _unit_env(tmp_path)
    data = Path(env["ENROLL_DATA_DIR"])
    served = serve([], data, env)
    try:
        est_enroll(served.endpoints)
    finally:
        served.stop()
    assert not (data / "ca-passphrase").exists()
    config = tomllib.loads((data / "enroll.toml").read_text())
    assert config["ca_passphrase_file"] == str(credential.resolve())
    # The CA keys are sealed under the credential: signing works with it, and a
    # different passphrase in the same place is refused before anything is signed.
    assert _cli(env, "crl", "--refresh", "--out", str(tmp_path / "a.crl")).returncode == 0
    credential.chmod(0o600)
    credential.write_text("a different passphrase\n")
    r = _cli(env, "crl", "--refresh", "--out", str(tmp_path / "b.crl"))
    assert r.returncode != 0 and not (tmp_path / "b.crl").exists()
    assert "passphrase" in (r.stdout + r.stderr).lower()


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


def _mdwe_supported() -> bool:
    probe = ("import ctypes; libc = ctypes.CDLL(None); "
             "raise SystemExit(0 if libc.prctl(65, 1, 0, 0, 0) == 0 else 1)")
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


@pytest.mark.slow
def test_engine_issues_under_the_units_process_restrictions(tmp_path: Path,
                                                            db_url: str) -> None:
    if not _mdwe_supported():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    calls = tmp_path / "syscalls"
    calls.write_text("\n".join(sorted(unit_file.allowed_syscalls())) + "\n")
    (families,) = unit_file.values("RestrictAddressFamilies")
    env, _ = _unit_env(tmp_path)
    dns, http01 = LocalDns(), free_port()
    env.update(validator_env(dns, http01))  # ACME validation reaches out from the sandbox
    env["ENROLL_DATABASE_URL"] = db_url  # SQLite file, or PostgreSQL over TCP
    prefix = [sys.executable, str(SANDBOX), str(calls), ",".join(families.split())]
    served = serve(prefix, Path(env["ENROLL_DATA_DIR"]), env, "--workers", "2")
    try:
        deadline = time.monotonic() + 30
        while len(_children(served.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _children(served.process.pid)
        assert len(workers) >= 2
        for pid in [served.process.pid, *workers]:
            status = _status(pid)
            assert status["Seccomp"] == "2", status  # a filter is loaded
            assert status["NoNewPrivs"] == "1"
            assert int(status["CapEff"], 16) == 0
            if os.geteuid() == 0:  # only root may empty the bounding set
                assert int(status["CapBnd"], 16) == 0
        for n in range(4):  # new connections: both workers sign
            est_enroll(served.endpoints, cn=f"sandboxed-{n}")
        anyio.run(_acme_http01, served.endpoints, http01)
        metrics = httpx.get(served.endpoints["metrics_url"], timeout=10, trust_env=False)
        assert 'enroll_issuances_total{profile="device",protocol="est"} 4.0' in metrics.text
        assert 'enroll_issuances_total{profile="server",protocol="acme"} 1.0' in metrics.text
    finally:
        served.stop()
        dns.close()
    assert served.process.returncode == 0
    log = served.log_path.read_text()
    assert "Traceback" not in log and "Operation not permitted" not in log, log[-4000:]


async def _acme_http01(endpoints: dict[str, object], http01_port: int) -> None:
    """An ACME order validated over http-01: the validator resolves the name (UDP DNS)
    and connects to the responder, from inside the sandbox."""
    responder = Http01Responder()
    await responder.start(port=http01_port)
    try:
        async with httpx.AsyncClient(verify=str(endpoints["tls_ca_bundle"]), trust_env=False,
                                     timeout=30) as http:
            acme = endpoints["acme"]
            assert isinstance(acme, dict)
            client = AcmeClient(http, acme["directory"])
            await client.register()
            pem = await client.issue(["sandboxed.example.com"], responder)
            assert "BEGIN CERTIFICATE" in pem
    finally:
        await responder.close()
