"""deploy/container/Containerfile: every file it copies exists, it runs as a non-root
user with the data dir on a volume, and its HEALTHCHECK script tells a healthy engine
from a dead one. When podman and the base image are present locally, the image is built
from this tree and run: /health answers, the health check passes, a device enrolls over
EST with the passphrase from a secret, and a new container on the same volume keeps the
CAs. (Only package registries are reachable here, so the default base cannot be
pulled: ENROLL_TEST_CONTAINER_BASE names a local one, see docs/operating.md.)"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_served import est_enroll
from harness import free_port

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
HEALTHCHECK = REPO / "deploy" / "container" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in CONTAINERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_every_copied_source_exists() -> None:
    copies = [rest for word, rest in instructions() if word == "COPY"]
    assert copies
    for rest in copies:
        parts = rest.split()
        if any(p.startswith("--from=") for p in parts):
            continue
        sources = [p for p in parts if not p.startswith("--")][:-1]
        assert sources, rest
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the tree"
    # What pip needs to build the package is copied: every top-level package folder of
    # setup.py and the files pyproject.toml names.
    copied = {s.rstrip("/") for rest in copies for s in rest.split()[:-1]}
    roots = re.search(r"ROOTS = \{([^}]*)\}", (REPO / "setup.py").read_text())
    assert roots
    for folder in re.findall(r'"(\w+)":', roots.group(1)):
        assert folder in copied, folder
    assert {"pyproject.toml", "setup.py", "README.md"} <= copied


def test_runs_as_a_non_root_user_with_the_data_dir_on_a_volume() -> None:
    stage = final_stage()
    users = [rest for word, rest in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    env = " ".join(rest for word, rest in stage if word == "ENV")
    data_dir = re.search(r"ENROLL_DATA_DIR=(\S+)", env)
    assert data_dir
    volumes = [rest for word, rest in stage if word == "VOLUME"]
    assert volumes and data_dir.group(1) in json.loads(volumes[-1])
    assert "ENROLL_CA_PASSPHRASE=" not in CONTAINERFILE.read_text()
    health = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert health and "/opt/enroll/healthcheck.py" in health[0]


def _health(port: int) -> int:
    env = {**os.environ, "ENROLL_HTTP_PORT": str(port)}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=30,
                          check=False).returncode


@pytest.mark.slow
def test_healthcheck_script_passes_a_running_engine_and_fails_a_dead_one(
        enroll_server: Any) -> None:
    port = int(enroll_server.http_url.rsplit(":", 1)[1])
    assert _health(port) == 0
    assert _health(free_port()) == 1


# -- build and run (podman) ---------------------------------------------------------------

def _base() -> str:
    default = re.search(r"^ARG BASE=(\S+)", CONTAINERFILE.read_text(), re.M)
    assert default
    return os.environ.get("ENROLL_TEST_CONTAINER_BASE", default.group(1))


def _podman_limits() -> list[str]:
    """Run options every container here needs: host network (only loopback is reachable)
    and ulimits within this machine's hard limits (podman's defaults exceed them in a
    container); runc when installed (crun refuses hybrid cgroup hierarchies)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--network=host", f"--ulimit=nofile={nofile}:{nofile}",
            f"--ulimit=nproc={nproc}:{nproc}"]


def _podman(*args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    r = subprocess.run(["podman", *runtime, *args], capture_output=True, text=True,
                       timeout=timeout, check=False)
    if check:
        assert r.returncode == 0, f"podman {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r


def _wait_healthy(http_url: str, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{http_url}/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(_podman("logs", name, check=False).stdout[-4000:])


@pytest.mark.slow
def test_image_builds_runs_and_keeps_its_state_on_the_volume(tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    base = _base()
    if _podman("image", "exists", base, check=False).returncode != 0:
        pytest.skip(f"base image {base} not present locally (set ENROLL_TEST_CONTAINER_BASE)")
    tag = f"localhost/enroll-test-{secrets.token_hex(4)}"
    build = ["build", "--format", "docker", *_podman_limits(), "--build-arg", f"BASE={base}",
             "-f", str(CONTAINERFILE), "-t", tag]
    system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if system_ca.exists():  # this machine's TLS-intercepting proxy, for pip
        build += ["--secret", f"id=pip-ca,src={system_ca}"]
    before = set(_podman("images", "-q", "-a", "--no-trunc").stdout.split())
    try:
        _podman(*build, str(REPO), timeout=900)
        _run_image(tag, tmp_path)
    finally:  # what this build left: the image, its build stage and cached layers
        _podman("rmi", "-f", tag, check=False)
        left = set(_podman("images", "-q", "-a", "--no-trunc").stdout.split()) - before
        if left:
            _podman("rmi", "-f", *left, check=False)


def _run_image(tag: str, tmp_path: Path) -> None:
    suffix = secrets.token_hex(4)
    volume, secret, name = f"enroll-data-{suffix}", f"enroll-pass-{suffix}", f"enroll-{suffix}"
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(secrets.token_urlsafe(32) + "\n")
    _podman("secret", "create", secret, str(passphrase))
    http_port, https_port = free_port(), free_port()
    run = ["run", "-d", *_podman_limits(), "-v", f"{volume}:/var/lib/enroll",
           "--secret", secret, "-e", f"ENROLL_CA_PASSPHRASE_FILE=/run/secrets/{secret}",
           "-e", f"ENROLL_HTTP_PORT={http_port}", "-e", f"ENROLL_HTTPS_PORT={https_port}",
           "-e", f"ENROLL_PUBLIC_HTTP_URL=http://127.0.0.1:{http_port}",
           "-e", f"ENROLL_PUBLIC_HTTPS_URL=https://127.0.0.1:{https_port}"]
    http_url = f"http://127.0.0.1:{http_port}"
    try:
        _podman(*run, "--name", name, tag)
        _wait_healthy(http_url, name)
        assert _podman("healthcheck", "run", name, check=False).returncode == 0
        assert _podman("exec", name, "id", "-u").stdout.strip() == "10001"
        listing = _podman("exec", name, "ls", "-A", "/var/lib/enroll").stdout.split()
        assert "enroll.db" in listing and "ca-passphrase" not in listing
        endpoints = json.loads(_podman("exec", name, "cat",
                                       "/var/lib/enroll/endpoints.json").stdout)
        _podman("cp", f"{name}:/var/lib/enroll/tls/ca.pem", str(tmp_path / "ca.pem"))
        endpoints["tls_ca_bundle"] = str(tmp_path / "ca.pem")
        est_enroll(endpoints, cn="container-device")
        root = _podman("exec", name, "cat", "/var/lib/enroll/root.pem").stdout
        _podman("rm", "-f", "-t", "30", name)
        # A new container on the same volume: the same CA, the device still known.
        _podman(*run, "--name", name, tag)
        _wait_healthy(http_url, name)
        assert _podman("exec", name, "cat", "/var/lib/enroll/root.pem").stdout == root
        certs = _podman("exec", name, "enroll", "certs", "list", "--json").stdout
        assert "container-device" in certs
    finally:
        _podman("rm", "-f", "-t", "5", name, check=False)
        _podman("volume", "rm", "-f", volume, check=False)
        _podman("secret", "rm", secret, check=False)
