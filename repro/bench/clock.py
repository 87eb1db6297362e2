"""The bench's clock: wall time read after the device has finished the work queued on it (CUDA runs
kernels asynchronously, so an unsynchronised clock would time only their launch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed(device: torch.device, fn: Callable[[], T]) -> tuple[T, float]:
    """fn()'s result and its seconds."""
    t0 = now(device)
    out = fn()
    return out, now(device) - t0


def best_of(runs: int, device: torch.device, fn: Callable[[], T]) -> tuple[T, float]:
    """The first run's result and the fastest run's seconds, as timeit does."""
    results = [timed(device, fn) for _ in range(runs)]
    return results[0][0], min(t for _, t in results)
