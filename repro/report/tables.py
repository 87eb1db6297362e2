"""`pulse-repro report`: the paper's tables as markdown (tabulate) and its figures as PNG, every number with its
95% interval; for a parent of several seeds' runs, the mean and standard deviation across seeds beside the
pooled interval (repro/report/seeds.py)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from repro.eval.metrics import CHANCE
from repro.report.evidence import Evidence, value_of
from repro.report.views import (
    METHOD_NAMES,
    accuracy_interval,
    figure3_cells,
    figure3_interval,
    figure3_value,
    figure4_cells,
    table_b_cells,
    task_cells,
)
from repro.run_profile import run_bootstrap

SPLIT_NAMES = {"unlearn": "D_unlearn", "retain": "D_retain", "mmbench": "MMBench"}
INTERVAL_NOTE = ("Each number is followed by its 95% interval, a bootstrap over people (over questions for "
                 "MMBench, over circular groups for MMBench circular), paired where a number compares the same "
                 "people before and after.")


def cell(point: float | None, interval: tuple[float, float] | None = None, spread: float | None = None) -> str:
    if point is None:
        return "-"
    text = f"{point:.1f}" + (f" ± {spread:.1f}" if spread is not None else "")
    return text + (f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else "")


class Cells:
    """How a table's cells are written: one run (value and interval), or several seeds (mean ± standard
    deviation across seeds, and the interval of the runs pooled)."""

    def __init__(self, records: list[dict], ev: Evidence, per_seed: list[list[dict]] | None = None):
        self.records, self.ev, self.per_seed = records, ev, per_seed

    def _with(self, value: Callable[[list[dict]], float | None], interval) -> str:
        if not self.per_seed:
            return cell(value(self.records), interval)
        values = [v for v in (value(r) for r in self.per_seed) if v is not None]
        if not values:
            return "-"
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return cell(statistics.fmean(values), interval, spread)

    def figure3(self, axis: str, before: dict, after: dict) -> str:
        return self._with(lambda r: figure3_value(r, axis, before, after),
                          figure3_interval(self.ev, axis, before, after))

    def accuracy(self, select: dict) -> str:
        return self._with(lambda r: value_of(r, select), accuracy_interval(self.ev, select))


def render_tables(records: list[dict], ev: Evidence | None = None, per_seed: list[list[dict]] | None = None) -> str:
    cells = Cells(records, ev or Evidence(records), per_seed)
    seeds = f" Over {len(per_seed)} seeds: mean ± standard deviation across seeds, then the 95% interval of " \
            "the seeds' runs pooled." if per_seed else ""
    parts = [INTERVAL_NOTE + seeds] if any("per_cluster" in r for r in records) else []
    f3 = figure3_cells(records)
    if f3:
        rows = [[source, METHOD_NAMES.get(m, m)] + [cells.figure3(axis, *sels) for axis, sels in axes.items()]
                for source, per in f3.items() for m, axes in per.items()]
        parts.append("## Figure 3: fine-tuned vs pre-trained knowledge (one request, Proj+LLM)\n\n"
                     "Forgotten% = 100 (1 - after/before) on D_unlearn (higher is better); retained% = "
                     "100 after/before on D_retain and MMBench (higher is better).\n\n"
                     + tabulate(rows, ["knowledge", "method", "forgotten% D_unlearn", "retained% D_retain",
                                       "retained% MMBench"], tablefmt="github", disable_numparse=True))
    f4 = figure4_cells(records)
    if any(f4.values()):
        rows = [[SPLIT_NAMES[split], METHOD_NAMES.get(m, m)] + [cells.accuracy(sel) for sel in sels]
                for split, per in f4.items() for m, sels in per.items()]
        n = max((len(v) for per in f4.values() for v in per.values()), default=0)
        parts.append(f"## Figure 4: accuracy (%) after each of five sequential requests (chance {CHANCE:.0f})\n\n"
                     + tabulate(rows, ["split", "method"] + [f"after {k}" for k in range(n)], tablefmt="github",
                                disable_numparse=True))
    tb = table_b_cells()
    if any(cells.accuracy(sel) != "-" for _, sels in tb for sel in sels):
        rows = [[label] + [cells.accuracy(sel) for sel in sels] for label, sels in tb]
        parts.append(f"## Table B: accuracy (%) by modality and update target, GA (chance {CHANCE:.0f})\n\n"
                     "MMBench: single pass (the paper's 75.1 fits it), and circular (a question counts only when "
                     "every rotation of its options is answered right; LLaVA-1.5-13B's published 67.7).\n\n"
                     + tabulate(rows, ["", "D_unlearn Multi", "D_unlearn Text", "D_retain Multi", "D_retain Text",
                                       "MMBench", "MMBench circular"], tablefmt="github", disable_numparse=True))
    headers, task_rows = task_cells(records)
    if task_rows:
        rows = [labels + [cells.accuracy(sel) for sel in sels] for labels, sels in task_rows]
        parts.append("## MLLMU-Bench's own tasks, before and after the last request\n\n"
                     "Generation: the mean ROUGE-L F-measure x 100 of the answer against the ground truth; "
                     "fill-in-the-blank: % of answers containing the missing word. Both answered in words "
                     "(greedy, eval.generate_tokens), resampled by person; per modality in results.jsonl.\n\n"
                     + tabulate(rows, ["experiment", "method", "target", "requests"] + headers, tablefmt="github",
                                disable_numparse=True))
    return "\n\n".join(parts) + "\n"


def run_evidence(run_dir: Path, records: list[dict]) -> Evidence:
    """The run's records with its profile's bootstrap settings (resamples, seed)."""
    return Evidence(records, *run_bootstrap(run_dir))
