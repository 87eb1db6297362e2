"""`bench --trace DIR`: a profile of a few training batches of each stage, to see where a step's time goes
(which operators, and on CUDA how much of the wall time the GPU is busy: a host-bound step leaves it idle).

The traced batches come right after the stage's untimed first step and are not timed themselves: the
profiler's own overhead stays out of the throughput figures. Each stage writes `<stage>.trace.json` (a
Chrome trace: open it in Perfetto or chrome://tracing) and `<stage>.ops.txt` (the operators by self time).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from repro.bench.clock import now

TRACED_BATCHES = 2
TOP_OPS = 8  # operators named in the bench's output; the .ops.txt file lists 40


def _device_us(event) -> float:
    # torch >= 2.4 names it self_device_time_total; older releases self_cuda_time_total
    return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))


class StageTrace:
    """Profiles the micro-batches `first` .. `first + TRACED_BATCHES - 1` of one stage (counted from 0 as
    the stage's trainer asks for them) and writes what it saw under `out_dir`."""

    def __init__(self, out_dir: Path, stage: str, first: int, device: torch.device):
        self.out_dir, self.stage, self.first, self.device = Path(out_dir), stage, first, device
        self.cuda = device.type == "cuda"
        self.prof, self.t0, self.summary, self.seen = None, 0.0, None, 0

    @property
    def batches(self) -> int:
        return TRACED_BATCHES

    def at_batch(self, index: int) -> None:
        """Called as micro-batch `index` starts."""
        if index == self.first:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
            self.prof = profile(activities=activities, record_shapes=False)
            self.t0 = now(self.device)
            self.prof.start()
            self.seen = 1
        elif index == self.first + TRACED_BATCHES:
            self.finish()
        elif self.first < index < self.first + TRACED_BATCHES:
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
        sort_by = "self_cuda_time_total" if self.cuda else "self_cpu_time_total"
        ops.write_text(averages.table(sort_by=sort_by, row_limit=40) + "\n")
        if self.cuda:
            ranked = sorted(averages, key=_device_us, reverse=True)
            busy = sum(_device_us(e) for e in averages) / 1e6
            top = [[e.key, round(_device_us(e) / 1e3, 2)] for e in ranked[:TOP_OPS]]
        else:
            ranked = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)
            busy = None
            top = [[e.key, round(e.self_cpu_time_total / 1e3, 2)] for e in ranked[:TOP_OPS]]
        return {"batches": self.seen, "wall_s": round(wall, 4),
                # kernels' summed time over the wall time: below 1, the GPU waited (on the host, a copy or
                # a synchronisation); above 1 only when streams overlap
                "device_busy_share": round(busy / wall, 4) if busy is not None and wall > 0 else None,
                "top_ops_ms": top, "trace": str(trace), "ops": str(ops)}
