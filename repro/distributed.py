"""Data parallelism under `accelerate launch` (or `torch.distributed.run`), and nothing at all otherwise.

A single process (no `WORLD_SIZE` > 1 in the environment) never imports accelerate and never takes a
branch of this module: `current()` is None, and every caller keeps its single-process code as it was
(the golden files depend on it being bit-identical).

Under a launcher, `current()` initialises the process group once through accelerate's `PartialState`.
accelerate 1.15 picks NCCL when CUDA is present, but with `--multi_gpu` on a machine without a GPU it
would fall back to `DistributedType.NO` (every process a world of one, all writing the same files), and
`--cpu` alone starts one process. So the kit asks for the CPU backend itself when CUDA is absent:
`PartialState(cpu=True)` gives `MULTI_CPU` over gloo from the variables the launcher sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

What the kit does with it:
- training: every process walks the same seeded global batches (the profile's batch size and gradient
  accumulation are the global ones, whatever the process count) with one all-reduce of the gradients per
  optimiser step: when the process count divides `grad_accum`, each process accumulates whole
  micro-batches (one process's recipe, spread out); otherwise each trains on its contiguous slice of
  every micro-batch, weighted by the slice's share of the batch (`Dist.split`); see train/loop.py;
- evaluation: the scorer's batches (formed exactly as in one process) are dealt round-robin to the
  ranks and the predictions gathered, so every prediction comes from the same batch as in one process;
- artefacts: only rank 0 writes (results.jsonl, units, manifest, report); decisions that read the
  disk (is this unit done?) are rank 0's, broadcast, so the ranks never disagree on a file system that
  is not shared between nodes.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def launched_world_size() -> int:
    """The process count a launcher announced (1 when not launched)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- batches ----------------------------------------------------------------------------
    def slice(self, batch: Sequence) -> list:
        """This rank's contiguous part of a global batch (empty when the batch has fewer items than ranks)."""
        n = len(batch)
        return list(batch[self.rank * n // self.world:(self.rank + 1) * n // self.world])

    def split(self, batch) -> tuple[object | None, float]:
        """(this rank's part of `batch`, its share of the batch's examples).

        `batch` is a list of examples or a tuple of lists (or None, a list a step does not have) whose first
        list present is the one the optimiser steps over (the forget batch, or the retain batch of a
        retain-only step); for the other lists, a rank whose slice would be empty takes the whole list, whose
        mean is the same. The part is None when the first slice is empty."""
        if isinstance(batch, tuple):
            lead = next(i for i, b in enumerate(batch) if b is not None)
            first = self.slice(batch[lead])
            if not first:
                return None, 0.0
            parts = tuple(None if b is None else first if i == lead else (self.slice(b) or list(b))
                          for i, b in enumerate(batch))
            return parts, len(first) / len(batch[lead])
        part = self.slice(batch)
        return (part or None), len(part) / max(len(batch), 1)

    # ---- collectives ------------------------------------------------------------------------
    def reduce_gradients(self, params: list[torch.nn.Parameter], running: float, divide: int) -> float:
        """All-reduce the gradients (one flat buffer) and the running loss, divided by `divide`.

        `divide` is 1 when each rank accumulated whole micro-batches (each loss already divided by
        grad_accum: the sum is one process's accumulated gradient), and the world size when each rank
        took a slice of every micro-batch and scaled its loss by world * share (the mean over ranks is
        then the gradient of the share-weighted batch loss)."""
        import torch.distributed as td

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        device = grads[0].device
        # A parameter no rank gave a gradient (the vision tower on a text-only batch) keeps grad None,
        # as in one process, so AdamW skips it instead of stepping on a zero gradient with momentum.
        has = torch.tensor([float(p.grad is not None) for p in params] + [running], dtype=torch.float32,
                           device=device)
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [has])
        td.all_reduce(flat)
        offset = 0
        for p, g, flag in zip(params, grads, flat[-len(params) - 1:-1].tolist()):
            n = g.numel()
            p.grad = (flat[offset:offset + n] / divide).view_as(p).to(p.dtype) if flag > 0 else None
            offset += n
        return float(flat[-1].item()) / divide

    def gather(self, obj) -> list:
        import torch.distributed as td

        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's value of `obj` on every rank."""
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_state(self, module: torch.nn.Module) -> None:
        """Copy rank 0's weights into every rank's `module`, tensor by tensor (no second copy of the model)."""
        import torch.distributed as td

        with torch.no_grad():
            for t in module.state_dict().values():
                td.broadcast(t, src=0)

    def barrier(self) -> None:
        import torch.distributed as td

        td.barrier()


_CURRENT: Dist | None = None
_INITIALISED = False


def current() -> Dist | None:
    """The data-parallel group of this process, or None when it runs alone."""
    global _CURRENT, _INITIALISED
    if _INITIALISED:
        return _CURRENT
    _INITIALISED = True
    if launched_world_size() <= 1:
        return None
    from accelerate import PartialState

    # No GPU: ask accelerate for MULTI_CPU (gloo) itself; `--multi_gpu` alone would give DistributedType.NO.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes <= 1:
        return None
    device = torch.device(state.device) if state.device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _CURRENT = Dist(state.process_index, state.num_processes, state.local_process_index, device,
                    str(state.backend))
    atexit.register(_shutdown)
    return _CURRENT


def _shutdown() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def is_main() -> bool:
    """Whether this process writes artefacts (always, when it runs alone)."""
    d = current()
    return d is None or d.is_main


def rank0_decides(value):
    """`value` as rank 0 sees it, on every rank (itself when alone)."""
    d = current()
    return value if d is None else d.broadcast(value)


def smallest(value):
    """The smallest of every rank's `value`, on every rank (itself when alone)."""
    d = current()
    return value if d is None else min(d.gather(value))


def rank0_reads(read):
    """`read()` run on rank 0 only (a unit another node may not see), its value on every rank."""
    d = current()
    return read() if d is None else d.broadcast(read() if d.is_main else None)


@contextmanager
def main_first():
    """Rank 0 runs the block first (it fills a cache), the others after it (they read the cache)."""
    d = current()
    if d is not None and not d.is_main:
        d.barrier()
    yield
    if d is not None and d.is_main:
        d.barrier()
