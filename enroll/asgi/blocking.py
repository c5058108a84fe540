"""`run_blocking(fn, *args)`: the one way an HTTP handler runs blocking work.

Crypto and database calls never run on the event loop: a handler hands one call per
request to this worker's pool of `THREADS` threads and awaits it. Under one GIL a few
threads keep both cores busy while a thread waits on the database; forty (anyio's
default) only add lock hand-offs and tail latency. The pool is per process and made on
first use, so it works under every event loop that drives the app (uvicorn, tests,
an embedder's own loop); ``loop.run_in_executor`` costs less than anyio's thread
machinery on this path.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
THREADS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="enroll")
    return _pool


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` in the worker's thread pool and return its result
    (or raise its exception) on the calling event loop."""
    call = functools.partial(fn, *args, **kwargs) if kwargs or args else fn
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
