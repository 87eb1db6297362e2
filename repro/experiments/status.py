"""`pulse-repro status RUN_DIR`: what a run has done, what is left of the protocol, and about how long it
will take, from the run directory alone (read-only; safe while the run writes, a torn last line is skipped).

The plan is the protocol as `all` runs it (docs/design.md, "The protocol"): each experiment's models
measured, per method and update target, before unlearning (step 0) and after each request. The estimate of
the time left is the mean wall time of the units this run made, times the units left."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tabulate import tabulate

from repro.errors import ReproError
from repro.experiments.provenance import KINDS, read_units
from repro.experiments.results import checked_results
from repro.experiments.runner import MODALITY_TARGETS, PAPER_TARGET
from repro.jsonl import read_jsonl
from repro.run_profile import read_run_profile


def plan(profile: dict) -> dict[tuple[str, str, str], int]:
    """{(experiment, method, target): the last step measured} for the protocol as `all` runs it."""
    methods = profile["unlearn"]["methods"]
    cells = {}
    for experiment in ("finetuned", "pretrained"):
        cells.update({(experiment, m, PAPER_TARGET): 1 for m in methods})
    cells.update({("sustainability", m, PAPER_TARGET): int(profile["splits"]["shards"]) for m in methods})
    cells.update({("modality", "ga", t): 1 for t in MODALITY_TARGETS})
    return cells


def _clock(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 90 else (f"{minutes} min" if minutes < 90 else f"{minutes / 60:.1f} h")


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def run_status(run_dir: Path, now: float | None = None) -> str:
    """The status report of one run directory (or of each seed-N run under a parent)."""
    seeds = sorted(p for p in run_dir.glob("seed-*") if (p / "profile.json").exists())
    if not (run_dir / "profile.json").exists():
        if seeds:
            return "\n\n".join(run_status(p, now) for p in seeds)
        raise ReproError(f"{run_dir}: not a run directory (no profile.json): give the --out of `pulse-repro all`")
    profile = read_run_profile(run_dir).data
    records, problems, notice = checked_results(run_dir / "results.jsonl")
    units = read_units(run_dir)
    diverged = {(d["experiment"], d["method"], d["target"]): int(d["request"])
                for d in read_jsonl(run_dir / "diverged.jsonl") if {"experiment", "request"} <= set(d)}
    measured = {(r["experiment"], r["method"], r["target"], r["step"]) for r in records}
    rows, total, left_measures, left_requests = [], 0, 0, 0
    try:
        cells = plan(profile)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReproError(f"{run_dir / 'profile.json'}: not a whole profile ({type(exc).__name__}: {exc})") from None
    for cell, last in cells.items():
        stop = diverged.get(cell)
        wanted = range(stop if stop is not None else last + 1)
        done = sum((*cell, step) in measured for step in wanted)
        total += len(wanted)
        left_measures += len(wanted) - done
        left_requests += sum((*cell, step) not in measured for step in wanted if step > 0)
        note = f"diverged at request {stop}" if stop is not None else ""
        rows.append([*cell, f"{done}/{len(wanted)}", note])
    finished = (run_dir / "stages.json").exists()
    lines = [f"run {run_dir} (profile {profile.get('name')}, seed {profile.get('seed')}): "
             f"{total - left_measures} of {total} measurements done"
             + ("; finished (stages.json written)" if finished else "")]
    lines.append(tabulate(rows, ["experiment", "method", "target", "measured", ""], tablefmt="simple"))
    # status is read while a run goes on: bad records are warned of (report and verify refuse them)
    lines += [f"warning: {problem} (left out; report and verify refuse the file)" for problem in problems]
    lines += [f"note: {notice}"] if notice else []
    made = {kind: [u for u in units if u["kind"] == kind and u.get("made")] for kind in KINDS}
    found = sum(not u.get("made") for u in units)
    lines.append("units: " + ", ".join(f"{len(v)} {k} made" for k, v in made.items())
                 + f", {found} found in the unit store (units.jsonl)")
    if not finished and left_measures:
        per_request = _mean([u["wall_s"] for u in made["request"] if "wall_s" in u])
        per_measure = (sum(u.get("wall_s", 0.0) for u in made["predictions"]) / len(measured)) if measured else None
        if per_request is None or per_measure is None:
            lines.append(f"left: {left_measures} measurements, up to {left_requests} unlearning requests; no estimate "
                         "until this run has made a request and measured a model")
        else:
            estimate = left_requests * per_request + left_measures * per_measure
            lines.append(f"left: {left_measures} measurements, up to {left_requests} unlearning requests (those "
                         f"another run made are found in the store): about {_clock(estimate)}, from this run's means "
                         f"({per_request:.0f} s a request, {per_measure:.0f} s a measurement)")
    written = [p.stat().st_mtime for p in (run_dir / "results.jsonl", run_dir / "units.jsonl") if p.exists()]
    if written and not finished:
        lines.append(f"last written {_clock((now or time.time()) - max(written))} ago")
    return "\n".join(lines)
