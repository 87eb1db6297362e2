"""The order an unlearning request's batches come in. A schedule yields (forget, retain) pairs of example
lists, either of which may be None, and says how many optimiser steps they make."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from repro.config import UnlearnConfig
from repro.train.loop import Example, batches_per_epoch, shuffled_batches

Pair = tuple[list[Example] | None, list[Example] | None]


@dataclass
class Plan:
    batches: Iterator[Pair]
    steps: int  # optimiser steps


def forget_steps(forget: Sequence[Example], retain: Sequence[Example], cfg: UnlearnConfig, seed: int,
                 with_retain: bool) -> Plan:
    """One step per forget batch for `cfg.epochs` epochs; with `with_retain`, each paired with the next
    retain batch (the retain set cycled): GA, GA+KLR, NPO, GD."""
    batches: Iterator = shuffled_batches(forget, cfg.batch_size, cfg.epochs, seed)
    retain_batches = (itertools.cycle(list(shuffled_batches(retain, cfg.batch_size, 1, seed + 1))) if with_retain
                      else itertools.repeat(None))
    return Plan(zip(batches, retain_batches), cfg.epochs * batches_per_epoch(forget, cfg.batch_size) // cfg.grad_accum)


def forget_pass_then_retain_pass(forget: Sequence[Example], retain: Sequence[Example], cfg: UnlearnConfig,
                                 seed: int, with_retain: bool = True) -> Plan:
    """Each epoch, a pass over the forget set, then a pass over the retain set (MLLMU-Bench's KL_Min)."""

    def batches() -> Iterator[Pair]:
        for epoch in range(cfg.epochs):
            yield from ((b, None) for b in shuffled_batches(forget, cfg.batch_size, 1, seed + 2 * epoch))
            yield from ((None, b) for b in shuffled_batches(retain, cfg.batch_size, 1, seed + 2 * epoch + 1))

    per_epoch = batches_per_epoch(forget, cfg.batch_size) + batches_per_epoch(retain, cfg.batch_size)
    return Plan(batches(), cfg.epochs * per_epoch // cfg.grad_accum)
