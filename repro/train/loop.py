"""One optimisation loop for pre-training, fine-tuning and unlearning: AdamW, warm-up, progress bar,
and a stop on a non-finite loss or gradient (GA is unbounded below by design)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import get_constant_schedule, get_cosine_schedule_with_warmup

from repro import distributed, prefetch
from repro.errors import ReproError
from repro.progress import progress


@dataclass(frozen=True)
class Example:
    """One training text: `prompt` (up to where the answer starts), `answer`, optional image bytes."""

    prompt: str
    answer: str
    image: bytes | None


class Diverged(ReproError):
    """A non-finite loss or gradient: the request stops here, and the run records it."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"non-finite loss or gradient at step {step} (loss {loss})")


def shuffled_batches(examples: Sequence[Example], batch_size: int, epochs: int, seed: int) -> Iterator[list[Example]]:
    """Seeded shuffle per epoch; batches never mix examples with and without images."""
    rng = random.Random(seed)
    for _ in range(epochs):
        order = list(examples)
        rng.shuffle(order)
        with_image = [e for e in order if e.image is not None]
        without = [e for e in order if e.image is None]
        chunks = [g[i:i + batch_size] for g in (with_image, without) for i in range(0, len(g), batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def batches_per_epoch(examples: Sequence[Example], batch_size: int) -> int:
    n_img = sum(e.image is not None for e in examples)
    return math.ceil(n_img / batch_size) + math.ceil((len(examples) - n_img) / batch_size)


def optimise(params: list[torch.nn.Parameter], batches: Iterator, total_steps: int,
             step_loss: Callable[[object], torch.Tensor], lr: float, warmup: int = 0,
             schedule: str = "constant", grad_accum: int = 1, desc: str = "train",
             clip: float = 1.0, prepare: Callable[[object], object] | None = None) -> list[float]:
    """Minimise `step_loss(prepare(batch))`; returns the loss of every optimiser step.

    `prepare` (tokenising a batch of examples, say; default: none) is applied to each batch, or to each
    rank's part of it. On CUDA it runs one batch ahead in a background thread, so the GPU does not wait
    for the CPU's tokenising and image processing between steps (on a CPU the cores are the model's).

    Under a launcher (repro/distributed.py) every process walks the same global batches and the
    gradients are combined before clipping, so the optimiser steps on batch_size x grad_accum examples
    whatever the process count:
    - when the process count divides grad_accum, the accumulation is spread over the processes: each
      takes whole micro-batches (i % world == rank) and the gradients are summed: one process's recipe
      (the same per-micro-batch losses), with fewer micro-batches per process;
    - otherwise every micro-batch is split across the processes (`Dist.split`) and the gradients are
      averaged, weighted by each slice's share of the batch's examples."""
    if not params:
        raise ReproError(f"{desc}: no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, foreach=True)  # one kernel per op, not per tensor
    sched = (get_cosine_schedule_with_warmup(opt, warmup, total_steps) if schedule == "cosine"
             else get_constant_schedule(opt))
    losses: list[float] = []
    bar = progress(total_steps, desc)
    running = 0.0
    dist = distributed.current()
    if dist is not None:
        with torch.no_grad():  # every rank starts from rank 0's weights, as DistributedDataParallel does
            for p in params:
                torch.distributed.broadcast(p.data, src=0)
    prepare = prepare or (lambda batch: batch)
    whole = dist is None or grad_accum % dist.world == 0  # micro-batches whole (else split across ranks)

    def mine(i: int) -> bool:  # whole micro-batches: this process's share
        return dist is None or i % dist.world == dist.rank

    ahead = whole and prefetch.pays_on(params[0].device)
    with prefetch.prepared_ahead(batches, prepare, ahead, mine) as source:
        for i, (batch, get) in enumerate(source):
            if whole:
                if mine(i):
                    loss = step_loss(get()) / grad_accum
                    loss.backward()
                    running += loss.item()
            else:
                part, share = dist.split(batch)
                if part is not None:  # a rank with no slice of a small batch adds a zero gradient
                    loss = step_loss(prepare(part)) * (share * dist.world / grad_accum)
                    loss.backward()
                    running += loss.item()
            if (i + 1) % grad_accum:
                continue
            if dist is not None:
                running = dist.reduce_gradients(params, running, 1 if whole else dist.world)
            step = len(losses) + 1
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            if not (math.isfinite(running) and torch.isfinite(grad_norm)):
                opt.zero_grad(set_to_none=True)
                bar.close()
                raise Diverged(step, running)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(running)
            bar.set_postfix(loss=f"{running:.3f}")
            bar.update()
            running = 0.0
            if step >= total_steps:
                break
    bar.close()
    return losses
