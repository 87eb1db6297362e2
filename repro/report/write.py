"""`pulse-repro report RUN_DIR`: the tables, the figures and what was run, for one run; for a parent of
`all --seeds` runs, the report across seeds."""

from __future__ import annotations

from pathlib import Path

from repro.atomic import output_dir
from repro.errors import ReproError
from repro.experiments.provenance import read_units
from repro.experiments.results import judged_results
from repro.report.figures import plot_figure3, plot_figure4
from repro.report.seeds import seed_runs, write_seeds_report
from repro.report.tables import render_tables, run_evidence
from repro.report.views import figure3, figure4
from repro.report.what_was_run import render_what_was_run


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report/{tables.md, figure3.png, figure4.png}, print the tables, return the folder. A
    directory of seed-N runs (`all --seeds`) gets the report across seeds."""
    if not (run_dir / "results.jsonl").exists() and seed_runs(run_dir):
        return write_seeds_report(run_dir)
    records = judged_results(run_dir / "results.jsonl")
    if not records:
        raise ReproError(f"{run_dir / 'results.jsonl'}: no results to report")
    out = output_dir(run_dir / "report", "the report")
    text = render_tables(records, run_evidence(run_dir, records)) + "\n" + render_what_was_run(read_units(run_dir))
    (out / "tables.md").write_text(text)
    print(text)
    plot_figure3(figure3(records), out / "figure3.png")
    plot_figure4(figure4(records), out / "figure4.png")
    return out
