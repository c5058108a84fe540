"""The built wheel works on its own: a fresh venv, `enroll --help`, `enroll db upgrade`."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENROLL_", "PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*args: str | Path, cwd: Path, timeout: float = 180) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-4000:])
    return done.stdout


def test_wheel_installs_in_a_fresh_venv_and_runs_the_cli(tmp_path: Path) -> None:
    # Build from a copy so build/ and *.egg-info never land in the working tree.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".*_cache", "__pycache__", "build", "dist", "*.egg-info", "enroll-data",
        ".venv", "venv"))
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", wheels, src, cwd=tmp_path)
    [wheel] = list(wheels.glob("enroll_pki-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, timeout=300)

    work = tmp_path / "work"
    work.mkdir()
    where = _run(python, "-c", "import enroll, enroll.migrations, enroll.protocols, "
                 "enroll.plugins.localca; print(enroll.__file__)", cwd=work)
    assert where.strip().startswith(str(env_dir))
    assert "usage: enroll" in _run(env_dir / "bin" / "enroll", "--help", cwd=work)
    out = _run(env_dir / "bin" / "enroll", "--data-dir", work / "data", "db", "upgrade",
               cwd=work)
    assert out.startswith("database at head: ")  # 0001_core, or each protocol's 0002_*
    with sqlite3.connect(work / "data" / "enroll.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"cas", "requests", "certificates", "audit_events", "alembic_version"} <= tables
