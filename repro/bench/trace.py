"""`bench --trace DIR`: a profile of a few training batches of each stage, to see where a step's time goes
(which operators, and on CUDA how much of the wall time the GPU is busy: a host-bound step leaves it idle).

The traced batches come right after the stage's untimed first step, whole optimiser steps holding at least
TRACED_BATCHES micro-batches, and are not timed themselves: the profiler's own overhead stays out of the
throughput figures, and the timed ones still start on a step. Each stage writes `<stage>.trace.json` (a
Chrome trace: open it in Perfetto or chrome://tracing) and `<stage>.ops.txt` (the operators by self time).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from repro.bench.clock import now

TRACED_BATCHES = 2  # at least; rounded up to whole optimiser steps
TOP_OPS = 8  # operators named in the bench's output; the .ops.txt file lists 40


def traced_batches(grad_accum: int) -> int:
    """Micro-batches traced: whole optimiser steps of `grad_accum`, at least TRACED_BATCHES of them."""
    return grad_accum * -(-TRACED_BATCHES // grad_accum)


def _device_us(event) -> float:
    return float(event.self_device_time_total)


def _is_kernel(event) -> bool:
    """A GPU-side event (a kernel, a copy, a memset): its time is the GPU's. Host-side operators carry their
    kernels' time too, so summing both would count it twice (torch's own table sums these only)."""
    return event.device_type == DeviceType.CUDA and not event.is_user_annotation


class StageTrace:
    """Profiles the micro-batches `first` .. `first + batches - 1` of one stage (counted from 0 as the
    stage's trainer asks for them) and writes what it saw under `out_dir`."""

    def __init__(self, out_dir: Path, stage: str, first: int, device: torch.device, batches: int = TRACED_BATCHES):
        self.out_dir, self.stage, self.first, self.device = Path(out_dir), stage, first, device
        self.batches = batches
        self.cuda = device.type == "cuda"
        self.prof, self.t0, self.summary, self.seen = None, 0.0, None, 0

    def at_batch(self, index: int) -> None:
        """Called as micro-batch `index` starts."""
        if index == self.first:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
            self.prof = profile(activities=activities, record_shapes=False)
            self.prof.start()
            self.t0 = now(self.device)  # after the profiler's own start-up
            self.seen = 1
        elif index == self.first + self.batches:
            self.finish()
        elif self.first < index < self.first + self.batches:
            self.seen += 1

    def finish(self) -> None:
        """Stop and write (also when the stage ended before the last traced batch); idempotent."""
        if self.prof is None or self.summary is not None:
            return
        wall = now(self.device) - self.t0  # the traced batches' kernels have finished
        self.prof.stop()
        self.summary = self._write(wall)

    def _write(self, wall: float) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        trace = self.out_dir / f"{self.stage}.trace.json"
        ops = self.out_dir / f"{self.stage}.ops.txt"
        self.prof.export_chrome_trace(str(trace))
        averages = self.prof.key_averages()
        sort_by = "self_device_time_total" if self.cuda else "self_cpu_time_total"
        ops.write_text(averages.table(sort_by=sort_by, row_limit=40) + "\n")
        busy, top = time_spent(averages, self.cuda)
        return {"batches": self.seen, "wall_s": round(wall, 4),
                # kernels' summed time over the wall time: below 1, the GPU waited (on the host, a copy or
                # a synchronisation); above 1 only when streams overlap
                "device_busy_share": round(busy / wall, 4) if busy is not None and wall > 0 else None,
                "top_ops_ms": top, "trace": str(trace), "ops": str(ops)}


def time_spent(averages, cuda: bool) -> tuple[float | None, list[list]]:
    """(seconds the GPU was busy, or None without one; the TOP_OPS operators as [name, self ms]) of a
    profile's key averages. On CUDA the operators are ranked by their kernels' GPU time, else by CPU time."""
    if cuda:
        busy = sum(_device_us(e) for e in averages if _is_kernel(e)) / 1e6
        ranked = sorted((e for e in averages if e.device_type == DeviceType.CPU), key=_device_us, reverse=True)
        return busy, [[e.key, round(_device_us(e) / 1e3, 2)] for e in ranked[:TOP_OPS]]
    ranked = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)
    return None, [[e.key, round(e.self_cpu_time_total / 1e3, 2)] for e in ranked[:TOP_OPS]]
