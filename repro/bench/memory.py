"""(c) Peak memory of each unlearning method: weights plus everything training adds.

CUDA: torch.cuda.max_memory_allocated over the stage (read by training.run_stage; it includes the weights).
CPU: tracemalloc does not see torch's allocations, so each method runs in a fresh process
(repro.bench.memworker), which reads its resident set before loading the model, resets the kernel's
resident-set high-water mark after loading it, trains, and reports the high-water mark minus the
resident set before the model (Linux /proc/self/clear_refs + VmHWM; elsewhere getrusage's ru_maxrss,
which then also counts the loading peak)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from repro.errors import ReproError

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def rss_bytes() -> int:
    """The resident set now (ru_maxrss where /proc is missing)."""
    now = _status_kb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    peak = _status_kb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_peaks(profile: str, overrides: list[str], shape: str | None, methods: list[str], steps: int) -> dict:
    """{method: worker report} from one fresh process per method."""
    out = {}
    for method in methods:
        spec = {"profile": profile, "overrides": overrides, "shape": shape, "stage": method, "steps": steps}
        proc = subprocess.run([sys.executable, "-m", "repro.bench.memworker", json.dumps(spec)],
                              capture_output=True, text=True, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise ReproError(f"the memory worker for {method} failed (exit {proc.returncode}):\n{tail}")
        out[method] = json.loads(lines[-1])
    return out


def method_peaks(train: dict, methods: list[str], cuda: bool, profile: str, overrides: list[str],
                 shape: str | None, steps: int) -> tuple[dict, str]:
    """({method: peak bytes}, how they were measured): CUDA peaks from the training runs, else fresh
    processes."""
    if cuda:
        return ({m: train[m]["cuda_peak_bytes"] for m in methods},
                "torch.cuda.max_memory_allocated over each stage, weights included")
    reports = cpu_peaks(profile, overrides, shape, methods, steps)
    exact = all(rep["hwm_reset"] for rep in reports.values())
    note = (f"resident-set peak of a fresh process per method over {steps} steps, minus its resident set "
            "before the model was loaded (weights included), "
            + ("the high-water mark reset after loading (/proc/self/clear_refs)" if exact
               else "from ru_maxrss (the loading peak included)"))
    return {m: rep["peak_bytes"] for m, rep in reports.items()}, note
