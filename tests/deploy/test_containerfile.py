"""deploy/container/Containerfile: every file it copies exists, it runs as a non-root
user with the data dir on a volume, and its HEALTHCHECK script tells a healthy engine
from a dead one. When podman and the base image are present locally, the image is built
from this tree and run by `bench/container_image.py` (minutes, and only where podman and
a base image are present: not a suite test; see docs/operating.md "Container")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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
