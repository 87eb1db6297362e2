"""`pulse-repro report`: the paper's tables as markdown (tabulate) and its figures as PNG."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from repro.errors import ReproError
from repro.eval.metrics import CHANCE
from repro.experiments.results import read_results
from repro.report.views import METHOD_NAMES, figure3, figure4, table_b

SPLIT_NAMES = {"unlearn": "D_unlearn", "retain": "D_retain", "mmbench": "MMBench"}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def render_tables(records: list[dict]) -> str:
    parts = []
    f3 = figure3(records)
    if f3:
        rows = [[source, METHOD_NAMES.get(m, m), _fmt(v["forgotten_unlearn"]), _fmt(v["retained_retain"]),
                 _fmt(v["retained_mmbench"])] for source, per in f3.items() for m, v in per.items()]
        parts.append("## Figure 3: fine-tuned vs pre-trained knowledge (one request, Proj+LLM)\n\n"
                     "Forgotten% = 100 (1 - after/before) on D_unlearn (higher is better); retained% = "
                     "100 after/before on D_retain and MMBench (higher is better).\n\n"
                     + tabulate(rows, ["knowledge", "method", "forgotten% D_unlearn", "retained% D_retain",
                                       "retained% MMBench"], tablefmt="github"))
    f4 = figure4(records)
    if any(f4.values()):
        rows = []
        for split, per in f4.items():
            for m, values in per.items():
                rows.append([SPLIT_NAMES[split], METHOD_NAMES.get(m, m)] + [_fmt(v) for v in values])
        n = max((len(v) for per in f4.values() for v in per.values()), default=0)
        parts.append(f"## Figure 4: accuracy (%) after each of five sequential requests (chance {CHANCE:.0f})\n\n"
                     + tabulate(rows, ["split", "method"] + [f"after {k}" for k in range(n)], tablefmt="github"))
    tb = table_b(records)
    if any(v is not None for _, vals in tb for v in vals):
        rows = [[label] + [_fmt(v) for v in vals] for label, vals in tb]
        parts.append(f"## Table B: accuracy (%) by modality and update target, GA (chance {CHANCE:.0f})\n\n"
                     + tabulate(rows, ["", "D_unlearn Multi", "D_unlearn Text", "D_retain Multi",
                                       "D_retain Text", "MMBench"], tablefmt="github"))
    return "\n\n".join(parts) + "\n"


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report/{tables.md, figure3.png, figure4.png}, print the tables, return the folder."""
    from repro.report.figures import plot_figure3, plot_figure4

    records = read_results(run_dir / "results.jsonl")
    if not records:
        raise ReproError(f"{run_dir / 'results.jsonl'}: no results to report")
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    text = render_tables(records)
    (out / "tables.md").write_text(text)
    print(text)
    plot_figure3(figure3(records), out / "figure3.png")
    plot_figure4(figure4(records), out / "figure4.png")
    return out
