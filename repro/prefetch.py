"""The next batch prepared (tokenised, its images decoded and resized) in a background thread while the
accelerator works on the current one, so that a GPU does not wait for the CPU between batches."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def pays_on(device: torch.device) -> bool:
    """Whether preparing ahead pays: on CUDA. On a CPU the model's threads already use every core, and a
    preparing thread would only take cores from them."""
    return device.type == "cuda"


def _lookahead(pool: ThreadPoolExecutor, batches: Iterable, prepare: Callable, wanted: Callable[[int], bool]):
    pending = None
    for i, batch in enumerate(batches):  # drawn in the caller's thread, in order: seeded generators agree
        submitted = (batch, pool.submit(prepare, batch).result if wanted(i) else functools.partial(prepare, batch))
        if pending is not None:
            yield pending
        pending = submitted
    if pending is not None:
        yield pending


@contextmanager
def prepared_ahead(batches: Iterable, prepare: Callable, enabled: bool,
                   wanted: Callable[[int], bool] = lambda i: True) -> Iterator[Iterator[tuple[object, Callable]]]:
    """An iterator of (batch, get) pairs, where get() returns prepare(batch).

    Enabled, the next `wanted` batch's prepare runs in a background thread while the caller works on this
    one (one batch past the last one used may be drawn); a batch not wanted is prepared only if asked.
    Leaving the block waits for the thread, so no preparation outlives the loop: the tokenizer's padding
    side is shared state, and the next loop may pad the other way. Disabled, get() prepares in line."""
    if not enabled:
        yield ((batch, functools.partial(prepare, batch)) for batch in batches)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
        pairs = _lookahead(pool, batches, prepare, wanted)
        try:
            yield pairs
        finally:
            pairs.close()
