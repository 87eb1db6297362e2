"""`pulse-repro all --jobs N`: the protocol's independent cells (experiment x method x target) run as up
to N worker processes (`pulse-repro run ...`), each on its own GPU when there are GPUs, all sharing one
unit store (repro/experiments/store.py); then one results.jsonl in the protocol's order, one report and one verdict.

The first cell (the fine-tuned experiment's first method) runs alone: it builds the base model and
fine-tunes, and every other cell starts from those units instead of training them again. Each cell keeps
its own records under RUN_DIR/cells/NAME/ (with its log); the merge appends them to RUN_DIR/results.jsonl
cell by cell in the order one process would have written them. An interrupted grid resumes like `all`:
finished cells are read back, a cell that was in flight resumes from its units.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from repro import distributed
from repro.atomic import atomic_write_text
from repro.config import Profile
from repro.errors import ReproError
from repro.experiments.provenance import read_units
from repro.experiments.results import read_results
from repro.experiments.runner import MODALITY_TARGETS, PAPER_TARGET, Runner, conclude, write_outputs
from repro.experiments.store import default_units_dir

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Cell:
    experiment: str
    method: str
    target: str

    @property
    def name(self) -> str:
        return f"{self.experiment}-{self.method}-{self.target.replace('+', '_')}"


def protocol_cells(profile: Profile) -> list[Cell]:
    """Every cell of `all`, in the order `all` runs them (its records come out in this order)."""
    cells = [Cell(exp, method, PAPER_TARGET)
             for exp in ("finetuned", "pretrained", "sustainability") for method in profile.unlearn.methods]
    return cells + [Cell("modality", "ga", target) for target in MODALITY_TARGETS]


def _devices(jobs: int) -> list[dict[str, str]]:
    """Per worker slot: the environment that pins it to one GPU (round robin), or on CPU a share of
    the cores (processes that each take every core slow each other down many times over)."""
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return [{"CUDA_VISIBLE_DEVICES": str(slot % n)} for slot in range(jobs)]
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(jobs)]


class _Worker:
    def __init__(self, cell: Cell, proc: subprocess.Popen, log, started: float):
        self.cell, self.proc, self.log, self.started = cell, proc, log, started


def run_grid(profile: Profile, run_dir: Path, jobs: int, cell_args: list[str], verify: bool = True,
             units: Path | None = None) -> int:
    """Run `all` as cells over `jobs` processes; `cell_args` are the --profile/--set arguments the
    cells get (the same resolved profile as this process); every cell uses the store `units`."""
    if jobs < 1:
        raise ReproError(f"--jobs must be at least 1, got {jobs}")
    if distributed.current() is not None:
        raise ReproError("--jobs starts its own processes: run it without accelerate launch (or use the "
                         "launcher with --jobs 1)")
    runner = Runner(profile, run_dir, units)  # claims the run directory for this profile
    # every cell reads and writes one store, named to the cells as an absolute path
    cell_args = [*cell_args, "--units", str((units or default_units_dir()).resolve())]
    cells = protocol_cells(profile)
    t0 = time.perf_counter()
    seconds = _run_cells([cells[:1], cells[1:]], run_dir, jobs, cell_args)
    _merge(cells, run_dir, runner)
    stages = {exp: round(sum(s for c, s in seconds.items() if c.experiment == exp), 1)
              for exp in ("finetuned", "pretrained", "sustainability", "modality")}
    stages["total"] = round(time.perf_counter() - t0, 1)
    write_outputs(run_dir, stages)
    return conclude(run_dir, stages, f" over {jobs} jobs (per experiment: the sum of its cells' times)", verify)


def _cell_dir(run_dir: Path, cell: Cell) -> Path:
    path = run_dir / "cells" / cell.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _done(cell_dir: Path) -> bool:
    return (cell_dir / "done").exists()


def _run_cells(waves: list[list[Cell]], run_dir: Path, jobs: int, cell_args: list[str]) -> dict[Cell, float]:
    """Each wave's cells over `jobs` slots; a wave starts when the one before it has finished."""
    seconds: dict[Cell, float] = {}
    slots = _devices(jobs)
    for wave in waves:
        pending = [c for c in wave if not _done(_cell_dir(run_dir, c))]
        seconds.update({c: 0.0 for c in wave if c not in pending})
        running: dict[int, _Worker] = {}
        try:
            while pending or running:
                for slot in [s for s in range(len(slots)) if s not in running]:
                    if not pending:
                        break
                    running[slot] = _start(pending.pop(0), run_dir, cell_args, slots[slot])
                time.sleep(POLL_SECONDS)
                for slot, worker in list(running.items()):
                    if worker.proc.poll() is None:
                        continue
                    del running[slot]
                    worker.log.close()
                    took = time.perf_counter() - worker.started
                    if worker.proc.returncode != 0:
                        raise ReproError(
                            f"cell {worker.cell.name} failed (exit {worker.proc.returncode}); its log: "
                            f"{_cell_dir(run_dir, worker.cell) / 'log.txt'}. Finished units are kept: "
                            f"run the same command again to resume")
                    (_cell_dir(run_dir, worker.cell) / "done").write_text(f"{took:.1f}\n")
                    seconds[worker.cell] = took
                    print(f"pulse-repro: cell {worker.cell.name} done in {took:.0f} s", flush=True)
        finally:  # on an error or Ctrl-C, stop the other cells; their finished units stay
            for worker in running.values():
                worker.proc.terminate()
                worker.proc.wait()
                worker.log.close()
    return seconds


def _start(cell: Cell, run_dir: Path, cell_args: list[str], device_env: dict[str, str]) -> _Worker:
    cell_dir = _cell_dir(run_dir, cell)
    argv = [sys.executable, "-m", "repro", "run", cell.experiment, "--method", cell.method,
            "--target", cell.target, "--out", str(cell_dir), *cell_args]
    log = (cell_dir / "log.txt").open("a")
    env = {**os.environ, **device_env, "TQDM_DISABLE": "1"}
    where = device_env.get("CUDA_VISIBLE_DEVICES")
    print(f"pulse-repro: cell {cell.name} started" + (f" on GPU {where}" if where else ""), flush=True)
    return _Worker(cell, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env),
                   log, time.perf_counter())


def _merge(cells: list[Cell], run_dir: Path, runner: Runner) -> None:
    """Cell records into RUN_DIR/results.jsonl in protocol order (identities already there are skipped), their
    units into RUN_DIR/units.jsonl, divergences into RUN_DIR/diverged.jsonl, and the manifest with the
    celebrity selection."""
    diverged: list[str] = []
    for cell in cells:
        cell_dir = run_dir / "cells" / cell.name
        runner.results.append(read_results(cell_dir / "results.jsonl"))
        runner.session.units.extend(read_units(cell_dir))
        if (cell_dir / "diverged.jsonl").exists():
            diverged += [line for line in (cell_dir / "diverged.jsonl").read_text().splitlines(keepends=True)
                         if line not in diverged]
    if diverged:
        atomic_write_text(run_dir / "diverged.jsonl", "".join(diverged))
    selection = next(run_dir / "cells" / c.name / "manifest.json" for c in cells if c.experiment == "pretrained")
    atomic_write_text(run_dir / "manifest.json", selection.read_text())
