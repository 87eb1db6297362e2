"""The paper's views of a results file: Figure 3's normalised scores, Figure 4's curves, Table B. Each cell is
named by the records it reads (selectors), so the same cell gives a run's value, its 95% interval (paired
resamples, repro/report/evidence.py) or the mean over several seeds' runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from repro.eval.intervals import percentile_interval
from repro.experiments.results import EXPERIMENTS
from repro.report.evidence import Evidence, value_of

METHOD_NAMES = {"ga": "GA", "ga_klr": "GA+KLR", "npo": "NPO", "gd": "GD", "simnpo": "SimNPO", "kl_min": "KL_Min"}
TARGET_NAMES = {"proj+llm": "Proj, LLM", "llm": "LLM"}
FIGURE3_AXES = (("unlearn", "forgotten_unlearn"), ("retain", "retained_retain"), ("mmbench", "retained_mmbench"))

Sel = dict[str, Any]


def methods_in(records: list[dict], experiment: str) -> list[str]:
    found = {r["method"] for r in records if r["experiment"] == experiment}
    return [m for m in METHOD_NAMES if m in found] + sorted(found - set(METHOD_NAMES))


# ---- cells: what each view reads ------------------------------------------------------------------


def figure3_cells(records: list[dict]) -> dict[str, dict[str, dict[str, tuple[Sel, Sel]]]]:
    """{source: {method: {axis: (before, after)}}}: one request, Proj+LLM, all modalities."""
    out: dict[str, dict[str, dict[str, tuple[Sel, Sel]]]] = {}
    for experiment in ("finetuned", "pretrained"):
        per_method = {}
        for method in methods_in(records, experiment):
            common = {"experiment": experiment, "method": method, "target": "proj+llm", "modality": "all"}
            per_method[method] = {name: ({**common, "split": split, "step": 0}, {**common, "split": split, "step": 1})
                                  for split, name in FIGURE3_AXES}
        if per_method:
            out[experiment] = per_method
    return out


def normalised(axis: str, ratio: float | np.ndarray) -> float | np.ndarray:
    """Figure 3's scores in percent (docs/design.md, "The protocol"): forgotten = 100 (1 - after/before) on
    D_unlearn; retained = 100 after/before on D_retain and MMBench."""
    return 100.0 - 100.0 * ratio if axis == "forgotten_unlearn" else 100.0 * ratio


def figure4_cells(records: list[dict]) -> dict[str, dict[str, list[Sel]]]:
    """{split: {method: [selector after 0..5 requests]}} for the sustainability experiment."""
    steps = sorted({r["step"] for r in records if r["experiment"] == "sustainability"})
    return {split: {m: [{"experiment": "sustainability", "method": m, "target": "proj+llm", "step": s,
                         "split": split, "modality": "all"} for s in steps]
                    for m in methods_in(records, "sustainability")}
            for split in ("unlearn", "retain", "mmbench")}


TABLE_B_COLUMNS = (("unlearn", "multimodal"), ("unlearn", "text"), ("retain", "multimodal"),
                   ("retain", "text"), ("mmbench", "all"), ("mmbench_circular", "all"))


def table_b_cells() -> list[tuple[str, list[Sel]]]:
    """Rows (label, [D_unlearn multi, text, D_retain multi, text, MMBench, MMBench circular]): before, GA
    proj+llm, GA llm."""
    rows = [("before unlearning", [{"experiment": "modality", "method": "ga", "step": 0, "split": s, "modality": m}
                                   for s, m in TABLE_B_COLUMNS])]
    for target in ("proj+llm", "llm"):
        rows.append((f"GA, {TARGET_NAMES[target]}",
                     [{"experiment": "modality", "method": "ga", "target": target, "step": 1, "split": s,
                       "modality": m} for s, m in TABLE_B_COLUMNS]))
    return rows


# MLLMU-Bench's own tasks (eval.benchmarks "generation", "fill_blank"): their records' split suffix and header
TASKS = (("generation", "ROUGE-L"), ("fill_blank", "fill-in-the-blank %"))


def task_cells(records: list[dict]) -> tuple[list[str], list[tuple[list[str], list[Sel]]]]:
    """MLLMU-Bench's tasks before and after the last request of each experiment, method and target, on
    D_unlearn and D_retain, all modalities: (column headers, rows of (labels, selectors)); none when the run
    measured neither task."""
    tasks = [(t, name) for t, name in TASKS if any(r["split"].endswith("_" + t) for r in records)]
    if not tasks:
        return [], []
    columns = [(f"{split}_{t}", f"{label} {name}") for t, name in tasks
               for split, label in (("unlearn", "D_unlearn"), ("retain", "D_retain"))]
    rows = []
    for experiment in EXPERIMENTS:
        mine = [r for r in records if r["experiment"] == experiment]
        for method in methods_in(mine, experiment):
            for target in sorted({r["target"] for r in mine if r["method"] == method}):
                steps = sorted({r["step"] for r in mine if r["method"] == method and r["target"] == target})
                for step in dict.fromkeys((steps[0], steps[-1])):
                    common = {"experiment": experiment, "method": method, "target": target, "step": step,
                              "modality": "all"}
                    rows.append(([experiment, METHOD_NAMES.get(method, method), TARGET_NAMES.get(target, target),
                                  str(step)], [{**common, "split": split} for split, _ in columns]))
    return [header for _, header in columns], rows


# ---- values ---------------------------------------------------------------------------------------------


def figure3_value(records: list[dict], axis: str, before: Sel, after: Sel) -> float | None:
    b, a = value_of(records, before), value_of(records, after)
    return None if b is None or a is None or b == 0 else float(normalised(axis, a / b))


def figure3(records: list[dict]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{source: {method: {"forgotten_unlearn", "retained_retain", "retained_mmbench"}}}, in percent."""
    return {source: {m: {axis: figure3_value(records, axis, *sels) for axis, sels in cells.items()}
                     for m, cells in per.items()}
            for source, per in figure3_cells(records).items()}


def figure4(records: list[dict]) -> dict[str, dict[str, list[float | None]]]:
    """{split: {method: [accuracy after 0..5 requests]}} for the sustainability experiment."""
    return {split: {m: [value_of(records, sel) for sel in sels] for m, sels in per.items()}
            for split, per in figure4_cells(records).items()}


def table_b(records: list[dict]) -> list[tuple[str, list[float | None]]]:
    return [(label, [value_of(records, sel) for sel in sels]) for label, sels in table_b_cells()]


# ---- intervals ------------------------------------------------------------------------------------------


def _interval(draws: np.ndarray | None) -> tuple[float, float] | None:
    if draws is None:
        return None
    finite = draws[np.isfinite(draws)]
    return percentile_interval(finite) if finite.size and finite.min() != finite.max() else None


def figure3_interval(ev: Evidence, axis: str, before: Sel, after: Sel) -> tuple[float, float] | None:
    """The 95% interval of a Figure 3 score: after/before resampled over the same people (paired)."""
    ratios = ev.ratio_draws(before, after)
    return None if ratios is None else _interval(normalised(axis, ratios))


def accuracy_interval(ev: Evidence, select: Sel) -> tuple[float, float] | None:
    return _interval(ev.draws(select))
