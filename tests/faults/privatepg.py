"""A private PostgreSQL 15 for fault tests: its own data dir, loopback port and socket dir.

The fault tests restart and stop *this* server, never the machine's shared one on 5432.
``initdb`` and ``postgres`` refuse to run as root, so as root they run as the
``postgres`` OS user (``runuser``) on a directory it owns. Trust authentication on
127.0.0.1 only. Used by tests/faults/conftest.py and bench/faults.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path(os.environ.get("ENROLL_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """``start()``, ``restart()``, ``stop()``, ``url(db)``, ``create_database(name)``."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 binaries not found in {BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="enroll-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # The dir (and mkdtemp's 0700 parent of nothing) must be the server's own.
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self._run("mkdir", "-p", str(self.sockets))
        conf = self.data / "postgresql.conf"
        settings = (f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.sockets}'\nfsync = off\n"
                    "max_connections = 200\nshared_buffers = 32MB\n")
        self._run("sh", "-c", f"cat >> '{conf}'", stdin=settings)

    def _run(self, *argv: str, stdin: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}"
                               f"{self._log_tail()}")
        return done

    def _log_tail(self) -> str:
        try:
            return "\n" + self.log.read_text()[-2000:]
        except OSError:
            return ""

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", *args)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is terminated."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def running(self) -> bool:
        done = self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return done.returncode == 0

    def url(self, database: str = "postgres", port: int | None = None) -> str:
        """A URL for `database`, on `port` (a fault proxy's) or the server's own."""
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = self._run(str(BIN.parent / "bin" / "psql") if (BIN / "psql").exists()
                         else "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                         "postgres", "-d", database, "-At", "-v", "ON_ERROR_STOP=1",
                         "-c", sql)
        return done.stdout.strip()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"private PostgreSQL not ready on {self.port}{self._log_tail()}")

    def destroy(self) -> None:
        if self.running():
            self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)
