"""The torch thread count tests run with. The suite runs one thread: its models are tiny, so a second thread
gains nothing, and where the cores are shared (a laptop, a CI runner, two engineers' jobs) threads that
fight over them made a single method test take 40 s instead of 0.1 s. A test that reproduces numbers
recorded with the machine's own thread count (tests/test_tiny_golden.py) runs under `machine_threads()`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

MACHINE_THREADS = torch.get_num_threads()  # read before the suite changes it


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine_threads():
    """The thread count torch chose for this machine, as `pulse-repro` runs with it."""
    return threads(MACHINE_THREADS)
