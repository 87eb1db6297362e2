"""`pulse-repro golden record`: run a profile under several seeds and write its golden file.

Recording is separate from checking: this writes ranges (min/max over the seeds, widened by a stated
margin) for every record kind whose spread across seeds is small enough to pin, and keeps those of the
paper's claims that hold under every seed. The file says how it was made; `verify` only reads it.
"""

from __future__ import annotations

import datetime
import tomllib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from repro.config import Profile
from repro.experiments.results import IDENTITY, read_results
from repro.report.golden import GOLDEN_DIR, check_claim, load_golden

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


def number_ranges(runs: list[list[dict]], margin: float, max_spread: float) -> tuple[list[dict], list[str]]:
    """[[number]] entries for every record identity measured in every run whose spread is <= max_spread;
    and the names of those left out as too unstable."""
    values: dict[tuple, list[float]] = defaultdict(list)
    counts: dict[tuple, set[int]] = defaultdict(set)
    for records in runs:
        for r in records:
            values[tuple(r[f] for f in IDENTITY)].append(r["accuracy"])
            counts[tuple(r[f] for f in IDENTITY)].add(r["n"])
    entries, unstable = [], []
    for ident in sorted(values, key=str):
        vals = values[ident]
        sel = dict(zip(IDENTITY, ident))
        name = "_".join(str(sel[f]).replace("+", "_") for f in IDENTITY)
        if len(vals) < len(runs):
            continue  # not measured under every seed (a diverged request): nothing to pin
        if max(vals) - min(vals) > max_spread:
            unstable.append(f"{name} ({min(vals):.1f}..{max(vals):.1f})")
            continue
        entries.append({"name": name, "source": f"tiny, {len(runs)} seeds", **sel,
                        "min": round(max(0.0, min(vals) - margin), 2),
                        "max": round(min(100.0, max(vals) + margin), 2)})
        if len(counts[ident]) == 1 and sel["step"] == 0:  # question counts are exact
            entries.append({"name": name + "_n", "source": "protocol size", **sel, "field": "n",
                            "min": next(iter(counts[ident])), "max": next(iter(counts[ident]))})
    return entries, unstable


def paper_claims(runs: list[list[dict]]) -> tuple[list[dict], dict[str, list[bool]]]:
    """The paper's claims (raw TOML tables) that hold under every seed, and every claim's per-seed verdicts."""
    golden = load_golden(PAPER)
    raw = {c["name"]: c for c in tomllib.loads(PAPER.read_text()).get("claim", [])}
    verdicts = {c.name: [check_claim(records, c).passed for records in runs] for c in golden.claims}
    holding = [{k: v for k, v in raw[name].items() if k != "profiles"}
               for name, ok in verdicts.items() if all(ok)]
    return holding, verdicts


def write_golden(path: Path, profile: Profile, seeds: list[int], runs: list[list[dict]], margin: float,
                 max_spread: float, environment: dict, command: str) -> None:
    numbers, unstable = number_ranges(runs, margin, max_spread)
    claims, verdicts = paper_claims(runs)
    lines = [
        f"# Golden ranges for the `{profile.name}` profile. Written by the kit, not by hand:",
        f"#   {command}",
        f"# on {datetime.date.today().isoformat()}. Each [[number]] is [min - margin, max + margin] over the seeds",
        f"# below (margin {margin} points); record kinds whose spread across seeds exceeded {max_spread} points",
        "# are not pinned (listed in `unstable`). Claims: the paper's claims (golden/paper.toml) that held",
        "# under every seed are asserted here; those that did not are listed in `claims_not_holding`",
        "# with one verdict per seed. Change this file only by re-recording, and say why in the commit.",
        "",
        _table("golden", {"profile": profile.name, "seeds": seeds, "margin": margin, "max_spread": max_spread,
                          "command": command, **{f"env_{k}": v for k, v in environment.items()},
                          "claims_not_holding": sorted(n for n, ok in verdicts.items() if not all(ok)),
                          "claim_verdicts_per_seed": {n: "".join("P" if v else "F" for v in ok)
                                                      for n, ok in verdicts.items()},
                          "unstable": unstable}),
    ]
    lines += [_table("[number]", e) for e in numbers]
    lines += [_table("[claim]", c) for c in claims]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines))
    load_golden(tmp)  # never leave a file the checker cannot read
    tmp.replace(path)


def record_golden(profile: Profile, seeds: list[int], out: Path, runs_dir: Path, margin: float,
                  max_spread: float, command: str) -> int:
    from repro.experiments.runner import environment, run_protocol

    runs = []
    for seed in seeds:
        run_dir = runs_dir / f"seed-{seed}"
        run_protocol(replace(profile, seed=seed), run_dir)
        runs.append(read_results(run_dir / "results.jsonl"))
    write_golden(out, profile, seeds, runs, margin, max_spread, environment(), command)
    print(f"wrote {out}")
    return 0
