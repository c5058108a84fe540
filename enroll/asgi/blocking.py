"""`BlockingPool.run(fn, *args)`: the one way an HTTP handler runs blocking work.

Crypto and database calls never run on the event loop: a handler hands one call per
request to its worker's pool and awaits it. Under one GIL, more threads than the work
can use only add hand-offs and lock convoys, so the pool is sized for the store
(`threads_for`), as measured with ``bench/compare.py acme --mode skip -c 8`` (server CPU
per issuance, one worker):

- **SQLite: 2 threads.** Every write queues on one lock and the rest is CPU under the
  GIL: 1 thread 12.6 ms, 2 threads 15.3 ms, 8 threads 18.2 ms per issuance. Two, not
  one, so a plugin that waits (a webhook challenge verifier) does not stall the worker.
- **PostgreSQL: 8 threads.** Threads wait on the network: 8 threads 49.7/s, 2 threads
  31.2/s, 1 thread 24.8/s.

The pool is made by the composition root and handed to front-ends in
`enroll.door.FrontEnd`; ``loop.run_in_executor`` costs less than anyio's thread
machinery on this path and works under every event loop that drives the app.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
SQLITE_THREADS = 2
NETWORK_DATABASE_THREADS = 8


def threads_for(is_sqlite: bool) -> int:
    return SQLITE_THREADS if is_sqlite else NETWORK_DATABASE_THREADS


class BlockingPool:
    """A worker's threads for blocking work (made lazily, so forking or spawning a
    worker after building the app is safe)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool; return its result (or raise its
        exception) on the calling event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="enroll")
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
