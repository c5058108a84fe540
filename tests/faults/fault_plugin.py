"""A plugin for fault tests: the worker that signs while the file named by
``FAULT_KILL_FILE`` exists removes it and SIGKILLs itself, as the kernel's OOM killer
would, after its request was recorded ``approved`` and before the certificate is signed
(loaded with ``ENROLL_PLUGINS=fault_plugin`` and this folder on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import signal
from typing import Any

from enroll.hookspecs import hookimpl


@hookimpl
def enroll_amend_certificate(draft: Any, request: Any, profile: Any) -> None:
    trigger = os.environ.get("FAULT_KILL_FILE")
    if not trigger:
        return
    try:
        os.unlink(trigger)  # exactly one worker wins the file
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
