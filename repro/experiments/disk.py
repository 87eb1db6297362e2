"""Refuse a long stage before it starts when the directory it writes to lacks the free space for what it
will write, rather than dying half-way through with a full disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import nn

from repro.errors import ReproError

HEADROOM = 1.1  # the unit's temporary file and the file system's own overhead


def weight_bytes(model: nn.Module, trainable_only: bool = False) -> int:
    """What saving `model`'s weights (or only its trainable ones: an adapter) writes, about."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad or not trainable_only)


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def require_free(directory: Path, needed: int, what: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed * HEADROOM:
        raise ReproError(f"not enough free disk in {directory} for {what}: it writes about "
                         f"{_size(needed)} and {_size(free)} is free; free some space or use "
                         f"another --out (or PULSE_CACHE)")
