"""Helpers for tests that run the kit as a separate process and interrupt it from outside."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def sigkill_when(argv: list[str], ready: Callable[[], bool], timeout: float, **popen) -> int:
    """Start `argv`, SIGKILL it as soon as `ready()` holds (polled), and return its exit status. Fails the
    test if the process ended by itself before it could be killed."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode
