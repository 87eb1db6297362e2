"""The report over several seeds' runs (`pulse-repro all --seeds 0 1 2` writes PARENT/seed-N/): every table with
the mean and standard deviation across seeds beside the interval of the runs pooled, Figure 3 with error
bars, Figure 4 with bands, and for every claim of the profile's golden file the number of seeds in which it
holds."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from tabulate import tabulate

from repro.atomic import output_dir
from repro.errors import ReproError
from repro.eval.intervals import interval_fields
from repro.experiments.results import IDENTITY, judged_results
from repro.report.evidence import Evidence
from repro.report.tables import render_tables  # one way: tables knows nothing of seeds
from repro.run_profile import read_run_profile

SEED_DIR = re.compile(r"^seed-(\d+)$")


def seed_runs(parent: Path) -> dict[int, Path]:
    """{seed: run directory} of PARENT's seed-N runs that hold records."""
    if not parent.is_dir():
        return {}
    found = {int(m.group(1)): d for d in parent.iterdir() if (m := SEED_DIR.match(d.name))}
    return {s: d for s, d in sorted(found.items()) if (d / "results.jsonl").exists()}


def pooled_records(runs: dict[int, list[dict]], resamples: int, seed: int) -> list[dict]:
    """One record per identity over every seed's run: the clusters of all runs together (a person of seed 1
    and the same person of seed 2 are two clusters), so the pooled interval is over runs and people."""
    pooled: dict[tuple, dict] = {}
    for s, records in runs.items():
        for r in records:
            key = tuple(r[f] for f in IDENTITY)
            into = pooled.setdefault(key, {**{f: r[f] for f in IDENTITY}, "per_cluster": {}, "runs": 0,
                                           "accuracy": None, "n": 0})
            into["runs"] += 1
            for cluster, counts in (r.get("per_cluster") or {}).items():
                into["per_cluster"][f"{s}:{cluster}"] = counts
    out = []
    for r in pooled.values():
        hits = sum(h for h, _ in r["per_cluster"].values())
        asked = sum(n for _, n in r["per_cluster"].values())
        if asked:
            r.update(accuracy=round(100.0 * hits / asked, 4), n=asked,
                     **interval_fields(r["per_cluster"], resamples, seed))
            out.append(r)
    return out


def claims_across_seeds(runs: dict[int, list[dict]], profile: str, resamples: int) -> str:
    """For every claim of the profile's golden file: in how many seeds it PASSES, FAILS, is INCONCLUSIVE."""
    from repro.report.golden import check_claim, find_golden, load_golden

    try:
        golden = load_golden(find_golden(profile))
    except ReproError as exc:
        return f"No claims checked: {exc}"
    rows = []
    for spec in golden.claims:
        labels = [check_claim(records, spec, resamples, s).label for s, records in runs.items()]
        rows.append([spec.name, f"{labels.count('PASS')} of {len(labels)}", labels.count("FAIL"),
                     labels.count("INCONCLUSIVE"), " ".join(f"{s}:{label[0]}" for s, label in zip(runs, labels))])
    return ("## Claims across seeds\n\n"
            + tabulate(rows, ["claim", "holds in", "fails in", "inconclusive in", "per seed"], tablefmt="github",
                       disable_numparse=True))


def _sd(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else None


def write_seeds_report(parent: Path) -> Path:
    """PARENT/report/{tables.md, figure3.png, figure4.png} across the seed-N runs; prints the tables."""
    from repro.report.figures import plot_figure3, plot_figure4
    from repro.report.views import figure3, figure4

    dirs = seed_runs(parent)
    if not dirs:
        raise ReproError(f"{parent}: no seed-N run directories with results (pulse-repro all --seeds ... --out {parent})")
    runs = {s: judged_results(d / "results.jsonl") for s, d in dirs.items()}
    first = read_run_profile(next(iter(dirs.values())))
    resamples = first.resamples
    pooled = pooled_records(runs, resamples, 0)
    per_seed = list(runs.values())
    text = (f"# {first.name} over seeds {', '.join(map(str, runs))}\n\n"
            + render_tables(pooled, Evidence(pooled, resamples, 0), per_seed) + "\n"
            + claims_across_seeds(runs, first.name, resamples) + "\n")
    out = output_dir(parent / "report", "the report")
    (out / "tables.md").write_text(text)
    print(text)
    f3s, f4s = [figure3(r) for r in per_seed], [figure4(r) for r in per_seed]
    def fig3(src, m, axis):
        return [f.get(src, {}).get(m, {}).get(axis) for f in f3s]

    def fig4(split, m, k):
        return [f[split][m][k] if k < len(f[split].get(m, [])) else None for f in f4s]

    mean3 = {src: {m: {axis: _mean(fig3(src, m, axis)) for axis in axes} for m, axes in per.items()}
             for src, per in f3s[0].items()}
    err3 = {src: {m: {axis: _sd(fig3(src, m, axis)) for axis in axes} for m, axes in per.items()}
            for src, per in f3s[0].items()}
    mean4 = {split: {m: [_mean(fig4(split, m, k)) for k in range(len(values))] for m, values in per.items()}
             for split, per in f4s[0].items()}
    band4 = {split: {m: [_sd(fig4(split, m, k)) for k in range(len(values))] for m, values in per.items()}
             for split, per in f4s[0].items()}
    plot_figure3(mean3, out / "figure3.png", errors=err3)
    plot_figure4(mean4, out / "figure4.png", bands=band4)
    return out


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None
