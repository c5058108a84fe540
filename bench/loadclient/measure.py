"""Measurements of the timed phase: latency percentiles, CPU of the server process tree,
of this process (the client) and of the PostgreSQL backends, and the loop that drives
virtual users over a shared queue of jobs."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .certcheck import Checked

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def tree_pids(root: int) -> set[int]:
    """`root` and all its live descendants (uvicorn workers, multiprocessing children)."""
    parents: dict[int, int] = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None:
            parents[pid] = int(fields[1])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def cpu_of(pids: set[int]) -> dict[int, float]:
    """CPU seconds per pid: utime + stime + cutime + cstime (reaped children included, so
    a worker that exits and is reaped stays counted in its parent)."""
    out: dict[int, float] = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            out[pid] = sum(int(v) for v in fields[11:15]) / TICK
    return out


def postgres_pids(database: str) -> set[int]:
    """The PostgreSQL backends connected to `database`, plus the WAL writer (our commits
    are what it writes; checkpointer and the rest are left out as shared noise)."""
    found: set[int] = set()
    for pid in _all_pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # "postgres: [<cluster>:] <user> <database> <client> <state>" for a backend
        words = cmd.split()
        if words[:1] != ["postgres:"]:
            continue  # the postmaster
        words = words[2:] if len(words) > 1 and words[1].endswith(":") else words[1:]
        if (len(words) >= 2 and words[1] == database) or words[:1] == ["walwriter"]:
            found.add(pid)
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all processes, ours and others')."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # minus idle and iowait


def all_postgres_pids() -> set[int]:
    pids = set()
    for pid in _all_pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                pids.add(pid)
        except OSError:
            continue
    return pids


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used between `start()` and `stop()` by the server tree, this process, and the
    database (when a PostgreSQL database name is given)."""

    def __init__(self, server_pid: int, pg_database: str | None = None) -> None:
        self.server_pid = server_pid
        self.pg_database = pg_database
        self._server: dict[int, float] = {}
        self._db: dict[int, float] = {}
        self._all_pg: dict[int, float] = {}
        self._client = 0.0
        self._machine = 0.0
        self._t0 = 0.0

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        server = cpu_of(tree_pids(self.server_pid))
        db = cpu_of(postgres_pids(self.pg_database)) if self.pg_database else {}
        all_pg = cpu_of(all_postgres_pids()) if self.pg_database else {}
        return server, db, all_pg

    def start(self) -> None:
        self._server, self._db, self._all_pg = self._snapshot()
        self._client = client_cpu()
        self._machine = machine_busy()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        client = client_cpu() - self._client
        machine = machine_busy() - self._machine
        server, db, all_pg = self._snapshot()

        def delta(before: dict[int, float], after: dict[int, float]) -> float:
            return sum(v - before.get(pid, 0.0) for pid, v in after.items())

        out = {"wall_s": wall, "server_cpu_s": delta(self._server, server),
               "client_cpu_s": client, "machine_cpu_s": machine}
        if self.pg_database:
            out["db_cpu_s"] = delta(self._db, db)
            out["all_postgres_cpu_s"] = delta(self._all_pg, all_pg)
        return out


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100)
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


@dataclass
class Phase:
    """What the timed phase produced: per-job latencies, errors, and the artifacts (server
    answers) that are checked after the clock stops."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    artifacts: list[Any] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)


async def run_users(users: Sequence[Any], jobs: Sequence[Any],
                    one: Callable[[Any, Any], Awaitable[Any]],
                    meter: CpuMeter | None) -> Phase:
    """Drive `len(users)` virtual users over a shared queue of `jobs`: each user awaits
    `one(user, job)` for the next job until none are left. A job's latency is the time
    `one` takes; an exception is an error (its message is kept), a return value is an
    artifact for the check phase."""
    phase = Phase()
    queue = list(reversed(jobs))

    async def user(u: Any) -> None:
        while queue:
            job = queue.pop()
            began = time.perf_counter()
            try:
                artifact = await one(u, job)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                phase.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            phase.latencies.append(time.perf_counter() - began)
            phase.artifacts.append(artifact)

    if meter is not None:
        meter.start()
    await asyncio.gather(*(user(u) for u in users))
    if meter is not None:
        phase.cpu = meter.stop()
    return phase


def summarise(phase: Phase, checked: Checked) -> dict[str, Any]:
    """The figures of one row; only certificates that passed the check count as issued."""
    wall = phase.cpu.get("wall_s", 0.0) or 1e-9
    ok = len(checked.good)
    lat = sorted(phase.latencies)
    errors = phase.errors + checked.bad
    out: dict[str, Any] = {
        "ok": ok, "errors": len(errors), "first_errors": errors[:3],
        "per_s": ok / wall, "p50_ms": percentile(lat, 50) * 1000,
        "p95_ms": percentile(lat, 95) * 1000, "p99_ms": percentile(lat, 99) * 1000,
        "wall_s": wall,
        "server_cpu_ms_per_issuance": phase.cpu.get("server_cpu_s", 0.0) * 1000 / max(1, ok),
        "server_cores": phase.cpu.get("server_cpu_s", 0.0) / wall,
        "client_cores": phase.cpu.get("client_cpu_s", 0.0) / wall,
        # every process on the machine: the rest of it is other people's work
        "machine_cores": phase.cpu.get("machine_cpu_s", 0.0) / wall,
    }
    if "db_cpu_s" in phase.cpu:
        out["db_cores"] = phase.cpu["db_cpu_s"] / wall
        out["all_postgres_cores"] = phase.cpu["all_postgres_cpu_s"] / wall
        out["db_cpu_ms_per_issuance"] = phase.cpu["db_cpu_s"] * 1000 / max(1, ok)
    out["issuers"] = sorted({c.issuer.rfc4514_string() for c in checked.good})
    out["serials"] = [format(c.serial_number, "x") for c in checked.good]
    # RFC 5280 §4.1.2.2: unique per CA. Counted, not failed: a peer's defect to show.
    out["duplicate_serials"] = len(out["serials"]) - len(set(out["serials"]))
    return out
