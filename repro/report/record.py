"""`pulse-repro golden record`: run a profile under several seeds and instruction sets, and write its
golden file.

Recording is separate from checking: this writes ranges (min/max over every run, widened by a stated
margin) for every record kind whose spread across the runs is small enough to pin, and keeps those of the
paper's claims that hold in every run. Float results follow the CPU's instruction set, so each seed is run
under every instruction set the machine can run (capped in a new process, repro.environment), and the file
names the environments its ranges cover. The file says how it was made; `verify` only reads it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import subprocess
import sys
import tomllib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.config import Profile
from repro.environment import NATIVE, NUMERIC_FIELDS, isa_environment
from repro.errors import ReproError
from repro.experiments.results import IDENTITY, read_results
from repro.report.golden import GOLDEN_DIR, check_claim, load_golden
from repro.report.settings import measuring
from repro.run_profile import run_bootstrap

PAPER = GOLDEN_DIR / "paper.toml"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _table(header: str, entries: dict[str, Any]) -> str:
    return f"[{header}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in entries.items())


@dataclass(frozen=True)
class RecordedRun:
    """One seeded run of the protocol under one instruction set."""

    isa: str  # the cap it ran under (repro.environment.NATIVE: none)
    seed: int
    records: list[dict]
    environment: dict  # its environment.json
    bootstrap: tuple[int, int]  # (resamples, seed) its claims are judged with, as verify judges it

    @property
    def label(self) -> str:
        return f"{self.environment.get('cpu_capability') or self.environment.get('device')} seed {self.seed}"


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


def spread_reason(by_run: dict[tuple[str, int], float]) -> str:
    """Where a record kind's spread comes from: the largest spread across seeds within one instruction
    set, and across instruction sets for one seed."""
    isas, seeds = {i for i, _ in by_run}, {s for _, s in by_run}
    across_seeds = max(_spread([v for (i, _), v in by_run.items() if i == isa]) for isa in isas)
    across_isas = max(_spread([v for (_, s), v in by_run.items() if s == seed]) for seed in seeds)
    return f"{across_seeds:.1f} points across seeds, {across_isas:.1f} between instruction sets"


def number_ranges(runs: list[RecordedRun], margin: float, max_spread: float,
                  wide: float = 30.0) -> tuple[list[dict], list[str], list[str]]:
    """[[number]] entries for every record identity measured in every run whose spread is <= max_spread;
    the record kinds left unpinned, and the pinned ranges wider than `wide` points, each with its reason."""
    values: dict[tuple, dict[tuple[str, int], float]] = defaultdict(dict)
    counts: dict[tuple, set[int]] = defaultdict(set)
    for run in runs:
        for r in run.records:
            values[tuple(r[f] for f in IDENTITY)][(run.isa, run.seed)] = r["accuracy"]
            counts[tuple(r[f] for f in IDENTITY)].add(r["n"])
    entries, unpinned, wide_ranges = [], [], []
    for ident in sorted(values, key=str):
        by_run = values[ident]
        vals = list(by_run.values())
        sel = dict(zip(IDENTITY, ident))
        name = "_".join(str(sel[f]).replace("+", "_") for f in IDENTITY)
        if len(vals) < len(runs):
            missing = sorted(run.label for run in runs if (run.isa, run.seed) not in by_run)
            unpinned.append(f"{name}: not measured in {', '.join(missing)} (a request diverged)")
            continue
        if _spread(vals) > max_spread:
            unpinned.append(f"{name} ({min(vals):.1f}..{max(vals):.1f}): {spread_reason(by_run)}")
            continue
        low, high = round(max(0.0, min(vals) - margin), 2), round(min(100.0, max(vals) + margin), 2)
        entries.append({"name": name, "source": f"{len(runs)} runs", **sel, "min": low, "max": high})
        if high - low > wide:
            wide_ranges.append(f"{name} [{low}, {high}]: {spread_reason(by_run)}")
        if len(counts[ident]) == 1 and sel["step"] == 0:  # question counts are exact
            entries.append({"name": name + "_n", "source": "protocol size", **sel, "field": "n",
                            "min": next(iter(counts[ident])), "max": next(iter(counts[ident]))})
    return entries, unpinned, wide_ranges


def paper_claims(runs: list[RecordedRun]) -> tuple[list[dict], dict[str, list[str]]]:
    """The paper's claims (raw TOML tables) that pass in every run, and every claim's verdict per run
    ("PASS", "FAIL" or "INCONCLUSIVE")."""
    golden = load_golden(PAPER)
    raw = {c["name"]: c for c in tomllib.loads(PAPER.read_text()).get("claim", [])}
    verdicts = {c.name: [check_claim(run.records, c, *run.bootstrap).label for run in runs] for c in golden.claims}
    holding = [{k: v for k, v in raw[name].items() if k != "profiles"}
               for name, labels in verdicts.items() if all(label == "PASS" for label in labels)]
    return holding, verdicts


def covered_environments(runs: list[RecordedRun]) -> list[dict]:
    """The distinct numeric environments of the runs, each with the CPU it was seen on and the cap used."""
    seen: dict[tuple, dict] = {}
    for run in runs:
        ident = tuple(str(run.environment.get(f)) for f in NUMERIC_FIELDS)
        entry = seen.setdefault(ident, {f: run.environment[f] for f in NUMERIC_FIELDS if f in run.environment})
        entry.setdefault("cpu", run.environment.get("cpu", "unknown"))
        entry.setdefault("isa", run.isa)
    return list(seen.values())


def write_golden(path: Path, profile: Profile, seeds: list[int], runs: list[RecordedRun], margin: float,
                 max_spread: float, command: str) -> None:
    numbers, unpinned, wide = number_ranges(runs, margin, max_spread)
    claims, verdicts = paper_claims(runs)
    environments = covered_environments(runs)
    lines = [
        f"# Golden ranges for the `{profile.name}` profile. Written by the kit, not by hand:",
        f"#   {command}",
        f"# on {datetime.date.today().isoformat()}. Each [[number]] is [min - margin, max + margin] over every run",
        f"# below: each seed under each instruction set in `environments` (margin {margin} points); record",
        f"# kinds whose spread across the runs exceeded {max_spread} points are not pinned (`unpinned`, with where",
        "# the spread comes from); `wide` lists the pinned ranges wider than 30 points, and why.",
        "# `verify` and the tests fail a range only in one of `environments`; elsewhere a miss is reported as",
        "# ENV DIFFERS. Claims: the paper's claims (golden/paper.toml) that held in every run are asserted",
        "# here, in any environment; those that did not are listed in `claims_not_holding` with one verdict per",
        "# run (in the order of `runs`). Change this file only by re-recording, and say why in the commit.",
        "",
        _table("golden", {"profile": profile.name, "seeds": seeds,
                          "instruction_sets": sorted({str(e.get("cpu_capability", e.get("device"))) for e in environments}),
                          "margin": margin, "max_spread": max_spread, "command": command,
                          # what the runs were measured with: `verify` excuses a run measured otherwise
                          "eval": measuring(dataclasses.asdict(profile.eval)),
                          "python": platform.python_version(),
                          "environments": environments,
                          "runs": [run.label for run in runs],
                          "claims_not_holding": sorted(n for n, labels in verdicts.items()
                                                       if any(label != "PASS" for label in labels)),
                          # per run: P(ass), F(ail) or I(nconclusive)
                          "claim_verdicts_per_run": {n: "".join(label[0] for label in labels)
                                                     for n, labels in verdicts.items()},
                          "unpinned": unpinned, "wide": wide}),
    ]
    lines += [_table("[number]", e) for e in numbers]
    lines += [_table("[claim]", c) for c in claims]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    load_golden(tmp)  # never leave a file the checker cannot read
    tmp.replace(path)


def run_capped(isa: str, seed: int, run_dir: Path, profile_args: list[str]) -> None:
    """`pulse-repro all` for one seed in a new process capped to `isa` (the caps are read at start-up,
    so they cannot be changed inside this process); its output goes to RUN_DIR.log."""
    argv = [sys.executable, "-m", "repro", "all", *profile_args, "--set", f"seed={seed}", "--out", str(run_dir),
            "--no-verify"]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.with_name(run_dir.name + ".log")
    print(f"pulse-repro: golden record: {isa} seed {seed} -> {run_dir} (log: {log})", flush=True)
    with log.open("a") as fh:
        status = subprocess.run(argv, check=False, env=isa_environment(isa), stdout=fh,
                                stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise ReproError(f"the {isa} run of seed {seed} ended with status {status}; see {log}")


def record_golden(profile: Profile, seeds: list[int], isas: list[str], out: Path, runs_dir: Path, margin: float,
                  max_spread: float, command: str, profile_args: list[str],
                  run_one: Callable[[str, int, Path, list[str]], None] = run_capped) -> int:
    """Run the profile once per seed under each instruction set (RUNS_DIR/ISA/seed-N, resumable), then write
    the golden file from every run."""
    runs = []
    for isa in isas:
        for seed in seeds:
            run_dir = runs_dir / isa / f"seed-{seed}"
            run_one(isa, seed, run_dir, profile_args)
            env = json.loads((run_dir / "environment.json").read_text())
            if isa != NATIVE and env.get("cpu_capability") != isa.upper():
                raise ReproError(f"{run_dir}: asked for {isa}, torch dispatched to {env.get('cpu_capability')}: "
                                 "this machine cannot run that instruction set")
            runs.append(RecordedRun(isa, seed, read_results(run_dir / "results.jsonl"), env,
                                    run_bootstrap(run_dir)))
    write_golden(out, profile, seeds, runs, margin, max_spread, command)
    print(f"wrote {out}")
    return 0
