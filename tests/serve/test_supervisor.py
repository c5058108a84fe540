"""The parent of `enroll serve --workers N` restarts a worker that dies (logging how it
died, backing off while it keeps dying) and stops restarting once told to stop."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import pytest

from enroll.serve import Supervisor, exit_reason


def test_exit_reasons_name_the_signal_or_the_code() -> None:
    assert exit_reason(-signal.SIGKILL) == "signal SIGKILL"
    assert exit_reason(3) == "exit code 3"
    assert exit_reason(None) == "unknown"


def test_a_dying_worker_is_restarted_with_back_off_until_stop(
        caplog: pytest.LogCaptureFixture) -> None:
    mp = multiprocessing.get_context("fork")
    started: list[Any] = []

    def start(slot: int) -> Any:
        # Slot 0 dies at once its first two times (exit 3, then SIGKILL), then lives.
        before = len([p for p in started if p[0] == 0])
        dies = slot == 0 and before < 2
        code = 3 if before == 0 else -9
        proc = mp.Process(target=_die if dies else _live, args=(code,))
        proc.start()
        started.append((slot, proc))
        return proc

    supervisor = Supervisor(2, start, backoff=0.2, max_backoff=1.0, stable=3600)
    with caplog.at_level(logging.WARNING, logger="enroll.serve"):
        runner = threading.Thread(target=supervisor.run)
        runner.start()
        deadline = time.monotonic() + 30
        while supervisor.restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supervisor.restarts == 2
        supervisor.stop()
        runner.join(30)
    assert not runner.is_alive()
    assert [slot for slot, _p in started] == [0, 1, 0, 0]
    assert all(not p.is_alive() for _s, p in started)
    died = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    assert "(exit code 3)" in died[0] and "(signal SIGKILL)" in died[1]
    # The second quick death waits twice as long as the first.
    assert "restarting in 0.2s" in died[0] and "restarting in 0.4s" in died[1]
    assert supervisor.restarts == 2  # nothing restarted after stop()


def _die(code: int) -> None:
    if code < 0:
        os.kill(os.getpid(), -code)
    os._exit(code)


def _live(_code: int) -> None:
    time.sleep(120)
